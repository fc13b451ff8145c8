// The client side of the proxy's own HTTP/2 codec: one h2c connection to an upstream endpoint
// (prior knowledge), shaped like the part of node:http2's ClientHttp2Session that
// proxy/h2/upstream.ts, exchange.ts and bridge.ts use: request() -> a stream with 'response',
// 'data', 'trailers', 'end', 'close', 'drain'; 'connect', 'remoteSettings', 'goaway', 'error',
// 'close'; close, destroy, setTimeout; closed, destroyed.
//
// - Streams over the upstream's SETTINGS_MAX_CONCURRENT_STREAMS wait here, in order, and get
//   their id and send their HEADERS when a slot frees (as nghttp2 queues them).
// - A response head is checked (proxy/h2/validate.ts checkResponseHead): a malformed one (CR, LF
//   or NUL in a value, an uppercase or bad name, a connection-specific field, a bad :status) resets
//   the stream (PROTOCOL_ERROR) and the exchange answers 502; 1xx heads are skipped.
// - The upstream's GOAWAY: streams above its last id, and those still waiting, close with
//   REFUSED_STREAM (never processed: the exchange sends them again on a new session); no new
//   stream on this one; it closes when the others end.
import { connectMeshTls, type SessionCache, type UpstreamTls } from '../../identity/upstream-tls.ts'
import { connect, type Socket } from 'node:net'
import type { OutgoingHttpHeaders } from 'node:http2'
import { checkResponseHead } from '../validate.ts'
import { contentLengthOf, H2Conn, SlabReader, type ConnOptions } from './connection.ts'
import { E_COMPRESSION_ERROR, E_PROTOCOL_ERROR, E_REFUSED_STREAM, F_END_STREAM } from './frames.ts'
import { DECODE_ERROR, DECODE_OK } from './hpack.ts'
import { addFields, H2Stream, HeaderFields, headersObject } from './stream.ts'

/** The proxy's request on an upstream connection. */
export class ClientStream extends H2Stream {
  /** the request's head until its HEADERS are sent (a stream waiting for a slot) */
  fields: OutgoingHttpHeaders | null = null
  responded = false
  /** a HEAD request: its response's content-length describes no body */
  head = false

  get writableEnded(): boolean {
    return this.ending
  }

  /** request bytes not sent yet (flow control) */
  get writableLength(): number {
    return this.outQueued
  }

  override close(code = 0): void {
    if (this.closed) return
    if (this.id === 0) (this.session as ClientSession).unqueue(this, code)
    else super.close(code)
  }
}

export class ClientSession extends H2Conn {
  private nextId = 1
  private waiting: ClientStream[] = []
  private readonly authority: string
  private remoteSettingsSeen = false

  constructor(socket: Socket, opts: ConnOptions, reads: SlabReader, authority: string) {
    super(socket, opts, null, reads, false)
    this.authority = authority
    this.pendingSettingsAck = false
    socket.setNoDelay(true)
    socket.once('connect', () => this.emit('connect', this, socket))
    this.startReading(true)
  }

  /** h2c with prior knowledge to host:port. */
  static connect(host: string, port: number, opts: ConnOptions, tls: UpstreamTls | null = null, cache: SessionCache | null = null): ClientSession {
    const reads = new SlabReader()
    const onread = { buffer: reads.next, callback: reads.callback }
    // mesh TLS (ALPN h2): frames written before the handshake wait in the TLS socket
    const socket = tls === null ? connect({ host, port, onread }) : connectMeshTls(host, port, tls, 'h2', cache ?? { tlsSession: null }, onread)
    return new ClientSession(socket, opts, reads, host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)
  }

  /** node's session.setTimeout: no byte either way for ms */
  setTimeout(ms: number, cb: () => void): void {
    this.socket.setTimeout(ms, cb)
  }

