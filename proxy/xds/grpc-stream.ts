// One gRPC bidirectional stream over the proxy's own HTTP/2 client codec (proxy/h2/codec/client.ts):
// the config stream's transport (./client.ts). A --control-plane sidecar used @grpc/grpc-js for it,
// and grpc-js loads node:http2 (nghttp2), node:tls and OpenSSL, dns, zlib: ~18 MB of an idle
// sidecar and ~100 ms of its start (README, *Footprint*). This is the part of gRPC one stream
// needs (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
// - h2c with prior knowledge on a TCP connection of its own (one per attempt: the client's backoff
//   is the reconnection schedule); POST path, content-type application/grpc, te: trailers;
// - messages with the 5-byte prefix (flag, length), never compressed: a compressed flag from the
//   server is an error (we offer no grpc-accept-encoding); up to maxMessage bytes, reassembled
//   across DATA frames into one buffer allocated once its length is known;
// - the status from the trailers, or from a trailers-only response (grpc-status, grpc-message
//   percent-decoded); an HTTP status other than 200, a reset, a GOAWAY, a socket error or a
//   keepalive PING not acknowledged in time end the stream with a status as grpc-js gives them
//   (UNAVAILABLE for the connection's failures, the HTTP and RST_STREAM mappings of the spec);
// - flow control: the codec credits what is read as it is read; the windows are raised (4 MiB per
//   stream, 8 MiB for the connection) so a multi-MB snapshot does not wait for a round trip every
//   64 KiB.
// A GOAWAY ends the stream at once, even a graceful one: the control plane is going away (restart,
// rebalancing), and the client's next attempt finds its successor instead of waiting on a
// connection that takes no new streams. No TLS: the config stream is plaintext (as it was with
// grpc-js's insecure credentials); the mesh's TLS is the data path's.
import type { IncomingHttpHeaders } from 'node:http2'
import { ClientSession, type ClientStream } from '../h2/codec/client.ts'
import type { ConnOptions } from '../h2/codec/connection.ts'
import { E_CANCEL, E_ENHANCE_YOUR_CALM, E_NO_ERROR, E_REFUSED_STREAM, F_END_STREAM } from '../h2/codec/frames.ts'
import type { Timers } from './backoff.ts'

/** gRPC status codes used here (grpc-js's `status`) */
export const GRPC = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const

/** How a stream ended: what grpc-js's 'status' event carried (code and details). */
export interface GrpcStatus {
  code: number
  details: string
}

export interface GrpcStreamOptions<Req, Res> {
  /** host:port, [v6]:port or dns:host:port (grpc-js's forms of a TCP target) */
  address: string
  /** /package.Service/Method */
  path: string
  serialize(m: Req): Uint8Array
  deserialize(b: Buffer): Res
  /** a PING this often once connected; down when it is not acknowledged within min(this, 10 s) */
  keepaliveMs: number
  /** the TCP connection must be up within this (default 20 s, grpc-js's minimum connect timeout) */
  connectTimeoutMs?: number
  /** the largest message accepted (default 4 MiB, gRPC's) */
  maxMessage?: number
  userAgent: string
  /** for the keepalive and connect timers (tests) */
  timers: Timers
  /**
   * a connection to `address` opened earlier (openConnection), taken when it is still usable: the
   * TCP handshake and the HTTP/2 preface then overlap the caller's own start-up (./sidecar.ts)
   */
  connection?: EarlyConnection | null
}

/** A connection to the control plane opened before its stream (openConnection). */
export interface EarlyConnection {
  readonly session: ClientSession
  /** the socket's error, if one came before a stream took the connection */
  error: Error | null
}

/**
 * Opens the stream's connection to `address` now (TCP, then the client preface and SETTINGS), for
 * a GrpcStream made later (its `connection` option). A connection that failed or closed meanwhile
 * is not used: the stream then opens its own, as it would have.
 */
