// Smooth weighted round robin (nginx, ngx_http_upstream_get_peer): on every pick each eligible
// endpoint's `current` grows by its weight, the largest `current` wins (first one on ties) and the
// winner's `current` drops by the total eligible weight. Weights 5,1,1 give a,a,b,a,c,a,a: the
// heavy endpoint's turns are interleaved instead of bunched. Ineligible endpoints (unhealthy, or
// `avoid`) neither gain nor win for that pick.
//
// Hot path: with all endpoints eligible the sequence is periodic (after W = sum of weights picks
// every `current` is back to 0), so it is precomputed at config time when W <= 65536 (and
// W * n <= 4M) and pick()
// just reads the next entry, skipping ineligible ones (O(1) instead of O(n)). When no eligible
// entry is found within a few steps (degraded: several unhealthy endpoints) or the weights are too
// large for a table, the dynamic algorithm above runs over the endpoint list, one O(n) pass.

import type { Balancer, BalancerOptions, LbEndpoint } from './types.ts'
import { bestMode, eligible, MODE_STRICT, normWeight } from './common.ts'

const MAX_SCHEDULE = 65536
const MAX_SKIP = 32
const MAX_BUILD_STEPS = 4_000_000 // bound the config-time simulation

export class RoundRobinBalancer<E extends LbEndpoint = LbEndpoint> implements Balancer<E> {
  private readonly endpoints: readonly E[]
  private readonly weights: Float64Array
  private readonly current: Float64Array
  /** One period of the smooth WRR sequence (endpoint indices), or undefined. */
  private readonly schedule: Uint32Array | undefined
  private cursor = 0

  constructor(endpoints: readonly E[], _opts?: BalancerOptions) {
    this.endpoints = endpoints.slice()
    const n = this.endpoints.length
    this.weights = new Float64Array(n)
    this.current = new Float64Array(n)
    let total = 0
    for (let i = 0; i < n; i++) {
      this.weights[i] = normWeight(this.endpoints[i].weight)
      total += this.weights[i]
    }
    this.schedule = n > 1 ? this.buildSchedule(total) : undefined
  }

  /** Simulate one period with everything eligible; keep it if the state comes back to zero. */
  private buildSchedule(total: number): Uint32Array | undefined {
    let g = 0
    for (let i = 0; i < this.weights.length; i++) {
      let a = this.weights[i]
      let b = g
      while (b !== 0) {
        const t = a % b
        a = b
        b = t
      }
      g = a
    }
    const period = total / g
    if (period > MAX_SCHEDULE || period * this.weights.length > MAX_BUILD_STEPS) return undefined
    const w = this.weights
    const cur = new Float64Array(w.length)
    const schedule = new Uint32Array(period)
    for (let p = 0; p < period; p++) {
      let best = 0
      for (let i = 0; i < w.length; i++) {
        cur[i] += w[i]
        if (cur[i] > cur[best]) best = i
      }
      cur[best] -= total
      schedule[p] = best
    }
    for (let i = 0; i < cur.length; i++) if (cur[i] !== 0) return undefined
    return schedule
  }

  pick(_hashKey?: string, avoid?: E): E | undefined {
    const eps = this.endpoints
    const n = eps.length
    if (n <= 1) return n === 1 ? eps[0] : undefined
    const schedule = this.schedule
    if (schedule !== undefined) {
      const len = schedule.length
      let c = this.cursor
      for (let t = 0; t < MAX_SKIP; t++) {
        const e = eps[schedule[c]]
        if (++c === len) c = 0
        if (e.healthy && e !== avoid) {
          this.cursor = c
          return e
        }
      }
    }
    let best = this.round(avoid, MODE_STRICT)
    if (best < 0) best = this.round(avoid, bestMode(eps, avoid))
    return best < 0 ? eps[0] : eps[best]
  }

  private round(avoid: E | undefined, mode: number): number {
    const eps = this.endpoints
    const w = this.weights
    const cur = this.current
    let total = 0
    let best = -1
    let bestCur = 0
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i]
      const ok = mode === MODE_STRICT ? e.healthy && e !== avoid : eligible(e, avoid, mode)
      if (!ok) continue
      const c = cur[i] + w[i]
      cur[i] = c
      total += w[i]
      if (best < 0 || c > bestCur) {
        best = i
        bestCur = c
      }
    }
    if (best >= 0) cur[best] -= total
    return best
  }

  observe(_e: E, _latencyMs: number): void {}

  explain(): Record<string, unknown> {
    return { rule: 'smooth weighted round robin', weights: this.endpoints.map((e) => ({ endpoint: e.key, weight: e.weight })) }
  }
}