  protected override onSocketError(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err)
  }

  protected override dataAllowed(st: H2Stream): boolean {
    return (st as ClientStream).responded
  }

  protected override onRemoteSettings(): void {
    if (!this.remoteSettingsSeen) {
      this.remoteSettingsSeen = true
      this.emit('remoteSettings')
    }
    this.admit()
  }

  request(headers: OutgoingHttpHeaders, opts?: { endStream?: boolean }): ClientStream {
    if (this.closed || this.destroyed) throw new Error('WEFT_ERR_H2_SESSION_CLOSED: the upstream session is going away')
    const st = new ClientStream(this, 0, this.opts.initialWindowSize, this.peerInitialWindow)
    const m = headers[':method']
    const method = m === undefined ? 'GET' : String(m)
    const a = headers[':authority']
    const authority = a === undefined ? this.authority : String(a)
    st.head = method === 'HEAD'
    const endStream = opts?.endStream === true
    if (endStream) {
      st.ending = true
      st.localEnded = true
    }
    if (this.waiting.length === 0 && this.streams.size < this.peerMaxStreams) {
      // a slot now (the usual case): the head is encoded from the object, no list of its fields
      this.open(st)
      this.sendHead(st, headers, method, authority, endStream)
      return st
    }
    // waits for a slot: a copy of the head as it is now (the exchange may change its object for
    // another try), encoded when the stream is admitted
    const h = Object.assign(new HeaderFields(), headers) as OutgoingHttpHeaders
    h[':method'] = method
    h[':authority'] = authority
    st.fields = h
    this.waiting.push(st)
    this.admit()
    return st
  }

  /** The request's HEADERS: the pseudo-headers, then the head object's fields (encoded from it). */
  private sendHead(st: ClientStream, h: OutgoingHttpHeaders, method: string, authority: string, endStream: boolean): void {
    const e = this.encoder
    let p = e.add(e.begin(), ':method', method)
    if (method !== 'CONNECT') p = e.add(p, ':scheme', str(h[':scheme'], 'http'))
    p = e.add(p, ':authority', authority)
    if (method !== 'CONNECT') p = e.add(p, ':path', str(h[':path'], '/'))
    this.sendBlock(st, addFields(e, p, h), endStream)
  }

  /** our streams are the odd ids below nextId; a server opens none (no push) */
  protected override idle(id: number): boolean {
    return (id & 1) === 0 || id >= this.nextId
  }

  /** st gets its id and slot (its HEADERS are sent next) */
  private open(st: ClientStream): void {
    st.id = this.nextId
    this.nextId += 2
    this.streams.set(st.id, st)
    st.headersSent = true
  }

  /** Streams waiting for a slot get their id and send their HEADERS, in order. */
  private admit(): void {
    while (this.waiting.length > 0 && this.streams.size < this.peerMaxStreams && !this.destroyed) {
      const st = this.waiting.shift()!
      if (st.closed) continue
      this.open(st)
      const h = st.fields!
      st.fields = null
      const endNow = st.localEnded
      this.sendHead(st, h, String(h[':method']), String(h[':authority']), endNow)
      if (!endNow) this.flushStream(st)
    }
  }

  /** A waiting stream given up (cancelled before it had a slot): closed, nothing sent. */
  unqueue(st: ClientStream, code: number): void {
    const i = this.waiting.indexOf(st)
    if (i !== -1) this.waiting.splice(i, 1)
    st.finished(code)
  }

  protected headerBlock(id: number, flags: number, b: Buffer, s: number, e: number): void {
    const raw: string[] = []
    const r = this.decoder.decode(b, s, e, raw, this.opts.maxHeaderListSize)
    if (r === DECODE_ERROR) return this.connError(E_COMPRESSION_ERROR, null)
    const st = this.streams.get(id) as ClientStream | undefined
    if (st === undefined) {
      // a server cannot open streams (no push): even ids are its error; a closed one of ours is dropped
      if ((id & 1) === 0 || id >= this.nextId) this.connError(E_PROTOCOL_ERROR, null)
      return
    }
    const endStream = (flags & F_END_STREAM) !== 0
    if (st.responded) return this.trailers(st, raw, r, endStream, flags)
    // over the list size or the field count (opts.maxHeaderFields): refused, the exchange answers 502
    if (r !== DECODE_OK || raw.length > 2 * this.opts.maxHeaderFields || checkResponseHead(raw, this.decoder.clean) !== '') return this.streamError(st, E_PROTOCOL_ERROR)
    const status = raw[1]
    if (status.charCodeAt(0) === 0x31) {
      // 1xx: informational, not relayed; 101 has no place in HTTP/2; one cannot end the stream
      if (status === '101' || endStream) return this.streamError(st, E_PROTOCOL_ERROR)
      return
    }
    st.responded = true
    if (!st.head && status !== '204' && status !== '304') {
      const cl = contentLengthOf(raw)
      if (cl === -2 || (endStream && cl > 0)) return this.streamError(st, E_PROTOCOL_ERROR)
      st.contentLength = cl
    }
    st.remoteEnded = endStream
    if (st.sink !== null) st.sink.streamResponse(st, headersObject(raw), flags)
    else st.emit('response', headersObject(raw), flags)
    if (endStream && !st.closed) st.pushEnd()
  }

  /** The upstream goes away: what it did not process is refused, the rest finishes. */
  protected onPeerGoaway(code: number, lastId: number): void {
    this.closed = true
    for (const st of this.waiting.splice(0)) st.finished(E_REFUSED_STREAM)
    for (const st of [...this.streams.values()]) if (st.id > lastId) this.streamDone(st, E_REFUSED_STREAM)
    this.emit('goaway', code, lastId)
    if (this.streams.size === 0) this.finishClose()
  }

  protected override onSocketClose(): void {
    for (const st of this.waiting.splice(0)) st.finished(E_REFUSED_STREAM)
    super.onSocketClose()
  }

  /** streams closing free their slot for a waiting one */
  override streamDone(st: H2Stream, code: number): void {
    super.streamDone(st, code)
    if (this.waiting.length > 0) this.admit()
  }
}

function str(v: string | number | readonly string[] | undefined, dflt: string): string {
  return v === undefined ? dflt : String(v)
}
