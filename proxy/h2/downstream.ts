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
//
// What a client may not do to the proxy is decided here, at the codec, before an exchange exists
// (proxy/h2/validate.ts for the head) or around it (the limits below), so that the exchange never
// has to know:
// - every stream gets an 'error' listener before anything else runs: a stream nghttp2 resets in
//   the read that opened it (content-length against DATA, HEADERS then RST_STREAM) is emitted
//   destroyed, and its error event would otherwise have no listener and end the process;
// - a malformed head: RST_STREAM PROTOCOL_ERROR, nothing upstream (access log flag DPE);
// - more streams at once than SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM;
// - more streams in progress than http2MaxActiveStreams: they wait, unread, in order, so that one
//   connection holds at most that many upstream streams or connections;
// - a stream that moves no byte either way for streamIdleTimeout (a client that never opens its
//   window, an upstream that never answers): RST_STREAM CANCEL, its upstream stream or
//   connection released by the exchange's close path (flag SI);
// - a connection whose streams are mostly reset (rapid reset, CVE-2023-44487; or refused by the
//   proxy, as an HPACK bomb's): GOAWAY ENHANCE_YOUR_CALM (debug data WEFT_ERR_H2_RESET_FLOOD), closed;
// - the client's FIN (curl closes so, without GOAWAY): the connection closes once the streams in
//   flight end, instead of sitting in CLOSE-WAIT until the idle timeout; as the client can send
//   no WINDOW_UPDATE any more, a stream of it that stalls for PEER_GONE_STALL_MS is reset;
// - nothing sent within firstByteTimeout (a listener with protocol http2): closed.
// All timeouts run on the listener's sweeper (the coarse clock), no timer per stream.
import type { PeerIdentity } from '../identity/authz.ts'
import { constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { ReadBuffer } from '../net/read-buffer.ts'
import type { DownStream } from './codec/down-stream.ts'
import { ServerSession } from './codec/session.ts'
import { H2Stream, type ServerStream, type StreamCloseHook } from './codec/stream.ts'
import type { ExchangeCounters, RouterConfig } from '../router/exchange.ts'
import type { RequestRecord } from '../telemetry/types.ts'
import { H2Exchange } from './exchange.ts'
import { CONNECTION_WINDOW, H2_SETTINGS } from './upstream.ts'
import { PREMATURE_MS, ResetWindow } from './flood.ts'
import { checkRequestHead } from './validate.ts'

/** GOAWAY debug data of a reset flood: the error code, for whoever reads the client's logs */
const RESET_FLOOD_DEBUG = Buffer.from('WEFT_ERR_H2_RESET_FLOOD')

const { NGHTTP2_PROTOCOL_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = constants

/** Response flags of the decisions taken here (Envoy's letters where Envoy has one). */
export const H2Flags = {
  DownstreamProtocolError: 'DPE',
  /** stream idle timeout (Envoy: SI) */
  StreamIdleTimeout: 'SI',
  /** the proxy failed inside the exchange (a bug): the stream was reset */
  InternalError: 'IE',
  /** over SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM */
  RefusedStream: 'RS',
} as const

/**
 * After the client's FIN it can send no WINDOW_UPDATE: a stream of it that moves no byte for this
 * long never will (an attacker that leaves without a GOAWAY), and its upstream is released.
 */
const PEER_GONE_STALL_MS = 1000
/** streams of a connection before the client acknowledged SETTINGS_MAX_CONCURRENT_STREAMS */
const PRE_SETTINGS_MAX_STREAMS = 1000

/** Counters of the decisions above (weft_proxy_decisions_total and /stats). */
export interface H2Stats {
  /** malformed heads refused (also counted in downstreamProtocolErrors) */
  malformed: number
  /** streams nghttp2 reset itself for a protocol error before the proxy saw them */
  codecResets: number
  refusedStreams: number
  /** streams that waited for http2MaxActiveStreams */
  queuedStreams: number
  streamIdleTimeouts: number
  resetFloods: number
  internalErrors: number
  /** connections closed after the client's FIN (no GOAWAY from it) */
  peerClosed: number
  firstByteTimeouts: number
}

export function newH2Stats(): H2Stats {
  return { malformed: 0, codecResets: 0, refusedStreams: 0, queuedStreams: 0, streamIdleTimeouts: 0, resetFloods: 0, internalErrors: 0, peerClosed: 0, firstByteTimeouts: 0 }
}

export interface H2Limits {
  readonly idleTimeoutMs: number
  readonly maxHeaderBytes: number
  readonly maxHeaders: number
  readonly firstByteTimeoutMs: number
  readonly streamIdleTimeoutMs: number
  readonly http2MaxConcurrentStreams: number
  readonly http2MaxActiveStreams: number
}

/** What an HTTP/2 connection needs from its listener. */
export interface H2Owner {
  readonly config: RouterConfig & { readonly limits: H2Limits }
  readonly counters: ExchangeCounters & { downstreamProtocolErrors: number; timeouts: number; h2: H2Stats }
  /** the sweeper's coarse clock */
  now(): number
  /** the identity a mutual TLS connection's client proved (null: plain text) */
  peerOf(s: Socket): PeerIdentity | null
  connectionClosed(c: H2Connection): void
}

/**
 * The server codec: the proxy's own (proxy/h2/codec/, the default), or node:http2 with
 * WEFT_H2_CODEC=node (kept to compare the two; it drops malformed fields instead of refusing them).
 */
const NODE_CODEC = process.env.WEFT_H2_CODEC === 'node'

/** What the connection uses of its session: node's ServerHttp2Session or the codec's ServerSession. */
interface Session {
  readonly closed: boolean
  readonly destroyed: boolean
  readonly pendingSettingsAck: boolean
  readonly state: { lastProcStreamID?: number }
  goaway(code?: number, lastStreamID?: number, data?: Buffer): void
  close(): void
  destroy(): void
  ping(cb: (err: Error | null, duration: number, payload: Buffer) => void): boolean
}

/** A client stream, of either codec. */
type Stream = DownStream & { readonly rstCode?: number; once(event: 'close', listener: () => void): unknown }

const servers = new WeakMap<H2Owner, Http2Server>()

function serverFor(owner: H2Owner): Http2Server {
  let s = servers.get(owner)
  if (s === undefined) {
    // limits.maxHeaderBytes / maxHeaders as SETTINGS_MAX_HEADER_LIST_SIZE and Node's pair limit,
    // limits.http2MaxConcurrentStreams as SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 refuses the
    // streams over it), taken when the listener's first HTTP/2 connection arrives (later config
    // changes of them do not reach this server)
    const l = owner.config.limits
    s = createServer({
      settings: { ...H2_SETTINGS, maxHeaderListSize: l.maxHeaderBytes, maxConcurrentStreams: l.http2MaxConcurrentStreams },
      maxHeaderListPairs: l.maxHeaders + 4 /* the pseudo-headers */,
      peerMaxConcurrentStreams: 1000,
    })
    s.setTimeout(0)
    // streams are taken from each session ('stream' there, see H2Connection): a stream reset in
    // the read that opened it has no session any more by the time the server would relay it
    s.on('sessionError', () => {})
    s.on('error', () => {})
    servers.set(owner, s)
  }
  return s
}

function ignore(): void {}

/** A stream waiting for its turn (http2MaxActiveStreams). */
interface Queued {
  readonly stream: Stream
  readonly headers: IncomingHttpHeaders
  readonly flags: number
  readonly raw: string[]
}

/** One stream of a connection, for the idle sweep; told when its stream closes (no closure per stream). */
class Tracked implements StreamCloseHook {
  readonly conn: H2Connection
  readonly stream: Stream
  readonly x: H2Exchange
  /** bytes moved (in + out) at the last sweep that saw them change */
  moved: number
  lastActive: number
  readonly openedAt: number

  constructor(conn: H2Connection, stream: Stream, x: H2Exchange, moved: number, now: number) {
    this.conn = conn
    this.stream = stream
    this.x = x
    this.moved = moved
    this.lastActive = now
    this.openedAt = now
  }

  streamClosed(): void {
    this.conn.onStreamClose(this)
  }
}

export class H2Connection {
  readonly socket: Socket
  readonly peer: PeerIdentity | null
  /** the client's address (socket.remoteAddress asks the kernel each time) */
  private readonly address: string
  private readonly owner: H2Owner
  private session: Session | null = null
  /** the proxy's own codec (not node:http2) */
  private readonly own: boolean
  private readonly streams = new Set<Tracked>()
  private queued: Queued[] = []
  private idleSince: number
  private readonly createdAt: number
  private closing = false
  private peerEnded = false
  private sawStream = false
  private readonly resets: ResetWindow
  private calmed = false
  private goingAway = false

  /**
   * first: the bytes detection read (the preface and what came with it; valid during this call);
   * rb: the read buffer the socket reads into (detection's), null if none
   */
  constructor(socket: Socket, owner: H2Owner, first: Buffer | null, now: number, rb: ReadBuffer | null = null) {
    this.socket = socket
    this.owner = owner
    this.peer = owner.peerOf(socket)
    this.address = socket.remoteAddress ?? ''
    this.idleSince = now
    this.createdAt = now
    this.resets = new ResetWindow(now)
    this.own = !NODE_CODEC
    if (this.own) {
      this.startOwn(first, rb)
      return
    }
    const server = serverFor(owner)
    socket.pause()
    if (first !== null && first.length > 0) socket.unshift(Buffer.from(first))
    const onSession = (s: ServerHttp2Session): void => {
      this.session = s
    }
    server.once('session', onSession)
    server.emit('connection', socket)
    server.off('session', onSession)
    const s = this.session as ServerHttp2Session | null
    if (s === null) {
      socket.destroy()
    } else {
      s.on('error', ignore)
      s.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => {
        // First, whatever happens next: an error event without a listener ends the process.
        stream.on('error', ignore)
        this.onStream(stream, headers, flags, raw)
      })
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
    socket.on('error', ignore)
    // The listener's sockets allow half-open (HTTP/1 needs it), so node:http2 is not told of the
    // client's FIN: without this, the socket would sit in CLOSE-WAIT until the idle timeout.
    socket.once('end', () => setImmediate(peerEnded, this)) // after the 'stream' events of the last read
    socket.once('close', () => {
      if (this.session === null) this.owner.connectionClosed(this)
    })
  }

  /** The proxy's own codec on the socket (proxy/h2/codec/session.ts). */
  private startOwn(first: Buffer | null, rb: ReadBuffer | null): void {
    const l = this.owner.config.limits
    const s = new ServerSession(this.socket, {
      maxConcurrentStreams: l.http2MaxConcurrentStreams,
      maxHeaderListSize: l.maxHeaderBytes,
      maxHeaderFields: l.maxHeaders + 4 /* the pseudo-headers */,
      initialWindowSize: H2_SETTINGS.initialWindowSize,
      connectionWindow: CONNECTION_WINDOW,
    }, first, rb)
    this.session = s
    // the codec's streams emit no 'error'
    s.onStream = (stream: ServerStream, headers: IncomingHttpHeaders, flags: number, raw: string[], clean: boolean) => this.onStream(stream, headers, flags, raw, clean)
    // content-length against DATA, flow control, a stream state error: the codec reset the stream
    s.on('streamError', () => {
      this.owner.counters.h2.codecResets++
      this.owner.counters.downstreamProtocolErrors++
    })
    s.on('close', () => this.owner.connectionClosed(this))
    this.socket.once('end', () => setImmediate(peerEnded, this))
    s.start()
  }

  /** clean: the codec checked every field's characters already (validate.ts fieldClean) */
  onStream(stream: Stream, headers: IncomingHttpHeaders, flags: number, raw: string[], clean = false): void {
    const h2 = this.owner.counters.h2
    this.sawStream = true
    this.resets.opened()
    if (stream.destroyed || stream.closed) {
      // nghttp2 reset it in the read that opened it: a protocol error it found (content-length
      // against DATA, …) or the client's own RST_STREAM in the same read; or the proxy's codec
      // refused it (over the list size or field count, over the concurrent streams)
      if (stream.rstCode === NGHTTP2_REFUSED_STREAM && this.own) h2.refusedStreams++
      else if (stream.rstCode !== NGHTTP2_CANCEL && stream.rstCode !== NGHTTP2_NO_ERROR) {
        h2.codecResets++
        this.owner.counters.downstreamProtocolErrors++
      }
      this.noteReset()
      return
    }
    const why = checkRequestHead(raw, clean)
    if (why !== '') {
      h2.malformed++
      this.owner.counters.downstreamProtocolErrors++
      this.refuse(stream, headers, NGHTTP2_PROTOCOL_ERROR, H2Flags.DownstreamProtocolError)
      return
    }
    const max = this.owner.config.limits.http2MaxConcurrentStreams
    if (this.streams.size + this.queued.length >= (this.session?.pendingSettingsAck === false ? max : PRE_SETTINGS_MAX_STREAMS)) {
      // A client may open streams before it has our SETTINGS (RFC 9113 §6.5.3: the limit binds
      // once acknowledged), as gRPC clients do in a burst: until then a looser bound.
      h2.refusedStreams++
      this.refuse(stream, headers, NGHTTP2_REFUSED_STREAM, H2Flags.RefusedStream)
      return
    }
    if (this.streams.size >= this.owner.config.limits.http2MaxActiveStreams) {
      // Over the streams one connection may have in progress (each can hold an upstream stream
      // or connection): it waits, unread (its DATA is held by flow control), until one ends.
      this.queued.push({ stream, headers, flags, raw })
      this.owner.counters.h2.queuedStreams++
      return
    }
    this.begin(stream, headers, flags, raw)
  }

  private begin(stream: Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]): void {
    const x = new H2Exchange(stream, headers, raw, (flags & 1) !== 0, this.address, this.owner.config, this.owner.counters)
    x.peer = this.peer
    // moved -1: the first sweep that sees the stream starts its idle clock (the coarse clock can
    // be a tick old here, which would cut a stream that came just after others a tick short)
    const tr = new Tracked(this, stream, x, -1, this.owner.now())
    this.streams.add(tr)
    if (stream instanceof H2Stream) stream.closeHook = tr
    else stream.once('close', () => this.onStreamClose(tr))
    try {
      x.start()
    } catch (err) {
      this.internalError(tr, err)
    }
  }

  onStreamClose(tr: Tracked): void {
    this.streams.delete(tr)
    const code = tr.stream.rstCode
    if (code !== undefined && code !== NGHTTP2_NO_ERROR && this.owner.now() - tr.openedAt <= PREMATURE_MS) this.noteReset()
    while (this.queued.length > 0 && this.streams.size < this.owner.config.limits.http2MaxActiveStreams) {
      const q = this.queued.shift()!
      // a waiting stream the client reset meanwhile is a reset like another
      if (q.stream.destroyed || q.stream.closed) this.noteReset()
      else this.begin(q.stream, q.headers, q.flags, q.raw)
    }
    if (this.streams.size === 0) {
      this.idleSince = this.owner.now()
      if (this.closing || this.peerEnded) this.close()
    }
  }

  /** A bug inside one exchange costs its stream (502 or RST_STREAM INTERNAL_ERROR), never the process. */
  private internalError(tr: Tracked, err: unknown): void {
    try {
      tr.x.abort(err)
    } catch {
      this.owner.counters.h2.internalErrors++
      if (!tr.stream.closed) tr.stream.close(NGHTTP2_INTERNAL_ERROR)
    }
  }

  /** Refuse a stream before any exchange: RST_STREAM with `code`, one access-log record. */
  private refuse(stream: Stream, headers: IncomingHttpHeaders, code: number, flag: string): void {
    if (!stream.closed) stream.close(code)
    this.noteReset()
    const sinks = this.owner.config.telemetry.sinks
    if (sinks.length > 0) {
      const r = refusedRecord(headers, flag, this.address)
      for (let i = 0; i < sinks.length; i++) sinks[i].onRequest(r)
    }
  }

  /** Count a reset stream; a connection that mostly resets its streams is told to calm down (flood.ts). */
  private noteReset(): void {
    if (this.resets.reset(this.owner.now()) && !this.calmed) this.calm()
  }

  /** Streams nghttp2 refused without emitting them count as refused ones (flood.ts). */
  private countUnseen(s: Session): void {
    if (this.own) return // the codec emits every stream it processed, refused ones included
    const n = this.resets.unseenSince(s.state.lastProcStreamID ?? 0)
    if (n === 0) return
    this.owner.counters.h2.codecResets += n
    if (this.resets.reset(this.owner.now(), n, n) && !this.calmed) this.calm()
  }

  /** GOAWAY ENHANCE_YOUR_CALM, then the connection goes (its streams' close paths release their upstreams). */
  private calm(): void {
    this.calmed = true
    this.owner.counters.h2.resetFloods++
    const s = this.session
    if (s !== null && !s.destroyed) {
      try {
        s.goaway(NGHTTP2_ENHANCE_YOUR_CALM, undefined, RESET_FLOOD_DEBUG)
      } catch {}
      setImmediate(destroySession, s) // once the GOAWAY is written
    } else this.socket.destroy()
  }

  onPeerEnd(): void {
    this.peerEnded = true
    this.owner.counters.h2.peerClosed++
    // The client sends nothing more; streams in flight may still be answered (it reads), but
    // none can get more window: one that stalls is reset after PEER_GONE_STALL_MS (sweep).
    // Streams still waiting for their turn were not processed: refused (safe to send again).
    for (const q of this.queued.splice(0)) if (!q.stream.closed) q.stream.close(NGHTTP2_REFUSED_STREAM)
    if (this.streams.size === 0) this.close()
    else {
      const s = this.session
      if (s !== null && !s.closed && !s.destroyed) s.close() // GOAWAY: no new stream
    }
  }

  /** GOAWAY and close now: no stream is in flight. */
  private close(): void {
    const s = this.session
    if (s !== null && !s.destroyed) {
      if (!s.closed) s.close()
      // nothing in flight: no reason to wait for the client
      if (this.peerEnded) setImmediate(destroySession, s)
    } else this.socket.destroy()
  }

  /**
   * The coarse clock's tick: the connection's idle timeout (no stream), the first-byte timeout
   * (nothing ever received), each stream's idle timeout (no byte either way).
   */
  sweep(now: number): void {
    const l = this.owner.config.limits
    const s = this.session
    if (s !== null && !s.destroyed && !this.calmed) this.countUnseen(s)
    if (this.streams.size === 0) {
      if (!this.sawStream && this.socket.bytesRead === 0 && now - this.createdAt > l.firstByteTimeoutMs) {
        this.owner.counters.h2.firstByteTimeouts++
        this.owner.counters.timeouts++
        this.socket.destroy()
        return
      }
      if (now - this.idleSince > l.idleTimeoutMs) this.drain()
      return
    }
    const limit = this.peerEnded ? Math.min(l.streamIdleTimeoutMs, PEER_GONE_STALL_MS) : l.streamIdleTimeoutMs
    for (const tr of this.streams) {
      const moved = tr.x.bytesIn + tr.x.bytesOut
      if (moved !== tr.moved) {
        tr.moved = moved
        tr.lastActive = now
      } else if (now - tr.lastActive > limit) {
        this.owner.counters.h2.streamIdleTimeouts++
        if (tr.x.flags === '') tr.x.flags = H2Flags.StreamIdleTimeout
        // the exchange's close path cancels the upstream stream (or destroys its HTTP/1 request)
        if (!tr.stream.closed) tr.stream.close(NGHTTP2_CANCEL)
      }
    }
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

function peerEnded(c: H2Connection): void {
  c.onPeerEnd()
}

function destroySession(s: Session): void {
  if (!s.destroyed) s.destroy()
}

function refusedRecord(headers: IncomingHttpHeaders, flag: string, address: string): RequestRecord {
  const one = (v: string | string[] | undefined): string => (v === undefined ? '' : typeof v === 'string' ? v : v.join(', '))
  return {
    startTime: Date.now(), durationMs: 0, method: one(headers[':method']), authority: one(headers[':authority']),
    path: one(headers[':path']), protocol: 'HTTP/2', status: 0, grpcStatus: '', flags: flag, routeName: '', vhostName: '',
    clusterName: '', upstreamHost: '', bytesIn: 0, bytesOut: 0, requestId: '', traceId: '', downstreamAddress: address, peer: null,
  }
}
