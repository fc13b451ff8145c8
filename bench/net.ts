// Small network helpers for the benchmark harness: free ports and plain HTTP probes.
import net from 'node:net'
import http from 'node:http'

/** Finds `count` distinct free TCP ports on 127.0.0.1 by binding port 0 (all held open at once, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = []
  try {
    for (let i = 0; i < count; i++) {
      const srv = net.createServer()
      servers.push(srv)
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject)
        srv.listen(0, '127.0.0.1', () => resolve())
      })
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port)
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))))
  }
}

export interface HttpResult {
  status: number
  body: string
  headers: http.IncomingHttpHeaders
}

/** One GET on a fresh connection (no agent), with a timeout. Rejects on network errors. */
export function httpGet(
  port: number,
  path = '/',
  timeoutMs = 2000,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET 127.0.0.1:${port}${path} timed out after ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls GET http://127.0.0.1:port/path until `accept` says yes, `alive()` says the process died, or the
 * deadline passes. Returns the last response; throws with the last error on failure.
 */
export async function waitForHttp(opts: {
  port: number
  path?: string
  timeoutMs: number
  accept?: (r: HttpResult) => boolean
  alive?: () => string | null // returns a reason when the process is gone
}): Promise<HttpResult> {
  const accept = opts.accept ?? ((r: HttpResult) => r.status === 200)
  const deadline = Date.now() + opts.timeoutMs
  let last = 'no attempt'
  for (;;) {
    const dead = opts.alive?.()
    if (dead) throw new Error(dead)
    try {
      const r = await httpGet(opts.port, opts.path ?? '/', 1000)
      if (accept(r)) return r
      last = `HTTP ${r.status} ${JSON.stringify(r.body.slice(0, 120))}`
    } catch (err) {
      last = (err as Error).message
    }
    if (Date.now() > deadline) {
      throw new Error(`not ready after ${opts.timeoutMs} ms on 127.0.0.1:${opts.port}${opts.path ?? '/'} (last: ${last})`)
    }
    await sleep(100)
  }
}
