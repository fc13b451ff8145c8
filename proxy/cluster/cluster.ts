// Clusters at run time: the endpoints of one logical backend with their pools, counters and the
// load balancer built over them. Built when a config is compiled; pools are looked up in the
// PoolRegistry so that unchanged endpoints keep their warm connections across config swaps.
import type { IdentityManager } from '../identity/identity.ts'
import { AdaptiveLimiter, adaptiveSettings } from './adaptive.ts'
import type { Cluster } from '../../api/schema.ts'
import { parseDuration } from '../../api/duration.ts'
import { createBalancer } from '../lb/index.ts'
import type { Balancer, LbEndpoint } from '../lb/types.ts'
import { ClusterBreaker, type BreakerTicket } from './breaker.ts'
import { newOutlierState, OUTCOME_OK, OutlierDetector, type OutlierState } from './outlier.ts'
import { EndpointPool, type PoolSettings } from './pool.ts'
import type { TryHandler, UpstreamTry } from './try.ts'
import { h2Upstream } from '../h2/upstream.ts'

export interface EndpointCounters {
  rqTotal: number
  rqError: number
  rq5xx: number
}

export class EndpointState implements LbEndpoint {
  readonly key: string
  readonly weight: number
  active = 0
  readonly pool: EndpointPool
  readonly counters: EndpointCounters
  /** outlier detection state, kept with the pool across config swaps */
  readonly outlier: OutlierState
  constructor(key: string, weight: number, pool: EndpointPool, counters: EndpointCounters, outlier: OutlierState) {
    this.key = key
    this.weight = weight
    this.pool = pool
    this.counters = counters
    this.outlier = outlier
  }

  /** not ejected by outlier detection (the balancers skip unhealthy endpoints) */
  get healthy(): boolean {
    return this.outlier.ejectedUntil === 0
  }
  set healthy(v: boolean) {
    this.outlier.ejectedUntil = v ? 0 : Number.MAX_SAFE_INTEGER
  }
}

/** Per-cluster decision counters (the "decisions" metrics source reads them). */
export interface ClusterCounters {
  /** requests refused because maxRequests were in flight (503, UO) */
  overflow: number
  /** requests failed fast by the open breaker (503, UO) */
  circuitOpen: number
  /** endpoints ejected by outlier detection, and ejections refused by maxEjectionPercent */
  ejections: number
  ejectionsOverflow: number
  /** requests refused over the adaptive concurrency limit (503, UO) */
  concurrencyLimited: number
}

/**
 * One try's hold on a cluster, written by dispatch and released by endTry: the endpoint it took,
 * the one before it (the next pick avoids it) and the breaker's ticket. The exchange carries these
 * fields itself, so a try allocates nothing.
 */
export interface ClusterTry {
  endpoint: EndpointState | undefined
  lastEndpoint: EndpointState | undefined
  ticket: BreakerTicket | null
  /** when the adaptive concurrency limiter admitted the try (its clock); -1: not admitted by one */
  acStart: number
}

/**
 * What a cluster dispatches a try for (an exchange, a mirrored copy): the try's handler, holding
 * its ClusterTry fields, told the endpoint before the try opens.
 */
export interface DispatchHandler extends TryHandler, ClusterTry {
  /** a request header's value (the cluster's affinity header, hashHeader), undefined: none */
  header(name: string): string | undefined
  /**
   * Admitted: the try holds `ep` (counted active until endTry). Called before the try is opened
   * on it, for the request in the form the cluster speaks (cluster.http2), the trace and timers.
   * hashKey: the affinity key the balancer was given.
   */
  dispatched(cluster: ClusterRuntime, ep: EndpointState, hashKey: string | undefined): void
}

/** dispatch's refusals (a number where it answers with a try): why the cluster refused it */
export const REJECT_OVERFLOW = 1
export const REJECT_CIRCUIT_OPEN = 2
export const REJECT_NO_ENDPOINT = 3
export const REJECT_CONCURRENCY_LIMIT = 4
/** the try was admitted (explainDispatch's first argument) */
export const DISPATCHED = 0

/** The local reply and decision counter of each refusal (the same for every codec). */
export const REJECTIONS = [
  null,
  { status: 503, flag: 'UO', code: 'WEFT_ERR_UPSTREAM_OVERFLOW', message: 'cluster max requests reached', counter: 'overflow' },
  { status: 503, flag: 'UO', code: 'WEFT_ERR_CIRCUIT_OPEN', message: 'circuit breaker open', counter: 'circuitOpen' },
  { status: 503, flag: 'UH', code: 'WEFT_ERR_NO_HEALTHY_UPSTREAM', message: 'no healthy upstream', counter: null },
  { status: 503, flag: 'UO', code: 'WEFT_ERR_CONCURRENCY_LIMIT', message: 'adaptive concurrency limit reached', counter: 'concurrencyLimited' },
] as const

