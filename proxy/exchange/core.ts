// The request pipeline both codecs share (Envoy's filter manager and router, reduced): one
// exchange is one request from a downstream codec to a response. This class holds everything
// that does not depend on the wire: the listener's and the route's filter chains, routing and the
// backend split, the route's policy (deadline, per-try timeout, retries with their budget and
// backoff, the fault delay), the cluster's dispatch of each try, the proxy's local replies (their
// decision part), and the telemetry record (metrics, access log sinks, tap, tracing, explain).
//
// A codec's exchange extends it (HTTP/1: proxy/router/exchange.ts; HTTP/2 and gRPC:
// proxy/h2/exchange.ts) and supplies the wire: how a try's upstream is opened and abandoned
// (openTry, cancelTry), how the request is kept for another try (resetForRetry), how a local reply
// and a cut-off response look on its connection (writeReply, directReply, abortResponse).
// Timers are set with the exchange as their argument (no closure per request).
import { randomUUID } from 'node:crypto'
import type { BreakerTicket } from '../cluster/breaker.ts'
import { DISPATCHED, REJECTIONS, type ClusterRuntime, type ClusterTry, type EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_CONNECT, OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../cluster/outlier.ts'
import type { HttpError } from '../../api/http1/head.ts'
import { httpStatusOfGrpc } from '../h2/grpc.ts'
import { blockPairs } from '../h2/headers.ts'
import type { OutgoingHttpHeaders } from 'node:http2'
import { addHeader, DROP_REQUEST } from './h2-try.ts'
import { TRACE_HEADER_NAMES } from '../telemetry/tracing/context.ts'
import { XFCC_SANITIZE_SET } from '../listener/protocol.ts'
import { STOP, type FilterExchange } from '../filters/filter.ts'
import type { MirrorRequest } from '../filters/mirror/mirror.ts'
import { FAIL_CONNECT, FAIL_TIMEOUT, RETRY_BODY_LIMIT, type CompiledRetry } from '../filters/retry/policy.ts'
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
 * The codec-independent part of one exchange. `Part` is what a request body piece is kept as for
 * another try (HTTP/1: framed pieces, strings or Buffers; HTTP/2: DATA payloads).
 */
export abstract class ExchangeCore<Part> implements RequestRecord, ClusterTry, FilterExchange {
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
  // ---- ClusterTry (written by cluster.dispatch, released by cluster.endTry)
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
  /** copies of the request body for another try; null when too large to keep (or none wanted) */
  protected retained: Part[] | null = null
  protected retainedBytes = 0
  /** the copy of this request to the route's mirror cluster */
  protected mirror: MirrorRequest | null = null
  // ---- response
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
    return performance.timeOrigin + this.t0
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
  /** before a try is opened on `ep` (dispatch admitted it): the upstream head, the mirror */
  protected abstract prepareTry(ep: EndpointState, pol: RoutePolicy | null): void
  /** open the try on `ep`: an HTTP/1 pool connection or a stream on an HTTP/2 session */
  protected abstract openTry(ep: EndpointState, cluster: ClusterRuntime): void
  /** abandon the current try: its connection or stream, or its place in a queue; and the backoff */
  protected abstract cancelTry(ep: EndpointState | undefined): void
  /** another try follows: the kept request body is queued again */
  protected abstract resetForRetry(): void
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

  /** One try: the cluster's limits and pick, then the codec opens it. */
  protected dispatch(): void {
    const cluster = this.cluster!
    const hashKey = cluster.hashHeader === '' ? undefined : this.header(cluster.hashHeader)
    const d = cluster.dispatch(this, hashKey)
    if (this.explain !== null) this.explain.note('dispatch', cluster.explainDispatch(d, this, hashKey, this.tries))
    if (d !== DISPATCHED) return this.rejected(d)
    const ep = this.endpoint!
    this.outcome = OUTCOME_OK
    this.upstreamHost = ep.key
    this.prepareTry(ep, this.policy)
    const r = this.retry
    if (r !== null && r.perTryTimeoutMs > 0) this.tryTimer = setTimeout(timerFired, r.perTryTimeoutMs, this, TIMER_TRY)
    this.openTry(ep, cluster)
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
  protected tryFailed(err: HttpError, flag: string): void {
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
  protected keepForRetry(part: Part, n: number): void {
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
    this.resetForRetry()
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
    const ep = this.endpoint
    this.endTry(OUTCOME_RESET, false)
    this.cancelTry(ep)
    if (this.retryAfter(FAIL_TIMEOUT)) return
    this.localReply(504, this.retryFlag(Flags.UpstreamRequestTimeout), 'WEFT_ERR_UPSTREAM_TIMEOUT', 'upstream per-try timeout')
  }

  /** The deadline (route timeout or grpc-timeout): the whole request, retries included. */
  private onRequestTimeout(): void {
    this.timer = null
    if (this.done) return
    this.counters.requestTimeouts++
    const ep = this.endpoint
    this.endTry(OUTCOME_RESET, ep === undefined)
    this.cancelTry(ep)
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
    const ep = this.endpoint
    this.endTry(OUTCOME_OK, true)
    this.cancelTry(ep)
    if (this.mirror !== null) this.mirror.cancel()
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

function timerFired(x: ExchangeCore<unknown>, which: number): void {
  x.timerFired(which)
}

/** The path sent upstream: the route's prefix rewrite or full-path replacement (the query kept), else the request's. */
export function upstreamPath(route: CompiledRoute, path: string): string {
  if (route.rewrite !== null) return rewritePath(path, route.rewrite)
  if (route.rewritePathTo === null) return path
  const q = path.indexOf('?')
  return q === -1 ? route.rewritePathTo : route.rewritePathTo + path.slice(q)
}
