// One HTTP/2 connection of the proxy's own codec (RFC 9113), either end: the frame reader, SETTINGS
// and their ACK, PING, flow control both ways, stream ends, RST_STREAM, GOAWAY, CONTINUATION with
// limits, floods of control frames. The two ends differ in what a header block means
// (headerBlock: a new client stream on the server side, session.ts; a response on the client
// side, client.ts) and in what a peer's GOAWAY does (onPeerGoaway).
//
// What this layer refuses by itself, whichever end:
// - frame and HPACK errors: GOAWAY with the RFC's error code, connection closed;
// - content-length against the DATA: RST_STREAM PROTOCOL_ERROR ('streamError');
// - a header block over maxBlock or in more than MAX_CONTINUATIONS frames (CVE-2024-27316),
//   SETTINGS / PING / empty-frame floods: GOAWAY ENHANCE_YOUR_CALM.
import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { ReadBuffer, readIntoBuffer, retargetReads } from '../../net/read-buffer.ts'
import { DECODE_OK, HpackDecoder, HpackEncoder } from './hpack.ts'
import {
  DEFAULT_MAX_FRAME, DEFAULT_WINDOW, E_ENHANCE_YOUR_CALM, E_FLOW_CONTROL_ERROR, E_FRAME_SIZE_ERROR, E_CANCEL,
  E_NO_ERROR, E_PROTOCOL_ERROR, E_STREAM_CLOSED, F_ACK, F_END_HEADERS, F_END_STREAM, F_PADDED, F_PRIORITY,
  FRAME_HEADER, MAX_WINDOW, PREFACE, S_ENABLE_PUSH, S_HEADER_TABLE_SIZE, S_INITIAL_WINDOW_SIZE, S_MAX_CONCURRENT_STREAMS,
  S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE, SETTINGS_ACK, T_CONTINUATION, T_DATA, T_GOAWAY, T_HEADERS, T_PING, T_PRIORITY,
  T_PUSH_PROMISE, T_RST_STREAM, T_SETTINGS, T_WINDOW_UPDATE, frame, frameHeader, goawayFrame, settingsFrame, u32Frame,
} from './frames.ts'
import { checkTrailers } from '../validate.ts'
import { headersObject, type H2Stream } from './stream.ts'

export interface ConnOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS this end advertises */
  readonly maxConcurrentStreams: number
  /** SETTINGS_MAX_HEADER_LIST_SIZE: name + value + 32 per field */
  readonly maxHeaderListSize: number
  /** fields of a head, pseudo-headers included */
  readonly maxHeaderFields: number
  /** SETTINGS_INITIAL_WINDOW_SIZE this end advertises */
  readonly initialWindowSize: number
  /** the connection's receive window (raised from 65,535 by a WINDOW_UPDATE at once) */
  readonly connectionWindow: number
}

/** a header block larger than this (all its CONTINUATIONs) is a flood, whatever the list limit */
const MAX_BLOCK_MIN = 64 * 1024
const MAX_CONTINUATIONS = 128
/** control frames (PING, SETTINGS, empty DATA / CONTINUATION…) a connection may send per window */
const CONTROL_WINDOW_MS = 10_000
const CONTROL_MAX = 10_000
/** the client does not read what we answer (PING / SETTINGS ACKs pile up): flood */
const UNREAD_MAX = 1024 * 1024
/** above this many unsent bytes on the socket, streams' writes say "wait for drain" */
const SOCKET_HIGH = 256 * 1024
/** DATA frames never carry more than this, whatever the client allows */
const MAX_DATA_FRAME = 65536
/** payloads up to this are copied behind their frame header (one write instead of two) */
const COPY_MAX = 2048
/** the connection's write buffer: small frames of one turn are copied into it and leave as one write */
const WBUF_SIZE = 16 * 1024
const HIGH_WATER = 16384
/** a partial frame at least this long is assembled in a buffer of its own (onBytes) */
const BIG_FRAME = 4096

/** a DATA payload this long is kept as a view of the bytes read instead of a copy (connection.payload) */
const VIEW_MIN = 4096
/** SlabReader: the client side reads into slabs this large ... */
const SLAB_SIZE = 64 * 1024
/** ... with at least this much room per read (a whole frame of the largest size we accept fits) */
const SLAB_ROOM = FRAME_HEADER + DEFAULT_MAX_FRAME + 1
const INPUT_OWNED = 0
const INPUT_RB = 1
const INPUT_SLAB = 2

const CONTROL_FLOOD = Buffer.from('WEFT_ERR_H2_CONTROL_FLOOD')
const CONTINUATION_FLOOD = Buffer.from('WEFT_ERR_H2_CONTINUATION_FLOOD')

interface PendingPing {
  readonly payload: Buffer
  readonly t0: number
  readonly cb: (err: Error | null, duration: number, payload: Buffer) => void
}

