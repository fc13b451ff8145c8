// Test upstreams: a node:http server that records every request (method, url, raw headers, body
// bytes, trailers) and a raw net server whose bytes the test scripts itself.
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Teardown } from './sidecar.ts'

export interface RecordedRequest {
  method: string
  url: string
  httpVersion: string
  /** as received: [name, value, name, value, ...] with the client's spelling */
  rawHeaders: string[]
  rawTrailers: string[]
  body: Buffer
  /** body bytes read so far (`body` is set once the body ended): lets a test wait for a part of it */
  bodyReceived: number
  /** index of the upstream TCP connection it came on (0-based, in accept order) */
  connection: number
  /** lower-cased header lookup (first value) */
  header(name: string): string | undefined
  /** every value of a header */
  headerAll(name: string): string[]
  /** the lower-cased header names, in order */
  headerNames(): string[]
}

export type RecordingHandler = (rec: RecordedRequest, res: ServerResponse, req: IncomingMessage) => unknown

export interface HttpUpstream {
  name: string
  server: HttpServer
  port: number
  requests: RecordedRequest[]
  /** TCP connections accepted */
  connections: number
  sockets: Set<Socket>
  close(): Promise<void>
}

export interface HttpUpstreamOptions {
  /** name used by the default handler's body */
  name?: string
  /** called once the request body was read completely (default: 200 "<name> <method> <url>") */
  handler?: RecordingHandler
  /**
   * called at once with the raw request (body not read: the test streams it), instead of `handler`.
   * The request is recorded without its body.
   */
  onRequest?: (req: IncomingMessage, res: ServerResponse, rec: RecordedRequest) => void
  keepAliveTimeoutMs?: number
}

function record(req: IncomingMessage, connection: number): RecordedRequest {
  const rec: RecordedRequest = {
    method: req.method ?? '',
    url: req.url ?? '',
    httpVersion: req.httpVersion,
    rawHeaders: req.rawHeaders,
    rawTrailers: [],
    body: Buffer.alloc(0),
    bodyReceived: 0,
    connection,
    header(name) {
      const n = name.toLowerCase()
      for (let i = 0; i < rec.rawHeaders.length; i += 2) if (rec.rawHeaders[i].toLowerCase() === n) return rec.rawHeaders[i + 1]
      return undefined
    },
    headerAll(name) {
      const n = name.toLowerCase()
      const out: string[] = []
      for (let i = 0; i < rec.rawHeaders.length; i += 2) if (rec.rawHeaders[i].toLowerCase() === n) out.push(rec.rawHeaders[i + 1])
      return out
    },
    headerNames() {
      const out: string[] = []
      for (let i = 0; i < rec.rawHeaders.length; i += 2) out.push(rec.rawHeaders[i].toLowerCase())
      return out
    },
  }
  return rec
}

/** A recording node:http upstream on 127.0.0.1:0, closed at teardown. */
export async function startHttpUpstream(t: Teardown, opts: HttpUpstreamOptions = {}): Promise<HttpUpstream> {
  const name = opts.name ?? 'upstream'
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const connIndex = new WeakMap<Socket, number>()
  let connections = 0
  const server = createHttpServer((req, res) => {
    const rec = record(req, connIndex.get(req.socket) ?? -1)
    requests.push(rec)
    if (opts.onRequest !== undefined) {
      // The test reads the body itself (flow control is its business).
      opts.onRequest(req, res, rec)
      return
    }
    const parts: Buffer[] = []
    req.on('data', (b: Buffer) => {
      parts.push(b)
      rec.bodyReceived += b.length
    })
    req.on('end', () => {
      rec.body = Buffer.concat(parts)
      rec.rawTrailers = req.rawTrailers
      const h = opts.handler ?? defaultHandler(name)
      void Promise.resolve(h(rec, res, req)).catch((err) => {
        res.destroy(err as Error)
      })
    })
  })
  server.on('connection', (s: Socket) => {
    connIndex.set(s, connections++)
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  if (opts.keepAliveTimeoutMs !== undefined) {
    server.keepAliveTimeout = opts.keepAliveTimeoutMs
    // newer Node releases add a grace period (keepAliveTimeoutBuffer, 1 s) on top: not wanted here
    if ('keepAliveTimeoutBuffer' in server) Object.assign(server, { keepAliveTimeoutBuffer: 0 })
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as AddressInfo).port
  let closed = false
  const up: HttpUpstream = {
    name,
    server,
    port,
    requests,
    get connections() {
      return connections
    },
    sockets,
    close() {
      if (closed) return Promise.resolve()
      closed = true
      return new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      })
    },
  }
  t.teardown(() => up.close())
  return up
}

export function defaultHandler(name: string): RecordingHandler {
  return (rec, res) => {
    const body = `${name} ${rec.method} ${rec.url}`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
    res.end(rec.method === 'HEAD' ? undefined : body)
  }
}

// ---- raw upstream --------------------------------------------------------------------------------

export interface RawRequest {
  head: string
  /** request line */
  line: string
  /** lower-cased name -> values */
  headers: Map<string, string[]>
  body: Buffer
  /** for chunked bodies: the raw trailer block ("" if none) */
  trailers: string
}