export function openConnection(address: string): EarlyConnection {
  const { host, port } = parseTarget(address)
  const c: EarlyConnection = { session: ClientSession.connect(host, port, CONN_OPTIONS), error: null }
  c.session.on('error', (err: Error) => (c.error ??= err))
  return c
}

/** Drop a connection no stream took. */
export function closeConnection(c: EarlyConnection): void {
  if (!c.session.destroyed) c.session.destroy()
}

function usable(c: EarlyConnection): boolean {
  return c.error === null && !c.session.closed && !c.session.destroyed
}

export interface GrpcStreamEvents<Res> {
  /** the response headers arrived: the stream is up (not for a trailers-only answer) */
  onHeaders(): void
  onMessage(m: Res): void
  /** once, at the end, whatever ended it (not after cancel()) */
  onStatus(st: GrpcStatus): void
}

/** the codec's settings for this one stream (see the header comment on the windows) */
const CONN_OPTIONS: ConnOptions = {
  maxConcurrentStreams: 100,
  maxHeaderListSize: 64 * 1024,
  maxHeaderFields: 100,
  initialWindowSize: 4 * 1024 * 1024,
  connectionWindow: 8 * 1024 * 1024,
}

const DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024
const KEEPALIVE_TIMEOUT_MAX = 10_000

export class GrpcStream<Req, Res> {
  private readonly o: GrpcStreamOptions<Req, Res>
  private readonly ev: GrpcStreamEvents<Res>
  private readonly session: ClientSession
  private readonly stream: ClientStream
  private readonly reader: MessageReader
  private done = false
  private socketError: Error | null = null
  private timer: unknown = null

  constructor(o: GrpcStreamOptions<Req, Res>, ev: GrpcStreamEvents<Res>) {
    this.o = o
    this.ev = ev
    this.reader = new MessageReader(o.maxMessage ?? DEFAULT_MAX_MESSAGE)
    const { host, port, authority } = parseTarget(o.address)
    const early = o.connection ?? null
    let session: ClientSession
    if (early !== null && usable(early)) session = early.session
    else {
      if (early !== null) closeConnection(early)
      session = ClientSession.connect(host, port, CONN_OPTIONS)
    }
    this.session = session
    session.on('error', (err: Error) => (this.socketError ??= err))
    session.on('close', () => this.fail(GRPC.UNAVAILABLE, this.socketError === null ? 'Connection dropped' : this.socketError.message))
    session.on('goaway', (code: number, lastId: number) => this.fail(GRPC.UNAVAILABLE, `the control plane sent GOAWAY (code ${code}, last stream ${lastId})`))
    session.on('internalError', (err: Error) => this.fail(GRPC.INTERNAL, `HTTP/2 client error: ${err.message}`))
    if (session.socket.connecting) {
      session.socket.once('connect', () => {
        this.clearTimer()
        this.schedulePing()
      })
      this.timer = o.timers.setTimeout(() => this.fail(GRPC.UNAVAILABLE, `no connection within ${this.connectTimeout} ms`), this.connectTimeout)
    } else this.schedulePing() // an early connection, already up
    const st = session.request({
      ':method': 'POST',
      ':scheme': 'http',
      ':authority': authority,
      ':path': o.path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': o.userAgent,
    })
    this.stream = st
    st.on('response', (h: IncomingHttpHeaders, flags: number) => this.onResponse(h, flags))
    st.on('data', (b: Buffer) => this.onData(b))
    st.on('trailers', (h: IncomingHttpHeaders) => this.end(statusOf(h)))
    st.on('end', () => this.end({ code: GRPC.UNKNOWN, details: 'the stream ended without a gRPC status' }))
    st.on('close', () => this.fail(...resetStatus(st.rstCode ?? E_CANCEL)))
  }

  private get connectTimeout(): number {
    return this.o.connectTimeoutMs ?? 20_000
  }

  /** Send one message (not after the stream ended). */
  write(m: Req): void {
    if (this.done) return
    const body = this.o.serialize(m)
    const b = Buffer.allocUnsafe(5 + body.length)
    b[0] = 0
    b.writeUInt32BE(body.length, 1)
    b.set(body, 5)
    this.stream.write(b)
  }

