// HTTP/1.1 client → HTTP/2 upstream. The HTTP/1 exchange (proxy/router/exchange.ts) does not know
// about HTTP/2: when its cluster speaks HTTP/2 it gets, instead of a pooled HTTP/1 connection, an
// H2Bridge that looks like one (the members of UpstreamConn the exchange uses). What the exchange
// writes — its serialized request head, then the body (chunk-framed when the request was chunked)
// — becomes one stream on the endpoint's shared HTTP/2 session; the stream's response is handed
// back through the same UpstreamHandler calls an HTTP/1 upstream makes (head, data, end with the
// trailers as a block, errors with UC). So routing, policy, retries, the response writer
// (chunked when the upstream gave no content-length, trailers as chunked trailers) are the
// exchange's own, and the HTTP/1→HTTP/1 path pays one branch on a compiled cluster field.
//
// Not bridged: Upgrade (the connection-specific fields are dropped; the request goes as a plain
// one), request trailers (dropped), informational responses other than the final one.
import { constants, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { ClientStream } from './codec/client.ts'
import type { EndpointPool, PoolWaiter } from '../cluster/pool.ts'
import type { UpstreamConn, UpstreamHandler } from '../cluster/upstream.ts'
import { ChunkedDecoder } from '../../api/http1/chunked.ts'
import { HttpError, reasonPhrase, type ResponseHead } from '../../api/http1/head.ts'
import { cancelStream, h2Upstream, type H2Waiter, type UpSession } from './upstream.ts'

const { NGHTTP2_FLAG_END_STREAM } = constants
const DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'expect', 'http2-settings'])

/** Ask the endpoint's HTTP/2 session for a stream on behalf of an HTTP/1 exchange. */
export function acquireH2(pool: EndpointPool, w: PoolWaiter): void {
  h2Upstream(pool).acquire(new BridgeWaiter(w))
}

class BridgeWaiter implements H2Waiter {
  readonly target: PoolWaiter
  constructor(w: PoolWaiter) {
    this.target = w
  }
  onH2Session(s: UpSession): void {
    this.target.onPoolConnection(new H2Bridge(s) as unknown as UpstreamConn)
  }
  onH2Failure(err: HttpError, flag: string): void {
    this.target.onPoolFailure(err, flag)
  }
}

/** The "socket" the exchange writes its request to. */
class BridgeSocket {
  private readonly b: H2Bridge
  constructor(b: H2Bridge) {
    this.b = b
  }
  write(data: string | Buffer, enc?: BufferEncoding): boolean {
    return this.b.onRequestBytes(typeof data === 'string' ? Buffer.from(data, enc ?? 'latin1') : data)
  }
  cork(): void {}
  uncork(): void {}
  pause(): void {
    this.b.stream?.pause()
  }
  resume(): void {
    this.b.stream?.resume()
  }
  get writableLength(): number {
    return this.b.stream?.writableLength ?? 0
  }
  destroy(): void {
    this.b.destroy()
  }
}

export class H2Bridge {
  private readonly session: UpSession
  readonly socket: BridgeSocket
  stream: ClientHttp2Stream | ClientStream | null = null
  private handler: UpstreamHandler | null = null
  private headRequest = false
  readonly reused = false
  private dead = false
  private started = false
  /** request body framing: -1 none, else content-length bytes left; chunked: a decoder */
  private left = -1
  private decoder: ChunkedDecoder | null = null
  private trailers = ''

  constructor(s: UpSession) {
    this.session = s
    this.socket = new BridgeSocket(this)
  }

  get alive(): boolean {
    return !this.dead
  }

  bind(h: UpstreamHandler, headRequest: boolean): void {
    this.handler = h
    this.headRequest = headRequest
  }

  retainRead(): void {}

  /** The response was complete (or abandoned): nothing goes back to a pool. */
  release(requestFullySent: boolean): void {
    void requestFullySent
    this.destroy()
  }

  destroy(): void {
    if (this.dead) return
    this.dead = true
    this.handler = null
    const st = this.stream
    // A stream whose response ended and whose request was sent closes by itself: no RST_STREAM.
    if (st !== null && !st.closed && !(this.respEnded && st.writableEnded)) cancelStream(st)
  }

  private respEnded = false

  onRequestBytes(b: Buffer): boolean {
    if (this.dead) return true
    if (this.stream === null) return this.openStream(b)
    return this.body(b)
  }

  private body(b: Buffer): boolean {
    const st = this.stream!
    if (this.decoder !== null) {
      let ok = true
      const d = this.decoder
      d.push(b, 0, b.length, {
        onChunkData: (buf: Buffer, s: number, e: number) => {
          ok = st.write(Buffer.from(buf.subarray(s, e)))
        },
        onChunkedEnd: () => {
          st.end()
        },
      })
      return ok
    }
    if (this.left > 0) {
      this.left -= b.length
      // A copy: the exchange's bytes are a view of its reused read buffer, and nghttp2 holds what
      // it was given until it is sent (writableLength does not show that).
      const ok = st.write(Buffer.from(b))
      if (this.left <= 0) st.end()
      return ok
    }
    return true
  }