/** One accepted connection of a raw upstream: everything it received, and helpers to script it. */
export class RawConn {
  readonly socket: Socket
  readonly index: number
  data: Buffer = Buffer.alloc(0)
  ended = false
  closed = false
  private cursor = 0
  private waiters: (() => void)[] = []

  constructor(socket: Socket, index: number) {
    this.socket = socket
    this.index = index
    socket.on('data', (b: Buffer) => {
      this.data = Buffer.concat([this.data, b])
      this.wake()
    })
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  /** Resolves on the next data/end/close event (or after timeoutMs). */
  private changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      this.waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** the peer (the proxy) ended or closed the connection */
  get done(): boolean {
    return this.ended || this.closed
  }

  /** The text received, latin1. */
  text(): string {
    return this.data.toString('latin1')
  }

  /** Wait for and parse the next complete request (Content-Length or chunked body). */
  async nextRequest(timeoutMs = 3000): Promise<RawRequest> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const r = this.tryParse()
      if (r !== null) return r
      if (this.ended || this.closed) throw new Error(`raw upstream connection ${this.index} ended before a complete request`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`raw upstream connection ${this.index}: no complete request in time (have ${JSON.stringify(this.text().slice(this.cursor))})`)
      await this.changed(left)
    }
  }

  private tryParse(): RawRequest | null {
    const buf = this.data
    const he = buf.indexOf('\r\n\r\n', this.cursor, 'latin1')
    if (he === -1) return null
    const head = buf.toString('latin1', this.cursor, he)
    const lines = head.split('\r\n')
    const headers = new Map<string, string[]>()
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':')
      const n = l.slice(0, c).trim().toLowerCase()
      const v = l.slice(c + 1).trim()
      headers.set(n, [...(headers.get(n) ?? []), v])
    }
    let pos = he + 4
    const te = headers.get('transfer-encoding')?.join(',') ?? ''
    if (/chunked/i.test(te)) {
      const parts: Buffer[] = []
      for (;;) {
        const le = buf.indexOf('\r\n', pos, 'latin1')
        if (le === -1) return null
        const size = parseInt(buf.toString('latin1', pos, le).split(';')[0], 16)
        pos = le + 2
        if (size === 0) {
          const te2 = buf.indexOf('\r\n', pos, 'latin1')
          if (te2 === -1) return null
          if (te2 === pos) {
            this.cursor = pos + 2
            return { head, line: lines[0], headers, body: Buffer.concat(parts), trailers: '' }
          }
          const end = buf.indexOf('\r\n\r\n', pos, 'latin1')
          if (end === -1) return null
          this.cursor = end + 4
          return { head, line: lines[0], headers, body: Buffer.concat(parts), trailers: buf.toString('latin1', pos, end + 2) }
        }
        if (buf.length < pos + size + 2) return null
        parts.push(buf.subarray(pos, pos + size))
        pos += size + 2
      }
    }
    const cl = Number(headers.get('content-length')?.[0] ?? '0')
    if (buf.length < pos + cl) return null
    this.cursor = pos + cl
    return { head, line: lines[0], headers, body: buf.subarray(pos, pos + cl), trailers: '' }
  }

  write(data: string | Buffer): void {
    if (typeof data === 'string') this.socket.write(data, 'latin1')
    else this.socket.write(data)
  }
}

export interface RawUpstream {
  server: NetServer
  port: number
  conns: RawConn[]
  /** bytes received over all connections */
  readonly bytes: number
  /** resolves with the next connection accepted (or one already accepted and not yet taken) */
  nextConn(timeoutMs?: number): Promise<RawConn>
  close(): Promise<void>
}

/**
 * A raw TCP upstream on 127.0.0.1:0. `onConn` scripts each connection (write bytes, close, ...);
 * without it the test takes connections with nextConn().
 */
export async function startRawUpstream(t: Teardown, onConn?: (c: RawConn) => void | Promise<void>): Promise<RawUpstream> {
  const conns: RawConn[] = []
  let taken = 0
  let waiters: (() => void)[] = []
  const server = createNetServer({ allowHalfOpen: true }, (s) => {
    const c = new RawConn(s, conns.length)
    conns.push(c)
    if (onConn !== undefined) void Promise.resolve(onConn(c)).catch(() => s.destroy())
    const w = waiters
    waiters = []
    for (const f of w) f()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as AddressInfo).port
  let closed = false
  const up: RawUpstream = {
    server,
    port,
    conns,
    get bytes() {
      return conns.reduce((n, c) => n + c.data.length, 0)
    },
    async nextConn(timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs
      while (taken >= conns.length) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error('raw upstream: no connection in time')
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          waiters.push(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
      return conns[taken++]
    },
    close() {
      if (closed) return Promise.resolve()
      closed = true
      for (const c of conns) c.socket.destroy()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
  t.teardown(() => up.close())
  return up
}

/** A response head + body with Content-Length. */
export function rawResponse(status: number, body: string | Buffer = '', headers: string[] = []): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body
  const head = `HTTP/1.1 ${status} X\r\n${headers.map((h) => h + '\r\n').join('')}content-length: ${b.length}\r\n\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), b])
}
