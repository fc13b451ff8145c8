// One stream of the proxy's own HTTP/2 codec (connection.ts), shaped like the part of node:http2's
// streams that the exchanges use (proxy/h2/exchange.ts, bridge.ts): 'data', 'end', 'trailers',
// 'close', 'drain', 'wantTrailers'; write / end / pause / resume; sendTrailers, close(code);
// closed, destroyed, rstCode. ServerStream (a client's request) adds respond(); ClientStream (the
// proxy's request to an upstream, client.ts) adds 'response'. Both directions are flow controlled
// (RFC 9113 §5.2): the peer's window is credited as the exchange consumes the bytes (a paused
// stream holds at most its window), and DATA waits for the peer's windows.
import { EventEmitter } from 'node:events'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { H2Conn } from './connection.ts'
import type { HpackEncoder } from './hpack.ts'
import { connectionSpecific } from '../validate.ts'

/** a stream's write() says "wait for drain" above this many queued bytes (node's default) */
const HIGH_WATER = 16384

/**
 * The owner of a stream called directly, instead of by events: an exchange (proxy/h2/exchange.ts)
 * that handles every event of its two streams in one object pays no closure, listener list or
 * emit per event and call. A stream with a sink still emits 'close' (after the sink's call) for
 * other listeners; the other events go to the sink only.
 */
export interface StreamSink {
  /** a response head (client streams) */
  streamResponse(st: H2Stream, headers: IncomingHttpHeaders, flags: number): void
  streamData(st: H2Stream, b: Buffer): void
  streamEnd(st: H2Stream): void
  streamTrailers(st: H2Stream, headers: IncomingHttpHeaders): void
  /** end() was called with waitTrailers and the body is sent: sendTrailers() now */
  streamWantTrailers(st: H2Stream): void
  streamDrain(st: H2Stream): void
  streamClose(st: H2Stream): void
}

/** Who else is told when a stream closes, after its sink (proxy/h2/downstream.ts: the connection's count). */
export interface StreamCloseHook {
  streamClosed(st: H2Stream): void
}

export interface RespondOptions {
  endStream?: boolean
  waitForTrailers?: boolean
}

export class H2Stream extends EventEmitter {
  /** 0 until a client stream gets its slot (client.ts) */
  id: number
  readonly session: H2Conn
  closed = false
  destroyed = false
  rstCode: number | undefined = undefined
  /** called instead of the events (see StreamSink); null: events */
  sink: StreamSink | null = null
  /** called on close after the sink, instead of a 'close' listener */
  closeHook: StreamCloseHook | null = null

  // ---- receive side (client -> proxy)
  /** END_STREAM received */
  remoteEnded = false
  /** what the client may still send before a WINDOW_UPDATE */
  recvWindow: number
  /** bytes delivered and not yet credited back to the client */
  unacked = 0
  /** content-length of the request, -1 if none */
  contentLength = -1
  received = 0
  private inQueue: Buffer[] = []
  inQueued = 0
  private flowing = false
  /** the consumer has read (a 'data' listener, flow() or resume()): it is owed an 'end' */
  private reading = false
  private paused = false
  private endEmitted = false

  // ---- send side (proxy -> client)
  sendWindow: number
  headersSent = false
  /** END_STREAM sent */
  localEnded = false
  /** end() called: END_STREAM (or trailers) once the queue is sent */
  ending = false
  waitTrailers = false
  private wantTrailersEmitted = false
  outQueue: Buffer[] = []
  outQueued = 0
  needDrain = false

  constructor(session: H2Conn, id: number, recvWindow: number, sendWindow: number) {
    super()
    this.session = session
    this.id = id
    this.recvWindow = recvWindow
    this.sendWindow = sendWindow
  }

