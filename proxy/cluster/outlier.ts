// Outlier detection per endpoint (Envoy's consecutive-failure detectors): an endpoint that fails
// `consecutive5xx` times in a row (or `consecutiveGatewayErrors` 502/503/504s, or
// `consecutiveConnectFailures` connect failures) is ejected: the balancers skip it (unless every
// endpoint is ejected: panic mode) for baseEjectionTime x its ejection count, at most
// maxEjectionTime; the count goes down by one for every baseEjectionTime the endpoint has been
// back without an ejection (as Envoy's ejection multiplier decays each interval while the host is
// healthy), so an endpoint that failed once a day is not out for the maximum time forever. At
// most maxEjectionPercent of the cluster is ejected at once (at least one
// endpoint when the percent is above 0, as Envoy). An ejected endpoint returns when its time is
// up, and a success resets its consecutive counts.
//
// The per-endpoint state lives in the pool registry with the endpoint's pool, so it survives
// config swaps; the detector itself (thresholds) is rebuilt with the cluster.
import type { Cluster } from '../../api/schema.ts'
import { parseDuration } from '../../api/duration.ts'
import { monotonic, type Clock } from '../../api/clock.ts'

export interface OutlierState {
  consecutive5xx: number
  consecutiveGateway: number
  consecutiveConnect: number
  /** times ejected (the multiplier of the ejection time) */
  ejections: number
  /** clock ms when the current ejection ends; 0 when not ejected */
  ejectedUntil: number
  /** clock ms when the last ejection ended (-1: never ejected) */
  returnedAt: number
  timer: ReturnType<typeof setTimeout> | null
}

export function newOutlierState(): OutlierState {
  return { consecutive5xx: 0, consecutiveGateway: 0, consecutiveConnect: 0, ejections: 0, ejectedUntil: 0, returnedAt: -1, timer: null }
}

/** Outcome of one try, for the detector. */
export const OUTCOME_OK = 0
export const OUTCOME_5XX = 1
export const OUTCOME_GATEWAY = 2 // 502, 503, 504
export const OUTCOME_CONNECT = 3 // connect failure or timeout
export const OUTCOME_RESET = 4 // reset before a response: counted as a gateway error

export interface OutlierEndpoint {
  readonly key: string
  readonly outlier: OutlierState
}

export class OutlierDetector {
  private readonly n5xx: number
  private readonly nGateway: number
  private readonly nConnect: number
  private readonly baseMs: number
  private readonly maxMs: number
  private readonly maxPercent: number
  private readonly now: Clock
  private readonly endpoints: readonly OutlierEndpoint[]
  /** counters of the cluster, kept across configs by the caller */
  readonly counters: { ejections: number; ejectionsOverflow: number }

  constructor(
    cfg: NonNullable<Cluster['outlierDetection']>,
    endpoints: readonly OutlierEndpoint[],
    counters: { ejections: number; ejectionsOverflow: number } = { ejections: 0, ejectionsOverflow: 0 },
    now: Clock = monotonic,
  ) {
    this.counters = counters
    this.n5xx = cfg.consecutive5xx ?? 5
    this.nGateway = cfg.consecutiveGatewayErrors ?? 0
    this.nConnect = cfg.consecutiveConnectFailures ?? 5
    this.baseMs = cfg.baseEjectionTime === undefined ? 30_000 : parseDuration(cfg.baseEjectionTime)
    this.maxMs = cfg.maxEjectionTime === undefined ? Math.max(300_000, this.baseMs) : parseDuration(cfg.maxEjectionTime)
    this.maxPercent = cfg.maxEjectionPercent ?? 10
    this.endpoints = endpoints
    this.now = now
  }

  /** Record the outcome of a try on `ep`. */
  report(ep: OutlierEndpoint, outcome: number): void {
    const s = ep.outlier
    if (outcome === OUTCOME_OK) {
      s.consecutive5xx = 0
      s.consecutiveGateway = 0
      s.consecutiveConnect = 0
      return
    }
    let trip = false
    if (outcome === OUTCOME_CONNECT) {
      s.consecutiveConnect++
      if (this.nConnect > 0 && s.consecutiveConnect >= this.nConnect) trip = true
    } else {
      s.consecutive5xx++
      if (this.n5xx > 0 && s.consecutive5xx >= this.n5xx) trip = true
      if (outcome !== OUTCOME_5XX) {
        s.consecutiveGateway++
        if (this.nGateway > 0 && s.consecutiveGateway >= this.nGateway) trip = true
      }
    }
    if (trip && !this.isEjected(s)) this.eject(s)
  }

  /** The ejection timer ends it (ejectedUntil back to 0); balancers read only that field. */
  isEjected(s: OutlierState): boolean {
    return s.ejectedUntil !== 0
  }

  /** endpoints ejected right now */
  ejectedCount(): number {
    let n = 0
    for (const e of this.endpoints) if (this.isEjected(e.outlier)) n++
    return n
  }

  private eject(s: OutlierState): void {
    const allowed = this.maxPercent <= 0 ? 0 : Math.max(1, Math.floor((this.endpoints.length * this.maxPercent) / 100))
    if (this.ejectedCount() >= allowed) {
      this.counters.ejectionsOverflow++
      return
    }
    const now = this.now()
    // healthy since it returned: one step down per baseEjectionTime
    if (s.returnedAt >= 0 && this.baseMs > 0) s.ejections = Math.max(0, s.ejections - Math.floor((now - s.returnedAt) / this.baseMs))
    s.ejections++
    this.counters.ejections++
    const ms = Math.min(this.maxMs, this.baseMs * s.ejections)
    s.ejectedUntil = now + ms
    s.consecutive5xx = 0
    s.consecutiveGateway = 0
    s.consecutiveConnect = 0
    if (s.timer !== null) clearTimeout(s.timer)
    s.timer = setTimeout(() => {
      s.timer = null
      s.ejectedUntil = 0
      s.returnedAt = this.now()
    }, ms)
    s.timer.unref()
  }
}