  /** End it from our side (RST_STREAM CANCEL, GOAWAY, the connection closed); no status follows. */
  cancel(): void {
    if (this.done) return
    this.done = true
    this.close()
  }

  private onResponse(h: IncomingHttpHeaders, flags: number): void {
    if (this.done) return
    const status = h[':status']
    if (status !== '200') return this.fail(httpStatusCode(Number(status)), `Received HTTP status code ${status}`)
    const type = h['content-type']
    if (typeof type !== 'string' || !type.startsWith('application/grpc')) return this.fail(GRPC.UNKNOWN, `not a gRPC response (content-type ${type ?? 'none'})`)
    // trailers-only: the status is in the head (an error answered at once), never "connected"
    if ((flags & F_END_STREAM) !== 0) return this.end(statusOf(h))
    this.ev.onHeaders()
  }

  private onData(b: Buffer): void {
    if (this.done) return
    const err = this.reader.push(b, (m) => {
      if (this.done) return
      let msg: Res
      try {
        msg = this.o.deserialize(m)
      } catch (e) {
        return this.fail(GRPC.INTERNAL, `Response message parsing error: ${(e as Error).message}`)
      }
      this.ev.onMessage(msg)
    })
    if (err !== null) this.fail(err.code, err.details)
  }

  /** The server ended the stream with st (trailers, or a trailers-only response). */
  private end(st: GrpcStatus): void {
    if (this.done) return
    if (st.code === GRPC.OK && this.reader.partial) st = { code: GRPC.INTERNAL, details: 'the stream ended inside a message' }
    this.fail(st.code, st.details)
  }

  private fail(code: number, details: string): void {
    if (this.done) return
    this.done = true
    this.close()
    this.ev.onStatus({ code, details })
  }

  private close(): void {
    this.clearTimer()
    const s = this.session
    if (s.destroyed) return
    this.stream.close(E_CANCEL)
    s.goaway(E_NO_ERROR, 0)
    s.destroy()
  }

  private clearTimer(): void {
    if (this.timer !== null) this.o.timers.clearTimeout(this.timer)
    this.timer = null
  }

  /** Keepalive: a PING every keepaliveMs; its ACK due within min(keepaliveMs, 10 s). */
  private schedulePing(): void {
    if (this.done) return
    const every = this.o.keepaliveMs
    this.timer = this.o.timers.setTimeout(() => {
      this.timer = null
      if (this.done) return
      const timeout = Math.min(every, KEEPALIVE_TIMEOUT_MAX)
      let acked = false
      const t = this.o.timers.setTimeout(() => {
        if (!acked) this.fail(GRPC.UNAVAILABLE, `keepalive ping not acknowledged within ${timeout} ms`)
      }, timeout)
      this.timer = t
      this.session.ping((err) => {
        acked = true
        if (this.done || err !== null) return
        this.o.timers.clearTimeout(t)
        this.timer = null
        this.schedulePing()
      })
    }, every)
  }
}

/**
 * The messages of a gRPC response body: 5-byte prefix (compressed flag, length), then the message.
 * A message cut across DATA frames is copied into one buffer of its length; one inside a single
 * frame is handed on as a view.
 */
export class MessageReader {
  private readonly max: number
  private readonly head = Buffer.alloc(5)
  private headFill = 0
  private body: Buffer | null = null
  private bodyFill = 0

  constructor(max: number) {
    this.max = max
  }

  /** some bytes of a message that has not arrived whole */
  get partial(): boolean {
    return this.headFill > 0 || this.body !== null
  }

