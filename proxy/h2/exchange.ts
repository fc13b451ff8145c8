// One HTTP/2 stream through the proxy (h2c and gRPC). The pipeline (the listener's and the
// route's filters, routing, the policy, the cluster's dispatch, tries, timers, retries, telemetry)
// is the shared one (proxy/exchange/core.ts, the same code as HTTP/1); this file is the HTTP/2
// wire around it: the upstream request headers, one upstream HTTP/2 stream per try on the
// endpoint's shared session (upstream.ts), the mirror (a copy over HTTP/1, mirror-head.ts), local
// replies as HTTP/2 responses. Bodies go stream to stream with backpressure (a write that returns
// false pauses the other side, so HTTP/2 flow control reaches the far end and nothing piles up);
// trailers are forwarded; a reset on one side resets the other. A cluster that speaks HTTP/1 gets
// the stream as a node:http request (http1-upstream.ts).
//
// gRPC (content-type application/grpc*): grpc-timeout is the request deadline (the smaller of it and
// the route timeout; the upstream gets the time left); the proxy's own answers are trailers-only
// gRPC responses (HTTP 200, grpc-status, grpc-message, grpc.ts); grpc-status of a trailers-only
// response can be retried (retry.on: unavailable, …); grpc-status goes to metrics, the access log and
// outlier detection (as the HTTP status it stands for).
import type { PeerIdentity } from '../identity/authz.ts'
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { DownStream } from './codec/down-stream.ts'
import { H2Stream, type StreamSink } from './codec/stream.ts'
import type { ClusterRuntime, EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../cluster/outlier.ts'
import type { HttpError } from '../../api/http1/head.ts'
import { MirrorRequest } from '../filters/mirror/mirror.ts'
import { chunkHeader } from '../../api/http1/chunked.ts'
import { mirrorHead } from './mirror-head.ts'
import { FAIL_RESET } from '../filters/retry/policy.ts'
import type { CompiledRoute, RoutePolicy } from '../route/table.ts'
import { EXPLAIN_ID_HEADER } from '../telemetry/explain.ts'
import { ExchangeCore } from '../exchange/core.ts'
import { addHeader, sinkTo, type UpStream } from '../exchange/h2-try.ts'
import { Flags, type ExchangeCounters, type RouterConfig } from '../exchange/types.ts'
import { encodeGrpcMessage, grpcStatusOfLocal, grpcTimeoutMs, httpStatusOfGrpc, isGrpc } from './grpc.ts'
import { blockPairs, responseHeadersOut, SINGLE_VALUE } from './headers.ts'
import type { PoolWaiter } from '../cluster/pool.ts'
import type { UpstreamConn, UpstreamHandler } from '../cluster/upstream.ts'
import type { ResponseHead } from '../../api/http1/head.ts'
import { cancelStream, h2Upstream, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, type H2Waiter, type UpSession } from './upstream.ts'

const { NGHTTP2_FLAG_END_STREAM } = constants
/** the proxy failed inside the exchange (an exception): the stream was answered 502 or reset */
const FLAG_INTERNAL = 'IE'
/** request body bytes kept while no upstream stream is open; past it the client is paused */
const QUEUE_LIMIT = 65536


type H2Counters = ExchangeCounters & { readonly h2: { internalErrors: number } }

/** Request fields not sent to an HTTP/1 upstream (hop-by-hop there; the framing is the proxy's). */
const DROP_H1 = new Set(['te', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade'])
/** methods whose empty body is said with content-length: 0 (as node:http does) */
const NO_LENGTH_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'])

export class H2Exchange extends ExchangeCore<Buffer> implements H2Waiter, StreamSink, PoolWaiter, UpstreamHandler {
  declare readonly counters: H2Counters
  private readonly down: DownStream
  /** the client stream is the proxy's codec's: this exchange is its sink (no listeners) */
  private readonly ownDown: boolean
  /** the request's trailers (HTTP/2 HEADERS after its DATA), sent on with the request's end */
  private reqTrailers: OutgoingHttpHeaders | null = null
  private readonly headers: IncomingHttpHeaders
  private readonly names: string[] = []
  private readonly values: string[] = []
  private readonly grpc: boolean
  private upHeaders: OutgoingHttpHeaders | null = null
  /** the try's upstream: a stream on an HTTP/2 session, or a connection of an HTTP/1 pool */
  private up: UpStream | null = null
  private conn: UpstreamConn | null = null
  /** HTTP/1 upstream: the request body goes chunk-framed (no content-length from the client) */
  private chunked = false
  /** HTTP/1 upstream: the request was written whole (the connection may be reused) */
  private reqSent = false
  // ---- request body
  private queued: Buffer[] = []
  private queuedBytes = 0
  /** the mirror's body is chunk-framed */
  private mirrorChunked = false
  private mirrorTried = false
  /** sent again after a REFUSED_STREAM (once) */
  private sentAgain = false
  // ---- response
  private trailers: OutgoingHttpHeaders | null = null
  private aborted = false

  readonly method: string
  readonly authority: string
  readonly path: string
  readonly downstreamAddress: string
  /** the caller's identity (mutual TLS), set by the connection before start(); null: plain text */
  peer: PeerIdentity | null = null
  get protocol(): string {
    return 'HTTP/2'
  }
  protected override get explainProtocol(): string {
    return this.grpc ? 'gRPC' : 'HTTP/2'
  }
  protected override get protocolLabel(): string {
    return this.grpc ? 'grpc' : 'http2'
  }
  /** grpc-timeout: the caller's deadline */
  protected override callerDeadlineMs(): number {
    return this.grpc ? grpcTimeoutMs(str(this.headers['grpc-timeout'])) : -1
  }

  constructor(down: DownStream, headers: IncomingHttpHeaders, raw: string[], endStream: boolean, remoteAddress: string, config: RouterConfig, counters: H2Counters) {
    super(config, counters)
    this.down = down
    this.headers = headers
    this.method = str(headers[':method'])
    this.path = str(headers[':path'])
    this.authority = str(headers[':authority'] ?? headers.host)
    this.downstreamAddress = remoteAddress
    this.reqEnded = endStream
    // a body may follow until END_STREAM: kept for retries as it comes (mayRetry waits for its end)
    this.hasBody = true
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i].charCodeAt(0) === 0x3a) continue
      this.names.push(raw[i])
      this.values.push(raw[i + 1])
    }
    this.grpc = isGrpc(headers['content-type'])
    this.ownDown = down instanceof H2Stream
    if (this.ownDown) (down as unknown as H2Stream).sink = this
    else {
      down.on('error', () => {})
      down.on('close', this.guard(() => this.onDownClose()))
    }
  }

  start(): void {
    if (this.routeRequest(this.names, this.values) === undefined) return
    if (!this.reqEnded) {
      if (this.ownDown) (this.down as unknown as H2Stream).flow()
      else {
        this.down.on('data', this.guard((b: Buffer) => this.onDownData(b)))
        this.down.on('trailers', this.guard((t: IncomingHttpHeaders) => this.onDownTrailers(t)))
        this.down.on('end', this.guard(() => this.onDownEnd()))
      }
    }
    if (this.delayed) return
    // A request with a body: its first DATA frame usually came in the same read as its HEADERS
    // and is delivered after this event. Opening the upstream stream once this read is processed
    // lets HEADERS and DATA (and END_STREAM) leave in one write instead of two.
    if (!this.reqEnded) setImmediate(dispatchLater, this)
    else this.dispatch()
  }


  /** dispatch() from setImmediate (see start) */
  dispatchDeferred(): void {
    try {
      if (!this.done) this.dispatch()
    } catch (err) {
      this.abort(err)
    }
  }

  /**
   * A listener or timer callback that cannot take the process down: an exception inside it (a
   * bug, a value node:http2 or node:http throws on) ends this exchange only (abort).
   */
  private guard<A extends unknown[]>(f: (...a: A) => void): (...a: A) => void {
    return (...a: A): void => {
      try {
        f(...a)
      } catch (err) {
        this.abort(err)
      }
    }
  }

  /**
   * End the exchange after an exception: 502 WEFT_ERR_INTERNAL (flag IE) while no response has
   * started, else RST_STREAM INTERNAL_ERROR; the try's upstream released; counted
   * (h2.internalErrors) and recorded once (the access log's line, flag IE).
   */
  abort(err: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.counters.h2.internalErrors++
    const ep = this.endpoint
    try {
      this.endTry(OUTCOME_OK, true)
      this.cancelTry(ep)
    } catch {}
    if (!this.done && !this.respStarted) {
      try {
        this.localReply(502, FLAG_INTERNAL, 'WEFT_ERR_INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`)
        return
      } catch {}
    }
    this.done = true
    this.flags = FLAG_INTERNAL
    try {
      this.complete()
    } catch {}
    if (!this.down.closed && !this.down.destroyed) this.down.close(NGHTTP2_INTERNAL_ERROR)
  }


  // ---- FilterExchange (proxy/filters/filter.ts) ---------------------------------------------

  header(name: string): string | undefined {
    const v = this.headers[name]
    return v === undefined ? undefined : str(v)
  }

  redirect(status: number, location: string): void {
    this.flags = Flags.DirectResponse
    this.writeLocal(status, [['location', location], ...blockPairs(this.route?.responseHeaders.append ?? '')], EMPTY)
  }


  protected internalError(err: unknown): void {
    this.abort(err)
  }

  // ---- a try: the headers, the mirror, a stream ----------------------------------------------

  protected prepareTry(ep: EndpointState, pol: RoutePolicy | null): void {
    if (this.upHeaders === null || this.authority === '') this.upHeaders = this.h2RequestHeaders(this.route!, ep, this.names, this.values, false)
    if (pol !== null && pol.mirror !== null && !this.mirrorTried) this.startMirror(pol)
  }

  protected openTry(ep: EndpointState, cluster: ClusterRuntime): void {
    if (cluster.http2) h2Upstream(ep.pool).acquire(this)
    // An HTTP/1 cluster: a connection of the endpoint's pool, as for an HTTP/1 client.
    else ep.pool.acquire(this)
  }

  protected resetForRetry(): void {
    this.queued = this.retained === null ? [] : this.retained.slice()
    this.queuedBytes = 0
    this.grpcStatus = ''
  }

  protected responseOut(): boolean {
    return this.respStarted
  }

  protected unstartResponse(): void {}

  /** The deadline with the headers out: gRPC ends the stream with DEADLINE_EXCEEDED in its trailers, else a reset. */
  protected abortResponse(): void {
    if (this.grpc) {
      this.grpcStatus = '4'
      this.trailers = { 'grpc-status': '4', 'grpc-message': 'WEFT_ERR_REQUEST_TIMEOUT: request timeout', 'x-weft-response-flags': Flags.UpstreamRequestTimeout }
      this.complete()
      if (!this.down.closed) this.down.end()
      return
    }
    this.complete()
    if (!this.down.closed) this.down.close(NGHTTP2_CANCEL)
  }

  /** A copy to the mirror cluster, over HTTP/1 as from the HTTP/1 exchange (once per request, not per try). */
  private startMirror(pol: RoutePolicy): void {
    this.mirrorTried = true
    const cluster = pol.mirror!.target(this.config.clusters, this.counters)
    if (cluster === null) return
    const hasBody = !this.reqEnded || this.queuedBytes > 0
    const declared = this.headers['content-length']
    const length = declared !== undefined ? Number(declared) : this.reqEnded ? this.queuedBytes : -1
    this.mirrorChunked = hasBody && length < 0
    this.mirror = new MirrorRequest(cluster, mirrorHead(this.upHeaders!, hasBody, length), hasBody && !this.reqEnded, this.counters)
    for (const b of this.queued) this.mirrorBody(b)
    if (this.reqEnded) this.mirrorEnd()
  }

  private mirrorBody(b: Buffer): void {
    const m = this.mirror!
    if (this.mirrorChunked) {
      m.body(chunkHeader(b.length))
      m.body(b)
      m.body('\r\n')
    } else m.body(b)
  }

  private mirrorEnd(): void {
    if (this.mirrorChunked) this.mirror!.body('0\r\n\r\n')
    this.mirror!.bodyEnd()
  }

  // ---- the upstream stream of one try ------------------------------------------------------

  /** The endpoint's session is there: open this try's stream. */
  onH2Session(s: UpSession): void {
    try {
      this.openStream(s)
    } catch (err) {
      this.abort(err)
    }
  }

  /** The request headers of this try (grpc-timeout: the time left of the deadline). */
  private tryHeaders(): OutgoingHttpHeaders {
    const h = this.upHeaders!
    if (this.deadline > 0 && this.grpc) h['grpc-timeout'] = grpcTimeoutValue(this.deadline - performance.now())
    else if (this.headers['grpc-timeout'] !== undefined) h['grpc-timeout'] = str(this.headers['grpc-timeout'])
    return h
  }

  private openStream(s: UpSession): void {
    if (this.done || this.endpoint === undefined) return
    const h = this.tryHeaders()
    const endStream = this.reqEnded && this.queued.length === 0 && this.reqTrailers === null
    let up: UpStream
    try {
      up = s.request(h, { endStream })
    } catch {
      // the session went away between the pick and now (GOAWAY): as a refused stream
      return this.onUpReset(null, NGHTTP2_NO_ERROR)
    }
    this.up = up
    this.startedAt = performance.now()
    sinkTo(up, this)
    if (!endStream) {
      let ok = true
      for (const b of this.queued) ok = up.write(b)
      this.queued = []
      this.queuedBytes = 0
      if (this.reqEnded) this.endUp(up)
      else if (ok) this.down.resume()
      else this.down.pause()
    }
  }

  /** The request is whole: the upstream stream ends, with the request's trailers when it had some. */
  private endUp(up: UpStream): void {
    // trailers go on over the proxy's codec (node:http2's client drops them)
    if (this.reqTrailers !== null && up instanceof H2Stream) up.waitTrailers = true
    up.end()
  }

  // ---- an HTTP/1 upstream: a connection of the endpoint's pool (PoolWaiter, UpstreamHandler) --

  onPoolConnection(conn: UpstreamConn): void {
    try {
      this.openConn(conn)
    } catch (err) {
      this.abort(err)
    }
  }

  onPoolFailure(err: HttpError, flag: string): void {
    this.onH2Failure(err, flag)
  }

  /** Write the request head and what is queued of its body on the connection. */
  private openConn(conn: UpstreamConn): void {
    if (this.done || this.endpoint === undefined) {
      conn.release(true)
      return
    }
    this.conn = conn
    this.reqSent = false
    conn.bind(this, this.method === 'HEAD', false)
    const h = this.tryHeaders()
    const endStream = this.reqEnded && this.queued.length === 0
    // A body on any method is framed: its length when the client gave one (the codec holds the
    // DATA to it), else chunked, as HAProxy does; else the upstream would read it as a request.
    this.chunked = !endStream && h['content-length'] === undefined
    const sock = conn.socket
    this.startedAt = performance.now()
    sock.cork()
    sock.write(h1Head(h, endStream, this.chunked), 'latin1')
    let ok = true
    for (const b of this.queued) ok = this.writeConn(conn, b)
    this.queued = []
    this.queuedBytes = 0
    if (this.reqEnded) this.endConn(conn)
    sock.uncork()
    if (!this.reqEnded) {
      if (ok) this.down.resume()
      else this.down.pause()
    }
  }

  private writeConn(conn: UpstreamConn, b: Buffer): boolean {
    const sock = conn.socket
    if (!this.chunked) return sock.write(b)
    sock.write(chunkHeader(b.length), 'latin1')
    sock.write(b)
    return sock.write('\r\n', 'latin1')
  }

  /** The request is whole (its trailers are not sent on: an HTTP/1 upstream has no use for gRPC's). */
  private endConn(conn: UpstreamConn): void {
    if (this.chunked) conn.socket.write('0\r\n\r\n', 'latin1')
    this.reqSent = true
  }

  onUpstreamInformational(_head: ResponseHead): void {
    // 1xx are not relayed to HTTP/2 clients (the final response follows)
  }

  onUpstreamHead(head: ResponseHead, _hasBody: boolean): void {
    try {
      if (this.conn === null) return
      const h: IncomingHttpHeaders = Object.create(null)
      h[':status'] = head.status as unknown as string
      const names = head.names
      const values = head.values
      for (let i = 0; i < names.length; i++) {
        const n = names[i]
        const cur = h[n]
        if (cur === undefined) h[n] = n === 'set-cookie' ? [values[i]] : values[i]
        else if (Array.isArray(cur)) cur.push(values[i])
        // a field HTTP/2 takes once: the first (as node:http keeps it); others are one list
        else if (!SINGLE_VALUE.has(n)) h[n] = cur + ', ' + values[i]
      }
      // the end comes as onUpstreamEnd (with the trailers of a chunked body), even without a body
      this.onUpResponse(h, false)
    } catch (err) {
      this.abort(err)
    }
  }

  onUpstreamData(buf: Buffer, start: number, end: number): void {
    try {
      const conn = this.conn
      if (conn === null || this.done) return
      this.bytesOut += end - start
      // a copy: the connection's read buffer is reused, the client stream may hold the bytes
      if (!this.down.write(Buffer.from(buf.subarray(start, end)))) conn.socket.pause()
    } catch (err) {
      this.abort(err)
    }
  }

  onUpstreamEnd(trailers: string): void {
    try {
      const conn = this.conn
      if (conn === null) return
      this.conn = null
      conn.release(this.reqSent)
      if (trailers !== '') {
        const t: IncomingHttpHeaders = Object.create(null)
        for (const [n, v] of blockPairs(trailers, false)) t[n] = v
        this.onUpTrailers(t)
      }
      this.onUpEnd()
    } catch (err) {
      this.abort(err)
    }
  }

  /** The connection failed (closed, reset, a malformed response). */
  onUpstreamError(err: HttpError, flag: string, responseStarted: boolean): void {
    try {
      const conn = this.conn
      if (this.done || conn === null) return
      this.conn = null
      // A reused keep-alive connection that failed before any response byte most likely raced the
      // upstream's idle close: a request without a body goes again, once, on a fresh connection.
      if (!responseStarted && conn.reused && !this.sentAgain && this.reqEnded && this.bytesIn === 0) {
        this.sentAgain = true
        this.counters.staleRetries++
        this.annotateRetry()
        this.endpoint!.pool.acquire(this, true)
        return
      }
      this.noteUpstreamError(err.code, err.message, responseStarted)
      const started = this.respStarted
      this.endTry(started ? OUTCOME_GATEWAY : OUTCOME_RESET, false)
      if (!started && this.retry !== null && this.retryAfter(FAIL_RESET)) return
      if (started) {
        // Mid-response: reset the client stream (a cut-off stream never looks complete).
        this.done = true
        this.flags = flag
        this.complete()
        if (!this.down.closed) this.down.close(NGHTTP2_INTERNAL_ERROR)
        return
      }
      this.localReply(err.status, this.retryFlag(flag), err.code, err.message)
    } catch (e) {
      this.abort(e)
    }
  }

  onUpstreamDrain(): void {
    this.down.resume()
  }

  onUpstreamFlush(): void {}

  /** The client can take more: the upstream that was paused for it reads again. */
  private resumeUp(): void {
    if (this.up !== null) this.up.resume()
    else if (this.conn !== null) this.conn.socket.resume()
  }

  /** The try's upstream is no longer wanted (its response is thrown away or refused). */
  private dropUp(endStream: boolean): void {
    const up = this.up
    this.up = null
    // trailers-only: the stream closes by itself
    if (up !== null && !endStream && !up.closed) up.close(NGHTTP2_CANCEL)
    const conn = this.conn
    this.conn = null
    if (conn !== null) conn.destroy()
  }

  // ---- StreamSink: the events of the proxy's codec's streams (down and this try's up) ---------

  streamResponse(st: H2Stream, headers: IncomingHttpHeaders, flags: number): void {
    if ((st as unknown) !== this.up) return
    try {
      this.onUpResponse(headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0)
    } catch (err) {
      this.abort(err)
    }
  }

  streamData(st: H2Stream, b: Buffer): void {
    try {
      if ((st as unknown) === this.down) this.onDownData(b)
      else if ((st as unknown) === this.up) {
        this.bytesOut += b.length
        if (!this.down.write(b)) st.pause()
      }
    } catch (err) {
      this.abort(err)
    }
  }

  streamEnd(st: H2Stream): void {
    try {
      if ((st as unknown) === this.down) this.onDownEnd()
      else if ((st as unknown) === this.up) this.onUpEnd()
    } catch (err) {
      this.abort(err)
    }
  }

  streamTrailers(st: H2Stream, t: IncomingHttpHeaders): void {
    try {
      if ((st as unknown) === this.down) this.onDownTrailers(t)
      else if ((st as unknown) === this.up) this.onUpTrailers(t)
    } catch (err) {
      this.abort(err)
    }
  }

  streamWantTrailers(st: H2Stream): void {
    try {
      if ((st as unknown) === this.down) this.sendDownTrailers()
      else if ((st as unknown) === this.up) st.sendTrailers(this.reqTrailers ?? {})
    } catch (err) {
      this.abort(err)
    }
  }

  streamDrain(st: H2Stream): void {
    try {
      if ((st as unknown) === this.down) this.resumeUp()
      else if ((st as unknown) === this.up) this.down.resume()
    } catch (err) {
      this.abort(err)
    }
  }

  streamClose(st: H2Stream): void {
    try {
      if ((st as unknown) === this.down) this.onDownClose()
      else if ((st as unknown) === this.up) this.onUpReset(st as unknown as UpStream, st.rstCode ?? NGHTTP2_NO_ERROR)
    } catch (err) {
      this.abort(err)
    }
  }

  onH2Failure(err: HttpError, flag: string): void {
    try {
      this.tryFailed(err, flag)
    } catch (e) {
      this.abort(e)
    }
  }

  private onDownData(b: Buffer): void {
    if (this.done) return
    this.bytesIn += b.length
    if (this.mirror !== null) this.mirrorBody(b)
    if (this.retained !== null) this.keepForRetry(b, b.length)
    const up = this.up
    if (up !== null) {
      if (!up.write(b)) this.down.pause()
      return
    }
    const conn = this.conn
    if (conn !== null) {
      if (!this.writeConn(conn, b)) this.down.pause()
      return
    }
    this.queued.push(b)
    this.queuedBytes += b.length
    if (this.queuedBytes > QUEUE_LIMIT) this.down.pause()
  }

  private onDownTrailers(t: IncomingHttpHeaders): void {
    const out: OutgoingHttpHeaders = Object.create(null)
    for (const n in t) if (n.charCodeAt(0) !== 0x3a) out[n] = t[n]
    this.reqTrailers = out
  }

  private onDownEnd(): void {
    this.reqEnded = true
    if (this.mirror !== null) this.mirrorEnd()
    if (this.done) return
    if (this.up !== null && !this.up.writableEnded) this.endUp(this.up)
    else if (this.conn !== null && !this.reqSent) this.endConn(this.conn)
  }


  private onUpResponse(headers: IncomingHttpHeaders, endStream: boolean): void {
    if (this.done) return
    const status = Number(headers[':status'])
    const gs = endStream ? headers['grpc-status'] : undefined
    const grpcCode = gs === undefined ? -1 : Number(gs)
    if (this.tryAnswered(status, grpcCode, false)) {
      // trailers-only: the stream closes by itself (the request was sent whole: mayRetry)
      this.dropUp(endStream)
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    this.respStarted = true
    this.status = status
    if (gs !== undefined) this.grpcStatus = str(gs)
    const out = responseHeadersOut(headers, this.route!.responseHeaders)
    if (this.explain !== null && this.explain.selectedBy === 'header') out[EXPLAIN_ID_HEADER] = this.requestId
    if (this.down.destroyed || this.down.closed) return
    // node:http2 throws on what it will not send (a :status outside 200-599, a field it only
    // takes once): this runs in the upstream stream's listener, where a throw would end the
    // process. Such a response is the upstream's fault: 502, as a malformed HTTP/1 one.
    if (!(status >= 200 && status <= 599)) return this.badResponse(`upstream status ${status} cannot be relayed`)
    try {
      if (endStream) {
        this.down.respond(out, { endStream: true })
        this.finish()
        return
      }
      this.down.respond(out, { waitForTrailers: true })
    } catch (err) {
      return this.badResponse((err as Error).message)
    }
    if (this.ownDown) return
    this.down.on('wantTrailers', this.guard(() => this.sendDownTrailers()))
    this.down.on('drain', this.guard(() => this.resumeUp()))
  }

  private sendDownTrailers(): void {
    try {
      this.down.sendTrailers(this.trailers ?? {})
    } catch {
      // trailers node will not send: the stream cannot end cleanly, so it is reset
      if (!this.down.closed) this.down.close(NGHTTP2_INTERNAL_ERROR)
    }
  }

  private onUpTrailers(t: IncomingHttpHeaders): void {
    const out: OutgoingHttpHeaders = Object.create(null)
    for (const n in t) if (n.charCodeAt(0) !== 0x3a) out[n] = t[n]
    this.trailers = out
    const gs = t['grpc-status']
    if (gs !== undefined) {
      this.grpcStatus = str(gs)
      const eff = httpStatusOfGrpc(Number(gs))
      if (eff >= 500) {
        this.endpoint!.counters.rq5xx++
        this.outcome = eff === 502 || eff === 503 || eff === 504 ? OUTCOME_GATEWAY : OUTCOME_5XX
      }
    }
  }

  private onUpEnd(): void {
    if (this.done || !this.respStarted) return
    this.down.end()
    this.finish()
  }

  /** A response head node:http2 will not send: 502 UPE, the upstream stream cancelled. */
  private badResponse(why: string): void {
    this.respStarted = false
    this.dropUp(false)
    this.endTry(OUTCOME_GATEWAY, false)
    this.localReply(502, Flags.UpstreamProtocolError, 'WEFT_ERR_UPSTREAM_PROTOCOL', why)
  }

  /** The response is complete (the downstream stream ends with the trailers). */
  private finish(): void {
    this.done = true
    const up = this.up
    this.endTry(this.outcome, false)
    this.up = null
    if (!this.reqEnded) {
      // Answered before the request was whole (a server that stopped reading, RFC 9113 8.1): the
      // rest of the request is not wanted. The upstream stream is cancelled (else it would stay
      // half open on the shared session, holding a stream slot) and the client's bytes read and
      // dropped (else a paused client stream would never close).
      if (up !== null && !up.closed) up.close(NGHTTP2_CANCEL)
      this.down.resume()
    }
    this.complete()
  }

  /** The upstream stream closed before its end: reset (rst: its code), or the session is gone (up null). */
  private onUpReset(up: UpStream | null, rst: number): void {
    if (this.done) return
    this.up = null
    const started = this.respStarted
    if (!started && rst === NGHTTP2_REFUSED_STREAM && !this.sentAgain && this.reqEnded && (this.bytesIn === 0 || this.retained !== null)) {
      // REFUSED_STREAM (RFC 9113 8.7): the upstream never processed it, as the streams above a
      // GOAWAY's last id when an app restarts. Sent again once, on a new session; not a policy
      // retry (no budget, no attempt) and not the endpoint's failure.
      this.sentAgain = true
      this.endTry(OUTCOME_OK, true)
      this.queued = this.retained === null ? [] : this.retained.slice()
      this.queuedBytes = 0
      return this.dispatch()
    }
    this.noteUpstreamError('WEFT_ERR_UPSTREAM_RESET', `upstream reset the stream (code ${rst})`, started)
    this.endTry(started ? OUTCOME_GATEWAY : OUTCOME_RESET, false)
    if (!started && this.retry !== null && this.retryAfter(FAIL_RESET)) return
    if (started) {
      // Mid-response: pass the reset on (a cut-off stream never looks complete).
      this.done = true
      this.flags = Flags.UpstreamConnectionTermination
      this.complete()
      if (!this.down.closed) this.down.close(rst === NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : rst)
      return
    }
    void up
    this.localReply(502, this.retryFlag(Flags.UpstreamConnectionTermination), 'WEFT_ERR_UPSTREAM_RESET', `upstream reset the stream (code ${rst})`)
  }

  private onDownClose(): void {
    if (this.done) return
    // The client reset the stream (a cancelled call, a client deadline) or went away.
    if (this.down.rstCode === constants.NGHTTP2_CANCEL && this.grpc && this.grpcStatus === '') this.grpcStatus = '1'
    this.downstreamLeft()
  }

  /** Abandon the current try: its upstream stream (RST_STREAM CANCEL) or its wait for a session. */
  protected cancelTry(ep: EndpointState | undefined): void {
    const up = this.up
    const conn = this.conn
    this.up = null
    this.conn = null
    if (up !== null) {
      if (!up.closed) cancelStream(up)
    } else if (conn !== null) conn.destroy()
    // waiting for a session or a connection: the pool takes it out of either queue (a connect
    // opened for it alone is given up: many streams reset at once must not leave many connections)
    else if (ep !== undefined) ep.pool.cancel(this, true)
    if (this.waitTimer !== null) {
      clearTimeout(this.waitTimer)
      this.waitTimer = null
    }
  }

  // ---- local replies -----------------------------------------------------------------------

  protected directReply(route: CompiledRoute): void {
    const d = route.direct!
    this.flags = Flags.DirectResponse
    this.writeLocal(d.status, blockPairs(d.head + route.responseHeaders.append), d.body)
  }

  /** The proxy's own answer: gRPC-shaped (trailers-only) for gRPC requests, text/plain otherwise. */
  protected writeReply(status: number, flag: string, code: string, message: string, extra: string): void {
    if (this.grpc) {
      const g = grpcStatusOfLocal(status, flag)
      this.grpcStatus = String(g)
      const h: [string, string][] = [
        ['content-type', 'application/grpc'],
        ['grpc-status', this.grpcStatus],
        ['grpc-message', encodeGrpcMessage(code + ': ' + message)],
        ['x-weft-response-flags', flag],
        ['x-weft-error', code],
        ...blockPairs(extra, false),
      ]
      return this.writeLocal(200, h, EMPTY)
    }
    const body = Buffer.from(code + ': ' + message + '\n')
    this.writeLocal(status, [['content-type', 'text/plain'], ['x-weft-response-flags', flag], ['x-weft-error', code], ...blockPairs(extra, false)], body)
  }

  private writeLocal(status: number, fields: [string, string][], body: Buffer): void {
    if (this.done) return
    this.done = true
    this.respStarted = true
    this.status = status
    const d = this.down
    if (!d.destroyed && !d.closed) {
      const h: OutgoingHttpHeaders = Object.create(null)
      h[':status'] = status
      for (const [n, v] of fields) if (n !== 'content-length') addHeader(h, n, v)
      const noBody = body.length === 0 || this.method === 'HEAD'
      if (!noBody) {
        h['content-length'] = body.length
        this.bytesOut = body.length
      }
      d.respond(h, { endStream: noBody })
      if (!noBody) d.end(body)
      // a request body still arriving is not wanted: read and drop it
      if (!this.reqEnded) d.resume()
    }
    this.complete()
  }
}

const EMPTY = Buffer.alloc(0)

/** A grpc-timeout value (at most 8 digits, gRPC over HTTP/2): milliseconds while they fit, else seconds, else hours. */
export function grpcTimeoutValue(ms: number): string {
  const m = Math.max(1, Math.ceil(ms))
  if (m <= 99_999_999) return m + 'm'
  const s = Math.ceil(m / 1000)
  if (s <= 99_999_999) return s + 'S'
  return Math.min(99_999_999, Math.ceil(s / 3600)) + 'H'
}

function dispatchLater(x: H2Exchange): void {
  x.dispatchDeferred()
}

function str(v: string | string[] | undefined): string {
  return v === undefined ? '' : typeof v === 'string' ? v : v.join(', ')
}


/**
 * An HTTP/1.1 request head from a try's HTTP/2 request headers (the pseudo-headers become the
 * request line and host; HTTP/1 hop-by-hop fields dropped). chunked: the body goes chunk-framed;
 * endStream: no body (content-length: 0 where an empty body needs saying).
 */
function h1Head(h: OutgoingHttpHeaders, endStream: boolean, chunked: boolean): string {
  const method = String(h[':method'])
  let s = method + ' ' + String(h[':path']) + ' HTTP/1.1\r\nhost: ' + String(h[':authority']) + '\r\n'
  for (const n in h) {
    if (n.charCodeAt(0) === 0x3a || DROP_H1.has(n)) continue
    const v = h[n]
    if (v === undefined) continue
    if (Array.isArray(v)) for (let i = 0; i < v.length; i++) s += n + ': ' + v[i] + '\r\n'
    else s += n + ': ' + v + '\r\n'
  }
  if (chunked) s += 'transfer-encoding: chunked\r\n'
  else if (endStream && h['content-length'] === undefined && !NO_LENGTH_METHODS.has(method)) s += 'content-length: 0\r\n'
  return s + '\r\n'
}