export abstract class H2Conn extends EventEmitter {
  readonly socket: Socket
  protected readonly opts: ConnOptions
  /** no new streams (close() called or a final GOAWAY sent) */
  closed = false
  destroyed = false
  pendingSettingsAck = true
  protected readonly decoder: HpackDecoder
  /** the HPACK encoder of what this end sends (a header block is encoded right before it is written) */
  readonly encoder = new HpackEncoder()
  protected readonly streams = new Map<number, H2Stream>()
  /** the highest client stream id seen, and the highest handed to the proxy */
  protected lastStreamId = 0
  protected lastEmitted = 0
  /** streams above this id are not processed (a GOAWAY said so); -1: none sent */
  protected goawayLast = -1
  protected peerGoaway = false
  protected buf: Buffer | null = null
  /**
   * A frame longer than what is left of a read (a 16 KiB DATA frame never fits the 16 KiB read
   * buffer): assembled here, each byte copied once, then parsed alone and its payload kept without
   * another copy (instead of concatenating the rest with every read and copying the payload out).
   */
  private big: Buffer | null = null
  private bigLen = 0
  /**
   * Where the bytes being parsed live, which decides whether a DATA payload may be kept as a view
   * of them (no copy): INPUT_OWNED (this connection's own: always), INPUT_RB (the socket's reused
   * read buffer: a large payload is kept and the buffer marked retained, so the next read gets a
   * fresh one), INPUT_SLAB (the client side's slab, see SlabReader: the same, the slab is left to
   * the views).
   */
  private input = INPUT_RB
  /** the client side's reads (null: the socket's ReadBuffer, or 'data' events) */
  private readonly slab: SlabReader | null
  protected prefaceLeft = PREFACE.length
  private gotSettings = false
  private contId = 0
  private contFlags = 0
  private contChunks: Buffer[] = []
  private contBytes = 0
  private contFrames = 0
  private readonly maxBlock: number
  protected connRecvWindow = DEFAULT_WINDOW
  private connUnacked = 0
  protected connSendWindow = DEFAULT_WINDOW
  protected peerInitialWindow = DEFAULT_WINDOW
  protected peerMaxFrame = DEFAULT_MAX_FRAME
  /** the peer's SETTINGS_MAX_CONCURRENT_STREAMS (unbounded until it says; node's client assumed 1000) */
  protected peerMaxStreams = 1000
  private readonly blocked = new Set<H2Stream>()
  private readonly drainWaiters = new Set<H2Stream>()
  socketBlocked = false
  private corked = false
  /**
   * The write buffer: frames of this turn are copied into wbuf[wstart..wlen) and handed to the
   * socket as one view of it (flushOut, at the latest in the check phase). What was handed on
   * before (wbuf[0..wstart)) is not written over until the socket has taken it: the buffer is
   * reused after a flush only when the socket's writes completed at once (writableLength 0), else
   * the next frame goes into a new one.
   */
  private wbuf: Buffer | null = null
  private wstart = 0
  private wlen = 0
  /** where the last DATA frame in wbuf[wstart..wlen) starts, and its stream (sendEndStream) */
  private lastDataAt = -1
  private lastDataId = 0
  /** in the list of connections flushed in this turn's check phase (flushAll) */
  flushScheduled = false
  /** a stream was handed to the owner in this read (its exchange may defer work to setImmediate) */
  protected newStream = false
  private pings: PendingPing[] = []
  private pingSeq = 0
  private controlCount = 0
  private controlSince = 0
  protected started = false
  protected rb: ReadBuffer | null

  /**
   * first: bytes already read from the socket (protocol detection: the preface and what came with
   * it; valid during this call only). rb: the read buffer the socket already reads into (then the
   * reads are taken over), or null. preface: the client's preface is expected first (server side).
   */
  constructor(socket: Socket, opts: ConnOptions, first: Buffer | null, rb: ReadBuffer | SlabReader | null, preface: boolean) {
    super()
    this.socket = socket
    this.opts = opts
    this.rb = rb instanceof ReadBuffer ? rb : null
    this.slab = rb instanceof SlabReader ? rb : null
    this.prefaceLeft = preface ? PREFACE.length : 0
    this.decoder = new HpackDecoder(4096)
    this.maxBlock = Math.max(MAX_BLOCK_MIN, 2 * opts.maxHeaderListSize)
    if (first !== null && first.length > 0) this.buf = Buffer.from(first)
    socket.on('error', (err: Error) => this.onSocketError(err))
    socket.on('close', () => this.onSocketClose())
  }

