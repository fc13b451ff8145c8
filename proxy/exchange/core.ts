// The request pipeline both codecs share (Envoy's filter manager and router, reduced): one
// exchange is one request from a downstream codec to a response. This class holds everything
// that does not depend on the wire: the listener's and the route's filter chains, routing and the
// backend split, the route's policy (deadline, per-try timeout, retries with their budget and
// backoff, the fault delay), the cluster's dispatch of each try, the proxy's local replies (their
// decision part), and the telemetry record (metrics, access log sinks, tap, tracing, explain).
//
// Each try is one call, ClusterRuntime.dispatch (proxy/cluster/cluster.ts): the cluster admits
// it, picks the endpoint, counts it, tells the exchange (`dispatched`, where the request takes
// the form the cluster speaks) and opens the UpstreamTry (proxy/cluster/try.ts) on the endpoint's
// HTTP/1 pool or HTTP/2 session; the exchange is its DispatchHandler, so the
// try's events (head, data, trailers, end, error) are handled once here and in the codec's
// exchange, whatever the upstream speaks. The request body goes to the try (queued here while no
// try is open), kept for another try, and copied to the mirror.
//
// A codec's exchange extends it (HTTP/1: proxy/router/exchange.ts; HTTP/2 and gRPC:
// proxy/h2/exchange.ts) and supplies its wire: the request in the forms a try asks for (an HTTP/1
// head, HTTP/2 fields), how a response head, its data, trailers and end go to the client, how a
// local reply and a cut-off response look on its connection (writeReply, directReply,
// abortResponse, resetResponse), and pausing its client (pauseRequest, resumeRequest).
// Timers are set with the exchange as their argument (no closure per request).
import { randomUUID } from 'node:crypto'
import type { BreakerTicket } from '../cluster/breaker.ts'
import { DISPATCHED, REJECTIONS, type ClusterRuntime, type DispatchHandler, type EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_CONNECT, OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../cluster/outlier.ts'
import type { HttpError, ResponseHead } from '../../api/http1/head.ts'
import { httpStatusOfGrpc } from '../h2/grpc.ts'
import { blockPairs } from '../h2/headers.ts'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import type { ReadBuffer } from '../net/read-buffer.ts'
import { addHeader, DROP_REQUEST } from './h2-fields.ts'
import { REFUSED_STREAM, StreamResetError, type UpstreamTry } from '../cluster/try.ts'
import { TRACE_HEADER_NAMES } from '../telemetry/tracing/context.ts'
import { XFCC_SANITIZE_SET } from '../listener/protocol.ts'
import { STOP, type FilterExchange } from '../filters/filter.ts'
import { MirrorRequest, type MirrorSource } from '../filters/mirror/mirror.ts'
import { FAIL_CONNECT, FAIL_RESET, FAIL_TIMEOUT, RETRY_BODY_LIMIT, type CompiledRetry } from '../filters/retry/policy.ts'
import type { PeerIdentity } from '../identity/authz.ts'
import { routeStep, splitStep } from '../route/explain.ts'
import { matchRoute, pickBackend, rewritePath, type CompiledRoute, type MatchInput, type RoutePolicy } from '../route/table.ts'
import { EXPLAIN_ID_HEADER, type ExplainSource, type ExplainTrace } from '../telemetry/explain.ts'
import { recordRequest, recordRequestAs } from '../telemetry/listener.ts'
import { nowMicros, RETRY_ANNOTATION, type RequestTrace, type ZipkinAnnotation } from '../telemetry/tracing/tracer.ts'
import type { RequestRecord } from '../telemetry/types.ts'
import { Flags, type ExchangeCounters, type RouterConfig } from './types.ts'

/** setTimeout's limit; a longer delay would fire at once */
const MAX_TIMER_MS = 2_147_483_647

const TIMER_REQUEST = 0
const TIMER_TRY = 1
const TIMER_WAIT = 2

/**
 * performance.timeOrigin, read once: the getter is a call into node's perf module (it checks its
 * receiver each time), and the access log reads startTime on every line.
 */
const TIME_ORIGIN = performance.timeOrigin

/** request body bytes kept while no try is open; past it the client is paused */
const QUEUE_LIMIT = 65536

/** The codec-independent part of one exchange. */
export abstract class ExchangeCore implements RequestRecord, DispatchHandler, FilterExchange, MirrorSource {
  protected readonly config: RouterConfig
  readonly counters: ExchangeCounters
  /** when the request head was parsed (performance.now()) */
  protected readonly t0: number
  protected route: CompiledRoute | undefined = undefined
  protected cluster: ClusterRuntime | undefined = undefined
  protected backendIndex = 0
  /** the route's policy (null: none) */
  protected policy: RoutePolicy | null = null
  protected retry: CompiledRetry | null = null
  // ---- ClusterTry (DispatchHandler: written by cluster.dispatch, released by cluster.endTry)
  endpoint: EndpointState | undefined = undefined
  lastEndpoint: EndpointState | undefined = undefined
  ticket: BreakerTicket | null = null
  acStart = -1
  /** outcome of the current try for outlier detection and the breaker (OUTCOME_*) */
  protected outcome = OUTCOME_OK
  /** retries made so far */
  protected tries = 0
  /** retries were wanted but refused (attempts or budget): URX replaces a plain failure flag */
  protected refused = false
  /** held by a filter (fault delay, rate limit service) before the first try */
  protected delayed = false
  /** the flag of the delay (DI), set on the response unless another explains it */
  protected delayFlag = ''
  protected timer: ReturnType<typeof setTimeout> | null = null
  protected tryTimer: ReturnType<typeof setTimeout> | null = null
  protected waitTimer: ReturnType<typeof setTimeout> | null = null
  /** absolute deadline (performance.now() ms) of the request, 0: none */
  protected deadline = 0
  /** when the current try's request went upstream (the balancer's latency observations) */
  protected startedAt = 0
  // ---- request body
  /** the request has a body (HTTP/2: may have one) */
  protected hasBody = false
  protected reqEnded = false
  /** the current try (null: none open, between tries) */
  protected up: UpstreamTry | null = null
  /** request body pieces for the next try, while none is open */
  protected queued: Buffer[] | null = null
  protected queuedBytes = 0
  /** copies of the request body for another try; null when too large to keep (or none wanted) */
  protected retained: Buffer[] | null = null
  protected retainedBytes = 0
  /** sent again after a REFUSED_STREAM (once) */
  private sentAgain = false
  /** the copy of this request to the route's mirror cluster */
  protected mirror: MirrorRequest | null = null
  private mirrorTried = false
  // ---- response
  /** the response of this try is being read and thrown away: a retry follows */
  protected discarding = false
  protected respStarted = false
  protected done = false
  private completed = false
  protected trace: RequestTrace | null = null
  /** annotations for a sampled span (retries) */
  protected annotations: ZipkinAnnotation[] | null = null
  private explainSource: ExplainSource | null = null

  // ---- RequestRecord (read by telemetry sinks when the exchange completes) ------------------
  status = 0
  grpcStatus = ''
  /** the response flag ("" when the response was simply relayed) */
  flags = ''
  durationMs = 0
  bytesIn = 0
  bytesOut = 0
  requestId = ''
  /** the decision trace, when this request was selected for one (telemetry/explain.ts) */
  explain: ExplainTrace | null = null
  traceId = ''
  upstreamHost = ''
  abstract readonly method: string
  abstract readonly authority: string
  abstract readonly path: string
  abstract readonly protocol: string
  abstract readonly downstreamAddress: string
  abstract readonly peer: PeerIdentity | null

  constructor(config: RouterConfig, counters: ExchangeCounters) {
    this.config = config
    this.counters = counters
    this.t0 = performance.now()
  }

  get startTime(): number {
    return TIME_ORIGIN + this.t0
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
  get sourceIdentity(): string {
    const peer = this.peer
    if (peer !== null) return peer.principal
    const p = this.config.telemetry.peer
    return p.sourceNamespace + '/' + p.sourceWorkload
  }

  // ---- what a codec supplies ---------------------------------------------------------------

  abstract header(name: string): string | undefined
  abstract redirect(status: number, location: string): void
  /** the protocol named in the explain trace's request step */
  protected get explainProtocol(): string {
    return this.protocol
  }
  /** the request_protocol metric label; "": the listener's default (HTTP/1) */
  protected get protocolLabel(): string {
    return ''
  }
  /** the caller's own deadline in ms (gRPC's grpc-timeout), -1: none */
  protected callerDeadlineMs(): number {
    return -1
  }
  /** the route's direct response */
  protected abstract directReply(route: CompiledRoute): void
  /** before a try is opened on `ep` (the cluster admitted it: dispatched): the request in the form the cluster speaks */
  protected abstract prepareTry(ep: EndpointState, http2: boolean): void
  /** the request may be mirrored (an upgrade is not: the copy could only fail at its 101) */
  protected get mayMirror(): boolean {
    return true
  }
  /** a connect opened for a try alone is given up with it (EndpointPool.cancel) */
  protected get closeExcess(): boolean {
    return false
  }
  /** stop and resume reading the request body from the client (backpressure) */
  protected abstract pauseRequest(): void
  protected abstract resumeRequest(): void
  // the request in the forms a try asks for, and the response events the codec relays (TryHandler)
  abstract readonly wantsUpgrade: boolean
  abstract tryRequestH1(endStream: boolean): string
  abstract tryChunked(endStream: boolean): boolean
  abstract tryRequestH2(): OutgoingHttpHeaders
  abstract tryTrailersH1(): string
  abstract tryTrailersH2(): OutgoingHttpHeaders | null
  abstract tryData(buf: Buffer, start: number, end: number): void
  abstract tryTrailers(raw: string, fields: IncomingHttpHeaders | null): void
  /** the response head goes to the client (respStarted and status are set) */
  protected abstract relayHead(status: number, h1: ResponseHead | null, h2: IncomingHttpHeaders | null, endStream: boolean): void
  /** the response is complete: the client's side ends */
  protected abstract relayEnd(): void
  /** the try failed with part of the response out: the client's response is cut off (done, flags set) */
  protected abstract resetResponse(err: HttpError): void
  /** some of the response reached the client (a clean local reply is no longer possible) */
  protected abstract responseOut(): boolean
  /** a response begun but not yet out (a head held back) is dropped: a local reply follows */
  protected abstract unstartResponse(): void
  /** the deadline passed with the response partly out: end it as the codec can (done, flags set) */
  protected abstract abortResponse(): void
  /** the proxy's own answer on the wire (localReply has done the deciding part) */
  protected abstract writeReply(status: number, flag: string, code: string, message: string, extra: string): void
  /** an exception in a timer or a held filter's callback */
  protected abstract internalError(err: unknown): void

  // ---- the request: filters, route, policy, split ------------------------------------------

  /**
   * The request head is in: trace and explain, the listener's filters, the route (or a local
   * reply), the route's filters, its policy and deadline, the backend split. Returns the cluster
   * to dispatch to, or undefined when the request was answered (or a filter stopped it).
   */
  protected routeRequest(names: readonly string[], values: readonly string[]): ClusterRuntime | undefined {
    const tel = this.config.telemetry
    const tracer = tel.tracer
    if (tracer !== null) {
      this.trace = tracer.begin(names as string[], values as string[], tel.spanKind)
      this.traceId = this.trace.traceId
    }
    const ex = tel.explain
    if (ex !== null && ex.on) this.beginExplain(ex, names, values)
    const lf = this.config.filters
    if (lf !== null) for (let i = 0; i < lf.length; i++) if (lf[i].onRequest(this) === STOP) return undefined
    const vh = this.config.table.lookup(this.authority)
    const p = this.path
    const q = p.indexOf('?')
    const mi: MatchInput = {
      method: this.method,
      pathOnly: q === -1 ? p : p.slice(0, q),
      query: q === -1 ? '' : p.slice(q + 1),
      names: names as string[],
      values: values as string[],
    }
    const route = vh === undefined ? undefined : matchRoute(vh, mi)
    if (this.explain !== null) this.explain.note('route', routeStep(vh, mi, route))
    if (route === undefined) {
      this.counters.noRoute++
      this.localReply(404, Flags.NoRoute, 'WEFT_ERR_NO_ROUTE', 'no route matched')
      return undefined
    }
    this.route = route
    if (route.direct !== null) {
      this.directReply(route)
      return undefined
    }
    const filters = route.filters
    if (filters !== null) for (let i = 0; i < filters.length; i++) if (filters[i].onRequest(this) === STOP) return undefined
    const pol = route.policy
    if (pol !== null) {
      this.policy = pol
      const r = pol.retry
      if (r !== null) {
        this.retry = r
        if (r.attempts > 0) {
          r.budget?.deposit()
          if (this.hasBody) this.retained = []
        }
      }
    }
    // the deadline: the smaller of the route timeout and the caller's own (grpc-timeout)
    let gt = this.callerDeadlineMs()
    if (gt > MAX_TIMER_MS) gt = -1 // longer than a timer can hold (~24.8 days): no deadline of ours
    const routeMs = pol === null ? 0 : pol.timeoutMs
    const ms = gt >= 0 && (routeMs === 0 || gt < routeMs) ? gt : routeMs
    if (ms > 0 || gt === 0) {
      this.deadline = this.t0 + ms
      this.timer = setTimeout(timerFired, ms, this, TIMER_REQUEST)
    }
    const bi = pickBackend(route, route.backends.length > 1 ? Math.random() : 0)
    if (bi > 0) this.backendIndex = bi
    if (this.explain !== null && route.backends.length > 1) this.explain.note('split', splitStep(route, bi))
    const cluster = bi < 0 ? undefined : this.config.clusters.get(route.backends[bi].cluster)
    if (cluster === undefined) {
      this.localReply(503, Flags.NoCluster, 'WEFT_ERR_NO_CLUSTER', 'no cluster for route')
      return undefined
    }
    this.cluster = cluster
    return cluster
  }

  /** The trace starts: this request was selected (x-weft-explain, sampling, or a tap asking). */
  private beginExplain(ex: ExplainSource, names: readonly string[], values: readonly string[]): void {
    const x = ex.begin(names as string[], values as string[])
    if (x === null) return
    this.explain = x
    this.explainSource = ex
    x.note('request', { direction: this.config.telemetry.spanKind === 'CLIENT' ? 'outbound' : 'inbound', protocol: this.explainProtocol, method: this.method, authority: this.authority, path: this.path, selectedBy: x.selectedBy })
  }

  // ---- FilterExchange: holding the request (proxy/filters/filter.ts) ------------------------

  hold(): () => void {
    this.delayed = true
    return () => this.timerFired(TIMER_WAIT)
  }

  delay(ms: number, flag: string): void {
    if (this.explain !== null) this.explain.note('fault-delay', { ms, flag })
    this.delayed = true
    this.delayFlag = flag
    this.waitTimer = setTimeout(timerFired, ms, this, TIMER_WAIT)
  }

  // ---- tries -------------------------------------------------------------------------------

  /**
   * One try, one call into the cluster (its limits, pick and accounting, then the try opened on
   * the endpoint's pool or session, `dispatched` in between): the try is started here, or the
   * cluster's refusal answered.
   */
  protected dispatch(): void {
    const cluster = this.cluster!
    const t = cluster.dispatch(this, this.queued, this.reqEnded)
    if (typeof t === 'number') {
      if (this.explain !== null) this.explain.note('dispatch', cluster.explainDispatch(t, this, undefined, this.tries))
      return this.rejected(t)
    }
    this.queued = null
    this.queuedBytes = 0
    this.up = t
    t.start()
  }

  /** The cluster admitted the try to `ep` (DispatchHandler): the request in its form, the mirror, the per-try timer. */
  dispatched(cluster: ClusterRuntime, ep: EndpointState, hashKey: string | undefined): void {
    if (this.explain !== null) this.explain.note('dispatch', cluster.explainDispatch(DISPATCHED, this, hashKey, this.tries))
    this.outcome = OUTCOME_OK
    this.upstreamHost = ep.key
    this.prepareTry(ep, cluster.http2)
    const pol = this.policy
    if (pol !== null && pol.mirror !== null && !this.mirrorTried) this.startMirror(pol)
    const r = this.retry
    if (r !== null && r.perTryTimeoutMs > 0) this.tryTimer = setTimeout(timerFired, r.perTryTimeoutMs, this, TIMER_TRY)
  }

  /** A copy to the mirror cluster, over whichever protocol it speaks (once per request, not per try). */
  private startMirror(pol: RoutePolicy): void {
    this.mirrorTried = true
    if (!this.mayMirror) return
    const cluster = pol.mirror!.target(this.config.clusters, this.counters)
    if (cluster === null) return
    // what came of the body so far goes with it
    this.mirror = new MirrorRequest(cluster, this, this.queued === null ? null : this.queued.slice(), this.reqEnded, this.counters)
  }

  // ---- MirrorSource: the copy's request (its Host "-shadow"), in the form the mirror cluster speaks

  abstract shadowH1(): string
  abstract shadowChunked(): boolean
  abstract shadowH2(): OutgoingHttpHeaders

  // ---- the request body, from the codec to the try ------------------------------------------

  /**
   * A piece of the request body (de-framed): kept for another try, copied to the mirror, written
   * to the try, or queued for it. volatile: `b` is the codec's read buffer, reused after this call.
   */
  protected sendBody(b: Buffer, volatile: boolean): void {
    let part = b
    if (this.policy !== null) {
      if (this.retained !== null) {
        // kept for another try, up to a small limit; past it the request can no longer be retried
        if (volatile) {
          part = Buffer.from(b)
          volatile = false
        }
        this.keepForRetry(part, part.length)
      }
      if (this.mirror !== null) this.mirror.body(part, volatile)
    }
    const t = this.up
    if (t !== null) {
      if (!t.write(part, volatile)) this.pauseRequest()
      return
    }
    // no try open (a fault delay, a backoff): kept for the next one
    const copy = volatile ? Buffer.from(part) : part
    if (this.queued === null) this.queued = []
    this.queued.push(copy)
    this.queuedBytes += copy.length
    if (this.queuedBytes > QUEUE_LIMIT) this.pauseRequest()
  }

  /** The request body is whole (trailers, if any, are the codec's to give: tryTrailersH1/H2). */
  protected endBody(): void {
    this.reqEnded = true
    if (this.mirror !== null) this.mirror.bodyEnd()
    if (this.done) return
    const t = this.up
    if (t !== null) t.end()
  }

  // ---- TryHandler: the try's events (./try.ts) ---------------------------------------------

  tryRetainRequest(): void {}

  tryStarted(writable: boolean): void {
    this.startedAt = performance.now()
    if (writable) this.resumeRequest()
    else if (!this.reqEnded) this.pauseRequest()
  }

  tryAgain(): void {
    this.counters.staleRetries++
    this.annotateRetry()
  }

  tryInformational(_head: ResponseHead): void {}

  tryFlush(): void {}

  tryDrain(): void {
    this.resumeRequest()
  }

  tryUpgrade(_head: ResponseHead, socket: Socket, _rb: ReadBuffer | null, _rest: Buffer | null): void {
    socket.destroy()
  }

  tryHead(status: number, h1: ResponseHead | null, h2: IncomingHttpHeaders | null, endStream: boolean): void {
    if (this.done) return
    const t = this.up!
    const gs = endStream && h2 !== null ? h2['grpc-status'] : undefined
    if (this.tryAnswered(status, gs === undefined ? -1 : Number(gs), t.readsToEnd)) {
      // read this response to its end and throw it away (HTTP/1: the connection is kept), the
      // retry follows (tryEnd); else the stream is reset and the retry is now
      if (t.readsToEnd) {
        this.discarding = true
        return
      }
      this.up = null
      t.cancel(false)
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    this.respStarted = true
    this.status = status
    this.relayHead(status, h1, h2, endStream)
  }

  tryEnd(): void {
    this.up = null
    if (this.done) return
    if (this.discarding) {
      this.discarding = false
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    this.relayEnd()
  }

  tryError(err: HttpError, flag: string, responseStarted: boolean): void {
    this.up = null
    if (this.done) return
    if (err instanceof StreamResetError && err.rstCode === REFUSED_STREAM && !this.respStarted && !this.sentAgain && this.reqEnded && (this.bytesIn === 0 || this.retained !== null)) {
      // REFUSED_STREAM (RFC 9113 8.7): the upstream never processed it, as the streams above a
      // GOAWAY's last id when an app restarts. Sent again once, on a new session; not a policy
      // retry (no budget, no attempt) and not the endpoint's failure.
      this.sentAgain = true
      this.endTry(OUTCOME_OK, true)
      this.queued = this.retained === null ? null : this.retained.slice()
      return this.dispatch()
    }
    this.noteUpstreamError(err.code, err.message, responseStarted)
    if (this.discarding) {
      // the response we were throwing away broke off: retry all the same
      this.discarding = false
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    this.endTry(responseStarted ? OUTCOME_GATEWAY : OUTCOME_RESET, false)
    if (!this.respStarted && this.retry !== null && this.retryAfter(FAIL_RESET)) return
    if (!this.responseOut()) {
      // nothing reached the client yet (a head held back): a clean error is still possible
      this.unstartResponse()
      this.respStarted = false
      this.localReply(err.status, this.retryFlag(flag), err.code, err.message)
      return
    }
    // Mid-response: the only honest signal left is to cut the client's response off.
    this.done = true
    this.flags = flag
    this.complete()
    this.resetResponse(err)
  }

  /**
   * The current try is over. outcome: OUTCOME_* for outlier detection and the breaker; `neutral`:
   * not the endpoint's doing (a client that left, a full pending queue): neither is told.
   */
  protected endTry(outcome: number, neutral: boolean): void {
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

  /** The try could not start: UF connect failure or timeout; UO the endpoint's pending queue is full; UH removed. */
  tryFailed(err: HttpError, flag: string): void {
    this.up = null
    if (this.done) return
    const connectFailure = flag === Flags.UpstreamConnectFailure
    if (flag === Flags.UpstreamOverflow) this.counters.overflow++
    this.endTry(connectFailure ? OUTCOME_CONNECT : OUTCOME_OK, !connectFailure)
    if (connectFailure && this.retry !== null && this.retryAfter(FAIL_CONNECT)) return
    this.localReply(err.status, this.retryFlag(flag), err.code, err.message)
  }

  /**
   * A try's response head (grpcCode: the grpc-status of a trailers-only response, -1: none):
   * outlier accounting, the balancer's latency, the trace. Returns true when the policy retries
   * it (readFirst: the response is read to its end and thrown away before the retry).
   */
  protected tryAnswered(status: number, grpcCode: number, readFirst: boolean): boolean {
    const ep = this.endpoint!
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
    if (r === null || !(r.retriableStatus(status) || (grpcCode > 0 && r.retriableGrpc(grpcCode)))) return false
    if (!this.mayRetry()) {
      if (this.explain !== null) this.explain.note('no-retry', { reason: this.noRetryReason() })
      return false
    }
    if (this.explain !== null) {
      const reason = grpcCode > 0 ? `grpc-status ${grpcCode} is retriable` : `status ${status} is retriable`
      this.explain.note('retry', readFirst ? { reason, nextTry: this.tries + 2, backoff: 'after the response is read' } : { reason, nextTry: this.tries + 2 })
    }
    return true
  }

  /** The upstream failed this try (a reset, a broken connection): counted and traced. */
  protected noteUpstreamError(code: string, message: string, responseStarted: boolean): void {
    this.counters.upstreamErrors++
    if (this.explain !== null) this.explain.note('upstream-error', { try: this.tries + 1, code, message, responseStarted })
  }

  /** Keep a piece of the request body for another try, up to a small limit (past it: no retry). */
  protected keepForRetry(part: Buffer, n: number): void {
    this.retainedBytes += n
    if (this.retainedBytes > RETRY_BODY_LIMIT) this.retained = null
    else this.retained!.push(part)
  }

  // ---- retries and timeouts ----------------------------------------------------------------

  /**
   * May this request go again? Attempts left, the body is whole and kept, no response sent, and
   * the retry budget has room (which this takes from it).
   */
  protected mayRetry(): boolean {
    const r = this.retry!
    // attempts 0: only a per-try timeout, no retries (none refused either)
    if (r.attempts === 0 || this.respStarted || this.done) return false
    if (this.hasBody && (!this.reqEnded || this.retained === null)) return false
    if (!r.allowAnother(this.tries, this.counters)) {
      this.refused = true
      return false
    }
    return true
  }

  /** A try failed this way (FAIL_*): start another if the policy wants and allows it. */
  protected retryAfter(kind: number): boolean {
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
    return this.retry!.refusal(this.tries, this.respStarted || this.done, !(this.hasBody && (!this.reqEnded || this.retained === null)))
  }

  protected retryFlag(flag: string): string {
    return this.refused ? Flags.UpstreamRetryLimitExceeded : flag
  }

  /** Another try is due now (a sampled span gets an annotation). */
  protected annotateRetry(): void {
    if (this.trace !== null && this.trace.sampled) (this.annotations ??= []).push({ timestamp: nowMicros(), value: RETRY_ANNOTATION })
  }

  /** The next try, after the backoff. */
  protected retryNow(): void {
    this.tries++
    this.counters.retries++
    this.annotateRetry()
    this.queued = this.retained === null ? null : this.retained.slice()
    this.queuedBytes = 0
    const ms = this.retry!.backoffMs(this.tries)
    if (this.explain !== null) this.explain.note('backoff', { ms: Math.round(ms * 1000) / 1000 })
    if (ms < 1) return this.dispatch()
    this.waitTimer = setTimeout(timerFired, ms, this, TIMER_WAIT)
  }

  /** A timer of this exchange fired (TIMER_*), or a held request goes on (hold()). */
  timerFired(which: number): void {
    try {
      if (which === TIMER_REQUEST) this.onRequestTimeout()
      else if (which === TIMER_TRY) this.onTryTimeout()
      else {
        this.waitTimer = null
        if (!this.done) this.dispatch()
      }
    } catch (err) {
      this.internalError(err)
    }
  }

  /** The per-try timeout: give up this try (maybe retry), else 504 UT. */
  private onTryTimeout(): void {
    this.tryTimer = null
    if (this.done || this.respStarted) return
    this.counters.perTryTimeouts++
    if (this.explain !== null) this.explain.note('try-timeout', { try: this.tries + 1, ms: this.retry?.perTryTimeoutMs })
    this.endTry(OUTCOME_RESET, false)
    this.cancelTry()
    if (this.retryAfter(FAIL_TIMEOUT)) return
    this.localReply(504, this.retryFlag(Flags.UpstreamRequestTimeout), 'WEFT_ERR_UPSTREAM_TIMEOUT', 'upstream per-try timeout')
  }

  /** The deadline (route timeout or grpc-timeout): the whole request, retries included. */
  private onRequestTimeout(): void {
    this.timer = null
    if (this.done) return
    this.counters.requestTimeouts++
    this.endTry(OUTCOME_RESET, this.endpoint === undefined)
    this.cancelTry()
    if (!this.responseOut()) {
      this.unstartResponse()
      return this.localReply(504, Flags.UpstreamRequestTimeout, 'WEFT_ERR_REQUEST_TIMEOUT', 'request timeout')
    }
    // part of the response is out: only the codec's way of cutting it off can say it is incomplete
    this.done = true
    this.flags = Flags.UpstreamRequestTimeout
    this.abortResponse()
  }

  /** The client went away (or reset the stream): release everything, record once. */
  protected downstreamLeft(): void {
    this.done = true
    if (this.flags === '') this.flags = Flags.DownstreamConnectionTermination
    if (!this.responseOut()) this.status = 0
    this.complete()
    this.endTry(OUTCOME_OK, true)
    this.cancelTry()
    if (this.mirror !== null) this.mirror.cancel()
  }

  /** Abandon the current try (its connection or stream, or its place in a queue) and the backoff. */
  protected cancelTry(): void {
    const t = this.up
    this.up = null
    if (t !== null) t.cancel(this.closeExcess)
    if (this.waitTimer !== null) {
      clearTimeout(this.waitTimer)
      this.waitTimer = null
    }
  }

  // ---- the request toward an HTTP/2 upstream -----------------------------------------------

  /**
   * The try's request as HTTP/2 fields: the route's rewrites and header mutations, the
   * forwarding fields (x-forwarded-for/-proto, x-request-id, x-forwarded-client-cert), the trace
   * context; connection-specific fields dropped (and expect, when the proxy answered it).
   */
  protected h2RequestHeaders(route: CompiledRoute, ep: EndpointState, names: readonly string[], values: readonly string[], dropExpect: boolean): OutgoingHttpHeaders {
    const mut = route.requestHeaders
    const out: OutgoingHttpHeaders = Object.create(null)
    out[':method'] = this.method
    out[':scheme'] = 'http'
    out[':authority'] = mut.host ?? route.rewriteHost ?? (this.authority === '' ? ep.key : this.authority)
    out[':path'] = upstreamPath(route, this.path)
    const drop = mut.drop
    const trace = this.trace
    let xff = ''
    let proto = false
    let rid = false
    const fcc = this.config.forwardClientCert
    for (let i = 0; i < names.length; i++) {
      const n = names[i]
      if (DROP_REQUEST.has(n) || (drop !== null && drop.has(n))) continue
      if (fcc !== 0 && n === 'x-forwarded-client-cert') continue
      if (trace !== null && TRACE_HEADER_NAMES.has(n)) continue
      if (n === 'te' && values[i] !== 'trailers') continue
      if (dropExpect && n === 'expect') continue
      if (n === 'x-forwarded-for') {
        xff = xff === '' ? values[i] : xff + ', ' + values[i]
        continue
      }
      if (n === 'x-forwarded-proto') proto = true
      else if (n === 'x-request-id') {
        rid = true
        this.requestId = values[i]
      }
      addHeader(out, n, values[i])
    }
    out['x-forwarded-for'] = xff === '' ? this.downstreamAddress : xff + ', ' + this.downstreamAddress
    if (!proto) out['x-forwarded-proto'] = 'http'
    if (fcc === XFCC_SANITIZE_SET && this.peer !== null) out['x-forwarded-client-cert'] = this.peer.xfcc
    if (!rid) {
      // one id for every try of the request
      if (this.requestId === '') this.requestId = randomUUID()
      out['x-request-id'] = this.requestId
    }
    for (const [n, v] of blockPairs(mut.append)) addHeader(out, n, v)
    if (trace !== null) for (const [n, v] of blockPairs(trace.headerBlock, false)) out[n] = v
    return out
  }

  // ---- local replies -----------------------------------------------------------------------

  /** A response generated by the proxy, with the flag and error code as headers (the codec shapes it). */
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
    this.writeReply(status, flag, code, message, extra)
  }

  // ---- telemetry ---------------------------------------------------------------------------

  /** The exchange is over (answered, failed or abandoned): hand the record to telemetry, once. */
  protected complete(): void {
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
    if (t.metrics !== null) {
      const label = this.protocolLabel
      const routeId = this.route === undefined ? -1 : this.route.id
      if (label === '') recordRequest(t.metrics, routeId, this.backendIndex, this)
      else recordRequestAs(t.metrics, routeId, this.backendIndex, label, this)
    }
    const sinks = t.sinks
    for (let i = 0; i < sinks.length; i++) sinks[i].onRequest(this)
    if (t.tap !== null && t.tap.active) t.tap.onRequest(this)
    if (this.trace !== null) this.trace.finish(this, this.annotations === null ? undefined : { annotations: this.annotations })
    if (x !== null) this.explainSource!.finish(x, this)
  }
}

function timerFired(x: ExchangeCore, which: number): void {
  x.timerFired(which)
}

/** The path sent upstream: the route's prefix rewrite or full-path replacement (the query kept), else the request's. */
export function upstreamPath(route: CompiledRoute, path: string): string {
  if (route.rewrite !== null) return rewritePath(path, route.rewrite)
  if (route.rewritePathTo === null) return path
  const q = path.indexOf('?')
  return q === -1 ? route.rewritePathTo : route.rewritePathTo + path.slice(q)
}