  /** The messages b completes, to onMessage; an error status for a bad prefix (then stop). */
  push(b: Buffer, onMessage: (m: Buffer) => void): GrpcStatus | null {
    let p = 0
    while (p < b.length) {
      const body = this.body
      if (body === null) {
        const k = Math.min(5 - this.headFill, b.length - p)
        b.copy(this.head, this.headFill, p, p + k)
        this.headFill += k
        p += k
        if (this.headFill < 5) break
        this.headFill = 0
        const flag = this.head[0]
        const len = this.head.readUInt32BE(1)
        if (flag === 1) return { code: GRPC.INTERNAL, details: 'a compressed message, and no compression was offered' }
        if (flag !== 0) return { code: GRPC.INTERNAL, details: `invalid message flag ${flag}` }
        if (len > this.max) return { code: GRPC.RESOURCE_EXHAUSTED, details: `Received message larger than max (${len} vs. ${this.max})` }
        if (b.length - p >= len) {
          onMessage(b.subarray(p, p + len))
          p += len
          continue
        }
        this.body = Buffer.allocUnsafe(len)
        this.bodyFill = 0
        continue
      }
      const k = Math.min(body.length - this.bodyFill, b.length - p)
      b.copy(body, this.bodyFill, p, p + k)
      this.bodyFill += k
      p += k
      if (this.bodyFill === body.length) {
        this.body = null
        onMessage(body)
      }
    }
    return null
  }
}

/** host, port and :authority of a target (grpc-js's default port: 443). */
export function parseTarget(address: string): { host: string; port: number; authority: string } {
  let a = address.startsWith('dns:///') ? address.slice(7) : address.startsWith('dns:') ? address.slice(4) : address
  let host: string
  let port = 443
  if (a.startsWith('[')) {
    const close = a.indexOf(']')
    host = a.slice(1, close)
    if (a.charAt(close + 1) === ':') port = Number(a.slice(close + 2))
    a = `[${host}]:${port}`
  } else {
    const colon = a.lastIndexOf(':')
    if (colon !== -1 && a.indexOf(':') === colon) {
      host = a.slice(0, colon)
      port = Number(a.slice(colon + 1))
    } else host = a // a bare name, or a bare IPv6 address
    a = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
  }
  return { host, port, authority: a }
}

/** The status of trailers (or a trailers-only head). */
export function statusOf(h: IncomingHttpHeaders): GrpcStatus {
  const s = h['grpc-status']
  const code = typeof s === 'string' && /^\d{1,2}$/.test(s) && Number(s) <= 16 ? Number(s) : -1
  if (code === -1) return { code: GRPC.UNKNOWN, details: s === undefined ? 'no grpc-status in the trailers' : `invalid grpc-status ${String(s)}` }
  const m = h['grpc-message']
  return { code, details: typeof m === 'string' ? percentDecode(m) : '' }
}

/** grpc-message is percent-encoded UTF-8; a malformed escape is kept as it is. */
export function percentDecode(s: string): string {
  if (!s.includes('%')) return s
  try {
    return decodeURIComponent(s)
  } catch {
    return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run)
      } catch {
        return run
      }
    })
  }
}

/** The gRPC code of a non-200 HTTP status (gRPC's http-grpc-status-mapping.md). */
export function httpStatusCode(status: number): number {
  switch (status) {
    case 400: return GRPC.INTERNAL
    case 401: return GRPC.UNAUTHENTICATED
    case 403: return GRPC.PERMISSION_DENIED
    case 404: return GRPC.UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return GRPC.UNAVAILABLE
    default: return GRPC.UNKNOWN
  }
}

/** A stream closed by RST_STREAM (or by its connection's end) without a status: as grpc-js maps it. */
function resetStatus(code: number): [number, string] {
  switch (code) {
    case E_REFUSED_STREAM: return [GRPC.UNAVAILABLE, 'Stream refused by server']
    case E_CANCEL: return [GRPC.CANCELLED, 'Call cancelled']
    case E_ENHANCE_YOUR_CALM: return [GRPC.RESOURCE_EXHAUSTED, 'Bandwidth exhausted or memory limit exceeded']
    case 12: return [GRPC.PERMISSION_DENIED, 'Protocol not secure enough']
    default: return [GRPC.INTERNAL, `Received RST_STREAM with code ${code}`]
  }
}