  // A 'data' listener starts the flow, as on a Readable (unless paused explicitly).
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener)
    if (event === 'data' && !this.paused && !this.flowing) {
      this.flowing = this.reading = true
      if (this.inQueue.length > 0 || this.remoteEnded) process.nextTick(deliverLater, this)
    }
    return this
  }

  /** Start the flow of DATA to the sink (what a 'data' listener does), unless paused. */
  flow(): void {
    if (!this.paused && !this.flowing) {
      this.flowing = this.reading = true
      if (this.inQueue.length > 0 || this.remoteEnded) process.nextTick(deliverLater, this)
    }
  }

  // ---- receive side

  /** DATA from the session (a copy the stream may keep). */
  push(b: Buffer): void {
    if (this.flowing && this.inQueue.length === 0) {
      this.consumed(b.length)
      if (this.sink !== null) this.sink.streamData(this, b)
      else this.emit('data', b)
      return
    }
    this.inQueue.push(b)
    this.inQueued += b.length
  }

  /**
   * The peer ended and every byte of it was handed on (a paused stream keeps what it holds: it
   * closes once resumed and drained).
   */
  get inputDone(): boolean {
    return this.remoteEnded && this.inQueue.length === 0
  }

  /** END_STREAM (or trailers) from the peer. */
  pushEnd(): void {
    this.remoteEnded = true
    this.deliver()
  }

  deliver(): void {
    while (this.flowing && this.inQueue.length > 0 && !this.closed) {
      const b = this.inQueue.shift()!
      this.inQueued -= b.length
      this.consumed(b.length)
      if (this.sink !== null) this.sink.streamData(this, b)
      else this.emit('data', b)
    }
    // 'end' once every byte is handed on, also to a consumer that paused after the last one (it
    // would otherwise see the stream close, below, without its end: a response cut short)
    if (this.remoteEnded && this.inQueue.length === 0 && !this.endEmitted && (this.flowing || this.reading)) {
      this.endEmitted = true
      if (this.sink !== null) this.sink.streamEnd(this)
      else this.emit('end')
    }
    if (this.inputDone && this.localEnded && !this.closed) this.session.streamDone(this, 0)
  }

  private consumed(n: number): void {
    this.session.consumed(this, n)
  }

  pause(): this {
    this.paused = true
    this.flowing = false
    return this
  }

  resume(): this {
    this.paused = false
    if (!this.flowing) {
      this.flowing = this.reading = true
      if (this.inQueue.length > 0 || this.remoteEnded) this.deliver()
    }
    return this
  }

  /** undelivered bytes, given back to the connection window when the stream closes */
  dropInput(): number {
    const n = this.inQueued
    this.inQueue = []
    this.inQueued = 0
    return n
  }

  // ---- send side

  write(b: Buffer | string): boolean {
    if (this.closed || this.ending) return false
    const buf = typeof b === 'string' ? Buffer.from(b) : b
    if (buf.length > 0) {
      this.outQueue.push(buf)
      this.outQueued += buf.length
      this.session.flushStream(this)
    }
    if (this.outQueued >= HIGH_WATER || this.session.socketBlocked) {
      this.needDrain = true
      this.session.waitDrain(this)
      return false
    }
    return true
  }

  end(b?: Buffer | string): this {
    if (this.closed || this.ending) return this
    if (b !== undefined) {
      // queued with the end, so that the last DATA frame carries END_STREAM
      const buf = typeof b === 'string' ? Buffer.from(b) : b
      if (buf.length > 0) {
        this.outQueue.push(buf)
        this.outQueued += buf.length
      }
    }
    this.ending = true
    if (!this.headersSent) this.defaultHead()
    this.session.flushStream(this)
    return this
  }

  /** end() before any head: the server answers 200 (a client stream has sent its HEADERS) */
  protected defaultHead(): void {}

  /** the queue is sent and end() was called: trailers, or END_STREAM */
  outDone(): void {
    if (this.localEnded) return
    if (this.waitTrailers) {
      if (!this.wantTrailersEmitted) {
        this.wantTrailersEmitted = true
        process.nextTick(wantTrailersLater, this)
      }
      return
    }
    this.localEnded = true
    this.session.sendEndStream(this)
    if (this.inputDone) this.session.streamDone(this, 0)
  }

  sendTrailers(t: OutgoingHttpHeaders): void {
    if (this.closed || this.localEnded) return
    this.localEnded = true
    const c = this.session
    if (!hasFields(t)) c.sendEndStream(this)
    else c.sendBlock(this, addFields(c.encoder, c.encoder.begin(), t), true)
    if (this.inputDone) c.streamDone(this, 0)
  }

  /** RST_STREAM with code (NO_ERROR by default), as node's stream.close(). */
  close(code = 0): void {
    if (this.closed) return
    this.session.resetStream(this, code)
  }

  /** The stream is over (session.streamDone): 'close' on the next tick, as node emits it. */
  finished(code: number): void {
    this.closed = true
    this.destroyed = true
    this.rstCode = code
    this.outQueue = []
    this.outQueued = 0
    process.nextTick(closeLater, this)
  }
}

