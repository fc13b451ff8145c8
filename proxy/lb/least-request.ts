// Least request by the power of two choices: sample two distinct endpoints at random (weighted by
// weight when weights differ, uniform otherwise) and take the one with fewer requests in flight
// (`active`, maintained by the caller); on a tie the first sampled wins. P2C avoids the herd
// behaviour of a global "least active" pick while staying O(log n) and allocation-free.

import type { Balancer, BalancerOptions, LbEndpoint } from './types.ts'
import { defaultRandom, WeightedSampler } from './common.ts'

export class LeastRequestBalancer<E extends LbEndpoint = LbEndpoint> implements Balancer<E> {
  private readonly endpoints: readonly E[]
  private readonly sampler: WeightedSampler<E>

  constructor(endpoints: readonly E[], opts?: BalancerOptions) {
    this.endpoints = endpoints.slice()
    this.sampler = new WeightedSampler(this.endpoints, defaultRandom(opts))
  }

  pick(_hashKey?: string, avoid?: E): E | undefined {
    const eps = this.endpoints
    const n = eps.length
    if (n <= 1) return n === 1 ? eps[0] : undefined
    const s = this.sampler
    const found = s.pickTwo(avoid)
    if (found === 0) return undefined
    const a = eps[s.first]
    if (found === 1) return a
    const b = eps[s.second]
    return b.active < a.active ? b : a
  }

  observe(_e: E, _latencyMs: number): void {}

  explain(picked: E): Record<string, unknown> {
    const eps = this.endpoints
    if (eps.length <= 1) return { candidates: eps.map((e) => ({ endpoint: e.key, active: e.active })) }
    const a = eps[this.sampler.first]!
    const b = eps[this.sampler.second]!
    // the picked one's count was raised by the dispatch: show what the comparison saw
    const seen = (e: E) => (e === picked ? e.active - 1 : e.active)
    return { rule: 'two random choices, fewer requests in flight wins', candidates: (a === b ? [a] : [a, b]).map((e) => ({ endpoint: e.key, active: seen(e) })) }
  }
}
