// Adaptive concurrency (issue 17): a limit on the requests in flight to a cluster that follows the
// latency the cluster shows, as Envoy's adaptive_concurrency filter (its gradient controller) does:
//
//   - minRTT: the latency with (almost) no queueing. Measured at start and every minRttInterval
//     (with jitter): the limit is pinned to minConcurrency until minRttRequests requests have
//     finished; minRTT is the `percentile` of their latencies.
//   - every sampleWindow: sampleRTT = the `percentile` of the latencies of the requests that
//     finished in the window; gradient = clamp((minRTT + buffer × minRTT) / sampleRTT, 0.5, 2);
//     limit = clamp(ceil(gradient × limit) + sqrt(gradient × limit), minConcurrency, maxConcurrency).
//     A queue at the upstream raises sampleRTT above minRTT(1 + buffer): the gradient falls below 1
//     and the limit shrinks toward the upstream's real capacity; when the upstream speeds up the
//     gradient rises and the limit grows again (the square root is the headroom that keeps probing).
//   - a request over the limit is refused at once (503, flag UO, WEFT_ERR_CONCURRENCY_LIMIT), before
//     it can queue anywhere.
// The clock is injected (tests drive it); nothing here runs on a timer: windows close when a
// request starts or finishes after their end. Only successful tries are latency samples.
import type { AdaptiveConcurrency as AdaptiveConfig } from '../../api/schema.ts'
import { parseDuration } from '../../api/duration.ts'

export interface AdaptiveSettings {
  sampleWindowMs: number
  percentile: number
  bufferPercent: number
  minRttIntervalMs: number
  minRttRequests: number
  minConcurrency: number
  maxConcurrency: number
  /** fraction of minRttIntervalMs added at random to each interval (default 0.15) */
  jitter: number
}

export const ADAPTIVE_DEFAULTS: AdaptiveSettings = {
  sampleWindowMs: 100,
  percentile: 50,
  bufferPercent: 25,
  minRttIntervalMs: 60_000,
  minRttRequests: 50,
  minConcurrency: 3,
  maxConcurrency: 1000,
  jitter: 0.15,
}

export function adaptiveSettings(c: AdaptiveConfig): AdaptiveSettings {
  const d = ADAPTIVE_DEFAULTS
  return {
    sampleWindowMs: c.sampleWindow === undefined ? d.sampleWindowMs : parseDuration(c.sampleWindow),
    percentile: c.percentile ?? d.percentile,
    bufferPercent: c.buffer ?? d.bufferPercent,
    minRttIntervalMs: c.minRttInterval === undefined ? d.minRttIntervalMs : parseDuration(c.minRttInterval),
    minRttRequests: c.minRttRequests ?? d.minRttRequests,
    minConcurrency: c.minConcurrency ?? d.minConcurrency,
    maxConcurrency: Math.max(c.maxConcurrency ?? d.maxConcurrency, c.minConcurrency ?? d.minConcurrency),
    jitter: d.jitter,
  }
}

function percentileOf(xs: number[], p: number): number {
  xs.sort((a, b) => a - b)
  return xs[Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))]!
}

export class AdaptiveLimiter {
  readonly s: AdaptiveSettings
  private readonly now: () => number
  private readonly random: () => number
  /** requests in flight that this limiter admitted */
  inFlight = 0
  /** the current limit (requests in flight); pinned to minConcurrency while measuring minRTT */
  private gradientLimit: number
  phase: 'min-rtt' | 'gradient' = 'min-rtt'
  minRttMs = 0
  sampleRttMs = 0
  gradient = 1
  /** requests refused over the limit, since start */
  rejected = 0
  /** limit updates since start */
  updates = 0
  private samples: number[] = []
  private windowEnd: number
  private nextMinRttAt = 0

  constructor(s: AdaptiveSettings, now: () => number = () => performance.now(), random: () => number = Math.random) {
    this.s = s
    this.now = now
    this.random = random
    this.gradientLimit = s.minConcurrency
    this.windowEnd = now() + s.sampleWindowMs
  }

  get limit(): number {
    return this.phase === 'min-rtt' ? this.s.minConcurrency : this.gradientLimit
  }

  /** May one more request go? On true the caller must call finish() once it is over. */
  admit(): boolean {
    this.tick()
    if (this.inFlight >= this.limit) {
      this.rejected++
      return false
    }
    this.inFlight++
    return true
  }

  /** An admitted request is over: its latency (ms) is a sample when `ok`. */
  finish(latencyMs: number, ok: boolean): void {
    this.inFlight--
    if (ok && latencyMs >= 0) {
      this.samples.push(latencyMs)
      if (this.phase === 'min-rtt' && this.samples.length >= this.s.minRttRequests) this.endMinRtt()
    }
    this.tick()
  }

  private endMinRtt(): void {
    this.minRttMs = percentileOf(this.samples, this.s.percentile)
    this.samples = []
    this.phase = 'gradient'
    const s = this.s
    this.nextMinRttAt = this.now() + s.minRttIntervalMs * (1 + s.jitter * this.random())
    this.windowEnd = this.now() + s.sampleWindowMs
  }

  /** Close the sample window when its time is up: a new limit from its latencies. */
  private tick(): void {
    if (this.phase !== 'gradient') return
    const now = this.now()
    if (now >= this.nextMinRttAt) {
      // measure minRTT again: the queue must drain for the samples to be honest
      this.phase = 'min-rtt'
      this.samples = []
      return
    }
    if (now < this.windowEnd) return
    this.windowEnd = now + this.s.sampleWindowMs
    if (this.samples.length === 0) return
    this.sampleRttMs = percentileOf(this.samples, this.s.percentile)
    this.samples = []
    const min = this.minRttMs
    const g = this.sampleRttMs <= 0 ? 2 : (min + (min * this.s.bufferPercent) / 100) / this.sampleRttMs
    this.gradient = Math.min(2, Math.max(0.5, g))
    const scaled = this.gradient * this.gradientLimit
    this.gradientLimit = Math.min(this.s.maxConcurrency, Math.max(this.s.minConcurrency, Math.floor(Math.ceil(scaled) + Math.sqrt(scaled))))
    this.updates++
  }

  /** The limiter's clock (ms): the start of a try, for its latency. */
  clock(): number {
    return this.now()
  }

  /** For /clusters, metrics and explain. */
  view(): Record<string, unknown> {
    return {
      limit: Math.floor(this.limit),
      inFlight: this.inFlight,
      phase: this.phase,
      minRttMs: Math.round(this.minRttMs * 1000) / 1000,
      sampleRttMs: Math.round(this.sampleRttMs * 1000) / 1000,
      gradient: Math.round(this.gradient * 1000) / 1000,
      rejected: this.rejected,
    }
  }
}
