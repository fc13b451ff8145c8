// One HTTP/2 stream through the proxy (h2c and gRPC): the listener's and the route's filter chains
// (proxy/filters/, the same Filter objects as HTTP/1 through FilterExchange), routing with the same
// compiled route table, the cluster's dispatch (max requests, breaker, pick, outlier reports: the
// same code as HTTP/1), timeouts, retries and the mirror (a copy over HTTP/1, mirror-head.ts), then
// one upstream HTTP/2 stream per try on the endpoint's shared session (upstream.ts). Bodies go stream to stream with backpressure (a write that returns false
// pauses the other side, so HTTP/2 flow control reaches the far end and nothing piles up); trailers
// are forwarded; a reset on one side resets the other.
//
// Not the benchmarked HTTP/1 path: this file uses node:http2 objects and per-stream closures. The
// HTTP/1 exchange (proxy/router/exchange.ts) is untouched but for one branch when its cluster
// speaks HTTP/2 (bridge.ts). A cluster that speaks HTTP/1 gets the stream as a node:http request
// (http1-upstream.ts).
//
// gRPC (content-type application/grpc*): grpc-timeout is the request deadline (the smaller of it and
// the route timeout; the upstream gets the time left); the proxy's own answers are trailers-only
// gRPC responses (HTTP 200, grpc-status, grpc-message, grpc.ts); grpc-status of a trailers-only
// response can be retried (retry.on: unavailable, …); grpc-status goes to metrics, the access log and
// outlier detection (as the HTTP status it stands for).
import type { PeerIdentity } from '../identity/authz.ts'
import { XFCC_SANITIZE_SET } from '../listener/protocol.ts'
import { randomUUID } from 'node:crypto'
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { DownStream } from './codec/down-stream.ts'
import { H2Stream, type StreamSink } from './codec/stream.ts'
import type { BreakerTicket } from '../cluster/breaker.ts'
import { DISPATCHED, REJECTIONS, type ClusterRuntime, type ClusterTry, type EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_CONNECT, OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../cluster/outlier.ts'
import { HttpError } from '../../api/http1/head.ts'
import { STOP, type FilterExchange } from '../filters/filter.ts'
import { MirrorRequest } from '../filters/mirror/mirror.ts'
import { chunkHeader } from '../../api/http1/chunked.ts'
import { mirrorHead } from './mirror-head.ts'
import { FAIL_CONNECT, FAIL_RESET, FAIL_TIMEOUT, RETRY_BODY_LIMIT, type CompiledRetry } from '../filters/retry/policy.ts'
import { matchRoute, pickBackend, rewritePath, type CompiledRoute, type MatchInput, type RoutePolicy } from '../route/table.ts'
import { EXPLAIN_ID_HEADER, type ExplainSource, type ExplainTrace } from '../telemetry/explain.ts'
import { routeStep, splitStep } from '../route/explain.ts'
import { Flags, type ExchangeCounters, type RouterConfig } from '../router/exchange.ts'
import { recordRequestAs } from '../telemetry/listener.ts'
import { TRACE_HEADER_NAMES } from '../telemetry/tracing/context.ts'
import { nowMicros, RETRY_ANNOTATION, type RequestTrace, type ZipkinAnnotation } from '../telemetry/tracing/tracer.ts'
import type { RequestRecord } from '../telemetry/types.ts'
import { encodeGrpcMessage, grpcStatusOfLocal, grpcTimeoutMs, httpStatusOfGrpc, isGrpc } from './grpc.ts'
import { blockPairs, responseHeadersOut, SINGLE_VALUE } from './headers.ts'
import { H1UpStream, type UpStream } from './http1-upstream.ts'
import { cancelStream, h2Upstream, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, type H2Waiter, type UpSession } from './upstream.ts'

const { NGHTTP2_FLAG_END_STREAM } = constants
/** the proxy failed inside the exchange (an exception): the stream was answered 502 or reset */
const FLAG_INTERNAL = 'IE'
/** request body bytes kept while no upstream stream is open; past it the client is paused */
const QUEUE_LIMIT = 65536
/** setTimeout's limit; a longer delay would fire at once */
const MAX_TIMER_MS = 2_147_483_647

/** Request fields that never go on (connection-specific in HTTP/2, RFC 9113 8.2.2), and host (:authority says it). */
const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'grpc-timeout'])

