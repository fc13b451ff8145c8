// HTTP/2 client connections (h2c, prior knowledge) of one listener. Protocol detection has read
// the preface already; those bytes are put back on the socket (unshift) and the socket is handed
// to one node:http2 server per listener (never listening itself: it only gets 'connection'
// events). Node's session reads the bytes still buffered on the socket before its own reads
// (lib/internal/http2/core.js: "Socket already has some buffered data - emulate receiving it"),
// and its native consume replaces whatever read callback the socket had (the detector's read
// buffer), so nothing is read twice or lost.
//
// Each stream becomes an H2Exchange over the listener's config at the time the stream starts (a
// config swap applies to new streams; streams in flight finish on theirs). Drain: GOAWAY in two
// steps (RFC 9113 6.8), the streams in flight finish, then the connection closes.
import { constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { ExchangeCounters, RouterConfig } from '../router/exchange.ts'
import { H2Exchange } from './exchange.ts'
import { CONNECTION_WINDOW, H2_SETTINGS } from './upstream.ts'

/** What an HTTP/2 connection needs from its listener. */
export interface H2Owner {
  readonly config: RouterConfig & { readonly limits: { readonly idleTimeoutMs: number; readonly maxHeaderBytes: number; readonly maxHeaders: number } }
  readonly counters: ExchangeCounters
  /** the sweeper's coarse clock */
  now(): number
  connectionClosed(c: H2Connection): void
}

const servers = new WeakMap<H2Owner, Http2Server>()

function serverFor(owner: H2Owner): Http2Server {
  let s = servers.get(owner)
  if (s === undefined) {
    // limits.maxHeaderBytes / maxHeaders as SETTINGS_MAX_HEADER_LIST_SIZE and Node's pair limit,
    // taken when the listener's first HTTP/2 connection arrives (later config changes of them do
    // not reach this server)
    const l = owner.config.limits
    s = createServer({ settings: { ...H2_SETTINGS, maxHeaderListSize: l.maxHeaderBytes }, maxHeaderListPairs: l.maxHeaders + 4 /* the pseudo-headers */, peerMaxConcurrentStreams: 1000 })
    s.setTimeout(0)
    s.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => {
      // A stream the client reset in the same read as its HEADERS is destroyed already (no session).
      const sess = stream.session as (ServerHttp2Session & { [CONN]?: H2Connection }) | undefined
      const c = sess?.[CONN]
      if (c !== undefined && !stream.destroyed) c.onStream(stream, headers, flags, raw)
      else if (!stream.destroyed) stream.close()
    })
    s.on('sessionError', () => {})
    servers.set(owner, s)
  }
  return s
}

const CONN = Symbol('weft.h2connection')

export class H2Connection {
  readonly socket: Socket
  private readonly owner: H2Owner
  private session: ServerHttp2Session | null = null
  private active = 0
  private idleSince: number
  private closing = false
  private goingAway = false

  /** first: the bytes detection read (the preface and what came with it), put back on the socket */
  constructor(socket: Socket, owner: H2Owner, first: Buffer | null, now: number) {
    this.socket = socket
    this.owner = owner
    this.idleSince = now
    const server = serverFor(owner)
    socket.pause()
    if (first !== null && first.length > 0) socket.unshift(Buffer.from(first))
    const onSession = (s: ServerHttp2Session): void => {
      this.session = s
      ;(s as ServerHttp2Session & { [CONN]?: H2Connection })[CONN] = this
    }
    server.once('session', onSession)
    server.emit('connection', socket)
    server.off('session', onSession)
    const s = this.session as ServerHttp2Session | null
    if (s === null) {
      socket.destroy()
    } else {
      s.on('error', () => {})
      s.once('connect', () => {
        try {
          s.setLocalWindowSize(CONNECTION_WINDOW)
        } catch {}
      })
      try {
        s.setLocalWindowSize(CONNECTION_WINDOW)
      } catch {}
      s.on('close', () => this.owner.connectionClosed(this))
    }
    socket.on('error', () => {})
    socket.once('close', () => {
      if (this.session === null) this.owner.connectionClosed(this)
    })
  }

  onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]): void {
    this.active++
    stream.once('close', () => {
      this.active--
      if (this.active === 0) {
        this.idleSince = this.owner.now()
        if (this.closing) this.session?.close()
      }
    })
    const x = new H2Exchange(stream, headers, raw, (flags & 1) !== 0, this.socket.remoteAddress ?? '', this.owner.config, this.owner.counters)
    try {
      x.start()
    } catch {
      // a bug must cost this stream, not the proxy
      if (!stream.closed) stream.close(constants.NGHTTP2_INTERNAL_ERROR)
    }
  }

  /** No stream for the listener's idle timeout: GOAWAY and close. */
  sweep(now: number): void {
    if (this.active === 0 && now - this.idleSince > this.owner.config.limits.idleTimeoutMs) this.drain()
  }

  /**
   * Graceful, RFC 9113 6.8: GOAWAY with the largest stream id now (the client opens no new
   * streams), then, one round trip later (PING, at most 1 s), GOAWAY with the real last stream id
   * (session.close()); the streams in flight finish, then the connection closes. Node has no
   * nghttp2_submit_shutdown_notice: after its first GOAWAY nghttp2 ignores streams that start
   * later, and the second GOAWAY reports them unprocessed, so the client retries them elsewhere.
   */
  drain(): void {
    if (this.goingAway) return
    this.goingAway = true
    const s = this.session
    if (s === null || s.closed || s.destroyed) {
      this.socket.destroy()
      return
    }
    const final = (): void => {
      clearTimeout(timer)
      this.closing = true
      if (!s.closed && !s.destroyed) s.close()
    }
    const timer = setTimeout(final, 1000)
    timer.unref()
    try {
      s.goaway(constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1)
    } catch {
      final()
      return
    }
    // nghttp2 sends a PING ahead of a GOAWAY queued before it: ping once the GOAWAY is written, so
    // the client sees GOAWAY first and what it sent until then arrives before its PING ack
    setImmediate(() => {
      if (s.closed || s.destroyed) return
      try {
        if (!s.ping(final)) final()
      } catch {
        final()
      }
    })
  }
}
