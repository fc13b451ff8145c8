// The router: one HTTP/1 request/response exchange from a downstream connection to an upstream
// endpoint: the listener's and the route's filter chains (proxy/filters/), the route, the cluster's
// dispatch, tries, timers and retries, telemetry. Routing, filters and policy come compiled from the
// config the request started with; this file only reads them. Bodies are streamed with
// backpressure both ways, never buffered whole.
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { BreakerTicket } from '../cluster/breaker.ts'
import { DISPATCHED, REJECTIONS, type ClusterRuntime, type ClusterTry, type EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_CONNECT, OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../cluster/outlier.ts'
import type { PoolWaiter } from '../cluster/pool.ts'
import type { UpstreamConn, UpstreamHandler } from '../cluster/upstream.ts'
import { acquireH2 } from '../h2/bridge.ts'
import { chunkHeader } from '../../api/http1/chunked.ts'
import { HttpError, reasonPhrase, type RequestHead, type ResponseHead } from '../../api/http1/head.ts'
import { MirrorRequest } from '../filters/mirror/mirror.ts'
import { FAIL_CONNECT, FAIL_RESET, FAIL_TIMEOUT, RETRY_BODY_LIMIT, type CompiledRetry } from '../filters/retry/policy.ts'
import { matchRoute, pickBackend, rewritePath, type CompiledRoute, type CompiledRouteTable, type MatchInput, type RoutePolicy } from '../route/table.ts'
import type { CompiledMutation } from '../route/headers.ts'
import { recordRequest, type ListenerTelemetry } from '../telemetry/listener.ts'
import { TRACE_HEADER_NAMES } from '../telemetry/tracing/context.ts'
import { EXPLAIN_ID_HEADER, type ExplainSource, type ExplainTrace } from '../telemetry/explain.ts'
import { routeStep, splitStep } from '../route/explain.ts'
import { nowMicros, RETRY_ANNOTATION, type RequestTrace, type ZipkinAnnotation } from '../telemetry/tracing/tracer.ts'
import type { RequestRecord } from '../telemetry/types.ts'
import type { ReadBuffer } from '../net/read-buffer.ts'
import { STOP, type Filter, type FilterExchange } from '../filters/filter.ts'
import type { PeerIdentity } from '../identity/authz.ts'
import { XFCC_SANITIZE_SET } from '../listener/protocol.ts'
import { FILTER_FLAGS, type FilterCounters } from '../filters/index.ts'

/** What the exchange needs from the downstream connection. */
export interface Downstream {
  readonly remoteAddress: string
  /** the caller's identity (mutual TLS); null: plain text */
  readonly peer: PeerIdentity | null
  readonly draining: boolean
  write(data: string | Buffer): boolean
  cork(): void
  uncork(): void
  /** stop/start reading request bytes for backpressure */
  pauseForUpstream(): void
  resumeForUpstream(): void
  /** the bytes last read from the client are still referenced (a write did not flush at once) */
  retainRead(): void
  /** the response is complete; close: the connection must close after it */
  exchangeDone(close: boolean): void
  /** bytes queued in the client socket, not yet taken by the kernel */
  readonly writableLength: number
  /** the response cannot be completed: reset the client connection */
  abort(): void
  /** the upstream switched protocols (the 101 is written): tunnel the two connections */
  upgrade(upstream: Socket, upRb: ReadBuffer | null, fromUpstream: Buffer | null): void
}

/** The compiled config a request is served with (captured when its head is parsed). */
export interface RouterConfig {
  readonly table: CompiledRouteTable
  readonly clusters: ReadonlyMap<string, ClusterRuntime>
  readonly telemetry: ListenerTelemetry
  /** the listener's request filters, run before routing (null: none) */
  readonly filters: readonly Filter[] | null
  /** x-forwarded-client-cert toward the upstream: XFCC_KEEP, XFCC_SANITIZE, XFCC_SANITIZE_SET (listener/protocol.ts) */
  readonly forwardClientCert: number
}

/** Flags explaining every response the proxy did not simply relay (Envoy's vocabulary). */
export const Flags = {
  NoRoute: 'NR',
  NoCluster: 'NC',
  NoHealthyUpstream: 'UH',
  UpstreamConnectFailure: 'UF',
  UpstreamConnectionTermination: 'UC',
  UpstreamProtocolError: 'UPE',
  UpstreamOverflow: 'UO',
  DownstreamProtocolError: 'DPE',
  DirectResponse: 'DR',
  DownstreamConnectionTermination: 'DC',
  /** the request or a try timed out (route timeout, per-try timeout) */
  UpstreamRequestTimeout: 'UT',
  /** a retriable failure that was not retried: attempts or the retry budget exhausted */
  UpstreamRetryLimitExceeded: 'URX',
  /** and those of the registered filters (proxy/filters/index.ts): RL, FI, DI, ... */
  ...FILTER_FLAGS,
} as const

const QUEUE_LIMIT = 65536
/** body pieces up to this size are copied to leave with their framing in one write */
const COALESCE_LIMIT = 16384
const CONTINUE_100 = 'HTTP/1.1 100 Continue\r\n\r\n'
const CRLF = '\r\n'
const LAST_CHUNK = '0\r\n'

const RESP_NONE = 0
const RESP_RAW = 1
const RESP_CHUNKED = 2

export interface ExchangeCounters extends FilterCounters {
  noRoute: number
  localReplies: number
  upstreamErrors: number
  staleRetries: number
  /** policy decisions (weft_proxy_decisions_total) */
  retries: number
  retryLimitExceeded: number
  retryBudgetExhausted: number
  requestTimeouts: number
  perTryTimeouts: number
  circuitOpen: number
  overflow: number
  /** refused over a cluster's adaptive concurrency limit */
  concurrencyLimited: number
  mirrored: number
  mirrorFailed: number
  mirrorAbandoned: number
}

export class Exchange implements PoolWaiter, UpstreamHandler, RequestRecord, ClusterTry, FilterExchange {
  private readonly down: Downstream
  private readonly req: RequestHead
  private readonly config: RouterConfig
  readonly counters: ExchangeCounters
  private route: CompiledRoute | undefined
  endpoint: EndpointState | undefined
  private cluster: ClusterRuntime | undefined
  private up: UpstreamConn | null = null
  private upHead = ''
  /** request body bytes waiting for an upstream connection */
  private queued: (string | Buffer)[] | null = null
  private queuedBytes = 0
  private reqEnded = false
  private reqSent = false
  private respStarted = false
  private respMode = RESP_NONE
  private done = false
  private retried = false
  private upstreamPaused = false
  /** response head not yet written */
  private headOut: string | null = null
  /** when the upstream request was written (for the balancer's latency observations) */
  private startedAt = 0
  /** when the request head was parsed */
  private readonly t0: number
  private backendIndex = 0
  private completed = false
  private trace: RequestTrace | null = null
  /** annotations for a sampled span (retries) */
  private annotations: ZipkinAnnotation[] | null = null
  /** the route's policy (null: none, and none of the fields below are used) */
  private policy: RoutePolicy | null = null
  /** request bytes go upstream (false: no route, a local reply, discarded) */
  private forwarding = false
  private hasBody = false
  // ---- retries
  private retry: CompiledRetry | null = null
  /** retries made so far */
  private tries = 0
  /** copies of the framed request body for another try; null when too large to keep */
  private retained: (string | Buffer)[] | null = null
  private retainedBytes = 0
  /** the response of this try is being read and thrown away: a retry follows */
  private discarding = false
  /** the endpoint of the previous try (avoided by the next pick) */
  lastEndpoint: EndpointState | undefined = undefined
  /** outcome of the current try for outlier detection and the breaker (OUTCOME_*) */
  private outcome = OUTCOME_OK
  ticket: BreakerTicket | null = null
  acStart = -1
  private timer: ReturnType<typeof setTimeout> | null = null
  private tryTimer: ReturnType<typeof setTimeout> | null = null
  private waitTimer: ReturnType<typeof setTimeout> | null = null
  private mirror: MirrorRequest | null = null
  private delayed = false
  /** the flag of the delay (DI), set on the response unless another explains it */
  private delayFlag = ''

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
  get startTime(): number {
    return performance.timeOrigin + this.t0
  }
  get method(): string {
    return this.req.method
  }
  get authority(): string {
    return this.req.authority
  }
  get path(): string {
    return this.req.path
  }
  get protocol(): string {
    return this.req.minor === 1 ? 'HTTP/1.1' : 'HTTP/1.0'
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
  get upstreamHost(): string {
    return this.endpointKey
  }
  get downstreamAddress(): string {
    return this.down.remoteAddress
  }
  get sourceIdentity(): string {
    const peer = this.down.peer
    if (peer !== null) return peer.principal
    const p = this.config.telemetry.peer
    return p.sourceNamespace + '/' + p.sourceWorkload
  }
  get peer(): PeerIdentity | null {
    return this.down.peer
  }
  private endpointKey = ''

  constructor(down: Downstream, req: RequestHead, config: RouterConfig, counters: ExchangeCounters) {
    this.down = down
    this.req = req
    this.config = config
    this.counters = counters
    this.t0 = performance.now()
  }

  /** Some bytes of a response (relayed or local) were written to the client. */
  get wroteResponse(): boolean {
    return this.respStarted && this.headOut === null
  }

  /** Route and dispatch. The request body, if any, follows through onBody/onBodyEnd. */
  start(hasBody: boolean): void {
    if (!hasBody) this.reqEnded = true
    const req = this.req
    const tracer = this.config.telemetry.tracer
    if (tracer !== null) {
      this.trace = tracer.begin(req.names, req.values, this.config.telemetry.spanKind)
      this.traceId = this.trace.traceId
    }
    const ex = this.config.telemetry.explain
    if (ex !== null && ex.on) this.beginExplain(ex)
    const lf = this.config.filters
    if (lf !== null) for (let i = 0; i < lf.length; i++) if (lf[i].onRequest(this) === STOP) return
    const vh = this.config.table.lookup(req.authority)
    const q = req.path.indexOf('?')
    const mi: MatchInput = {
      method: req.method,
      pathOnly: q === -1 ? req.path : req.path.slice(0, q),
      query: q === -1 ? '' : req.path.slice(q + 1),
      names: req.names,
      values: req.values,
    }
    const route = vh === undefined ? undefined : matchRoute(vh, mi)
    if (this.explain !== null) this.explain.note('route', routeStep(vh, mi, route))
    if (route === undefined) {
      this.counters.noRoute++
      return this.localReply(404, Flags.NoRoute, 'WEFT_ERR_NO_ROUTE', 'no route matched')
    }
    this.route = route
    if (route.direct !== null) return this.directReply(route)
    this.hasBody = hasBody
    const filters = route.filters
    if (filters !== null) for (let i = 0; i < filters.length; i++) if (filters[i].onRequest(this) === STOP) return
    const pol = route.policy
    if (pol !== null) {
      this.policy = pol
      this.armPolicy(pol)
    }
    const bi = pickBackend(route, route.backends.length > 1 ? Math.random() : 0)
    if (bi > 0) this.backendIndex = bi
    if (this.explain !== null && route.backends.length > 1) this.explain.note('split', splitStep(route, bi))
    const cluster = bi < 0 ? undefined : this.config.clusters.get(route.backends[bi].cluster)
    if (cluster === undefined) return this.localReply(503, Flags.NoCluster, 'WEFT_ERR_NO_CLUSTER', 'no cluster for route')
    this.cluster = cluster
    this.forwarding = true
    if (req.expectContinue && hasBody) this.down.write(CONTINUE_100)
    if (this.delayed) return // the fault delay's timer dispatches
    this.dispatch()
  }

  /** The trace starts: this request was selected (x-weft-explain, sampling, or a tap asking). */
  private beginExplain(ex: ExplainSource): void {
    const req = this.req
    const x = ex.begin(req.names, req.values)
    if (x === null) return
    this.explain = x
    this.explainSource = ex
    x.note('request', { direction: this.config.telemetry.spanKind === 'CLIENT' ? 'outbound' : 'inbound', protocol: this.protocol, method: req.method, authority: req.authority, path: req.path, selectedBy: x.selectedBy })
  }

  private explainSource: ExplainSource | null = null

  /** The route's timers and retry policy, once its filters let the request go on. */
  private armPolicy(pol: RoutePolicy): void {
    if (pol.timeoutMs > 0) this.timer = setTimeout(() => this.onRequestTimeout(), pol.timeoutMs)
    if (pol.retry !== null) {
      this.retry = pol.retry
      if (pol.retry.attempts > 0) {
        pol.retry.budget?.deposit()
        if (this.hasBody) this.retained = []
      }
    }
  }

  // ---- FilterExchange (proxy/filters/filter.ts) ---------------------------------------------

  header(name: string): string | undefined {
    return headerOf(this.req, name)
  }

  redirect(status: number, location: string): void {
    this.flags = Flags.DirectResponse
    this.writeLocal(status, 'location: ' + location + '\r\ncontent-length: 0\r\n' + (this.route?.responseHeaders.append ?? ''), EMPTY)
  }

  hold(): () => void {
    this.delayed = true
    return () => {
      if (!this.done) this.dispatch()
    }
  }

  delay(ms: number, flag: string): void {
    if (this.explain !== null) this.explain.note('fault-delay', { ms, flag })
    this.delayed = true
    this.delayFlag = flag
    this.waitTimer = setTimeout(() => {
      this.waitTimer = null
      if (!this.done) this.dispatch()
    }, ms)
  }

  /** One try: the cluster's limits, an endpoint, a connection. */
  private dispatch(): void {
    const cluster = this.cluster!
    const req = this.req
    const hashKey = cluster.hashHeader === '' ? undefined : headerOf(req, cluster.hashHeader)
    const d = cluster.dispatch(this, hashKey)
    if (this.explain !== null) this.explain.note('dispatch', cluster.explainDispatch(d, this, hashKey, this.tries))
    if (d !== DISPATCHED) return this.rejected(d)
    const ep = this.endpoint!
    this.outcome = OUTCOME_OK
    this.endpointKey = ep.key
    if (this.tries === 0 || req.authority === '') this.upHead = this.buildUpstreamHead(this.route!, ep)
    const pol = this.policy
    if (pol !== null) {
      // An upgrade is not mirrored: the copy could only fail at its 101.
      if (this.tries === 0 && pol.mirror !== null && req.upgrade === '') this.startMirror(pol)
      const r = this.retry
      if (r !== null && r.perTryTimeoutMs > 0) this.tryTimer = setTimeout(() => this.onTryTimeout(), r.perTryTimeoutMs)
    }
    // An HTTP/2 cluster: a stream on the endpoint's session, dressed as a connection (h2/bridge.ts).
    if (cluster.http2) acquireH2(ep.pool, this)
    else ep.pool.acquire(this)
  }

  private startMirror(pol: RoutePolicy): void {
    const cluster = pol.mirror!.target(this.config.clusters, this.counters)
    if (cluster === null) return
    // The copy's Host gets "-shadow" (as Envoy), the rest of the head is the same.
    const h = this.upHead
    const a = h.indexOf('\r\nhost: ') + 8
    const e = h.indexOf('\r\n', a)
    const head = h.slice(0, e) + '-shadow' + h.slice(e)
    this.mirror = new MirrorRequest(cluster, a < 8 ? h : head, this.hasBody && !this.reqEnded, this.counters)
    if (this.queued !== null) for (const part of this.queued) this.mirror.body(part)
    if (this.reqEnded) this.mirror.bodyEnd()
  }

  // ---- request path ------------------------------------------------------------------------

  private buildUpstreamHead(route: CompiledRoute, ep: EndpointState): string {
    const req = this.req
    const path = route.rewrite !== null ? rewritePath(req.path, route.rewrite) : route.rewritePathTo !== null ? replacePath(req.path, route.rewritePathTo) : req.path
    const mut = route.requestHeaders
    const authority = mut.host ?? route.rewriteHost ?? (req.authority === '' ? ep.key : req.authority)
    let h = req.method + ' ' + path + ' HTTP/1.1\r\nhost: ' + authority + CRLF
    const drop = mut.drop
    const names = req.names
    const values = req.values
    let xff = ''
    let proto = false
    let rid = false
    const trace = this.trace
    const fcc = this.config.forwardClientCert
    for (let i = 0; i < names.length; i++) {
      const n = names[i]
      if (drop !== null && drop.has(n)) continue
      // what a caller says of its own certificate is not believed (inbound listeners)
      if (fcc !== 0 && n === 'x-forwarded-client-cert') continue
      // The trace context goes upstream as our span's (added below), not the caller's.
      if (trace !== null && TRACE_HEADER_NAMES.has(n)) continue
      if (n === 'x-forwarded-for') {
        // Several fields are one list (RFC 9110 5.3): keep the client's hops in order, add ours once.
        xff = xff === '' ? values[i] : xff + ', ' + values[i]
        continue
      }
      if (n === 'x-forwarded-proto') proto = true
      else if (n === 'x-request-id') {
        rid = true
        this.requestId = values[i]
      }
      h += n + ': ' + values[i] + CRLF
    }
    h += 'x-forwarded-for: ' + (xff === '' ? this.down.remoteAddress : xff + ', ' + this.down.remoteAddress) + CRLF
    if (fcc === XFCC_SANITIZE_SET && this.down.peer !== null) h += 'x-forwarded-client-cert: ' + this.down.peer.xfcc + CRLF
    if (!proto) h += 'x-forwarded-proto: http\r\n'
    if (!rid) {
      this.requestId = randomUUID()
      h += 'x-request-id: ' + this.requestId + CRLF
    }
    h += route.requestHeaders.append
    if (trace !== null) h += trace.headerBlock
    if (req.chunked) h += 'transfer-encoding: ' + req.transferEncoding + CRLF
    else if (req.contentLength >= 0) h += 'content-length: ' + req.contentLength + CRLF
    // The one hop-by-hop pair that goes on: asked again of the next hop (RFC 9110 7.8).
    if (req.upgrade !== '') h += 'connection: upgrade\r\nupgrade: ' + req.upgrade + CRLF
    return h + CRLF
  }

  onPoolConnection(conn: UpstreamConn): void {
    if (this.done) {
      conn.release(true)
      return
    }
    this.up = conn
    conn.bind(this, this.req.method === 'HEAD', this.req.upgrade !== '')
    this.startedAt = performance.now()
    const s = conn.socket
    let ok: boolean
    // The head is built as a string (a rope of its pieces) and written as one Buffer: Node's
    // buffer write path costs less per call than its string path (measured with --cpu-prof).
    if (this.queued === null) {
      ok = s.write(Buffer.from(this.upHead, 'latin1'))
    } else {
      s.cork()
      s.write(Buffer.from(this.upHead, 'latin1'))
      ok = true
      for (const part of this.queued) ok = typeof part === 'string' ? s.write(part, 'latin1') : s.write(part)
      this.queued = null
      this.queuedBytes = 0
      s.uncork()
    }
    if (this.reqEnded) this.reqSent = true
    if (ok) this.down.resumeForUpstream()
    else this.down.pauseForUpstream()
  }

  onPoolFailure(err: HttpError, flag: string): void {
    if (this.done) return
    // UF: connect failure or timeout; UO: the endpoint's pending queue is full; UH: removed
    const connectFailure = flag === Flags.UpstreamConnectFailure
    if (flag === Flags.UpstreamOverflow) this.counters.overflow++
    this.endTry(connectFailure ? OUTCOME_CONNECT : OUTCOME_OK, !connectFailure)
    if (connectFailure && this.retry !== null && this.retryAfter(FAIL_CONNECT)) return
    this.localReply(err.status, this.retryFlag(flag), err.code, err.message)
  }

  /** Request body bytes from the client (already de-framed). */
  onBody(buf: Buffer, start: number, end: number): void {
    if (this.done || end === start) return
    this.bytesIn += end - start
    const data = buf.subarray(start, end)
    if (!this.forwarding) return // discarded
    if (this.req.chunked) {
      this.send(chunkHeader(data.length))
      this.send(data)
      this.send(CRLF)
    } else {
      this.send(data)
    }
  }

  onBodyEnd(trailers: string): void {
    this.reqEnded = true
    if (this.done) return
    if (this.req.chunked && this.forwarding) {
      this.send(LAST_CHUNK + trailers + CRLF)
    }
    if (this.mirror !== null) this.mirror.bodyEnd()
    if (this.up !== null) this.reqSent = true
    this.maybeFinish()
  }

  private send(part: string | Buffer): void {
    if (this.policy !== null) {
      if (this.retained !== null) {
        // kept for another try, up to a small limit; past it the request can no longer be retried
        const copy = typeof part === 'string' ? part : Buffer.from(part)
        this.retainedBytes += copy.length
        if (this.retainedBytes > RETRY_BODY_LIMIT) this.retained = null
        else this.retained.push(copy)
      }
      if (this.mirror !== null) this.mirror.body(part)
    }
    if (this.up !== null) {
      const sock = this.up.socket
      const ok = typeof part === 'string' ? sock.write(part, 'latin1') : sock.write(part)
      if (typeof part !== 'string' && sock.writableLength > 0) this.down.retainRead()
      if (!ok) this.down.pauseForUpstream()
      return
    }
    // Waiting for a connection: keep a copy, the read buffer is reused.
    const copy = typeof part === 'string' ? part : Buffer.from(part)
    if (this.queued === null) this.queued = []
    this.queued.push(copy)
    this.queuedBytes += copy.length
    if (this.queuedBytes > QUEUE_LIMIT) this.down.pauseForUpstream()
  }

  onUpstreamDrain(): void {
    this.down.resumeForUpstream()
  }

  // ---- response path -----------------------------------------------------------------------

  onUpstreamInformational(head: ResponseHead): void {
    // We answered Expect ourselves; other 1xx (e.g. 103) go to HTTP/1.1 clients.
    if (head.status === 100 || this.req.minor === 0) return
    this.down.write(serializeHead(head, 'HTTP/1.1 ' + head.status + ' ' + head.reason + CRLF, null) + CRLF)
  }

  /**
   * 101 to an upgrade request: relay it (with the route's response header mutations), complete
   * the exchange (its record has status 101; the tunnel has counters of its own), and hand both
   * sockets to the listener as a tunnel. The upstream connection has left its pool for good.
   */
  onUpstreamUpgrade(head: ResponseHead, rest: Buffer | null, rb: ReadBuffer | null): void {
    const up = this.up
    this.up = null
    if (this.done || up === null) {
      up?.socket.destroy()
      return
    }
    const ep = this.endpoint!
    if (this.tryTimer !== null) {
      clearTimeout(this.tryTimer)
      this.tryTimer = null
    }
    this.cluster!.balancer.observe(ep, performance.now() - this.startedAt)
    this.endTry(OUTCOME_OK, false)
    this.done = true
    this.respStarted = true
    this.status = 101
    const mut = this.route!.responseHeaders
    const h = serializeHead(head, 'HTTP/1.1 101 ' + (head.reason === '' ? 'Switching Protocols' : head.reason) + CRLF, mut)
    this.down.write(h + mut.append + 'connection: upgrade\r\nupgrade: ' + (head.upgrade === '' ? this.req.upgrade : head.upgrade) + CRLF + CRLF)
    this.complete()
    this.down.upgrade(up.socket, rb, rest)
  }

  onUpstreamHead(head: ResponseHead, hasBody: boolean): void {
    if (this.done) return
    const status = head.status
    const ep = this.endpoint!
    if (status >= 500) {
      ep.counters.rq5xx++
      this.outcome = status === 502 || status === 503 || status === 504 ? OUTCOME_GATEWAY : OUTCOME_5XX
    }
    if (this.tryTimer !== null) {
      clearTimeout(this.tryTimer)
      this.tryTimer = null
    }
    this.cluster!.balancer.observe(ep, performance.now() - this.startedAt)
    if (this.explain !== null) this.explain.note('response', { try: this.tries + 1, status, endpoint: ep.key, ms: Math.round((performance.now() - this.startedAt) * 1000) / 1000 })
    const r = this.retry
    if (r !== null && r.retriableStatus(status)) {
      if (this.mayRetry()) {
        // read this response to its end and throw it away; the retry follows (onUpstreamEnd)
        if (this.explain !== null) this.explain.note('retry', { reason: `status ${status} is retriable`, nextTry: this.tries + 2, backoff: 'after the response is read' })
        this.discarding = true
        return
      }
      if (this.explain !== null) this.explain.note('no-retry', { reason: this.noRetryReason() })
    }
    this.respStarted = true
    this.status = status
    const mut = this.route!.responseHeaders
    let h = serializeHead(head, 'HTTP/1.1 ' + head.status + ' ' + head.reason + CRLF, mut)
    h += mut.append
    if (this.explain !== null && this.explain.selectedBy === 'header') h += EXPLAIN_ID_HEADER + ': ' + this.requestId + CRLF
    // An answer before the request body is in: the connection closes after it (the rest of the
    // body is not read), so say so now.
    let close = !this.req.keepAlive || this.down.draining || !this.reqEnded
    if (!hasBody) {
      this.respMode = RESP_NONE
      if (head.contentLength >= 0 && head.status !== 204) h += 'content-length: ' + head.contentLength + CRLF
    } else if (head.contentLength >= 0) {
      this.respMode = RESP_RAW
      h += 'content-length: ' + head.contentLength + CRLF
    } else if (this.req.minor === 1) {
      this.respMode = RESP_CHUNKED
      h += 'transfer-encoding: ' + (head.chunked ? head.transferEncoding : 'chunked') + CRLF
    } else {
      // HTTP/1.0 client and no length: delimit by closing.
      this.respMode = RESP_RAW
      close = true
    }
    if (close) {
      this.closeAfter = true
      h += 'connection: close\r\n'
    } else if (this.req.minor === 0) {
      h += 'connection: keep-alive\r\n'
    }
    // Held back so that the head and the first body bytes leave in one write.
    this.headOut = h + CRLF
  }

  private closeAfter = false

  onUpstreamData(buf: Buffer, start: number, end: number): void {
    if (this.done || this.discarding) return
    let ok: boolean
    const n = end - start
    this.bytesOut += n
    if (this.respMode === RESP_CHUNKED) {
      ok = this.writeWithHead(chunkHeader(n), buf, start, end, CRLF)
    } else {
      ok = this.writeWithHead('', buf, start, end, '')
    }
    if (!ok && this.up !== null && !this.upstreamPaused) {
      this.upstreamPaused = true
      this.up.socket.pause()
    }
  }

  /** Write prefix + data + suffix, preceded by the held-back head if any, in one write when small. */
  private writeWithHead(prefix: string, buf: Buffer, start: number, end: number, suffix: string): boolean {
    const head = this.headOut === null ? prefix : this.headOut + prefix
    this.headOut = null
    const n = end - start
    if (head.length === 0 && suffix.length === 0) {
      const ok = this.down.write(buf.subarray(start, end))
      if (this.down.writableLength > 0) this.up?.retainRead()
      return ok
    }
    if (n <= COALESCE_LIMIT) {
      const out = Buffer.allocUnsafe(head.length + n + suffix.length)
      out.latin1Write(head, 0)
      buf.copy(out, head.length, start, end)
      if (suffix.length > 0) out.latin1Write(suffix, head.length + n)
      return this.down.write(out)
    }
    if (head.length > 0) this.down.write(head)
    let ok = this.down.write(buf.subarray(start, end))
    if (this.down.writableLength > 0) this.up?.retainRead()
    if (suffix.length > 0) ok = this.down.write(suffix)
    return ok
  }

  onUpstreamFlush(): void {
    if (this.headOut !== null) {
      this.down.write(this.headOut)
      this.headOut = null
    }
  }

  onDownstreamDrain(): void {
    if (this.upstreamPaused && this.up !== null) {
      this.upstreamPaused = false
      this.up.socket.resume()
    }
  }

  onUpstreamEnd(trailers: string): void {
    if (this.done) return
    if (this.discarding) {
      this.discarding = false
      const up = this.up!
      this.up = null
      up.release(this.reqSent)
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    if (this.respMode === RESP_CHUNKED) {
      const h = this.headOut ?? ''
      this.headOut = null
      this.down.write(h + LAST_CHUNK + trailers + CRLF)
    } else {
      this.onUpstreamFlush()
    }
    this.respEnded = true
    this.maybeFinish()
  }

  private respEnded = false

  /** Done when the response is complete; the upstream is reused only if the request was fully sent. */
  private maybeFinish(): void {
    if (!this.respEnded || this.done) return
    this.done = true
    this.endTry(this.outcome, false)
    const up = this.up
    this.up = null
    if (up !== null) {
      if (this.upstreamPaused) up.socket.resume()
      up.release(this.reqSent)
    }
    this.onUpstreamFlush()
    this.complete()
    // A request body still arriving: we cannot wait for it on this connection, close after.
    this.down.exchangeDone(this.closeAfter || !this.reqEnded)
  }

  onUpstreamError(err: HttpError, flag: string, responseStarted: boolean): void {
    if (this.done) return
    const up = this.up
    this.up = null
    // A reused keep-alive connection that failed before any response byte most likely raced the
    // upstream's idle close. Without a body the request can safely go again on a fresh connection.
    if (!responseStarted && up !== null && up.reused && !this.retried && this.req.contentLength <= 0 && !this.req.chunked && !this.discarding) {
      this.retried = true
      this.counters.staleRetries++
      if (this.trace !== null && this.trace.sampled) (this.annotations ??= []).push({ timestamp: nowMicros(), value: RETRY_ANNOTATION })
      this.endpoint!.pool.acquire(this, true)
      return
    }
    this.counters.upstreamErrors++
    if (this.explain !== null) this.explain.note('upstream-error', { try: this.tries + 1, code: err.code, message: err.message, responseStarted })
    if (this.discarding) {
      // the response we were throwing away broke off: retry all the same
      this.discarding = false
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    this.endTry(responseStarted ? OUTCOME_GATEWAY : OUTCOME_RESET, false)
    if (!this.respStarted && this.retry !== null && this.retryAfter(FAIL_RESET)) return
    if (this.headOut !== null) {
      // The head was held back and nothing reached the client yet: a clean error is still possible.
      this.headOut = null
      this.respStarted = false
    }
    if (this.respStarted) {
      // Mid-response: the only honest signal left is to reset the client connection.
      this.done = true
      this.flags = flag
      this.complete()
      this.down.abort()
      return
    }
    this.localReply(err.status, this.retryFlag(flag), err.code, err.message)
  }

  /**
   * The current try is over. outcome: OUTCOME_* for outlier detection and the breaker; `neutral`:
   * not the endpoint's doing (a client that left, a full pending queue): neither is told.
   */
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

  /** retries were wanted but refused (attempts or budget): URX replaces a plain failure flag */
  private refused = false

  /**
   * May this request go again? Attempts left, the body is whole and kept, no response sent, and
   * the retry budget has room (which this takes from it).
   */
  private mayRetry(): boolean {
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
    return this.retry!.refusal(this.tries, this.respStarted || this.done, !(this.hasBody && (!this.reqEnded || this.retained === null)))
  }

  private retryFlag(flag: string): string {
    return this.refused ? Flags.UpstreamRetryLimitExceeded : flag
  }

  /** The next try, after the backoff. */
  private retryNow(): void {
    this.tries++
    this.counters.retries++
    if (this.trace !== null && this.trace.sampled) (this.annotations ??= []).push({ timestamp: nowMicros(), value: RETRY_ANNOTATION })
    this.queued = this.retained === null ? null : this.retained.slice()
    this.queuedBytes = 0
    this.reqSent = false
    this.upstreamPaused = false
    const ms = this.retry!.backoffMs(this.tries)
    if (this.explain !== null) this.explain.note('backoff', { ms: Math.round(ms * 1000) / 1000 })
    if (ms < 1) return this.dispatch()
    this.waitTimer = setTimeout(() => {
      this.waitTimer = null
      if (!this.done) this.dispatch()
    }, ms)
  }

  /** The per-try timeout: give up this try (maybe retry), else 504 UT. */
  private onTryTimeout(): void {
    this.tryTimer = null
    if (this.done || this.respStarted) return
    this.counters.perTryTimeouts++
    if (this.explain !== null) this.explain.note('try-timeout', { try: this.tries + 1, ms: this.retry?.perTryTimeoutMs })
    this.dropTry()
    this.endTry(OUTCOME_RESET, false)
    if (this.retryAfter(FAIL_TIMEOUT)) return
    this.localReply(504, this.retryFlag(Flags.UpstreamRequestTimeout), 'WEFT_ERR_UPSTREAM_TIMEOUT', 'upstream per-try timeout')
  }

  /** The route timeout: the whole request, retries included. */
  private onRequestTimeout(): void {
    this.timer = null
    if (this.done) return
    this.counters.requestTimeouts++
    if (this.wroteResponse) {
      // part of the response is out: only a reset can say it is incomplete
      this.done = true
      this.flags = Flags.UpstreamRequestTimeout
      this.dropTry()
      this.endTry(OUTCOME_RESET, false)
      this.complete()
      this.down.abort()
      return
    }
    this.dropTry()
    this.endTry(OUTCOME_RESET, this.endpoint === undefined)
    this.headOut = null
    this.respStarted = false
    this.discarding = false
    this.localReply(504, Flags.UpstreamRequestTimeout, 'WEFT_ERR_REQUEST_TIMEOUT', 'request timeout')
  }

  /** Abandon the current try's connection or place in the pool queue. */
  private dropTry(): void {
    const up = this.up
    this.up = null
    if (up !== null) up.destroy()
    else if (this.endpoint !== undefined) this.endpoint.pool.cancel(this)
    if (this.waitTimer !== null) {
      clearTimeout(this.waitTimer)
      this.waitTimer = null
    }
  }

  /** The client went away: release everything. */
  abortFromDownstream(): void {
    if (this.done) return
    this.done = true
    if (this.flags === '') this.flags = Flags.DownstreamConnectionTermination
    if (!this.wroteResponse) this.status = 0
    this.complete()
    const ep = this.endpoint
    this.endTry(OUTCOME_OK, true)
    const up = this.up
    this.up = null
    if (up !== null) up.destroy()
    else if (ep !== undefined) ep.pool.cancel(this)
    if (this.mirror !== null) this.mirror.cancel()
  }

  // ---- telemetry ---------------------------------------------------------------------------

  /** The exchange is over (answered, failed or abandoned): hand the record to telemetry, once. */
  private complete(): void {
    if (this.completed) return
    this.completed = true
    this.durationMs = performance.now() - this.t0
    if (this.policy !== null || this.delayed) this.endPolicy()
    const x = this.explain
    if (x !== null) x.note('done', { status: this.status, flags: this.flags === '' ? '-' : this.flags, durationMs: Math.round(this.durationMs * 1000) / 1000 })
    const t = this.config.telemetry
    if (t.metrics !== null) recordRequest(t.metrics, this.route === undefined ? -1 : this.route.id, this.backendIndex, this)
    const sinks = t.sinks
    for (let i = 0; i < sinks.length; i++) sinks[i].onRequest(this)
    if (t.tap !== null && t.tap.active) t.tap.onRequest(this)
    if (this.trace !== null) this.trace.finish(this, this.annotations === null ? undefined : { annotations: this.annotations })
    if (x !== null) this.explainSource!.finish(x, this)
  }

  private endPolicy(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    if (this.tryTimer !== null) clearTimeout(this.tryTimer)
    if (this.waitTimer !== null) clearTimeout(this.waitTimer)
    this.timer = this.tryTimer = this.waitTimer = null
    if (this.delayed && this.flags === '') this.flags = this.delayFlag
    if (this.refused && this.flags === '') this.flags = Flags.UpstreamRetryLimitExceeded
    this.retained = null
  }

  // ---- local replies -----------------------------------------------------------------------

  private directReply(route: CompiledRoute): void {
    const d = route.direct!
    this.flags = Flags.DirectResponse
    this.writeLocal(d.status, d.head + route.responseHeaders.append, d.body)
  }

  /** A response generated by the proxy, with the flag and error code as headers. */
  localReply(status: number, flag: string, code: string, message: string, extra = ''): void {
    if (this.done) return
    if (this.explain !== null) {
      this.explain.note('local-reply', { status, flag, code, message })
      if (this.explain.selectedBy === 'header') {
        if (this.requestId === '') this.requestId = randomUUID()
        extra += EXPLAIN_ID_HEADER + ': ' + this.requestId + CRLF
      }
    }
    this.flags = flag
    this.counters.localReplies++
    this.forwarding = false
    const body = Buffer.from(code + ': ' + message + '\n')
    const head =
      'content-type: text/plain\r\ncontent-length: ' + body.length +
      '\r\nx-weft-response-flags: ' + flag + '\r\nx-weft-error: ' + code + CRLF + extra
    this.writeLocal(status, head, body)
  }

  private writeLocal(status: number, fields: string, body: Buffer): void {
    if (this.done) return
    this.done = true
    this.respStarted = true
    this.status = status
    if (this.req.method !== 'HEAD') this.bytesOut = body.length
    // A client that sent Expect: 100-continue and got no 100 may or may not send its body: only
    // closing keeps the next bytes from being misread (as nginx and Envoy do).
    const close = !this.req.keepAlive || this.down.draining || status === 400 || (this.req.expectContinue && !this.reqEnded)
    let h = 'HTTP/1.1 ' + status + ' ' + reasonPhrase(status) + CRLF + fields
    if (close) h += 'connection: close\r\n'
    else if (this.req.minor === 0) h += 'connection: keep-alive\r\n'
    this.down.write(this.req.method === 'HEAD' || body.length === 0 ? h + CRLF : h + CRLF + body.latin1Slice(0, body.length))
    this.complete()
    // The request body (if any) is read and discarded by the connection before the next request.
    this.down.exchangeDone(close)
  }
}

const EMPTY = Buffer.alloc(0)

/** URLRewrite ReplaceFullPath: the new path, the query kept. */
function replacePath(path: string, to: string): string {
  const q = path.indexOf('?')
  return q === -1 ? to : to + path.slice(q)
}

function headerOf(req: RequestHead, name: string): string | undefined {
  const names = req.names
  for (let i = 0; i < names.length; i++) if (names[i] === name) return req.values[i]
  return undefined
}

function serializeHead(head: ResponseHead, statusLine: string, mut: CompiledMutation | null): string {
  let h = statusLine
  const drop = mut === null ? null : mut.drop
  const names = head.names
  const values = head.values
  for (let i = 0; i < names.length; i++) {
    if (drop !== null && drop.has(names[i])) continue
    h += names[i] + ': ' + values[i] + CRLF
  }
  return h
}