/** A concrete backend at run time: its endpoints, balancer, limits, breaker and outlier detection. */
export class ClusterRuntime {
  readonly name: string
  readonly endpoints: readonly EndpointState[]
  readonly balancer: Balancer<EndpointState>
  /** lower-case header whose value is the affinity key, or "" */
  readonly hashHeader: string
  readonly policy: string
  /** the endpoints speak HTTP/2 (h2c): requests go on a shared session (proxy/h2/upstream.ts), not the HTTP/1 pool */
  readonly http2: boolean
  /** requests in flight to the cluster (all tries), and the cap (Infinity: none) */
  active = 0
  readonly maxRequests: number
  readonly breaker: ClusterBreaker | null
  readonly outlier: OutlierDetector | null
  /** adaptive concurrency (./adaptive.ts), null when off; kept across configs with the same settings */
  readonly adaptive: AdaptiveLimiter | null
  readonly counters: ClusterCounters

  constructor(o: Omit<ClusterRuntime, 'active' | 'dispatch' | 'endTry' | 'explainDispatch'>) {
    this.name = o.name
    this.endpoints = o.endpoints
    this.balancer = o.balancer
    this.hashHeader = o.hashHeader
    this.policy = o.policy
    this.http2 = o.http2
    this.maxRequests = o.maxRequests
    this.breaker = o.breaker
    this.outlier = o.outlier
    this.adaptive = o.adaptive
    this.counters = o.counters
  }

  /**
   * One try, in one call: admission (max requests, adaptive concurrency, the breaker), the
   * balancer's pick (avoiding the try's last endpoint, hashing on the affinity header), the
   * accounting (the endpoint is counted active until endTry), the handler's `dispatched`, then the
   * try opened on the endpoint's HTTP/2 session when the cluster speaks HTTP/2, else on its HTTP/1
   * pool (both TryDispatchers, ./try.ts). Returns the try, not started (the caller keeps it, then
   * starts it), or the refusal as a REJECT_* number (REJECTIONS: its reply and counter).
   * queued: the request body so far (kept by the try); ended: it is whole.
   */
  dispatch(h: DispatchHandler, queued: Buffer[] | null, ended: boolean): UpstreamTry | number {
    if (this.active >= this.maxRequests) {
      this.counters.overflow++
      return REJECT_OVERFLOW
    }
    const ac = this.adaptive
    if (ac !== null && !ac.admit()) {
      this.counters.concurrencyLimited++
      return REJECT_CONCURRENCY_LIMIT
    }
    let ticket: BreakerTicket | null = null
    if (this.breaker !== null) {
      ticket = this.breaker.admit()
      if (ticket === null) {
        if (ac !== null) ac.finish(0, false)
        this.counters.circuitOpen++
        return REJECT_CIRCUIT_OPEN
      }
    }
    const hashKey = this.hashHeader === '' ? undefined : h.header(this.hashHeader)
    const ep = this.balancer.pick(hashKey, h.lastEndpoint)
    if (ep === undefined) {
      if (ac !== null) ac.finish(0, false)
      ticket?.(null)
      return REJECT_NO_ENDPOINT
    }
    if (ac !== null) h.acStart = ac.clock()
    h.ticket = ticket
    h.endpoint = ep
    ep.active++
    this.active++
    ep.counters.rqTotal++
    h.dispatched(this, ep, hashKey)
    // two call sites, each of one class
    return this.http2 ? h2Upstream(ep.pool).dispatch(h, queued, ended) : ep.pool.dispatch(h, queued, ended)
  }

  /**
   * The `dispatch` step of a traced request (proxy/telemetry/explain.ts): what the cluster's limits,
   * breaker and balancer said to try number `tryNo` (0-based): d is DISPATCHED when called from
   * the handler's `dispatched`, else dispatch's REJECT_* answer.
   */
  explainDispatch(d: number, t: ClusterTry, hashKey: string | undefined, tryNo: number): Record<string, unknown> {
    const limits = {
      try: tryNo + 1,
      cluster: this.name,
      inFlight: d === DISPATCHED ? this.active - 1 : this.active,
      maxRequests: Number.isFinite(this.maxRequests) ? this.maxRequests : null,
      breaker: this.breaker === null ? null : this.breaker.state,
      ...(this.adaptive !== null ? { adaptiveConcurrency: this.adaptive.view() } : {}),
    }
    if (d !== DISPATCHED) {
      const r = REJECTIONS[d]!
      return { ...limits, refused: r.message, flag: r.flag }
    }
    const ep = t.endpoint!
    const ejected: string[] = []
    for (const e of this.endpoints) if (!e.healthy) ejected.push(e.key)
    return {
      ...limits,
      endpoint: ep.key,
      balancer: this.policy,
      ...(this.balancer.explain?.(ep, hashKey) ?? {}),
      ...(t.lastEndpoint !== undefined ? { avoided: t.lastEndpoint.key } : {}),
      ejected,
    }
  }

