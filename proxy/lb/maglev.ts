// Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted as in Envoy's maglev_lb.cc.
//
// Each endpoint has a permutation of the table slots: offset = hash32(key) % M,
// skip = hash32b(key) % (M - 1) + 1, slot(j) = (offset + j * skip) % M (M prime, so every skip
// visits all slots). The table is filled in rounds; in round `iteration` an endpoint takes its
// next free preferred slot if iteration * weight >= picks * maxWeight (Envoy's
// `iteration * weight < target_weight` test in exact integer form), so the heaviest endpoint
// takes a slot every round and the others proportionally less often. Endpoints are processed
// sorted by key so the table does not depend on the order given.
//
// Lookup: table[hash32(hashKey) % M]. No key (undefined or '') -> weighted random pick. If the
// slot's endpoint is not eligible (unhealthy, or `avoid`), the following slots are probed; since
// neighbouring slots belong to pseudo-random endpoints (in proportion to their shares), the keys of
// an ejected endpoint spread evenly over the others and come back when it is healthy again.
// (Envoy instead rebuilds the table over the healthy hosts; here health changes need no rebuild.)

import type { Balancer, BalancerOptions, LbEndpoint } from './types.ts'
import { bestMode, byKey, defaultRandom, eligible, normWeight, WeightedSampler } from './common.ts'
import { hash32, hash32b } from './hash.ts'

export const DEFAULT_MAGLEV_TABLE_SIZE = 65537

function isPrime(m: number): boolean {
  if (m < 2 || !Number.isInteger(m)) return false
  if (m % 2 === 0) return m === 2
  for (let d = 3; d * d <= m; d += 2) if (m % d === 0) return false
  return true
}

export class MaglevBalancer<E extends LbEndpoint = LbEndpoint> implements Balancer<E> {
  /** Endpoints sorted by key. */
  private readonly endpoints: readonly E[]
  private readonly sampler: WeightedSampler<E>
  /** Slot -> index into endpoints. */
  private readonly table: Uint16Array | Uint32Array
  readonly tableSize: number

  constructor(endpoints: readonly E[], opts?: BalancerOptions) {
    const eps = endpoints.slice().sort(byKey)
    this.endpoints = eps
    this.sampler = new WeightedSampler(eps, defaultRandom(opts))
    const m = opts?.maglevTableSize ?? DEFAULT_MAGLEV_TABLE_SIZE
    if (!isPrime(m)) throw new RangeError(`maglev: table size ${m} is not a prime`)
    const n = eps.length
    if (n > m) throw new RangeError(`maglev: ${n} endpoints exceed the table size ${m}`)
    this.tableSize = m
    this.table = n <= 0x10000 ? new Uint16Array(n > 0 ? m : 0) : new Uint32Array(m)
    if (n === 0) return

    const next = new Float64Array(n) // next preferred slot of each endpoint
    const skip = new Float64Array(n)
    const weight = new Float64Array(n)
    const picks = new Float64Array(n)
    let maxWeight = 0
    for (let i = 0; i < n; i++) {
      next[i] = hash32(eps[i].key) % m
      skip[i] = (hash32b(eps[i].key) % (m - 1)) + 1
      weight[i] = normWeight(eps[i].weight)
      if (weight[i] > maxWeight) maxWeight = weight[i]
    }
    const owner = new Int32Array(m).fill(-1)
    let filled = 0
    for (let iteration = 1; filled < m; iteration++) {
      for (let i = 0; i < n && filled < m; i++) {
        if (iteration * weight[i] < picks[i] * maxWeight) continue
        picks[i]++
        let c = next[i]
        const s = skip[i]
        while (owner[c] >= 0) {
          c += s
          if (c >= m) c -= m
        }
        owner[c] = i
        c += s
        next[i] = c >= m ? c - m : c
        filled++
      }
    }
    const table = this.table
    for (let j = 0; j < m; j++) table[j] = owner[j]
  }

  pick(hashKey?: string, avoid?: E): E | undefined {
    const eps = this.endpoints
    const n = eps.length
    if (n <= 1) return n === 1 ? eps[0] : undefined
    if (hashKey === undefined || hashKey === '') return this.sampler.pickOne(avoid)
    const table = this.table
    const m = this.tableSize
    const slot = hash32(hashKey) % m
    const e = eps[table[slot]]
    if (e.healthy && e !== avoid) return e
    const mode = bestMode(eps, avoid)
    for (let step = 0, j = slot; step < m; step++) {
      const o = eps[table[j]]
      if (eligible(o, avoid, mode)) return o
      if (++j === m) j = 0
    }
    return this.sampler.pickOne(avoid) // unreachable: every endpoint owns at least one slot
  }

  /** Slots owned per endpoint key (for tests and diagnostics). O(M). */
  slotCounts(): Map<string, number> {
    const counts = new Map<string, number>()
    for (const e of this.endpoints) counts.set(e.key, 0)
    for (let j = 0; j < this.tableSize; j++) {
      const k = this.endpoints[this.table[j]].key
      counts.set(k, (counts.get(k) ?? 0) + 1)
    }
    return counts
  }

  observe(_e: E, _latencyMs: number): void {}

  explain(picked: E, hashKey: string | undefined): Record<string, unknown> {
    if (hashKey === undefined || hashKey === '') return { rule: 'no hash key on the request: a weighted random endpoint' }
    return { rule: 'the maglev table owner of the hash of the key (the next healthy one when it is ejected or was just tried)', hashKey, hash: hash32(hashKey), endpoint: picked.key }
  }
}
