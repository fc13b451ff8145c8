// One HTTP/2 stream through the proxy (h2c and gRPC). The pipeline (the listener's and the
// route's filters, routing, the policy, the cluster's dispatch, tries, timers, retries, telemetry)
// is the shared one (proxy/exchange/core.ts, the same code as HTTP/1); this file is the HTTP/2
// wire around it: the upstream request (HTTP/2 fields, or an HTTP/1 head when the cluster speaks
// HTTP/1: a try asks for the one it needs, proxy/cluster/try.ts), the client stream's body and
// trailers, the response as an HTTP/2 response, local replies as HTTP/2 responses. Bodies go
// stream to stream with backpressure (a write that returns false pauses the other side, so HTTP/2
// flow control reaches the far end and nothing piles up); trailers are forwarded; a reset on one
// side resets the other.
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
import type { EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_GATEWAY, OUTCOME_OK } from '../cluster/outlier.ts'
import type { HttpError, ResponseHead } from '../../api/http1/head.ts'
import { mirrorHead } from './mirror-head.ts'
import type { CompiledRoute } from '../route/table.ts'
import { EXPLAIN_ID_HEADER } from '../telemetry/explain.ts'
import { ExchangeCore } from '../exchange/core.ts'
import { addHeader, trailerBlock, trailerFields } from '../exchange/h2-fields.ts'
import { StreamResetError } from '../cluster/try.ts'
import { Flags, type ExchangeCounters, type RouterConfig } from '../exchange/types.ts'
import { encodeGrpcMessage, grpcStatusOfLocal, grpcTimeoutMs, httpStatusOfGrpc, isGrpc } from './grpc.ts'
import { blockPairs, responseHeadersOut, SINGLE_VALUE } from './headers.ts'
import { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } from './upstream.ts'
/** the proxy failed inside the exchange (an exception): the stream was answered 502 or reset */
const FLAG_INTERNAL = 'IE'


type H2Counters = ExchangeCounters & { readonly h2: { internalErrors: number } }

