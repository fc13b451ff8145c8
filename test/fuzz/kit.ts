// What the sidecar and server fuzz targets share: the strict raw upstream that records every
// malformed byte it receives, server shutdown, an HTTP probe, and the heap level check.
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { checkStream } from './strict.ts'

export interface StrictUpstream {
  server: Server
  port: number
  violations: string[]
  sockets: Set<Socket>
}

/** A raw upstream that checks every byte it receives and answers each complete request with 200. */
export async function strictUpstream(): Promise<StrictUpstream> {
  const u: StrictUpstream = { server: null as unknown as Server, port: 0, violations: [], sockets: new Set() }
  u.server = createServer((sock) => {
    u.sockets.add(sock)
    let buf = Buffer.alloc(0)
    let answered = 0
    sock.on('error', () => {})
    sock.on('close', () => u.sockets.delete(sock))
    sock.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b])
      const r = checkStream(buf, 'request', { final: false })
      if (r.violations.length > 0) {
        u.violations.push(...r.violations.map((v) => `upstream received: ${v}`))
        sock.destroy()
        return
      }
      for (; answered < r.messages; answered++) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    })
  })
  await new Promise<void>((res) => u.server.listen(0, '127.0.0.1', res))
  u.port = (u.server.address() as AddressInfo).port
  return u
}

export async function closeServer(s: Server, sockets: Set<Socket>): Promise<void> {
  for (const x of sockets) x.destroy()
  await new Promise<void>((res) => s.close(() => res()))
}

export async function probeHttp(url: string): Promise<string | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) })
    const body = await res.text()
    return res.status === 200 ? null : `probe ${url}: ${res.status} ${body.slice(0, 100)}`
  } catch (err) {
    return `probe ${url}: ${(err as Error).message}`
  }
}

export function heapCheck(base: number): string | null {
  const g = globalThis as { gc?: () => void }
  if (!g.gc) return null
  g.gc()
  const now = process.memoryUsage().heapUsed
  // 64 MB over the level before the run: a leak per input grows past it within a batch of thousands
  return now - base > 64 * 1024 * 1024 ? `heap grew from ${(base / 1e6).toFixed(0)} to ${(now / 1e6).toFixed(0)} MB` : null
}

export function heapBase(): number {
  const g = globalThis as { gc?: () => void }
  g.gc?.()
  return process.memoryUsage().heapUsed
}