export class H2Exchange implements RequestRecord, H2Waiter, ClusterTry, FilterExchange, StreamSink {
  private readonly down: DownStream
  /** the client stream is the proxy's codec's: this exchange is its sink (no listeners) */
  private readonly ownDown: boolean
  /** the request's trailers (HTTP/2 HEADERS after its DATA), sent on with the request's end */
  private reqTrailers: OutgoingHttpHeaders | null = null
  private readonly headers: IncomingHttpHeaders
  private readonly names: string[] = []
  private readonly values: string[] = []
  private readonly config: RouterConfig
  readonly counters: ExchangeCounters & { readonly h2: { internalErrors: number } }
  private readonly grpc: boolean
  private readonly t0 = performance.now()
  private route: CompiledRoute | undefined
  private cluster: ClusterRuntime | undefined
  endpoint: EndpointState | undefined
  lastEndpoint: EndpointState | undefined
  private backendIndex = 0
  private policy: RoutePolicy | null = null
  private retry: CompiledRetry | null = null
  ticket: BreakerTicket | null = null
  acStart = -1
  private outcome = OUTCOME_OK
  private tries = 0
  private refused = false
  private delayed = false
  /** the flag of the delay (DI), set on the response unless another explains it */
  private delayFlag = ''
  private timer: ReturnType<typeof setTimeout> | null = null
  private tryTimer: ReturnType<typeof setTimeout> | null = null
  private waitTimer: ReturnType<typeof setTimeout> | null = null
  /** absolute deadline (performance.now() ms) of the request, 0: none */
  private deadline = 0
  private upHeaders: OutgoingHttpHeaders | null = null
  private up: UpStream | null = null
  private startedAt = 0
  // ---- request body
  private reqEnded: boolean
  private queued: Buffer[] = []
  /** the copy of this request to the route's mirror cluster; chunked: its body is chunk-framed */
  private mirror: MirrorRequest | null = null
  private mirrorChunked = false
  private mirrorTried = false
  private queuedBytes = 0
  /** copies for another try; null when too large (or no retry possible) */
  private retained: Buffer[] | null = null
  /** sent again after a REFUSED_STREAM (once) */
  private sentAgain = false
  private retainedBytes = 0
  // ---- response
  private respStarted = false
  private trailers: OutgoingHttpHeaders | null = null
  private done = false
  private completed = false
  private aborted = false
  private trace: RequestTrace | null = null
  private annotations: ZipkinAnnotation[] | null = null

  // ---- RequestRecord
  status = 0
  grpcStatus = ''
  flags = ''
  durationMs = 0
  bytesIn = 0
  bytesOut = 0
  requestId = ''
  /** the decision trace, when this request was selected for one (telemetry/explain.ts) */
  explain: ExplainTrace | null = null
  private explainSource: ExplainSource | null = null
  traceId = ''
  readonly method: string
  readonly authority: string
  readonly path: string
  readonly downstreamAddress: string
  /** the caller's identity (mutual TLS), set by the connection before start(); null: plain text */
  peer: PeerIdentity | null = null
  get sourceIdentity(): string {
    if (this.peer !== null) return this.peer.principal
    const p = this.config.telemetry.peer
    return p.sourceNamespace + '/' + p.sourceWorkload
  }
  get startTime(): number {
    return performance.timeOrigin + this.t0
  }
  get protocol(): string {
    return 'HTTP/2'
  }
  get routeName(): string {
    return this.route?.name ?? ''
  }
  get vhostName(): string {
    return this.route?.vhost ?? ''
  }
  get clusterName(): string {
    return this.cluster?.name ?? ''
  }
  upstreamHost = ''