/** Request fields not sent to an HTTP/1 upstream (hop-by-hop there; the framing is the proxy's). */
const DROP_H1 = new Set(['te', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade'])
/** methods whose empty body is said with content-length: 0 (as node:http does) */
const NO_LENGTH_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'])

export class H2Exchange extends ExchangeCore implements StreamSink {
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
  /** the try's request fields (HTTP/2; an HTTP/1 head is made from them) */
  private upHeaders: OutgoingHttpHeaders | null = null
  // ---- response
  private trailers: OutgoingHttpHeaders | null = null
  /** the response head carried END_STREAM (trailers-only) */
  private endedAtHead = false
  /** the response's HEADERS went to the client (a local reply is no longer possible) */
  private headersOut = false
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
    try {
      this.endTry(OUTCOME_OK, true)
      this.cancelTry()
    } catch {}
    if (!this.done && !this.headersOut) {
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

  // ---- a try: the request in the form the cluster speaks ------------------------------------

  get wantsUpgrade(): boolean {
    return false
  }

  /** waiting for a session or a connection: a connect opened for it alone is given up with it
   * (many streams reset at once must not leave many connections) */
  protected override get closeExcess(): boolean {
    return true
  }

  protected prepareTry(ep: EndpointState, _http2: boolean): void {
    if (this.upHeaders === null || this.authority === '') this.upHeaders = this.h2RequestHeaders(this.route!, ep, this.names, this.values, false)
  }

  /** The request headers of this try (grpc-timeout: the time left of the deadline). */
  tryRequestH2(): OutgoingHttpHeaders {
    const h = this.upHeaders!
    if (this.deadline > 0 && this.grpc) h['grpc-timeout'] = grpcTimeoutValue(this.deadline - performance.now())
    else if (this.headers['grpc-timeout'] !== undefined) h['grpc-timeout'] = str(this.headers['grpc-timeout'])
    return h
  }

  /**
   * A body on any method is framed: its length when the client gave one (the codec holds the
   * DATA to it), else chunked, as HAProxy does; else the upstream would read it as a request.
   */
  /** chunked without a length, and also without a body when trailers are to follow the last chunk */
  tryChunked(endStream: boolean): boolean {
    return (!endStream || this.reqTrailers !== null) && this.upHeaders!['content-length'] === undefined
  }

  tryRequestH1(endStream: boolean): string {
    return h1Head(this.tryRequestH2(), endStream, this.tryChunked(endStream))
  }

  /** the request's trailers as an HTTP/1 chunked trailer section (sent when the body goes chunked) */
  tryTrailersH1(): string {
    return this.reqTrailers === null ? '' : trailerBlock(this.reqTrailers)
  }

  tryTrailersH2(): OutgoingHttpHeaders | null {
    return this.reqTrailers
  }

  protected pauseRequest(): void {
    this.down.pause()
  }

  protected resumeRequest(): void {
    this.down.resume()
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

  /** Mid-response failure: the client stream is reset (the upstream's code passed on), never looks complete. */
  protected resetResponse(err: HttpError): void {
    const rst = err instanceof StreamResetError && err.rstCode !== 0 ? err.rstCode : NGHTTP2_INTERNAL_ERROR
    if (!this.down.closed) this.down.close(rst)
  }

  // ---- the mirror's copy (Host "-shadow", as Envoy) ------------------------------------------

  /** the copy's body length when known (its content-length, or all of it already read), -1: unknown */
  private shadowLength(): number {
    const declared = this.headers['content-length']
    return declared !== undefined ? Number(declared) : this.reqEnded ? this.queuedBytes : -1
  }

  private get shadowHasBody(): boolean {
    return !this.reqEnded || this.queuedBytes > 0
  }

  shadowH1(): string {
    return mirrorHead(this.upHeaders!, this.shadowHasBody, this.shadowLength())
  }

  shadowChunked(): boolean {
    return this.shadowHasBody && this.shadowLength() < 0
  }

  shadowH2(): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = { ...this.upHeaders! }
    h[':authority'] = String(h[':authority']) + '-shadow'
    return h
  }

  // ---- the client stream: its body, trailers, end (StreamSink of the proxy's codec, or listeners)

  private onDownData(b: Buffer): void {
    if (this.done) return
    this.bytesIn += b.length
    this.sendBody(b, false)
  }

  private onDownTrailers(t: IncomingHttpHeaders): void {
    const out: OutgoingHttpHeaders = Object.create(null)
    for (const n in t) if (n.charCodeAt(0) !== 0x3a) out[n] = t[n]
    this.reqTrailers = out
  }

  private onDownEnd(): void {
    this.endBody()
  }

  /** The client can take more: the upstream that was paused for it reads again. */
  private resumeUp(): void {
    this.up?.resume()
  }

  streamResponse(_st: H2Stream, _headers: IncomingHttpHeaders, _flags: number): void {}

  streamData(st: H2Stream, b: Buffer): void {
    if ((st as unknown) !== this.down) return
    try {
      this.onDownData(b)
    } catch (err) {
      this.abort(err)
    }
  }

  streamEnd(st: H2Stream): void {
    if ((st as unknown) !== this.down) return
    try {
      this.onDownEnd()
    } catch (err) {
      this.abort(err)
    }
  }

  streamTrailers(st: H2Stream, t: IncomingHttpHeaders): void {
    if ((st as unknown) !== this.down) return
    try {
      this.onDownTrailers(t)
    } catch (err) {
      this.abort(err)
    }
  }

  streamWantTrailers(st: H2Stream): void {
    if ((st as unknown) !== this.down) return
    try {
      this.sendDownTrailers()
    } catch (err) {
      this.abort(err)
    }
  }

  streamDrain(st: H2Stream): void {
    if ((st as unknown) !== this.down) return
    try {
      this.resumeUp()
    } catch (err) {
      this.abort(err)
    }
  }

  streamClose(st: H2Stream): void {
    if ((st as unknown) !== this.down) return
    try {
      this.onDownClose()
    } catch (err) {
      this.abort(err)
    }
  }

  // ---- the try's response (TryHandler; an exception in one ends this exchange only: abort) ----

  override tryFailed(err: HttpError, flag: string): void {
    try {
      super.tryFailed(err, flag)
    } catch (e) {
      this.abort(e)
    }
  }

  override tryError(err: HttpError, flag: string, responseStarted: boolean): void {
    try {
      super.tryError(err, flag, responseStarted)
    } catch (e) {
      this.abort(e)
    }
  }

  override tryHead(status: number, h1: ResponseHead | null, h2: IncomingHttpHeaders | null, endStream: boolean): void {
    try {
      super.tryHead(status, h1, h2, endStream)
    } catch (err) {
      this.abort(err)
    }
  }

  override tryEnd(): void {
    try {
      super.tryEnd()
    } catch (err) {
      this.abort(err)
    }
  }

  protected relayHead(status: number, h1: ResponseHead | null, h2: IncomingHttpHeaders | null, endStream: boolean): void {
    const headers = h2 ?? fieldsOfH1(h1!)
    if (h2 !== null && endStream) {
      const gs = h2['grpc-status']
      if (gs !== undefined) this.grpcStatus = str(gs)
    }
    const out = responseHeadersOut(headers, this.route!.responseHeaders)
    if (this.explain !== null && this.explain.selectedBy === 'header') out[EXPLAIN_ID_HEADER] = this.requestId
    if (this.down.destroyed || this.down.closed) return
    // node:http2 throws on what it will not send (a :status outside 200-599, a field it only
    // takes once): this runs in the upstream stream's listener, where a throw would end the
    // process. Such a response is the upstream's fault: 502, as a malformed HTTP/1 one.
    if (!(status >= 200 && status <= 599)) return this.badResponse(`upstream status ${status} cannot be relayed`)
    try {
      if (endStream) {
        this.endedAtHead = true
        this.down.respond(out, { endStream: true })
        this.headersOut = true
        return
      }
      this.down.respond(out, { waitForTrailers: true })
      this.headersOut = true
    } catch (err) {
      return this.badResponse((err as Error).message)
    }
    if (this.ownDown) return
    this.down.on('wantTrailers', this.guard(() => this.sendDownTrailers()))
    this.down.on('drain', this.guard(() => this.resumeUp()))
  }

  tryData(buf: Buffer, start: number, end: number): void {
    try {
      const t = this.up
      if (this.done || this.discarding || t === null) return
      this.bytesOut += end - start
      // a copy when the bytes are the try's read buffer (HTTP/1): the client stream may hold them
      const b = !t.dataKept ? Buffer.from(buf.subarray(start, end)) : start === 0 && end === buf.length ? buf : buf.subarray(start, end)
      if (!this.down.write(b)) t.pause()
    } catch (err) {
      this.abort(err)
    }
  }

  tryTrailers(raw: string, fields: IncomingHttpHeaders | null): void {
    try {
      if (this.done || this.discarding) return
      // an HTTP/1 upstream's trailer section as fields, without what HTTP/2 refuses
      this.onUpTrailers(fields ?? ((trailerFields(raw) ?? Object.create(null)) as IncomingHttpHeaders))
    } catch (err) {
      this.abort(err)
    }
  }

  protected relayEnd(): void {
    if (!this.respStarted) return
    if (!this.endedAtHead) this.down.end()
    this.finish()
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

  /** A response head node:http2 will not send: 502 UPE, the try cancelled. */
  private badResponse(why: string): void {
    this.respStarted = false
    const t = this.up
    this.up = null
    if (t !== null) t.cancel(false)
    this.endTry(OUTCOME_GATEWAY, false)
    this.localReply(502, Flags.UpstreamProtocolError, 'WEFT_ERR_UPSTREAM_PROTOCOL', why)
  }

  /**
   * The response is complete (the client stream ends with the trailers). Answered before the
   * request was whole (a server that stopped reading, RFC 9113 8.1): the try has cancelled its
   * stream (or closed its connection), and the client's remaining bytes are read and dropped
   * (else a paused client stream would never close).
   */
  private finish(): void {
    this.done = true
    this.endTry(this.outcome, false)
    if (!this.reqEnded) this.down.resume()
    this.complete()
  }

  private onDownClose(): void {
    if (this.done) return
    // The client reset the stream (a cancelled call, a client deadline) or went away.
    if (this.down.rstCode === constants.NGHTTP2_CANCEL && this.grpc && this.grpcStatus === '') this.grpcStatus = '1'
    this.downstreamLeft()
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

/** An HTTP/1 response head as HTTP/2 fields (a field HTTP/2 takes once: the first, as node:http keeps it; others one list). */
function fieldsOfH1(head: ResponseHead): IncomingHttpHeaders {
  const h: IncomingHttpHeaders = Object.create(null)
  h[':status'] = head.status as unknown as string
  const names = head.names
  const values = head.values
  for (let i = 0; i < names.length; i++) {
    const n = names[i]
    const cur = h[n]
    if (cur === undefined) h[n] = n === 'set-cookie' ? [values[i]] : values[i]
    else if (Array.isArray(cur)) cur.push(values[i])
    else if (!SINGLE_VALUE.has(n)) h[n] = cur + ', ' + values[i]
  }
  return h
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
