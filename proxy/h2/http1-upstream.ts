// HTTP/2 client → HTTP/1 upstream: an HTTP/2 stream whose cluster speaks HTTP/1.1 goes out as a
// node:http request on a keep-alive Agent of the endpoint (pool.maxConnections sockets,
// pool.connectTimeout, pool.idleTimeout), dressed as the client HTTP/2 stream the H2Exchange
// drives (the same events: response, data, trailers, end, close with an rstCode; write, end,
// pause, resume, close). Off the benchmarked path: the HTTP/1 pool and codec stay for HTTP/1
// clients; this is the simple way across, with node:http's parser.
import { EventEmitter } from 'node:events'
import type { ClientRequest, IncomingMessage, OutgoingHttpHeaders as H1Headers } from 'node:http'
import { Agent, request } from '../net/node-http.ts'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { EndpointPool } from '../cluster/pool.ts'
import { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } from './upstream.ts'

const agents = new WeakMap<EndpointPool, Agent>()

function agentFor(pool: EndpointPool): Agent {
  let a = agents.get(pool)
  if (a === undefined) {
    a = new Agent({ keepAlive: true, maxSockets: pool.settings.maxConnections, timeout: pool.settings.idleTimeoutMs })
    agents.set(pool, a)
  }
  return a
}

/** What the H2Exchange needs of an upstream stream (a ClientHttp2Stream has all of it). */
export interface UpStream {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- node:events listener signature
  on(ev: string, f: (...args: any[]) => void): unknown
  write(b: Buffer): boolean
  end(): void
  pause(): unknown
  resume(): unknown
  close(code?: number): void
  readonly closed: boolean
  readonly writableEnded: boolean
  readonly rstCode: number | undefined
}

/** Hop-by-hop on HTTP/1 or pseudo: not sent. */
const DROP = new Set(['te', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade'])

export class H1UpStream extends EventEmitter implements UpStream {
  private readonly req: ClientRequest
  private res: IncomingMessage | null = null
  closed = false
  writableEnded = false
  rstCode: number | undefined = undefined
  private ended = false

  constructor(pool: EndpointPool, h: OutgoingHttpHeaders, endStream: boolean) {
    super()
    const headers: H1Headers = {}
    for (const n in h) if (n.charCodeAt(0) !== 0x3a && !DROP.has(n)) headers[n] = h[n] as string | string[]
    headers.host = String(h[':authority'])
    // A body on any method is framed: node:http frames GET, HEAD, DELETE, OPTIONS, TRACE and
    // CONNECT bodies by nothing unless told, and the upstream would read the DATA as a second
    // request (smuggled past the routes). Its length when the client gave one (nghttp2 has held
    // the DATA to it), else chunked, as HAProxy does.
    if (!endStream && h['content-length'] === undefined) headers['transfer-encoding'] = 'chunked'
    let connected = false
    this.req = request({
      host: pool.host,
      port: pool.port,
      method: String(h[':method']),
      path: String(h[':path']),
      headers,
      agent: agentFor(pool),
      timeout: pool.settings.connectTimeoutMs,
    })
    this.req.on('socket', (s) => {
      if (!s.connecting) connected = true
      else s.once('connect', () => (connected = true))
    })
    this.req.on('timeout', () => {
      if (!connected) this.req.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }))
    })
    this.req.on('drain', () => this.emit('drain'))
    this.req.on('error', (err: NodeJS.ErrnoException) => {
      if (this.closed) return
      if (!connected && this.res === null) {
        this.closed = true
        this.emit('connectError', err)
        return
      }
      this.reset(NGHTTP2_INTERNAL_ERROR)
    })
    this.req.on('response', (res: IncomingMessage) => {
      this.res = res
      this.req.setTimeout(0)
      const out: IncomingHttpHeaders = { ':status': res.statusCode as unknown as string }
      for (const n in res.headers) if (!DROP.has(n)) out[n] = res.headers[n]
      this.emit('response', out, 0)
      res.on('data', (b: Buffer) => this.emit('data', b))
      res.on('end', () => {
        this.ended = true
        if (Object.keys(res.trailers).length > 0) this.emit('trailers', res.trailers)
        this.emit('end')
        this.closed = true
        this.emit('close')
      })
      res.on('error', () => this.reset(NGHTTP2_INTERNAL_ERROR))
      res.on('close', () => {
        if (!this.ended) this.reset(NGHTTP2_INTERNAL_ERROR)
      })
    })
    if (endStream) this.end()
  }

  private reset(code: number): void {
    if (this.closed) return
    this.closed = true
    this.rstCode = code
    this.emit('close')
  }

  write(b: Buffer): boolean {
    return this.req.write(b)
  }

  end(): void {
    this.writableEnded = true
    this.req.end()
  }

  pause(): this {
    this.res?.pause()
    return this
  }

  resume(): this {
    this.res?.resume()
    return this
  }

  /** Abandon: the socket is destroyed (HTTP/1 has no other way to cancel one request). */
  close(code = NGHTTP2_CANCEL): void {
    if (this.closed) return
    this.closed = true
    this.rstCode = code
    this.req.destroy()
  }
}