  constructor(down: DownStream, headers: IncomingHttpHeaders, raw: string[], endStream: boolean, remoteAddress: string, config: RouterConfig, counters: ExchangeCounters & { readonly h2: { internalErrors: number } }) {
    this.down = down
    this.headers = headers
    this.config = config
    this.counters = counters
    this.method = str(headers[':method'])
    this.path = str(headers[':path'])
    this.authority = str(headers[':authority'] ?? headers.host)
    this.downstreamAddress = remoteAddress
    this.reqEnded = endStream
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
    const tracer = this.config.telemetry.tracer
    if (tracer !== null) {
      this.trace = tracer.begin(this.names, this.values, this.config.telemetry.spanKind)
      this.traceId = this.trace.traceId
    }
    const ex = this.config.telemetry.explain
    if (ex !== null && ex.on) {
      const x = (this.explain = ex.begin(this.names, this.values))
      if (x !== null) {
        this.explainSource = ex
        x.note('request', { direction: this.config.telemetry.spanKind === 'CLIENT' ? 'outbound' : 'inbound', protocol: this.grpc ? 'gRPC' : 'HTTP/2', method: this.method, authority: this.authority, path: this.path, selectedBy: x.selectedBy })
      }
    }
    const lf = this.config.filters
    if (lf !== null) for (let i = 0; i < lf.length; i++) if (lf[i].onRequest(this) === STOP) return
    const vh = this.config.table.lookup(this.authority)
    const p = this.path
    const q = p.indexOf('?')
    const mi: MatchInput = {
      method: this.method,
      pathOnly: q === -1 ? p : p.slice(0, q),
      query: q === -1 ? '' : p.slice(q + 1),
      names: this.names,
      values: this.values,
    }
    const route = vh === undefined ? undefined : matchRoute(vh, mi)
    if (this.explain !== null) this.explain.note('route', routeStep(vh, mi, route))
    if (route === undefined) {
      this.counters.noRoute++
      return this.localReply(404, Flags.NoRoute, 'WEFT_ERR_NO_ROUTE', 'no route matched')
    }
    this.route = route
    if (route.direct !== null) {
      const d = route.direct
      this.flags = Flags.DirectResponse
      return this.writeLocal(d.status, blockPairs(d.head + route.responseHeaders.append), d.body)
    }
    const filters = route.filters
    if (filters !== null) for (let i = 0; i < filters.length; i++) if (filters[i].onRequest(this) === STOP) return
    const pol = route.policy
    if (pol !== null) {
      this.policy = pol
      this.armPolicy(pol)
    }
    // grpc-timeout: the caller's deadline, the smaller of it and the route timeout
    let gt = this.grpc ? grpcTimeoutMs(str(this.headers['grpc-timeout'])) : -1
    if (gt > MAX_TIMER_MS) gt = -1 // longer than a timer can hold (~24.8 days): no deadline of ours
    const routeMs = pol === null ? 0 : pol.timeoutMs
    const ms = gt >= 0 && (routeMs === 0 || gt < routeMs) ? gt : routeMs
    if (ms > 0 || gt === 0) {
      this.deadline = this.t0 + ms
      this.timer = setTimeout(this.guard(() => this.onRequestTimeout()), ms)
    }
    const bi = pickBackend(route, route.backends.length > 1 ? Math.random() : 0)
    if (bi > 0) this.backendIndex = bi
    if (this.explain !== null && route.backends.length > 1) this.explain.note('split', splitStep(route, bi))
    const cluster = bi < 0 ? undefined : this.config.clusters.get(route.backends[bi].cluster)
    if (cluster === undefined) return this.localReply(503, Flags.NoCluster, 'WEFT_ERR_NO_CLUSTER', 'no cluster for route')
    this.cluster = cluster
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

  /** The route's retry policy, once its filters let the request go on (the timers are set in start). */
  private armPolicy(pol: RoutePolicy): void {
    if (pol.retry !== null) {
      this.retry = pol.retry
      if (pol.retry.attempts > 0) {
        pol.retry.budget?.deposit()
        this.retained = []
      }
    }
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

  hold(): () => void {
    this.delayed = true
    return this.guard(() => {
      if (!this.done) this.dispatch()
    })
  }

  delay(ms: number, flag: string): void {
    if (this.explain !== null) this.explain.note('fault-delay', { ms, flag })
    this.delayed = true
    this.delayFlag = flag
    this.waitTimer = setTimeout(this.guard(() => {
      this.waitTimer = null
      if (!this.done) this.dispatch()
    }), ms)
  }

  /** One try: the cluster's limits, an endpoint, a stream on its session. */
  private dispatch(): void {
    const cluster = this.cluster!
    const hashKey = cluster.hashHeader === '' ? undefined : str(this.headers[cluster.hashHeader])
    const d = cluster.dispatch(this, hashKey)
    if (this.explain !== null) this.explain.note('dispatch', cluster.explainDispatch(d, this, hashKey, this.tries))
    if (d !== DISPATCHED) return this.rejected(d)
    const ep = this.endpoint!
    this.outcome = OUTCOME_OK
    this.upstreamHost = ep.key
    if (this.upHeaders === null || this.authority === '') this.upHeaders = this.buildUpstreamHeaders(this.route!, ep)
    const pol = this.policy
    if (pol !== null && pol.mirror !== null && !this.mirrorTried) this.startMirror(pol)
    const r = this.retry
    if (r !== null && r.perTryTimeoutMs > 0) this.tryTimer = setTimeout(this.guard(() => this.onTryTimeout()), r.perTryTimeoutMs)
    // An HTTP/1 cluster behind an HTTP/2 client: node:http on a keep-alive Agent (http1-upstream.ts).
    if (!cluster.http2) return this.onH2Session(null)
    h2Upstream(ep.pool).acquire(this)
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

  private buildUpstreamHeaders(route: CompiledRoute, ep: EndpointState): OutgoingHttpHeaders {
    const p = this.path
    const path = route.rewrite !== null ? rewritePath(p, route.rewrite) : route.rewritePathTo !== null ? replacePath(p, route.rewritePathTo) : p
    const mut = route.requestHeaders
    const out: OutgoingHttpHeaders = Object.create(null)
    out[':method'] = this.method
    out[':scheme'] = 'http'
    out[':authority'] = mut.host ?? route.rewriteHost ?? (this.authority === '' ? ep.key : this.authority)
    out[':path'] = path
    const drop = mut.drop
    const trace = this.trace
    let xff = ''
    let proto = false
    const names = this.names
    const values = this.values
    const fcc = this.config.forwardClientCert
    for (let i = 0; i < names.length; i++) {
      const n = names[i]
      if (DROP_REQUEST.has(n) || (drop !== null && drop.has(n))) continue
      if (fcc !== 0 && n === 'x-forwarded-client-cert') continue
      if (trace !== null && TRACE_HEADER_NAMES.has(n)) continue
      if (n === 'te' && values[i] !== 'trailers') continue
      if (n === 'x-forwarded-for') {
        xff = xff === '' ? values[i] : xff + ', ' + values[i]
        continue
      }
      if (n === 'x-forwarded-proto') proto = true
      else if (n === 'x-request-id') this.requestId = values[i]
      addHeader(out, n, values[i])
    }
    out['x-forwarded-for'] = xff === '' ? this.downstreamAddress : xff + ', ' + this.downstreamAddress
    if (!proto) out['x-forwarded-proto'] = 'http'
    if (fcc === XFCC_SANITIZE_SET && this.peer !== null) out['x-forwarded-client-cert'] = this.peer.xfcc
    if (this.requestId === '') out['x-request-id'] = this.requestId = randomUUID()
    for (const [n, v] of blockPairs(mut.append)) addHeader(out, n, v)
    if (trace !== null) for (const [n, v] of blockPairs(trace.headerBlock, false)) out[n] = v
    return out
  }

  // ---- the upstream stream of one try ------------------------------------------------------

  /** The endpoint's session is there (null: the cluster speaks HTTP/1): open this try's stream. */
  onH2Session(s: UpSession | null): void {
    try {
      this.openTry(s)
    } catch (err) {
      this.abort(err)
    }
  }

  private openTry(s: UpSession | null): void {
    if (this.done || this.endpoint === undefined) return
    const h = this.upHeaders!
    if (this.deadline > 0 && this.grpc) h['grpc-timeout'] = grpcTimeoutValue(this.deadline - performance.now())
    else if (this.headers['grpc-timeout'] !== undefined) h['grpc-timeout'] = str(this.headers['grpc-timeout'])
    const endStream = this.reqEnded && this.queued.length === 0 && this.reqTrailers === null
    let up: UpStream
    if (s === null) {
      const h1 = new H1UpStream(this.endpoint.pool, h, endStream)
      h1.on('connectError', this.guard((err: NodeJS.ErrnoException) => {
        if (this.up !== h1) return
        this.up = null
        this.onH2Failure(new HttpError(503, 'WEFT_ERR_UPSTREAM_CONNECT', `upstream connect error: ${err.code ?? err.message}`), Flags.UpstreamConnectFailure)
      }))
      up = h1
    } else {
      try {
        up = s.request(h, { endStream })
      } catch {
        // the session went away between the pick and now (GOAWAY): as a refused stream
        return this.onUpReset(null, NGHTTP2_NO_ERROR)
      }
    }
    this.up = up
    this.startedAt = performance.now()
    if (up instanceof H2Stream) {
      up.sink = this
      up.flow()
    } else this.listenUp(up)
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

  /** The events of an upstream stream that is not the proxy's codec's (node:http2, HTTP/1). */
  private listenUp(up: UpStream): void {
    up.on('response', this.guard((headers: IncomingHttpHeaders, flags: number) => {
      if (this.up === up) this.onUpResponse(up, headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0)
    }))
    up.on('data', this.guard((b: Buffer) => {
      if (this.up !== up) return
      this.bytesOut += b.length
      if (!this.down.write(b)) up.pause()
    }))
    up.on('trailers', this.guard((t: IncomingHttpHeaders) => {
      if (this.up === up) this.onUpTrailers(t)
    }))
    up.on('end', this.guard(() => {
      if (this.up === up) this.onUpEnd()
    }))
    up.on('close', this.guard(() => {
      if (this.up === up) this.onUpReset(up, up.rstCode ?? NGHTTP2_NO_ERROR)
    }))
    up.on('error', () => {})
    up.on('drain', this.guard(() => {
      if (this.up === up) this.down.resume()
    }))
  }

  /** The request is whole: the upstream stream ends, with the request's trailers when it had some. */
  private endUp(up: UpStream): void {
    // trailers go on over the proxy's codec (node:http2's client and HTTP/1 upstreams drop them)
    if (this.reqTrailers !== null && up instanceof H2Stream) up.waitTrailers = true
    up.end()
  }

  // ---- StreamSink: the events of the proxy's codec's streams (down and this try's up) ---------

  streamResponse(st: H2Stream, headers: IncomingHttpHeaders, flags: number): void {
    if ((st as unknown) !== this.up) return
    try {
      this.onUpResponse(st as unknown as UpStream, headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0)
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
      if ((st as unknown) === this.down) {
        if (this.up !== null) this.up.resume()
      } else if ((st as unknown) === this.up) this.down.resume()
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

  private tryFailed(err: HttpError, flag: string): void {
    if (this.done) return
    const connectFailure = flag === Flags.UpstreamConnectFailure
    if (flag === Flags.UpstreamOverflow) this.counters.overflow++
    this.endTry(connectFailure ? OUTCOME_CONNECT : OUTCOME_OK, !connectFailure)
    if (connectFailure && this.retry !== null && this.retryAfter(FAIL_CONNECT)) return
    this.localReply(err.status, this.retryFlag(flag), err.code, err.message)
  }

  private onDownData(b: Buffer): void {
    if (this.done) return
    this.bytesIn += b.length
    if (this.mirror !== null) this.mirrorBody(b)
    if (this.retained !== null) {
      this.retainedBytes += b.length
      if (this.retainedBytes > RETRY_BODY_LIMIT) this.retained = null
      else this.retained.push(b)
    }
    const up = this.up
    if (up !== null) {
      if (!up.write(b)) this.down.pause()
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
    if (!this.done && this.up !== null && !this.up.writableEnded) this.endUp(this.up)
  }

  private onUpResponse(up: UpStream, headers: IncomingHttpHeaders, endStream: boolean): void {
    if (this.done) return
    const status = Number(headers[':status'])
    const ep = this.endpoint!
    const gs = endStream ? headers['grpc-status'] : undefined
    const grpcCode = gs === undefined ? -1 : Number(gs)
    // the HTTP status a trailers-only gRPC error stands for, for outlier detection and the breaker
    const effective = grpcCode > 0 ? httpStatusOfGrpc(grpcCode) : status
    if (effective >= 500) {
      ep.counters.rq5xx++
      this.outcome = effective === 502 || effective === 503 || effective === 504 ? OUTCOME_GATEWAY : OUTCOME_5XX
    }
    if (this.tryTimer !== null) {
      clearTimeout(this.tryTimer)
      this.tryTimer = null
    }
    this.cluster!.balancer.observe(ep, performance.now() - this.startedAt)
    if (this.explain !== null) this.explain.note('response', { try: this.tries + 1, status, ...(grpcCode >= 0 ? { grpcStatus: grpcCode } : {}), endpoint: ep.key, ms: Math.round((performance.now() - this.startedAt) * 1000) / 1000 })
    const r = this.retry
    if (r !== null && (r.retriableStatus(status) || (grpcCode > 0 && r.retriableGrpc(grpcCode))) && this.mayRetry()) {
      if (this.explain !== null) this.explain.note('retry', { reason: grpcCode > 0 ? `grpc-status ${grpcCode} is retriable` : `status ${status} is retriable`, nextTry: this.tries + 2 })
      this.up = null
      // trailers-only: the stream closes by itself (the request was sent whole: mayRetry)
      if (!endStream && !up.closed) up.close(NGHTTP2_CANCEL)
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
    if (!(status >= 200 && status <= 599)) return this.badResponse(up, `upstream status ${status} cannot be relayed`)
    try {
      if (endStream) {
        this.down.respond(out, { endStream: true })
        this.finish()
        return
      }
      this.down.respond(out, { waitForTrailers: true })
    } catch (err) {
      return this.badResponse(up, (err as Error).message)
    }
    if (this.ownDown) return
    this.down.on('wantTrailers', this.guard(() => this.sendDownTrailers()))
    this.down.on('drain', this.guard(() => {
      if (this.up !== null) this.up.resume()
    }))
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
  private badResponse(up: UpStream, why: string): void {
    this.up = null
    this.respStarted = false
    if (!up.closed) up.close(NGHTTP2_CANCEL)
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
    this.counters.upstreamErrors++
    if (this.explain !== null) this.explain.note('upstream-error', { try: this.tries + 1, code: 'WEFT_ERR_UPSTREAM_RESET', message: `upstream reset the stream (code ${rst})`, responseStarted: started })
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
    this.done = true
    if (this.flags === '') this.flags = Flags.DownstreamConnectionTermination
    if (!this.respStarted) this.status = 0
    if (this.down.rstCode === constants.NGHTTP2_CANCEL && this.grpc && this.grpcStatus === '') this.grpcStatus = '1'
    if (this.mirror !== null) this.mirror.cancel()
    this.complete()
    const ep = this.endpoint
    this.endTry(OUTCOME_OK, true)
    this.cancelTry(ep)
  }

  /** Abandon the current try: its upstream stream (RST_STREAM CANCEL) or its wait for a session. */
  private cancelTry(ep: EndpointState | undefined): void {
    const up = this.up
    this.up = null
    if (up !== null) {
      if (!up.closed) cancelStream(up)
    } else if (ep !== undefined && ep.pool.h2 !== null) h2Upstream(ep.pool).cancel(this)
    if (this.waitTimer !== null) {
      clearTimeout(this.waitTimer)
      this.waitTimer = null
    }
  }

  private endTry(outcome: number, neutral: boolean): void {
    if (this.tryTimer !== null) {
      clearTimeout(this.tryTimer)
      this.tryTimer = null
    }
    this.cluster?.endTry(this, outcome, neutral)
  }

  /** The cluster refused the try (REJECTIONS: max requests, breaker open, no endpoint). */
  private rejected(r: number): void {
    const x = REJECTIONS[r]!
    if (x.counter !== null) this.counters[x.counter]++
    this.localReply(x.status, x.flag, x.code, x.message)
  }


  // ---- retries and timeouts ----------------------------------------------------------------

  private mayRetry(): boolean {
    const r = this.retry!
    if (r.attempts === 0 || this.respStarted || this.done) return false
    if (!this.reqEnded || this.retained === null) return false
    if (!r.allowAnother(this.tries, this.counters)) {
      this.refused = true
      return false
    }
    return true
  }

  private retryAfter(kind: number): boolean {
    if (!this.retry!.retriableFailure(kind)) {
      if (this.explain !== null) this.explain.note('no-retry', { reason: 'the retry policy does not retry this failure' })
      return false
    }
    if (!this.mayRetry()) {
      if (this.explain !== null) this.explain.note('no-retry', { reason: this.noRetryReason() })
      return false
    }
    if (this.explain !== null) this.explain.note('retry', { reason: 'retriable failure', nextTry: this.tries + 2 })
    this.retryNow()
    return true
  }

  /** Why mayRetry() said no, for the trace (read right after it). */
  private noRetryReason(): string {
    return this.retry!.refusal(this.tries, this.respStarted || this.done, this.reqEnded && this.retained !== null)
  }

  private retryFlag(flag: string): string {
    return this.refused ? Flags.UpstreamRetryLimitExceeded : flag
  }

  private retryNow(): void {
    this.tries++
    this.counters.retries++
    if (this.trace !== null && this.trace.sampled) (this.annotations ??= []).push({ timestamp: nowMicros(), value: RETRY_ANNOTATION })
    this.queued = this.retained === null ? [] : this.retained.slice()
    this.queuedBytes = 0
    this.grpcStatus = ''
    const ms = this.retry!.backoffMs(this.tries)
    if (this.explain !== null) this.explain.note('backoff', { ms: Math.round(ms * 1000) / 1000 })
    if (ms < 1) return this.dispatch()
    this.waitTimer = setTimeout(this.guard(() => {
      this.waitTimer = null
      if (!this.done) this.dispatch()
    }), ms)
  }

  private onTryTimeout(): void {
    this.tryTimer = null
    if (this.done || this.respStarted) return
    this.counters.perTryTimeouts++
    if (this.explain !== null) this.explain.note('try-timeout', { try: this.tries + 1, ms: this.retry?.perTryTimeoutMs })
    const ep = this.endpoint
    this.endTry(OUTCOME_RESET, false)
    this.cancelTry(ep)
    if (this.retryAfter(FAIL_TIMEOUT)) return
    this.localReply(504, this.retryFlag(Flags.UpstreamRequestTimeout), 'WEFT_ERR_UPSTREAM_TIMEOUT', 'upstream per-try timeout')
  }

  /** The deadline (route timeout or grpc-timeout): 504 / DEADLINE_EXCEEDED, the upstream stream cancelled. */
  private onRequestTimeout(): void {
    this.timer = null
    if (this.done) return
    this.counters.requestTimeouts++
    const ep = this.endpoint
    this.endTry(OUTCOME_RESET, ep === undefined)
    this.cancelTry(ep)
    if (!this.respStarted) return this.localReply(504, Flags.UpstreamRequestTimeout, 'WEFT_ERR_REQUEST_TIMEOUT', 'request timeout')
    this.done = true
    this.flags = Flags.UpstreamRequestTimeout
    if (this.grpc) {
      // headers are out: end the stream with DEADLINE_EXCEEDED in its trailers
      this.grpcStatus = '4'
      this.trailers = { 'grpc-status': '4', 'grpc-message': 'WEFT_ERR_REQUEST_TIMEOUT: request timeout', 'x-weft-response-flags': Flags.UpstreamRequestTimeout }
      this.complete()
      if (!this.down.closed) this.down.end()
      return
    }
    this.complete()
    if (!this.down.closed) this.down.close(NGHTTP2_CANCEL)
  }

  // ---- local replies -----------------------------------------------------------------------

  /** The proxy's own answer: gRPC-shaped (trailers-only) for gRPC requests, text/plain otherwise. */
  localReply(status: number, flag: string, code: string, message: string, extra = ''): void {
    if (this.done) return
    if (this.explain !== null) {
      this.explain.note('local-reply', { status, flag, code, message })
      if (this.explain.selectedBy === 'header') {
        if (this.requestId === '') this.requestId = randomUUID()
        extra += EXPLAIN_ID_HEADER + ': ' + this.requestId + '\r\n'
      }
    }
    this.flags = flag
    this.counters.localReplies++
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

  // ---- telemetry ---------------------------------------------------------------------------

  private complete(): void {
    if (this.completed) return
    this.completed = true
    this.durationMs = performance.now() - this.t0
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.tryTimer !== null) clearTimeout(this.tryTimer)
    if (this.waitTimer !== null) clearTimeout(this.waitTimer)
    this.timer = this.tryTimer = this.waitTimer = null
    if (this.delayed && this.flags === '') this.flags = this.delayFlag
    if (this.refused && this.flags === '') this.flags = Flags.UpstreamRetryLimitExceeded
    this.retained = null
    const x = this.explain
    if (x !== null) x.note('done', { status: this.status, ...(this.grpcStatus !== '' ? { grpcStatus: Number(this.grpcStatus) } : {}), flags: this.flags === '' ? '-' : this.flags, durationMs: Math.round(this.durationMs * 1000) / 1000 })
    const t = this.config.telemetry
    if (t.metrics !== null) recordRequestAs(t.metrics, this.route === undefined ? -1 : this.route.id, this.backendIndex, this.grpc ? 'grpc' : 'http2', this)
    const sinks = t.sinks
    for (let i = 0; i < sinks.length; i++) sinks[i].onRequest(this)
    if (t.tap !== null && t.tap.active) t.tap.onRequest(this)
    if (this.trace !== null) this.trace.finish(this, this.annotations === null ? undefined : { annotations: this.annotations })
    if (x !== null) this.explainSource!.finish(x, this)
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

/** Add a field; one node:http2 takes once only (SINGLE_VALUE) is replaced instead (it would throw). */
function addHeader(h: OutgoingHttpHeaders, n: string, v: string): void {
  const cur = h[n]
  if (cur === undefined || SINGLE_VALUE.has(n)) h[n] = v
  else if (Array.isArray(cur)) cur.push(v)
  else h[n] = [String(cur), v]
}

function replacePath(path: string, to: string): string {
  const q = path.indexOf('?')
  return q === -1 ? to : to + path.slice(q)
}