  /** Take over the socket's reads; then the SETTINGS (and, before them, a client's preface). */
  protected startReading(clientPreface: boolean): void {
    if (this.started) return
    this.started = true
    const s = this.socket
    const onBytes = (buf: Buffer, n: number): void => this.onBytes(buf, n, false)
    let fast = false
    if (this.slab !== null) fast = this.slab.attach(this)
    else if (this.rb !== null) fast = retargetReads(s, onBytes)
    else if (!s.destroyed && !s.connecting) {
      const rb = new ReadBuffer()
      fast = readIntoBuffer(s, rb, onBytes)
      if (fast) this.rb = rb
    }
    if (!fast) s.on('data', (b: Buffer) => this.onBytes(b, b.length, true))
    s.resume()
    const o = this.opts
    if (clientPreface) this.out(PREFACE)
    this.out(settingsFrame([
      [S_MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
      [S_INITIAL_WINDOW_SIZE, o.initialWindowSize],
      [S_MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
      [S_ENABLE_PUSH, 0],
    ]))
    if (o.connectionWindow > DEFAULT_WINDOW) {
      this.out(u32Frame(T_WINDOW_UPDATE, 0, o.connectionWindow - DEFAULT_WINDOW))
      this.connRecvWindow = o.connectionWindow
    }
    const pending = this.buf
    if (pending !== null) {
      this.buf = null
      this.onBytes(pending, pending.length, true)
    }
  }

  /** A complete header block of stream id (HEADERS and its CONTINUATIONs). */
  protected abstract headerBlock(id: number, flags: number, b: Buffer, s: number, e: number): void

  /** The peer's GOAWAY: lastId is the last of our streams it processed. */
  protected abstract onPeerGoaway(code: number, lastId: number): void

  protected onSocketError(err: Error): void {
    void err
  }

  get activeStreams(): number {
    return this.streams.size
  }

  // ---- reading ---------------------------------------------------------------------------------

  /** owned: the bytes stay valid after this call ('data' events, or a copy) */
  private onBytes(chunk: Buffer, n: number, owned: boolean): void {
    this.readBytes(chunk, n, owned)
    if (this.newStream) {
      this.newStream = false
      flushAfterImmediates()
    }
  }

  private readBytes(chunk: Buffer, n: number, owned: boolean): void {
    if (this.destroyed) return
    let b = n === chunk.length ? chunk : chunk.subarray(0, n)
    const big = this.big
    if (big !== null) {
      const k = Math.min(big.length - this.bigLen, b.length)
      b.copy(big, this.bigLen, 0, k)
      this.bigLen += k
      if (this.bigLen < big.length) return
      this.big = null
      this.bigLen = 0
      if (this.parseSafe(big, 0, big.length, INPUT_OWNED) < 0 || this.destroyed || k === b.length) return
      b = b.subarray(k)
    } else if (this.buf !== null) {
      b = Buffer.concat([this.buf, b])
      this.buf = null
      owned = true
    }
    const p = this.parseSafe(b, 0, b.length, owned ? INPUT_OWNED : INPUT_RB)
    if (p < 0 || this.destroyed || p === b.length) return
    const rest = b.length - p
    if (this.prefaceLeft === 0 && rest >= FRAME_HEADER) {
      // parse() checked this frame's length against the maximum
      const need = FRAME_HEADER + ((b[p] << 16) | (b[p + 1] << 8) | b[p + 2])
      if (need >= BIG_FRAME) {
        const f = Buffer.allocUnsafe(need)
        b.copy(f, 0, p)
        this.big = f
        this.bigLen = rest
        return
      }
    }
    this.buf = owned ? b.subarray(p) : Buffer.from(b.subarray(p))
  }

  /** The client side's read of n bytes (SlabReader): the frames of the slab's unparsed bytes. */
  onSlabRead(r: SlabReader): void {
    if (this.destroyed) {
      r.start = r.end
      return
    }
    const p = this.parseSafe(r.slab, r.start, r.end, INPUT_SLAB)
    r.start = p < 0 ? r.end : p
    if (this.newStream) {
      this.newStream = false
      flushAfterImmediates()
    }
  }

  /** parse(b, p, end); -1 after an exception (the connection is destroyed) */
  private parseSafe(b: Buffer, p: number, end: number, input: number): number {
    this.input = input
    try {
      return this.parse(b, p, end)
    } catch (err) {
      // a bug here or in a listener the codec called: this connection, never the process
      this.emit('internalError', err)
      this.destroy()
      return -1
    } finally {
      this.input = INPUT_RB
    }
  }

  /** The frames of b[p..end); returns where the first incomplete one starts (end: none). */
  private parse(b: Buffer, p: number, end: number): number {
    if (this.prefaceLeft > 0) {
      const off = PREFACE.length - this.prefaceLeft
      const n = Math.min(this.prefaceLeft, end - p)
      if (PREFACE.compare(b, p, p + n, off, off + n) !== 0) {
        this.connError(E_PROTOCOL_ERROR, null)
        return end
      }
      this.prefaceLeft -= n
      p += n
      if (this.prefaceLeft > 0) return p
    }
    while (end - p >= FRAME_HEADER && !this.destroyed) {
      const len = (b[p] << 16) | (b[p + 1] << 8) | b[p + 2]
      if (len > DEFAULT_MAX_FRAME) {
        this.connError(E_FRAME_SIZE_ERROR, null)
        return end
      }
      if (end - p - FRAME_HEADER < len) break
      const type = b[p + 3]
      const flags = b[p + 4]
      const id = b.readUInt32BE(p + 5) & 0x7fffffff
      const start = p + FRAME_HEADER
      p = start + len
      this.frame(b, type, flags, id, start, p)
    }
    return p
  }

  private frame(b: Buffer, type: number, flags: number, id: number, start: number, end: number): void {
    if (this.contId !== 0 && type !== T_CONTINUATION) return this.connError(E_PROTOCOL_ERROR, null)
    if (!this.gotSettings) {
      // the client's preface ends with a SETTINGS frame (RFC 9113 §3.4)
      if (type !== T_SETTINGS || (flags & F_ACK) !== 0) return this.connError(E_PROTOCOL_ERROR, null)
      this.gotSettings = true
    }
    switch (type) {
      case T_DATA:
        return this.onData(b, flags, id, start, end)
      case T_HEADERS:
        return this.onHeaders(b, flags, id, start, end)
      case T_PRIORITY:
        if (id === 0) return this.connError(E_PROTOCOL_ERROR, null)
        if (end - start !== 5) return this.connError(E_FRAME_SIZE_ERROR, null)
        return
      case T_RST_STREAM:
        return this.onRstStream(b, id, start, end)
      case T_SETTINGS:
        return this.onSettings(b, flags, id, start, end)
      case T_PUSH_PROMISE:
        return this.connError(E_PROTOCOL_ERROR, null)
      case T_PING:
        return this.onPing(b, flags, id, start, end)
      case T_GOAWAY:
        if (id !== 0) return this.connError(E_PROTOCOL_ERROR, null)
        if (end - start < 8) return this.connError(E_FRAME_SIZE_ERROR, null)
        this.peerGoaway = true
        return this.onPeerGoaway(b.readUInt32BE(start + 4), b.readUInt32BE(start) & 0x7fffffff)
      case T_WINDOW_UPDATE:
        return this.onWindowUpdate(b, id, start, end)
      case T_CONTINUATION:
        return this.onContinuation(b, flags, id, start, end)
      default:
        return // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  /**
   * A DATA payload the stream may keep. Bytes of our own are kept as they are. In a reused read
   * buffer, a small payload is copied (a gRPC message of a few bytes would otherwise hold a whole
   * read buffer), a large one is kept as a view and the buffer left to it (no copy of bulk data:
   * the next read goes elsewhere).
   */
  private payload(b: Buffer, s: number, e: number): Buffer {
    const input = this.input
    if (input === INPUT_OWNED) return b.subarray(s, e)
    if (e - s >= VIEW_MIN) {
      if (input === INPUT_SLAB) {
        this.slab!.kept = true
        return b.subarray(s, e)
      }
      if (this.rb !== null) {
        this.rb.retained = true
        return b.subarray(s, e)
      }
    }
    const c = Buffer.allocUnsafe(e - s)
    b.copy(c, 0, s, e)
    return c
  }

  /** PING, SETTINGS, empty frames: a client that sends floods of them is told to calm down. */
  protected control(): boolean {
    const now = performance.now()
    if (now - this.controlSince > CONTROL_WINDOW_MS) {
      this.controlSince = now
      this.controlCount = 0
    }
    if (++this.controlCount > CONTROL_MAX || this.socket.writableLength > UNREAD_MAX) {
      this.connError(E_ENHANCE_YOUR_CALM, CONTROL_FLOOD)
      return false
    }
    return true
  }

  private onData(b: Buffer, flags: number, id: number, start: number, end: number): void {
    if (id === 0) return this.connError(E_PROTOCOL_ERROR, null)
    const len = end - start
    this.connRecvWindow -= len
    if (this.connRecvWindow < 0) return this.connError(E_FLOW_CONTROL_ERROR, null)
    const st = this.streams.get(id)
    if (st === undefined) {
      if (this.idle(id)) return this.connError(E_PROTOCOL_ERROR, null) // an idle stream
      // a stream closed here (reset, refused, answered): its DATA in flight is dropped, credited
      this.consumed(null, len)
      return
    }
    if (st.remoteEnded) {
      this.consumed(null, len)
      return this.streamError(st, E_STREAM_CLOSED)
    }
    if (!this.dataAllowed(st)) {
      this.consumed(null, len)
      return this.streamError(st, E_PROTOCOL_ERROR)
    }
    st.recvWindow -= len
    if (st.recvWindow < 0) {
      this.consumed(null, len)
      return this.streamError(st, E_FLOW_CONTROL_ERROR)
    }
    let s = start
    let e = end
    if ((flags & F_PADDED) !== 0) {
      if (len < 1) return this.connError(E_PROTOCOL_ERROR, null)
      const pad = b[s++]
      if (pad > e - s) return this.connError(E_PROTOCOL_ERROR, null)
      e -= pad
    }
    const n = e - s
    if (n < len) this.consumed(st, len - n) // padding and its length octet
    const endStream = (flags & F_END_STREAM) !== 0
    if (n === 0 && !endStream && !this.control()) return
    st.received += n
    const cl = st.contentLength
    if (cl >= 0 && (st.received > cl || (endStream && st.received !== cl))) {
      // RFC 9113 §8.1.1: malformed
      this.consumed(null, n)
      return this.streamError(st, E_PROTOCOL_ERROR)
    }
    if (n > 0) st.push(this.payload(b, s, e))
    if (endStream && !st.closed) st.pushEnd()
  }

  private onHeaders(b: Buffer, flags: number, id: number, start: number, end: number): void {
    if (id === 0) return this.connError(E_PROTOCOL_ERROR, null)
    let s = start
    let e = end
    if ((flags & F_PADDED) !== 0) {
      if (s >= e) return this.connError(E_PROTOCOL_ERROR, null)
      const pad = b[s++]
      if (pad > e - s) return this.connError(E_PROTOCOL_ERROR, null)
      e -= pad
    }
    if ((flags & F_PRIORITY) !== 0) {
      if (e - s < 5) return this.connError(E_FRAME_SIZE_ERROR, null)
      s += 5
    }
    if ((flags & F_END_HEADERS) !== 0) return this.headerBlock(id, flags, b, s, e)
    if (e - s > this.maxBlock) return this.connError(E_ENHANCE_YOUR_CALM, CONTINUATION_FLOOD)
    this.contId = id
    this.contFlags = flags
    this.contChunks = [Buffer.from(b.subarray(s, e))]
    this.contBytes = e - s
    this.contFrames = 0
  }

  private onContinuation(b: Buffer, flags: number, id: number, start: number, end: number): void {
    if (this.contId === 0 || id !== this.contId) return this.connError(E_PROTOCOL_ERROR, null)
    this.contBytes += end - start
    if (this.contBytes > this.maxBlock || ++this.contFrames > MAX_CONTINUATIONS) return this.connError(E_ENHANCE_YOUR_CALM, CONTINUATION_FLOOD)
    this.contChunks.push(Buffer.from(b.subarray(start, end)))
    if ((flags & F_END_HEADERS) === 0) return
    const block = this.contChunks.length === 1 ? this.contChunks[0] : Buffer.concat(this.contChunks)
    this.contId = 0
    this.contChunks = []
    this.headerBlock(id, this.contFlags, block, 0, block.length)
  }

  protected trailers(st: H2Stream, raw: string[], r: number, endStream: boolean, flags: number): void {
    if (st.remoteEnded) return this.streamError(st, E_STREAM_CLOSED)
    if (!endStream || r !== DECODE_OK || raw.length > 2 * this.opts.maxHeaderFields) return this.streamError(st, E_PROTOCOL_ERROR)
    if (checkTrailers(raw, this.decoder.clean) !== '') return this.streamError(st, E_PROTOCOL_ERROR)
    if (st.contentLength >= 0 && st.received !== st.contentLength) return this.streamError(st, E_PROTOCOL_ERROR)
    if (st.sink !== null) st.sink.streamTrailers(st, headersObject(raw))
    else st.emit('trailers', headersObject(raw), flags)
    if (!st.closed) st.pushEnd()
  }

  private onRstStream(b: Buffer, id: number, start: number, end: number): void {
    if (id === 0) return this.connError(E_PROTOCOL_ERROR, null)
    if (end - start !== 4) return this.connError(E_FRAME_SIZE_ERROR, null)
    const st = this.streams.get(id)
    if (st === undefined) {
      if (this.idle(id)) return this.connError(E_PROTOCOL_ERROR, null)
      return
    }
    this.streamDone(st, b.readUInt32BE(start))
  }

  private onSettings(b: Buffer, flags: number, id: number, start: number, end: number): void {
    if (id !== 0) return this.connError(E_PROTOCOL_ERROR, null)
    if ((flags & F_ACK) !== 0) {
      if (end !== start) return this.connError(E_FRAME_SIZE_ERROR, null)
      this.pendingSettingsAck = false
      return
    }
    if ((end - start) % 6 !== 0) return this.connError(E_FRAME_SIZE_ERROR, null)
    if (!this.control()) return
    let grew = false
    for (let p = start; p < end; p += 6) {
      const k = b.readUInt16BE(p)
      const v = b.readUInt32BE(p + 2)
      if (k === S_HEADER_TABLE_SIZE) this.encoder.setPeerLimit(v)
      else if (k === S_ENABLE_PUSH) {
        if (v > 1) return this.connError(E_PROTOCOL_ERROR, null)
      } else if (k === S_INITIAL_WINDOW_SIZE) {
        if (v > MAX_WINDOW) return this.connError(E_FLOW_CONTROL_ERROR, null)
        const delta = v - this.peerInitialWindow
        this.peerInitialWindow = v
        for (const st of this.streams.values()) {
          st.sendWindow += delta
          if (st.sendWindow > MAX_WINDOW) return this.connError(E_FLOW_CONTROL_ERROR, null)
        }
        if (delta > 0) grew = true
      } else if (k === S_MAX_CONCURRENT_STREAMS) {
        this.peerMaxStreams = v
      } else if (k === S_MAX_FRAME_SIZE) {
        if (v < DEFAULT_MAX_FRAME || v > 16_777_215) return this.connError(E_PROTOCOL_ERROR, null)
        this.peerMaxFrame = Math.min(v, MAX_DATA_FRAME)
      }
    }
    this.out(SETTINGS_ACK)
    if (grew) for (const st of this.streams.values()) if (st.outQueued > 0) this.flushStream(st)
    this.onRemoteSettings()
  }

  /** DATA may come on st now (a response's DATA only after its head, RFC 9113 §8.1) */
  protected dataAllowed(st: H2Stream): boolean {
    void st
    return true
  }

  /** A SETTINGS frame of the peer was applied (and acknowledged). */
  protected onRemoteSettings(): void {}

  private onPing(b: Buffer, flags: number, id: number, start: number, end: number): void {
    if (id !== 0) return this.connError(E_PROTOCOL_ERROR, null)
    if (end - start !== 8) return this.connError(E_FRAME_SIZE_ERROR, null)
    if ((flags & F_ACK) !== 0) {
      const i = this.pings.findIndex((x) => x.payload.compare(b, start, end) === 0)
      if (i === -1) return
      const pg = this.pings.splice(i, 1)[0]
      pg.cb(null, performance.now() - pg.t0, pg.payload)
      return
    }
    if (!this.control()) return
    const f = Buffer.allocUnsafe(FRAME_HEADER + 8)
    frameHeader(f, 0, 8, T_PING, F_ACK, 0)
    b.copy(f, FRAME_HEADER, start, end)
    this.out(f)
  }

  private onWindowUpdate(b: Buffer, id: number, start: number, end: number): void {
    if (end - start !== 4) return this.connError(E_FRAME_SIZE_ERROR, null)
    const inc = b.readUInt32BE(start) & 0x7fffffff
    if (id === 0) {
      if (inc === 0) return this.connError(E_PROTOCOL_ERROR, null)
      this.connSendWindow += inc
      if (this.connSendWindow > MAX_WINDOW) return this.connError(E_FLOW_CONTROL_ERROR, null)
      for (const st of this.blocked) {
        if (this.connSendWindow <= 0) break
        this.flushStream(st)
      }
      return
    }
    const st = this.streams.get(id)
    if (st === undefined) {
      if (this.idle(id)) return this.connError(E_PROTOCOL_ERROR, null)
      return
    }
    if (inc === 0) return this.streamError(st, E_PROTOCOL_ERROR)
    st.sendWindow += inc
    if (st.sendWindow > MAX_WINDOW) return this.streamError(st, E_FLOW_CONTROL_ERROR)
    if (st.outQueued > 0) this.flushStream(st)
  }

  // ---- flow control of what the client sends -----------------------------------------------------

  /** n bytes of st (null: of no stream any more) consumed: credit them back, in batches. */
  consumed(st: H2Stream | null, n: number): void {
    if (this.destroyed) return
    this.connUnacked += n
    if (this.connUnacked >= this.opts.connectionWindow >>> 2 || (this.connRecvWindow < DEFAULT_WINDOW && this.connUnacked > 0)) {
      this.out(u32Frame(T_WINDOW_UPDATE, 0, this.connUnacked))
      this.connRecvWindow += this.connUnacked
      this.connUnacked = 0
    }
    if (st === null || st.closed) return
    st.unacked += n
    if (!st.remoteEnded && st.unacked >= this.opts.initialWindowSize >>> 1) {
      this.out(u32Frame(T_WINDOW_UPDATE, st.id, st.unacked))
      st.recvWindow += st.unacked
      st.unacked = 0
    }
  }

  // ---- writing ------------------------------------------------------------------------------------

  /**
   * Frames written in one turn of the event loop leave in one write, in the check phase (a
   * response's HEADERS, DATA and trailers come from separate upstream events of one read; the
   * streams of one read answer together): small frames are copied into the connection's write
   * buffer (one socket.write of one Buffer per turn, no Buffer per frame), a large payload is
   * written as it is with the socket corked until then.
   */
  protected out(b: Buffer): void {
    if (this.destroyed) return
    const n = b.length
    if (n > COPY_MAX) {
      this.flushOut()
      this.writeSocket(b)
      return
    }
    const p = this.reserve(n)
    b.copy(this.wbuf!, p)
  }

  /** n bytes at the returned offset of wbuf, written by the caller (n <= WBUF_SIZE). */
  private reserve(n: number): number {
    if (!this.flushScheduled) scheduleFlush(this)
    if (this.wbuf === null) this.wbuf = Buffer.allocUnsafeSlow(WBUF_SIZE)
    else if (this.wlen + n > WBUF_SIZE) {
      // full: what it holds goes to the socket, the next frames into a new buffer
      this.flushOut()
      this.wbuf = Buffer.allocUnsafeSlow(WBUF_SIZE)
      this.wstart = this.wlen = 0
    }
    const p = this.wlen
    this.wlen = p + n
    return p
  }

  /** The frames copied into the write buffer since the last flush go to the socket (a view, no copy). */
  private flushOut(last = false): void {
    const n = this.wlen - this.wstart
    if (n === 0) return
    const b = this.wbuf!.subarray(this.wstart, this.wlen)
    this.wstart = this.wlen
    this.lastDataAt = -1
    this.writeSocket(b, last)
  }

  /** last: the turn's final write (uncork): when nothing was written before it, no cork is needed */
  private writeSocket(b: Buffer, last = false): void {
    const s = this.socket
    if (!this.corked && !last) {
      this.corked = true
      s.cork()
      if (!this.flushScheduled) scheduleFlush(this)
    }
    if (!s.write(b) && s.writableLength > SOCKET_HIGH && !this.socketBlocked) {
      this.socketBlocked = true
      s.once('drain', () => this.onSocketDrain())
    }
  }

  /** What this turn wrote goes to the socket now. */
  uncork(): void {
    this.flushScheduled = false
    const s = this.socket
    // the turn's only write (the usual case) goes straight to the socket, without cork and uncork
    if (!s.destroyed) this.flushOut(true)
    else {
      this.wbuf = null
      this.wstart = this.wlen = 0
    }
    if (this.corked) {
      this.corked = false
      s.uncork()
    }
    // the socket wrote everything at once: the write buffer is free again; else it holds on to
    // views of it until they are written, and the next turn starts a new one
    if (this.wbuf !== null && this.wlen > 0) {
      if (s.writableLength === 0) this.wstart = this.wlen = 0
      else {
        this.wbuf = null
        this.wstart = this.wlen = 0
      }
    }
    this.lastDataAt = -1
  }

  private onSocketDrain(): void {
    this.socketBlocked = false
    for (const st of this.drainWaiters) this.flushStream(st)
  }

  waitDrain(st: H2Stream): void {
    this.drainWaiters.add(st)
  }

  sendHeaders(st: H2Stream, fields: string[], endStream: boolean): void {
    this.sendBlock(st, this.encoder.encodeScratch(fields), endStream)
  }

  /** The header block the encoder holds (scratchBuffer[0..n), begin() / add()) as st's HEADERS. */
  sendBlock(st: H2Stream, n: number, endStream: boolean): void {
    const es = endStream ? F_END_STREAM : 0
    const scratch = this.encoder.scratchBuffer
    if (n <= COPY_MAX && !this.destroyed) {
      // encoded, then copied behind its frame header in the write buffer: no Buffer of its own
      const p = this.reserve(FRAME_HEADER + n)
      const w = this.wbuf!
      frameHeader(w, p, n, T_HEADERS, es | F_END_HEADERS, st.id)
      scratch.copy(w, p + FRAME_HEADER, 0, n)
      return
    }
    const block = Buffer.from(scratch.subarray(0, n))
    const max = this.peerMaxFrame
    if (block.length <= max) {
      const f = Buffer.allocUnsafe(FRAME_HEADER + block.length)
      frameHeader(f, 0, block.length, T_HEADERS, es | F_END_HEADERS, st.id)
      block.copy(f, FRAME_HEADER)
      this.out(f)
      return
    }
    this.out(frame(T_HEADERS, es, st.id, block.subarray(0, max)))
    for (let p = max; p < block.length; p += max) {
      const last = p + max >= block.length
      this.out(frame(T_CONTINUATION, last ? F_END_HEADERS : 0, st.id, block.subarray(p, Math.min(block.length, p + max))))
    }
  }

  sendEndStream(st: H2Stream): void {
    if (this.destroyed) return
    if (this.lastDataId === st.id && this.lastDataAt >= this.wstart) {
      // the stream's last DATA frame is still in the write buffer (write() then end() in one
      // turn): END_STREAM goes on it instead of on a frame of its own
      this.wbuf![this.lastDataAt + 4] |= F_END_STREAM
      return
    }
    const p = this.reserve(FRAME_HEADER)
    frameHeader(this.wbuf!, p, 0, T_DATA, F_END_STREAM, st.id)
  }

  /** Send what the windows allow of st's queue; END_STREAM with its last bytes when it is ending. */
  flushStream(st: H2Stream): void {
    // a client stream still waiting for a stream slot has sent no HEADERS yet
    if (st.closed || this.destroyed || !st.headersSent) return
    while (st.outQueue.length > 0) {
      const avail = Math.min(st.sendWindow, this.connSendWindow, this.peerMaxFrame)
      if (avail <= 0) {
        this.blocked.add(st)
        break
      }
      const head = st.outQueue[0]
      let chunk: Buffer
      if (head.length <= avail) {
        chunk = head
        st.outQueue.shift()
      } else {
        chunk = head.subarray(0, avail)
        st.outQueue[0] = head.subarray(avail)
      }
      const n = chunk.length
      st.outQueued -= n
      st.sendWindow -= n
      this.connSendWindow -= n
      const last = st.outQueue.length === 0 && st.ending && !st.waitTrailers
      this.writeData(st.id, chunk, last)
      if (last) st.localEnded = true
    }
    if (st.outQueue.length === 0) {
      this.blocked.delete(st)
      if (st.ending && !st.localEnded) st.outDone()
      else if (st.localEnded && st.inputDone) this.streamDone(st, E_NO_ERROR)
    }
    if (st.needDrain && st.outQueued < HIGH_WATER && !this.socketBlocked && !st.closed) {
      st.needDrain = false
      this.drainWaiters.delete(st)
      process.nextTick(drainLater, st)
    }
  }

  private writeData(id: number, chunk: Buffer, end: boolean): void {
    if (this.destroyed) return
    const n = chunk.length
    const flags = end ? F_END_STREAM : 0
    if (n <= COPY_MAX) {
      const p = this.reserve(FRAME_HEADER + n)
      const w = this.wbuf!
      frameHeader(w, p, n, T_DATA, flags, id)
      chunk.copy(w, p + FRAME_HEADER)
      this.lastDataAt = p
      this.lastDataId = id
    } else {
      // the frame header in the write buffer, the payload written as it is behind it
      const p = this.reserve(FRAME_HEADER)
      frameHeader(this.wbuf!, p, n, T_DATA, flags, id)
      this.flushOut()
      this.writeSocket(chunk)
    }
  }

  // ---- stream ends ----------------------------------------------------------------------------------

  /** A stream error (RFC 9113 §5.4.2): RST_STREAM code; 'streamError' for the owner's counters. */
  protected streamError(st: H2Stream, code: number): void {
    this.out(u32Frame(T_RST_STREAM, st.id, code))
    this.emit('streamError', st, code)
    this.streamDone(st, code)
  }

  /** stream.close(code): RST_STREAM, then closed. */
  resetStream(st: H2Stream, code: number): void {
    this.out(u32Frame(T_RST_STREAM, st.id, code))
    this.streamDone(st, code)
  }

  /** The stream is over (both ends, or reset either way). */
  streamDone(st: H2Stream, code: number): void {
    if (st.closed) return
    const undelivered = st.dropInput()
    this.streams.delete(st.id)
    this.blocked.delete(st)
    this.drainWaiters.delete(st)
    st.finished(code)
    if (undelivered > 0) this.consumed(null, undelivered)
    if (this.streams.size === 0 && (this.closed || this.peerGoaway)) this.finishClose()
  }

  // ---- the connection's end ------------------------------------------------------------------------

  /** A connection error (RFC 9113 §5.4.1): GOAWAY with code, then the connection closes. */
  protected connError(code: number, debug: Buffer | null): void {
    if (this.destroyed) return
    this.out(goawayFrame(this.lastEmitted, code, debug))
    this.emit('connectionError', code)
    this.closed = true
    this.uncork()
    this.closeStreams(code === E_NO_ERROR ? E_CANCEL : code)
    this.destroyed = true
    this.socket.destroySoon()
  }

  /**
   * A frame on a stream id not in the map: idle (never opened: a connection error) or closed
   * (frames in flight when it was reset: dropped). The server side knows the peer's last id.
   */
  protected idle(id: number): boolean {
    return id > this.lastStreamId
  }

  /** GOAWAY (node's session.goaway): lastStreamId below 2^31-1 bounds the streams processed. */
  goaway(code = E_NO_ERROR, lastStreamId = this.lastStreamId, data?: Buffer): void {
    if (this.destroyed) return
    this.out(goawayFrame(lastStreamId, code, data ?? null))
    if (lastStreamId < MAX_WINDOW && (this.goawayLast < 0 || lastStreamId < this.goawayLast)) this.goawayLast = lastStreamId
  }

  /** Graceful (node's session.close()): final GOAWAY, no new stream, closed once the streams end. */
  close(): void {
    if (this.closed || this.destroyed) return
    this.closed = true
    this.goaway(E_NO_ERROR, this.lastStreamId)
    if (this.streams.size === 0) this.finishClose()
  }

  protected finishClose(): void {
    if (this.destroyed) return
    this.closed = true
    this.uncork()
    this.destroyed = true
    this.socket.destroySoon()
  }

  destroy(): void {
    if (this.destroyed && this.socket.destroyed) return
    this.closed = true
    this.destroyed = true
    this.uncork()
    this.closeStreams(E_CANCEL)
    this.socket.destroy()
  }

  ping(cb: (err: Error | null, duration: number, payload: Buffer) => void): boolean {
    if (this.destroyed) return false
    const payload = Buffer.alloc(8)
    payload.writeUInt32BE(++this.pingSeq, 4)
    this.pings.push({ payload, t0: performance.now(), cb })
    this.out(frame(T_PING, 0, 0, payload))
    return true
  }

  protected closeStreams(code: number): void {
    for (const st of [...this.streams.values()]) {
      this.streams.delete(st.id)
      st.dropInput()
      st.finished(code)
    }
    this.blocked.clear()
    this.drainWaiters.clear()
  }

  protected onSocketClose(): void {
    this.closed = true
    this.destroyed = true
    this.closeStreams(E_CANCEL)
    const pings = this.pings
    this.pings = []
    for (const p of pings) p.cb(new Error('WEFT_ERR_H2_SESSION_CLOSED: the connection closed'), 0, p.payload)
    this.emit('close')
  }
}

function ignore(): void {}

/**
 * Connections with frames to write in this turn, flushed together in the check phase by one
 * immediate (not one per connection).
 */
const dirty: H2Conn[] = []
let flushPending = false

function scheduleFlush(c: H2Conn): void {
  c.flushScheduled = true
  dirty.push(c)
  if (!flushPending) {
    flushPending = true
    setImmediate(flushAll)
  }
}

/**
 * A read that handed new streams to their exchanges: they may have deferred their upstream
 * request to an immediate of this check phase (proxy/h2/exchange.ts, a request with a body); a
 * flush queued behind those immediates writes what they send in this turn instead of the next.
 */
function flushAfterImmediates(): void {
  flushPending = true
  setImmediate(flushAll)
}

function flushAll(): void {
  // a connection dirtied while flushing (the list grows) is flushed in this loop too
  for (let i = 0; i < dirty.length; i++) {
    const c = dirty[i]
    if (c.flushScheduled) c.uncork()
  }
  dirty.length = 0
  flushPending = false
}

function drainLater(st: H2Stream): void {
  if (st.closed) return
  if (st.sink !== null) st.sink.streamDrain(st)
  else st.emit('drain')
}

/** The request's content-length: -1 none, -2 not one decimal or two different values (malformed). */
export function contentLengthOf(raw: readonly string[]): number {
  let cl = -1
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i] !== 'content-length') continue
    const v = raw[i + 1]
    if (v.length === 0 || v.length > 15) return -2
    let n = 0
    for (let j = 0; j < v.length; j++) {
      const c = v.charCodeAt(j)
      if (c < 0x30 || c > 0x39) return -2
      n = n * 10 + (c - 0x30)
    }
    if (cl !== -1 && cl !== n) return -2
    cl = n
  }
  return cl
}

/**
 * The client side's reads (an upstream connection, net.connect's onread): into a 64 KiB slab,
 * each read after the bytes of the one before, so a frame cut by the end of a read is completed
 * in place by the next read instead of being assembled in a buffer of its own, and a 16 KiB DATA
 * frame does not take two reads. A large DATA payload is handed on as a view of the slab (no copy):
 * the slab is then "kept" and never written over; the next read goes after it, or into a new slab
 * that starts with the cut frame's bytes (at most one frame is copied per slab).
 */
export class SlabReader {
  slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE)
  /** slab[start..end): read, not parsed yet (the start of a frame cut by the end of the read) */
  start = 0
  end = 0
  /** a payload view into the slab was handed on */
  kept = false
  private conn: H2Conn | null = null

  attach(c: H2Conn): boolean {
    this.conn = c
    return true
  }

  /** the buffer of the next read (net.connect's onread.buffer, called after each read) */
  readonly next = (): Buffer => {
    const rest = this.end - this.start
    if (this.slab.length - this.end >= SLAB_ROOM) {
      if (rest === 0 && !this.kept) this.start = this.end = 0
      return this.slab.subarray(this.end)
    }
    if (this.kept) {
      const s = Buffer.allocUnsafeSlow(SLAB_SIZE)
      this.slab.copy(s, 0, this.start, this.end)
      this.slab = s
      this.kept = false
    } else if (rest > 0) this.slab.copyWithin(0, this.start, this.end)
    this.start = 0
    this.end = rest
    return this.slab.subarray(rest)
  }

  /** n bytes were read into the buffer next() gave (onread.callback) */
  readonly callback = (n: number): boolean => {
    this.end += n
    if (this.conn !== null) this.conn.onSlabRead(this)
    else this.start = this.end
    return true
  }
}
