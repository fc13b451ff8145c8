// The server side of the proxy's own HTTP/2 codec: one client connection (h2c) on a raw socket,
// shaped like the part of node:http2's ServerHttp2Session that proxy/h2/downstream.ts uses
// ('stream', 'close'; goaway, close, destroy, ping; closed, destroyed, pendingSettingsAck), so the
// connection's limits and the exchange stay as they are. The frames, windows and ends are
// connection.ts's.
//
// Why not node:http2: nghttp2 drops a field it finds malformed (CR, LF or NUL in a value, a colon
// or space in a name) without telling JavaScript, so a repaired request went upstream; here
// every field arrives as sent and proxy/h2/validate.ts refuses the request. And it costs less
// (README, "HTTP/2 codec"): no C++ round trip per frame, no stream object graph.
//
// Refused here, before the connection's checks (downstream.ts):
// - a header list over SETTINGS_MAX_HEADER_LIST_SIZE (an HPACK bomb) or over the field count:
//   the stream is emitted already reset (RST_STREAM PROTOCOL_ERROR), as nghttp2's were;
// - a non-zero content-length on a HEADERS with END_STREAM: the same;
// - streams over SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM before the client acknowledged
//   the setting, a connection error (PROTOCOL_ERROR) after (RFC 9113 §5.1.2).
import type { IncomingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import type { ReadBuffer } from '../../net/read-buffer.ts'
import { contentLengthOf, H2Conn, type ConnOptions } from './connection.ts'
import { E_COMPRESSION_ERROR, E_PROTOCOL_ERROR, E_REFUSED_STREAM, E_STREAM_CLOSED, F_END_STREAM, T_RST_STREAM, u32Frame } from './frames.ts'
import { DECODE_ERROR, DECODE_OK } from './hpack.ts'
import { headersObject, ServerStream } from './stream.ts'

export type ServerSessionOptions = ConnOptions

/** clean: every field passed the character checks already (HpackDecoder.clean) */
export type StreamHandler = (st: ServerStream, headers: IncomingHttpHeaders, flags: number, raw: string[], clean: boolean) => void

export class ServerSession extends H2Conn {
  /** called for each new stream instead of the 'stream' event */
  onStream: StreamHandler | null = null

  constructor(socket: Socket, opts: ServerSessionOptions, first: Buffer | null, rb: ReadBuffer | null) {
    super(socket, opts, first, rb, true)
  }

  /** Send the SETTINGS and start reading (after the owner has its listeners on). */
  start(): void {
    this.startReading(false)
  }

  /** what downstream.ts reads of node's session state: every stream processed here is emitted */
  get state(): { lastProcStreamID: number } {
    return { lastProcStreamID: this.lastEmitted }
  }

  protected headerBlock(id: number, flags: number, b: Buffer, s: number, e: number): void {
    const raw: string[] = []
    const r = this.decoder.decode(b, s, e, raw, this.opts.maxHeaderListSize)
    if (r === DECODE_ERROR) return this.connError(E_COMPRESSION_ERROR, null)
    const endStream = (flags & F_END_STREAM) !== 0
    const existing = this.streams.get(id)
    if (existing !== undefined) return this.trailers(existing, raw, r, endStream, flags)
    if ((id & 1) === 0) return this.connError(E_PROTOCOL_ERROR, null)
    if (id <= this.lastStreamId) {
      // a stream that is closed here already: trailers of a stream the proxy reset, or a reuse
      this.out(u32Frame(T_RST_STREAM, id, E_STREAM_CLOSED))
      return
    }
    this.lastStreamId = id
    // after the final GOAWAY: not processed (the client may send it again elsewhere)
    if (this.goawayLast >= 0 && id > this.goawayLast) return
    let refuse = 0
    if (r !== DECODE_OK || raw.length > 2 * this.opts.maxHeaderFields) refuse = E_PROTOCOL_ERROR
    else if (this.streams.size >= this.opts.maxConcurrentStreams) {
      // RFC 9113 §5.1.2: once the client has the limit, exceeding it is its error
      if (!this.pendingSettingsAck) return this.connError(E_PROTOCOL_ERROR, null)
      refuse = E_REFUSED_STREAM
    }
    const st = new ServerStream(this, id, this.opts.initialWindowSize, this.peerInitialWindow)
    st.remoteEnded = endStream
    if (refuse === 0) {
      const cl = contentLengthOf(raw)
      // a non-zero content-length with END_STREAM on the HEADERS: no DATA can follow (one that
      // is not a decimal is refused by the owner's head check, proxy/h2/validate.ts)
      if (endStream && cl > 0) refuse = E_PROTOCOL_ERROR
      else if (cl >= 0) st.contentLength = cl
    }
    this.lastEmitted = id
    this.newStream = true
    if (refuse !== 0) {
      this.out(u32Frame(T_RST_STREAM, id, refuse))
      st.finished(refuse)
    } else this.streams.set(id, st)
    if (this.onStream !== null) this.onStream(st, headersObject(raw), flags, raw, this.decoder.clean)
    else this.emit('stream', st, headersObject(raw), flags, raw)
  }

  /** The client goes away: the streams in flight finish, then the connection closes. */
  protected onPeerGoaway(code: number, lastId: number): void {
    this.emit('goaway', code, lastId)
    if (this.streams.size === 0) this.finishClose()
  }
}