  /**
   * The try is over (once; later calls do nothing). outcome: OUTCOME_* for outlier detection and
   * the breaker; neutral: not the endpoint's doing (a client that left), neither is told.
   */
  endTry(t: ClusterTry, outcome: number, neutral: boolean): void {
    const ep = t.endpoint
    if (ep === undefined) return
    t.endpoint = undefined
    t.lastEndpoint = ep
    ep.active--
    this.active--
    if (outcome !== OUTCOME_OK) ep.counters.rqError++
    if (!neutral && this.outlier !== null) this.outlier.report(ep, outcome)
    if (t.acStart >= 0) {
      const ac = this.adaptive!
      ac.finish(ac.clock() - t.acStart, !neutral && outcome === OUTCOME_OK)
      t.acStart = -1
    }
    const ticket = t.ticket
    if (ticket !== null) {
      t.ticket = null
      ticket(neutral ? null : outcome === OUTCOME_OK)
    }
  }
}

export interface ProxyLimits {
  maxHeaderBytes: number
  maxHeaders: number
}

/**
 * Pools and counters keyed by cluster and endpoint, kept across config swaps.
 * `retain` marks what the new config uses; `collect` drains the rest.
 */
interface PoolEntry {
  pool: EndpointPool
  counters: EndpointCounters
  outlier: OutlierState
}

interface ClusterEntry {
  breaker: ClusterBreaker | null
  adaptive: { key: string; limiter: AdaptiveLimiter } | null
  counters: ClusterCounters
}

export class PoolRegistry {
  private pools = new Map<string, PoolEntry>()
  private marked = new Set<string>()
  /** per cluster name: the breaker (kept while its config is unchanged) and the counters */
  private clusters = new Map<string, ClusterEntry>()
  private markedClusters = new Set<string>()
  /**
   * What the config being built changed in shared state the running config still uses: breakers
   * replaced (the old one is shut down only once the new config is in: collect) and pool
   * settings (restored if the new config is not applied: rollback).
   */
  private replacedBreakers: { e: ClusterEntry; old: ClusterBreaker | null }[] = []
  private changedSettings: { pool: EndpointPool; old: PoolSettings }[] = []
  /** the proxy's identity, read by mesh TLS connects (set by the proxy; null: none) */
  readonly identity: { current: IdentityManager | null } = { current: null }
  /** the adaptive concurrency limiters' clock (ms); tests inject one */
  clock: () => number = () => performance.now()

  get(key: string, host: string, port: number, settings: PoolSettings): PoolEntry {
    this.marked.add(key)
    let e = this.pools.get(key)
    if (e === undefined) {
      e = { pool: new EndpointPool(host, port, settings), counters: { rqTotal: 0, rqError: 0, rq5xx: 0 }, outlier: newOutlierState() }
      this.pools.set(key, e)
    } else if (e.pool.settings !== settings) {
      this.changedSettings.push({ pool: e.pool, old: e.pool.settings })
      e.pool.settings = settings
    }
    return e
  }

  /** The cluster's breaker and counters, kept across configs (a changed breaker config starts afresh). */
  cluster(name: string, breaker: Cluster['circuitBreaker'], adaptive?: Cluster['adaptiveConcurrency']): ClusterEntry {
    this.markedClusters.add(name)
    let e = this.clusters.get(name)
    if (e === undefined) {
      e = { breaker: null, adaptive: null, counters: { overflow: 0, circuitOpen: 0, ejections: 0, ejectionsOverflow: 0, concurrencyLimited: 0 } }
      this.clusters.set(name, e)
    }
    // the limiter keeps what it learned (minRTT, limit, requests in flight) while its settings stay
    const acKey = adaptive === undefined ? '' : JSON.stringify(adaptive)
    if ((e.adaptive?.key ?? '') !== acKey) e.adaptive = adaptive === undefined ? null : { key: acKey, limiter: new AdaptiveLimiter(adaptiveSettings(adaptive), this.clock) }
    const key = breaker === undefined ? '' : JSON.stringify(breaker)
    if ((e.breaker?.key ?? '') !== key) {
      this.replacedBreakers.push({ e, old: e.breaker })
      e.breaker = breaker === undefined ? null : new ClusterBreaker(breaker, name)
    }
    return e
  }