/** A client's request on the proxy's server side (session.ts). */
export class ServerStream extends H2Stream {
  respond(headers: OutgoingHttpHeaders, opts?: RespondOptions): void {
    if (this.closed) return
    if (this.headersSent) throw new Error('WEFT_ERR_H2_HEADERS_SENT: response headers already sent')
    const status = Number(headers[':status'] ?? 200)
    if (!(status >= 100 && status <= 599) || !Number.isInteger(status)) throw new RangeError(`invalid :status ${headers[':status']}`)
    this.headersSent = true
    const end = opts?.endStream === true
    this.waitTrailers = opts?.waitForTrailers === true
    const c = this.session
    const e = c.encoder
    c.sendBlock(this, addFields(e, e.add(e.begin(), ':status', statusText(status)), headers), end)
    if (end) {
      this.localEnded = true
      this.ending = true
      if (this.inputDone) this.session.streamDone(this, 0)
    }
  }


  protected override defaultHead(): void {
    this.respond({ ':status': 200 })
  }
}

function deliverLater(s: H2Stream): void {
  if (!s.closed) s.deliver()
}

function wantTrailersLater(s: H2Stream): void {
  if (s.closed || s.localEnded) return
  if (s.sink !== null) s.sink.streamWantTrailers(s)
  else if (s.listenerCount('wantTrailers') > 0) s.emit('wantTrailers')
  else s.sendTrailers({})
}

function closeLater(s: H2Stream): void {
  if (s.sink !== null) s.sink.streamClose(s)
  if (s.closeHook !== null) s.closeHook.streamClosed(s)
  s.emit('close')
}

const STATUS_TEXT: string[] = []
for (let i = 100; i < 600; i++) STATUS_TEXT[i] = String(i)

function statusText(n: number): string {
  return STATUS_TEXT[n] ?? String(n)
}

/** name in lowercase (the same string when it is already) */
function lower(k: string): string {
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i)
    if (c >= 0x41 && c <= 0x5a) return k.toLowerCase()
  }
  return k
}

/**
 * The fields of an outgoing head or trailers, encoded one by one after p (HpackEncoder.begin /
 * add: no list of them is made): pseudo-headers left out (the caller adds them first), names
 * lowercased, connection-specific fields left out, a list value as one field per element.
 */
export function addFields(e: HpackEncoder, p: number, h: OutgoingHttpHeaders): number {
  for (const k in h) {
    if (k.charCodeAt(0) === 0x3a) continue
    const v = h[k]
    if (v === undefined) continue
    const n = lower(k)
    if (connectionSpecific(n)) continue
    if (typeof v === 'string') p = e.add(p, n, v)
    else if (Array.isArray(v)) for (let i = 0; i < v.length; i++) p = e.add(p, n, String(v[i]))
    else p = e.add(p, n, String(v))
  }
  return p
}

/** addFields would add at least one field */
export function hasFields(h: OutgoingHttpHeaders): boolean {
  for (const k in h) {
    if (k.charCodeAt(0) === 0x3a) continue
    const v = h[k]
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue
    if (!connectionSpecific(lower(k))) return true
  }
  return false
}

/**
 * A headers object: no prototype chain to speak of (any name is an own property, __proto__ and
 * constructor included, as with Object.create(null)), but in V8's fast mode: Object.create(null)
 * makes a dictionary, slower to fill and to read (measured: about half the time per head).
 */
export class HeaderFields {
  [name: string]: string | string[] | number | undefined
}
Object.setPrototypeOf(HeaderFields.prototype, null)
delete (HeaderFields.prototype as { constructor?: unknown }).constructor

/** node:http2's headers object of a request: duplicates joined (cookie with '; ', set-cookie kept as a list). */
export function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const h = new HeaderFields() as Record<string, string | string[]>
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]
    const v = raw[i + 1]
    const cur = h[n]
    if (cur === undefined) h[n] = n === 'set-cookie' ? [v] : v
    else if (Array.isArray(cur)) cur.push(v)
    else h[n] = cur + (n === 'cookie' ? '; ' : ', ') + v
  }
  return h as IncomingHttpHeaders
}
