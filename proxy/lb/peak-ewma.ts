// Peak-EWMA (linkerd2-proxy / tower::load::PeakEwma) with power-of-two-choices selection.
//
// Each endpoint keeps an RTT estimate and the time it was last updated:
//  - observe(rtt): if rtt exceeds the estimate, the estimate jumps to it (peak: react at once to
//    slowness); else it moves toward rtt as an EWMA weighted by recency:
//      decay = exp(-elapsed / decayMs); est = est * decay + rtt * (1 - decay)
//  - when its cost is read (at pick), the estimate first decays toward 0 for the time elapsed
//    (an update with rtt 0, exactly as tower's RttEstimate::decay), so an endpoint that stopped
//    receiving traffic because it was slow becomes cheap again after a few decay windows and gets
//    probed: if still slow, the next observation pushes it back up.
//  cost = est * (active + 1)
// Two distinct endpoints are sampled (weighted when weights differ) and the cheaper one wins
// (ties: fewer active, then the first sampled). Endpoints not yet observed cost defaultRtt * active
// (not active + 1: an idle new endpoint is free, so it gets traffic at once; see cost()),
// defaultRtt being the mean estimate of the observed endpoints, or opts.defaultRttMs (30 ms as
// linkerd2-proxy) before any observation.
// Time comes from the injected clock (opts.now), in ms.

import type { Balancer, BalancerOptions, Clock, LbEndpoint } from './types.ts'
import { defaultRandom, WeightedSampler } from './common.ts'

const DEFAULT_DECAY_MS = 10_000
const DEFAULT_RTT_MS = 30

export class PeakEwmaBalancer<E extends LbEndpoint = LbEndpoint> implements Balancer<E> {
  private readonly endpoints: readonly E[]
  private readonly sampler: WeightedSampler<E>
  private readonly index: Map<E, number>
  private readonly now: Clock
  private readonly decayMs: number
  private readonly defaultRttMs: number
  /** RTT estimate (ms) per endpoint; meaningful once observed[i] is 1. */
  private readonly est: Float64Array
  /** Clock time of the last update of est[i]. */
  private readonly updatedAt: Float64Array
  private readonly observed: Uint8Array
  private observedCount = 0
  /** Sum of est[i] over observed endpoints (for the default RTT of unobserved ones). */
  private estSum = 0

  constructor(endpoints: readonly E[], opts?: BalancerOptions) {
    this.endpoints = endpoints.slice()
    const n = this.endpoints.length
    this.sampler = new WeightedSampler(this.endpoints, defaultRandom(opts))
    this.index = new Map()
    for (let i = 0; i < n; i++) this.index.set(this.endpoints[i], i)
    this.now = opts?.now ?? (() => performance.now())
    const decay = opts?.decayMs
    this.decayMs = decay !== undefined && decay > 0 ? decay : DEFAULT_DECAY_MS
    const rtt = opts?.defaultRttMs
    this.defaultRttMs = rtt !== undefined && rtt >= 0 ? rtt : DEFAULT_RTT_MS
    this.est = new Float64Array(n)
    this.updatedAt = new Float64Array(n)
    this.observed = new Uint8Array(n)
  }

  pick(_hashKey?: string, avoid?: E): E | undefined {
    const eps = this.endpoints
    const n = eps.length
    if (n <= 1) return n === 1 ? eps[0] : undefined
    const s = this.sampler
    const found = s.pickTwo(avoid)
    if (found === 0) return undefined
    const ia = s.first
    const a = eps[ia]
    if (found === 1) return a
    const ib = s.second
    const b = eps[ib]
    const now = this.now()
    const ca = this.cost(ia, now)
    const cb = this.cost(ib, now)
    if (cb < ca || (cb === ca && b.active < a.active)) return b
    return a
  }

  observe(e: E, latencyMs: number): void {
    const i = this.index.get(e)
    if (i === undefined || !(latencyMs >= 0) || latencyMs === Infinity) return
    const now = this.now()
    if (this.observed[i] === 0) {
      this.observed[i] = 1
      this.observedCount++
      this.est[i] = latencyMs
      this.estSum += latencyMs
      this.updatedAt[i] = now
      return
    }
    const old = this.est[i]
    let next: number
    if (latencyMs > old) {
      next = latencyMs
    } else {
      const elapsed = now - this.updatedAt[i]
      const decay = elapsed > 0 ? Math.exp(-elapsed / this.decayMs) : 1
      next = old * decay + latencyMs * (1 - decay)
    }
    this.est[i] = next
    this.estSum += next - old
    this.updatedAt[i] = now
  }

  explain(picked: E): Record<string, unknown> {
    const eps = this.endpoints
    const now = this.now()
    const one = (i: number) => {
      const e = eps[i]!
      // the picked one's count was raised by the dispatch: score it as the comparison did
      const active = e === picked ? e.active - 1 : e.active
      e.active = active
      const cost = this.cost(i, now)
      e.active = e === picked ? active + 1 : active
      return { endpoint: e.key, active, rttMs: Math.round((this.estimate(e) ?? this.defaultRttMs) * 1000) / 1000, cost: Math.round(cost * 1000) / 1000 }
    }
    if (eps.length <= 1) return { candidates: eps.map((_, i) => one(i)) }
    const a = this.sampler.first
    const b = this.sampler.second
    return { rule: 'two random choices, lower cost wins (decayed peak RTT x (requests in flight + 1))', candidates: (a === b ? [a] : [a, b]).map(one) }
  }

  /** Current RTT estimate of an endpoint in ms (decayed to now), or undefined if never observed. For metrics/debugging. */
  estimate(e: E): number | undefined {
    const i = this.index.get(e)
    if (i === undefined || this.observed[i] === 0) return undefined
    const elapsed = this.now() - this.updatedAt[i]
    return elapsed > 0 ? this.est[i] * Math.exp(-elapsed / this.decayMs) : this.est[i]
  }

  private cost(i: number, now: number): number {
    const active = this.endpoints[i].active
    if (this.observed[i] === 0) {
      // Not observed yet: charged the default RTT per request in flight, free when idle, so a new
      // endpoint gets a first request right away (then it is observed) and, under concurrency,
      // about as many in flight as its competitors until its first response.
      const c = this.observedCount
      return active > 0 ? (c > 0 ? this.estSum / c : this.defaultRttMs) * active : 0
    }
    const pending = active > 0 ? active + 1 : 1
    // Decay toward 0 for the time since the last update (tower's RttEstimate::decay).
    const elapsed = now - this.updatedAt[i]
    let est = this.est[i]
    if (elapsed > 0) {
      const next = est * Math.exp(-elapsed / this.decayMs)
      this.estSum += next - est
      this.est[i] = next
      this.updatedAt[i] = now
      est = next
    }
    return est * pending
  }
}