  /** Start marking for a new config. */
  begin(): void {
    this.marked = new Set()
    this.markedClusters = new Set()
    this.replacedBreakers = []
    this.changedSettings = []
  }

  /**
   * The config built since begin() is not applied (a listener could not bind): the running
   * config's breakers and pool settings are as they were; the breakers made for it go.
   */
  rollback(): void {
    for (let i = this.replacedBreakers.length - 1; i >= 0; i--) {
      const { e, old } = this.replacedBreakers[i]
      e.breaker?.shutdown()
      e.breaker = old
    }
    for (let i = this.changedSettings.length - 1; i >= 0; i--) this.changedSettings[i].pool.settings = this.changedSettings[i].old
    this.replacedBreakers = []
    this.changedSettings = []
  }

  /** The new config is in: shut down the breakers it replaced, drain pools it does not use. */
  collect(): void {
    for (const { old } of this.replacedBreakers) old?.shutdown()
    this.replacedBreakers = []
    this.changedSettings = []
    for (const [k, e] of this.pools) {
      if (!this.marked.has(k)) {
        e.pool.drain()
        if (e.outlier.timer !== null) clearTimeout(e.outlier.timer)
        this.pools.delete(k)
      }
    }
    for (const [k, e] of this.clusters) {
      if (!this.markedClusters.has(k)) {
        e.breaker?.shutdown()
        this.clusters.delete(k)
      }
    }
  }

  sweep(now: number): void {
    for (const e of this.pools.values()) e.pool.sweep(now)
  }

  drainAll(): void {
    for (const e of this.pools.values()) {
      e.pool.drain()
      if (e.outlier.timer !== null) clearTimeout(e.outlier.timer)
    }
    this.pools.clear()
    for (const e of this.clusters.values()) e.breaker?.shutdown()
    this.clusters.clear()
  }
}

export function buildCluster(c: Cluster, registry: PoolRegistry, limits: ProxyLimits): ClusterRuntime {
  const settings: PoolSettings = {
    tls: c.tls === undefined || c.tls.mode === 'disable'
      ? null
      : { identity: registry.identity, alpn: c.protocol === 'http2' ? 'h2' : 'http/1.1', allowed: c.tls.identities === undefined || c.tls.identities.length === 0 ? null : new Set(c.tls.identities) },
    maxConnections: c.pool?.maxConnections ?? 1024,
    maxPending: c.pool?.maxPending ?? 1024,
    idleTimeoutMs: c.pool?.idleTimeout === undefined ? 30_000 : parseDuration(c.pool.idleTimeout),
    connectTimeoutMs: c.pool?.connectTimeout === undefined ? 1_000 : parseDuration(c.pool.connectTimeout),
    maxHeaderBytes: limits.maxHeaderBytes,
    maxHeaders: limits.maxHeaders,
  }
  const endpoints = c.endpoints.map((e) => {
    const key = `${e.address}:${e.port}`
    // Keyed by cluster and endpoint only: a settings change keeps the queue and warm connections.
    // a cluster's plain-text and mesh-TLS connections are not the same pool
    const { pool, counters, outlier } = registry.get(`${c.name}|${key}${settings.tls === null ? '' : '|mtls'}`, e.address, e.port, settings)
    return new EndpointState(key, e.weight ?? 1, pool, counters, outlier)
  })
  const policy = c.lb?.policy ?? 'roundRobin'
  const balancer = createBalancer<EndpointState>(policy, endpoints, {
    decayMs: c.lb?.decay === undefined ? undefined : parseDuration(c.lb.decay),
  })
  const shared = registry.cluster(c.name, c.circuitBreaker, c.adaptiveConcurrency)
  return new ClusterRuntime({
    name: c.name,
    endpoints,
    balancer,
    hashHeader: c.lb?.hashHeader?.toLowerCase() ?? '',
    policy,
    http2: c.protocol === 'http2',
    maxRequests: c.pool?.maxRequests ?? Infinity,
    breaker: shared.breaker,
    outlier: c.outlierDetection === undefined ? null : new OutlierDetector(c.outlierDetection, endpoints, shared.counters),
    adaptive: shared.adaptive?.limiter ?? null,
    counters: shared.counters,
  })
}