  /** The serialized HTTP/1 head (the exchange's first write), as HTTP/2 request headers. */
  private openStream(head: Buffer): boolean {
    const text = head.latin1Slice(0, head.length)
    const end = text.indexOf('\r\n\r\n')
    const lines = text.slice(0, end === -1 ? text.length : end).split('\r\n')
    const [method, path] = lines[0].split(' ')
    const h: OutgoingHttpHeaders = Object.create(null)
    h[':method'] = method
    h[':scheme'] = 'http'
    h[':path'] = path
    let chunked = false
    let length = -1
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(':')
      if (c <= 0) continue
      const n = lines[i].slice(0, c).toLowerCase()
      const v = lines[i].slice(c + 1).trim()
      if (n === 'host') h[':authority'] = v
      if (n === 'transfer-encoding') chunked = true
      if (n === 'content-length') length = Number(v)
      if (DROP.has(n)) continue
      const cur = h[n]
      if (cur === undefined) h[n] = v
      else if (Array.isArray(cur)) cur.push(v)
      else h[n] = [String(cur), v]
    }
    const hasBody = chunked || length > 0
    let st: ClientHttp2Stream | ClientStream
    try {
      st = this.session.request(h, { endStream: !hasBody })
    } catch {
      queueMicrotask(() => this.fail('the HTTP/2 session went away'))
      return true
    }
    this.stream = st
    if (chunked) this.decoder = new ChunkedDecoder()
    else this.left = length
    // Each listener runs the HTTP/1 exchange's code: an exception there fails this request
    // (502 WEFT_ERR_INTERNAL, the stream cancelled), not the process.
    st.on('response', this.guard((rh: IncomingHttpHeaders, flags: number) => this.onResponse(rh, (flags & NGHTTP2_FLAG_END_STREAM) !== 0)))
    st.on('data', this.guard((b: Buffer) => {
      if (!this.dead) this.handler?.onUpstreamData(b, 0, b.length)
    }))
    st.on('trailers', this.guard((t: IncomingHttpHeaders) => {
      let block = ''
      for (const n in t) if (n.charCodeAt(0) !== 0x3a) block += n + ': ' + String(t[n]) + '\r\n'
      this.trailers = block
    }))
    st.on('end', this.guard(() => {
      this.respEnded = true
      if (this.dead || !this.started) return
      const hd = this.handler
      this.handler = null
      hd?.onUpstreamEnd(this.trailers)
    }))
    st.on('close', this.guard(() => {
      if (!this.dead && this.handler !== null) this.fail(`upstream reset the stream (code ${st.rstCode})`)
    }))
    st.on('error', () => {})
    st.on('drain', this.guard(() => this.handler?.onUpstreamDrain()))
    const rest = end === -1 ? null : head.subarray(end + 4)
    if (rest !== null && rest.length > 0) return this.body(rest)
    return true
  }

  private guard<A extends unknown[]>(f: (...a: A) => void): (...a: A) => void {
    return (...a: A): void => {
      try {
        f(...a)
      } catch (err) {
        const hd = this.handler
        this.handler = null
        try {
          hd?.onUpstreamError(new HttpError(502, 'WEFT_ERR_INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`), 'UPE', this.started)
        } catch {}
        this.destroy()
      }
    }
  }

  private fail(msg: string): void {
    const hd = this.handler
    if (hd === null) return
    this.handler = null
    hd.onUpstreamError(new HttpError(502, 'WEFT_ERR_UPSTREAM_RESET', msg), 'UC', this.started)
  }

  private onResponse(rh: IncomingHttpHeaders, endStream: boolean): void {
    if (this.dead || this.handler === null) return
    this.started = true
    const status = Number(rh[':status'])
    const names: string[] = []
    const values: string[] = []
    for (const n in rh) {
      if (n.charCodeAt(0) === 0x3a || n === 'content-length' || DROP.has(n)) continue
      const v = rh[n]
      if (Array.isArray(v)) for (const x of v) {
        names.push(n)
        values.push(x)
      }
      else if (v !== undefined) {
        names.push(n)
        values.push(String(v))
      }
    }
    const cl = rh['content-length']
    const head: ResponseHead = {
      status, reason: reasonPhrase(status), minor: 1, names, values,
      contentLength: cl === undefined ? (endStream ? 0 : -1) : Number(cl),
      chunked: false, transferEncoding: '', close: false, upgrade: '',
    }
    const noBody = endStream || this.headRequest || status === 204 || status === 304
    this.handler.onUpstreamHead(head, !noBody)
    if (endStream) {
      // trailers-only (a gRPC error): the fields are the head's; nothing more comes
      this.respEnded = true
      const hd = this.handler
      this.handler = null
      hd?.onUpstreamEnd('')
    }
  }
}
