// Shared pieces of the balancers: endpoint eligibility (health + avoid) and weighted random sampling.
//
// Eligibility rule, common to every policy. Candidates are the healthy endpoints if any is healthy,
// else all of them (panic mode: better to try an ejected endpoint than to fail the request). Among
// the candidates, `avoid` is excluded if any other candidate remains. This reduces to four modes:
//   STRICT   healthy && !== avoid   whenever at least one such endpoint exists (the normal case)
//   HEALTHY  healthy                avoid is the only healthy endpoint: use it
//   OTHER    !== avoid              no healthy endpoint at all: any but avoid
//   ANY      everything             the only endpoint is avoid (and it is unhealthy)
// Balancers try the STRICT rule first on their natural choice (O(1)); only when that fails do they
// compute the mode with bestMode (O(n)) and search again under it.

import type { LbEndpoint } from './types.ts'

export const MODE_STRICT = 0
export const MODE_HEALTHY = 1
export const MODE_OTHER = 2
export const MODE_ANY = 3

export function eligible(e: LbEndpoint, avoid: LbEndpoint | undefined, mode: number): boolean {
  switch (mode) {
    case MODE_STRICT:
      return e.healthy && e !== avoid
    case MODE_HEALTHY:
      return e.healthy
    case MODE_OTHER:
      return e !== avoid
    default:
      return true
  }
}

/** The strictest mode under which at least one endpoint is eligible (see above). O(n). */
export function bestMode(endpoints: readonly LbEndpoint[], avoid: LbEndpoint | undefined): number {
  let avoidHealthy = false
  let other = false
  for (let i = 0; i < endpoints.length; i++) {
    const e = endpoints[i]
    if (e === avoid) {
      if (e.healthy) avoidHealthy = true
    } else {
      if (e.healthy) return MODE_STRICT
      other = true
    }
  }
  if (avoidHealthy) return MODE_HEALTHY
  return other ? MODE_OTHER : MODE_ANY
}

/** Weight as a positive integer (the config guarantees it; be defensive anyway). */
export function normWeight(w: number): number {
  return w >= 1 && Number.isFinite(w) ? Math.floor(w) : 1
}

export function byKey(a: LbEndpoint, b: LbEndpoint): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0
}

export function defaultRandom(opts: { random?: () => number } | undefined): () => number {
  return opts?.random ?? Math.random
}

/**
 * Weighted random choice over a fixed endpoint list (weights read once, at construction).
 * Uniform when all weights are equal, else binary search over cumulative weights: O(log n), no
 * allocation. pickOne/pickTwo apply the eligibility rule; pickTwo leaves its result in
 * `first`/`second` (indices) to avoid allocating a pair.
 */
export class WeightedSampler<E extends LbEndpoint> {
  readonly endpoints: readonly E[]
  readonly n: number
  readonly uniform: boolean
  /** cum[i] = sum of weights[0..i]. */
  readonly cum: Float64Array
  readonly weights: Float64Array
  readonly total: number
  readonly random: () => number
  first = 0
  second = 0

  constructor(endpoints: readonly E[], random: () => number) {
    this.endpoints = endpoints
    this.n = endpoints.length
    this.random = random
    this.weights = new Float64Array(this.n)
    this.cum = new Float64Array(this.n)
    let total = 0
    let uniform = true
    for (let i = 0; i < this.n; i++) {
      const w = normWeight(endpoints[i].weight)
      if (i > 0 && w !== this.weights[0]) uniform = false
      this.weights[i] = w
      total += w
      this.cum[i] = total
    }
    this.total = total
    this.uniform = uniform
  }

  /** Smallest i with cum[i] > x (x in [0, total)). */
  private search(x: number): number {
    const cum = this.cum
    let lo = 0
    let hi = this.n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cum[mid] > x) hi = mid
      else lo = mid + 1
    }
    return lo
  }

  /** A random index, weighted. Requires n >= 1. */
  index(): number {
    const r = this.random()
    if (this.uniform) return Math.floor(r * this.n)
    return this.search(r * this.total)
  }

  /** A random index other than a, weighted (sampling without replacement). Requires n >= 2. */
  other(a: number): number {
    const r = this.random()
    if (this.uniform) {
      const i = Math.floor(r * (this.n - 1))
      return i >= a ? i + 1 : i
    }
    const wa = this.weights[a]
    let x = r * (this.total - wa)
    if (x >= this.cum[a] - wa) x += wa // skip a's segment
    const i = this.search(x)
    return i === a ? (a + 1 < this.n ? a + 1 : a - 1) : i // guard against float edge cases
  }

  /** Weighted random eligible endpoint; undefined only when there are no endpoints. */
  pickOne(avoid: E | undefined): E | undefined {
    const n = this.n
    if (n === 0) return undefined
    if (n === 1) return this.endpoints[0]
    for (let t = 0; t < 3; t++) {
      const e = this.endpoints[this.index()]
      if (e.healthy && e !== avoid) return e
    }
    const mode = bestMode(this.endpoints, avoid)
    const i = this.linearOne(avoid, mode, -1)
    return i < 0 ? this.endpoints[0] : this.endpoints[i]
  }

  /**
   * Two distinct weighted random eligible endpoints into first/second. Returns how many were
   * found: 2, or 1 when only one endpoint is eligible (then only `first` is set), 0 if n = 0.
   */
  pickTwo(avoid: E | undefined): number {
    const n = this.n
    const eps = this.endpoints
    if (n === 0) return 0
    if (n === 1) {
      this.first = 0
      return 1
    }
    // Fast path: sample under the strict rule, a few retries per slot.
    let a = this.index()
    let ok = eps[a].healthy && eps[a] !== avoid
    for (let t = 0; t < 2 && !ok; t++) {
      a = this.index()
      ok = eps[a].healthy && eps[a] !== avoid
    }
    if (ok) {
      let b = this.other(a)
      let okb = eps[b].healthy && eps[b] !== avoid
      for (let t = 0; t < 2 && !okb; t++) {
        b = this.other(a)
        okb = eps[b].healthy && eps[b] !== avoid
      }
      if (okb) {
        this.first = a
        this.second = b
        return 2
      }
    }
    // Slow path (degraded: unhealthy endpoints or avoid hit): exact linear sampling.
    const mode = bestMode(eps, avoid)
    const i = this.linearOne(avoid, mode, -1)
    if (i < 0) return 0
    this.first = i
    const j = this.linearOne(avoid, mode, i)
    if (j < 0) return 1
    this.second = j
    return 2
  }

  /** Weighted random index among endpoints eligible under mode, excluding index `skip`; -1 if none. O(n). */
  private linearOne(avoid: E | undefined, mode: number, skip: number): number {
    const eps = this.endpoints
    const w = this.weights
    let total = 0
    let last = -1
    for (let i = 0; i < this.n; i++) {
      if (i !== skip && eligible(eps[i], avoid, mode)) {
        total += w[i]
        last = i
      }
    }
    if (last < 0) return -1
    const x = this.random() * total
    let acc = 0
    for (let i = 0; i < last; i++) {
      if (i !== skip && eligible(eps[i], avoid, mode)) {
        acc += w[i]
        if (acc > x) return i
      }
    }
    return last
  }
}
