// Consistent hash ring (ketama style). Each endpoint gets a number of points on a 32-bit ring,
// proportional to its weight, at hash32(`${key}_${i}`); a request key maps to the first point
// clockwise from hash32(hashKey) (binary search). No key (undefined or '') -> weighted random pick.
// If the owner of that point is not eligible (unhealthy, or `avoid`), the ring is walked forward to
// the next eligible owner, so an ejected endpoint's keys spread over its ring neighbours and
// return to it once it is healthy again.
//
// Ring size: weights are reduced by their gcd and each unit of reduced weight gets k points, k the
// smallest power of two with k * totalWeight >= minRingSize (1024 default). Quantizing k keeps the
// point count per endpoint stable when an endpoint is added or removed, so only the keys of the
// removed endpoint move (about 1/N of them); Envoy's formula (scale from the smallest normalized
// weight) re-sizes every endpoint's share of points on membership changes and remaps more.
// Above maxRingSize, points are scaled down proportionally (at least one per endpoint).

import type { Balancer, BalancerOptions, LbEndpoint } from './types.ts'
import { bestMode, byKey, defaultRandom, eligible, normWeight, WeightedSampler } from './common.ts'
import { hash32, murmur3Series } from './hash.ts'

const DEFAULT_MIN_RING = 1024
const DEFAULT_MAX_RING = 8 * 1024 * 1024

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b
    a = b
    b = t
  }
  return a
}

export class RingHashBalancer<E extends LbEndpoint = LbEndpoint> implements Balancer<E> {
  /** Endpoints sorted by key (the ring does not depend on the order given). */
  private readonly endpoints: readonly E[]
  private readonly sampler: WeightedSampler<E>
  /** Ring point hashes, ascending. */
  private readonly hashes: Uint32Array
  /** Owner of each ring point (index into endpoints). */
  private readonly owners: Uint32Array
  /** First point index of each top-bits bucket of the hash space (+ end sentinel). */
  private readonly lut: Uint32Array
  private readonly shift: number

  constructor(endpoints: readonly E[], opts?: BalancerOptions) {
    const eps = endpoints.slice().sort(byKey)
    this.endpoints = eps
    this.sampler = new WeightedSampler(eps, defaultRandom(opts))
    const n = eps.length
    const minRing = Math.max(1, Math.floor(opts?.minRingSize ?? DEFAULT_MIN_RING))
    const maxRing = Math.max(minRing, Math.floor(opts?.maxRingSize ?? DEFAULT_MAX_RING))

    const counts = new Float64Array(n)
    let g = 0
    for (let i = 0; i < n; i++) g = gcd(normWeight(eps[i].weight), g)
    let total = 0
    for (let i = 0; i < n; i++) {
      counts[i] = normWeight(eps[i].weight) / g
      total += counts[i]
    }
    let size = 0
    if (n > 0) {
      if (total <= maxRing) {
        let k = 1
        while (k * total < minRing && k * 2 * total <= maxRing) k *= 2
        for (let i = 0; i < n; i++) counts[i] *= k
        size = total * k
      } else {
        const scale = maxRing / total
        for (let i = 0; i < n; i++) {
          counts[i] = Math.max(1, Math.floor(counts[i] * scale))
          size += counts[i]
        }
      }
    }

    // Points in (endpoint, replica) order, then a stable radix sort by hash: ties (2^-32 per
    // pair) keep that order, so the ring depends only on the endpoint keys and weights.
    let hashes = new Uint32Array(size)
    let owner = new Uint32Array(size)
    let p = 0
    for (let i = 0; i < n; i++) {
      murmur3Series(eps[i].key + '_', counts[i], 0, hashes, p)
      owner.fill(i, p, p + counts[i])
      p += counts[i]
    }
    // LSD radix sort, 3 passes of 11 bits.
    const tmpH = new Uint32Array(size)
    const tmpO = new Uint32Array(size)
    const bucket = new Uint32Array(2048)
    let srcH = hashes, srcO = owner, dstH = tmpH, dstO = tmpO
    for (let shift = 0; shift < 33; shift += 11) {
      bucket.fill(0)
      for (let j = 0; j < size; j++) bucket[(srcH[j] >>> shift) & 2047]++
      let sum = 0
      for (let b = 0; b < 2048; b++) {
        const c = bucket[b]
        bucket[b] = sum
        sum += c
      }
      for (let j = 0; j < size; j++) {
        const d = bucket[(srcH[j] >>> shift) & 2047]++
        dstH[d] = srcH[j]
        dstO[d] = srcO[j]
      }
      const th = srcH, to = srcO
      srcH = dstH
      srcO = dstO
      dstH = th
      dstO = to
    }
    hashes = srcH
    owner = srcO
    this.hashes = hashes
    this.owners = owner
    // Lookup table on the top bits of the hash: lut[b] = first point with hash >= b << shift, so a
    // lookup binary-searches only its bucket (about one point) instead of the whole ring.
    let bits = 8
    while (bits < 16 && 1 << bits < size) bits++
    this.shift = 32 - bits
    const buckets = 1 << bits
    const lut = new Uint32Array(buckets + 1)
    for (let b = 0, j = 0; b <= buckets; b++) {
      const start = b * 2 ** this.shift // up to 2^32 for b = buckets
      while (j < size && hashes[j] < start) j++
      lut[b] = j
    }
    this.lut = lut
  }

  /** Number of points on the ring. */
  get ringSize(): number {
    return this.hashes.length
  }

  pick(hashKey?: string, avoid?: E): E | undefined {
    const n = this.endpoints.length
    if (n <= 1) return n === 1 ? this.endpoints[0] : undefined
    if (hashKey === undefined || hashKey === '') return this.sampler.pickOne(avoid)
    const hashes = this.hashes
    const len = hashes.length
    const h = hash32(hashKey)
    // First point with hash >= h, wrapping to 0.
    const b = h >>> this.shift
    let lo = this.lut[b]
    let hi = this.lut[b + 1]
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (hashes[mid] < h) lo = mid + 1
      else hi = mid
    }
    if (lo === len) lo = 0
    const owners = this.owners
    const eps = this.endpoints
    const e = eps[owners[lo]]
    if (e.healthy && e !== avoid) return e
    const mode = bestMode(eps, avoid)
    for (let step = 0, j = lo; step < len; step++) {
      const o = eps[owners[j]]
      if (eligible(o, avoid, mode)) return o
      if (++j === len) j = 0
    }
    return this.sampler.pickOne(avoid) // only if an eligible endpoint has no point (capped ring)
  }

  observe(_e: E, _latencyMs: number): void {}

  explain(picked: E, hashKey: string | undefined): Record<string, unknown> {
    if (hashKey === undefined || hashKey === '') return { rule: 'no hash key on the request: a weighted random endpoint' }
    return { rule: 'the ring owner of the hash of the key (the next healthy one when it is ejected or was just tried)', hashKey, hash: hash32(hashKey), endpoint: picked.key }
  }
}
