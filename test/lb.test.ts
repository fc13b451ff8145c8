import t from 'tap'
import {
  createBalancer,
  hash32,
  hash32b,
  LeastRequestBalancer,
  MaglevBalancer,
  murmur3,
  murmur3Series,
  PeakEwmaBalancer,
  RingHashBalancer,
  RoundRobinBalancer,
  type BalancerPolicy,
  type LbEndpoint,
} from '../proxy/lb/index.ts'

// ---- helpers -------------------------------------------------------------------------------------

/** mulberry32: small seeded PRNG in [0,1). */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function ep(key: string, weight = 1): LbEndpoint {
  return { key, weight, active: 0, healthy: true }
}

function eps(n: number, weight = 1): LbEndpoint[] {
  const out: LbEndpoint[] = []
  for (let i = 0; i < n; i++) out.push(ep(`10.0.${i >> 8}.${i & 255}:8080`, weight))
  return out
}

function count(picks: (LbEndpoint | undefined)[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const p of picks) if (p) m.set(p.key, (m.get(p.key) ?? 0) + 1)
  return m
}

const KEYS: string[] = []
for (let i = 0; i < 20000; i++) KEYS.push(`user-${i}-session`)

/** Reference byte-oriented MurmurHash3 x86_32. */
function murmur3Bytes(b: Uint8Array, seed: number): number {
  let h = seed >>> 0
  const n = b.length
  const blocks = n & ~3
  for (let i = 0; i < blocks; i += 4) {
    let k = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const rem = n & 3
  if (rem > 0) {
    let k = 0
    if (rem === 3) k ^= b[blocks + 2] << 16
    if (rem >= 2) k ^= b[blocks + 1] << 8
    k ^= b[blocks]
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
  }
  h ^= n
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

// ---- hash ----------------------------------------------------------------------------------------

t.test('hash: murmur3 over UTF-16LE code units', async (t) => {
  // Published MurmurHash3 x86_32 vectors validate the reference implementation.
  const enc = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'))
  t.equal(murmur3Bytes(enc(''), 0), 0)
  t.equal(murmur3Bytes(enc(''), 1), 0x514e28b7)
  t.equal(murmur3Bytes(enc(''), 0xffffffff), 0x81f16f39)
  t.equal(murmur3Bytes(new Uint8Array(4), 0), 0x2362f9de)
  t.equal(murmur3Bytes(enc('aaaa'), 0x9747b28c), 0x5a97808a)
  t.equal(murmur3Bytes(enc('abc'), 0x9747b28c), 0xc84a62dd)
  t.equal(murmur3Bytes(enc('Hello, world!'), 0x9747b28c), 0x24884cba)
  // murmur3(string) equals the reference over the string's UTF-16LE bytes, non-latin1 included.
  const samples = ['', 'a', 'ab', 'abc', '10.0.0.1:8080', 'user-42', 'héllo wörld', '日本語テキスト', '😀x']
  for (const s of samples) {
    const bytes = new Uint8Array(Buffer.from(s, 'utf16le'))
    t.equal(murmur3(s, 0), murmur3Bytes(bytes, 0), `seed 0: ${s}`)
    t.equal(murmur3(s, 0x9747b28c), murmur3Bytes(bytes, 0x9747b28c), `seed 2: ${s}`)
  }
  // murmur3Series(prefix, n) = murmur3(prefix + r) for r < n, odd and even prefix lengths.
  for (const prefix of ['', 'a', 'ab', '10.0.0.1:8080_', '10.0.0.12:8080_']) {
    const out = new Uint32Array(1200)
    murmur3Series(prefix, 1100, 7, out, 100)
    let bad = 0
    for (let r = 0; r < 1100; r++) if (out[100 + r] !== murmur3(prefix + r, 7)) bad++
    t.equal(bad, 0, `series '${prefix}'`)
  }
  t.not(hash32('abc'), hash32b('abc'))
  t.ok(hash32('x') >= 0 && hash32('x') <= 0xffffffff)
})

t.test('hash: distribution over buckets', async (t) => {
  const buckets = 64
  const n = 64000
  const c1 = new Float64Array(buckets)
  const c2 = new Float64Array(buckets)
  for (let i = 0; i < n; i++) {
    const s = `10.1.${i >> 8}.${i & 255}:80`
    c1[hash32(s) % buckets]++
    c2[hash32b(s) >>> 26]++ // high bits too
  }
  const expect = n / buckets
  let chi1 = 0
  let chi2 = 0
  for (let b = 0; b < buckets; b++) {
    chi1 += (c1[b] - expect) ** 2 / expect
    chi2 += (c2[b] - expect) ** 2 / expect
  }
  // 63 degrees of freedom: mean 63, p=0.999 quantile ~104.
  t.ok(chi1 < 110, `chi2 low bits ${chi1.toFixed(1)}`)
  t.ok(chi2 < 110, `chi2 high bits ${chi2.toFixed(1)}`)
})

// ---- round robin ---------------------------------------------------------------------------------

t.test('roundRobin: smooth weighted sequence 5,1,1', async (t) => {
  const [a, b, c] = [ep('a', 5), ep('b', 1), ep('c', 1)]
  const lb = createBalancer('roundRobin', [a, b, c])
  const seq: string[] = []
  for (let i = 0; i < 14; i++) seq.push(lb.pick()!.key)
  t.same(seq, ['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b', 'a', 'c', 'a', 'a'])
})

t.test('roundRobin: equal weights cycle, exact proportions', async (t) => {
  const lb = new RoundRobinBalancer([ep('a'), ep('b'), ep('c')])
  const seq: string[] = []
  for (let i = 0; i < 6; i++) seq.push(lb.pick()!.key)
  t.same(seq, ['a', 'b', 'c', 'a', 'b', 'c'])
  const w = new RoundRobinBalancer([ep('a', 3), ep('b', 2), ep('c', 5)])
  const picks = []
  for (let i = 0; i < 1000; i++) picks.push(w.pick())
  t.same(Object.fromEntries(count(picks)), { a: 300, b: 200, c: 500 })
})

/** Reference smooth WRR (nginx), straight from the description. */
function nginxSequence(weights: number[], picks: number): number[] {
  const cur = weights.map(() => 0)
  const total = weights.reduce((a, b) => a + b, 0)
  const out: number[] = []
  for (let p = 0; p < picks; p++) {
    let best = -1
    for (let i = 0; i < weights.length; i++) {
      cur[i] += weights[i]
      if (best < 0 || cur[i] > cur[best]) best = i
    }
    cur[best] -= total
    out.push(best)
  }
  return out
}

t.test('roundRobin: matches nginx for random weights (precomputed and dynamic paths)', async (t) => {
  const random = seeded(11)
  const cases = [
    Array.from({ length: 7 }, () => 1 + Math.floor(random() * 10)), // precomputed schedule
    Array.from({ length: 100 }, () => 1 + Math.floor(random() * 100)),
    [100000, 1, 1], // period > 65536: dynamic
    [4, 6, 10], // gcd 2
  ]
  for (const weights of cases) {
    const list = weights.map((w, i) => ep(`e${i}`, w))
    const lb = createBalancer('roundRobin', list)
    const want = nginxSequence(weights, 3000)
    let mismatch = -1
    for (let p = 0; p < want.length; p++) {
      if (lb.pick() !== list[want[p]]) {
        mismatch = p
        break
      }
    }
    t.equal(mismatch, -1, `weights ${weights.slice(0, 8).join(',')}${weights.length > 8 ? '...' : ''}`)
  }
})

t.test('roundRobin: unhealthy skipped, avoid honoured', async (t) => {
  const [a, b, c] = [ep('a'), ep('b'), ep('c')]
  const lb = createBalancer('roundRobin', [a, b, c])
  b.healthy = false
  const picks = []
  for (let i = 0; i < 100; i++) picks.push(lb.pick())
  t.same(Object.fromEntries(count(picks)), { a: 50, c: 50 })
  for (let i = 0; i < 20; i++) t.equal(lb.pick(undefined, a), c)
  // avoid is the only healthy endpoint: use it rather than an unhealthy one
  c.healthy = false
  t.equal(lb.pick(undefined, a), a)
  // none healthy (panic): still pick, and still avoid
  a.healthy = false
  const panic = []
  for (let i = 0; i < 30; i++) panic.push(lb.pick(undefined, a))
  t.notOk(panic.includes(a))
  t.equal(count(panic).size, 2)
  // dynamic path (weights too large for a precomputed schedule): the heavy endpoint ejected
  const [h, x, y] = [ep('h', 100000), ep('x', 1), ep('y', 2)]
  const big = createBalancer('roundRobin', [h, x, y])
  h.healthy = false
  const seq: string[] = []
  for (let i = 0; i < 6; i++) seq.push(big.pick()!.key)
  t.same(seq, ['y', 'x', 'y', 'y', 'x', 'y'])
})

// ---- least request -------------------------------------------------------------------------------

t.test('leastRequest: P2C prefers the less loaded endpoint', async (t) => {
  const [a, b, c] = [ep('a'), ep('b'), ep('c')]
  const lb = createBalancer('leastRequest', [a, b, c], { random: seeded(1) })
  a.active = 10
  const picks = []
  for (let i = 0; i < 3000; i++) picks.push(lb.pick())
  const m = count(picks)
  t.equal(m.get('a') ?? 0, 0, 'the loaded endpoint always loses its pair')
  t.ok(Math.abs(m.get('b')! - 1500) < 150, `b ${m.get('b')}`)
  // Two endpoints: always the less loaded.
  const [x, y] = [ep('x'), ep('y')]
  const two = new LeastRequestBalancer([x, y], { random: seeded(2) })
  y.active = 1
  for (let i = 0; i < 50; i++) t.equal(two.pick(), x)
})

t.test('leastRequest: simulated load stays balanced', async (t) => {
  const list = eps(10)
  const random = seeded(3)
  const lb = createBalancer('leastRequest', list, { random })
  // Keep 100 requests in flight; each pick completes a random in-flight request first.
  const inflight: LbEndpoint[] = []
  let rangeSum = 0
  let samples = 0
  for (let i = 0; i < 20000; i++) {
    if (inflight.length >= 100) {
      const k = Math.floor(random() * inflight.length)
      inflight[k].active--
      inflight[k] = inflight[inflight.length - 1]
      inflight.pop()
    }
    const e = lb.pick()!
    e.active++
    inflight.push(e)
    if (i >= 1000 && i % 10 === 0) {
      let max = 0
      let min = Infinity
      for (const x of list) {
        if (x.active > max) max = x.active
        if (x.active < min) min = x.active
      }
      rangeSum += max - min
      samples++
    }
  }
  // 10 in flight per endpoint on average: a uniform random choice averages a max-min spread of
  // ~9.7 in this simulation, P2C ~4.
  const avg = rangeSum / samples
  t.ok(avg < 5.5, `average spread of active ${avg.toFixed(2)}`)
})

t.test('leastRequest: weights, one endpoint, unhealthy, avoid', async (t) => {
  const [a, b] = [ep('a', 3), ep('b', 1)]
  const lb = createBalancer('leastRequest', [a, b, ep('c', 1)], { random: seeded(4) })
  // All idle: ties go to the first sampled, which is weighted.
  const picks = []
  for (let i = 0; i < 10000; i++) picks.push(lb.pick())
  const m = count(picks)
  t.ok(m.get('a')! > m.get('b')! * 2, `a ${m.get('a')} b ${m.get('b')}`)
  const single = ep('s')
  single.healthy = false
  t.equal(createBalancer('leastRequest', [single]).pick(), single)
  b.healthy = false
  let bad = 0
  for (let i = 0; i < 200; i++) if (lb.pick(undefined, a)!.key !== 'c') bad++
  t.equal(bad, 0, 'neither unhealthy b nor avoided a')
})

// ---- peak EWMA -----------------------------------------------------------------------------------

t.test('peakEwma: moves traffic away from a slow endpoint and back after decay', async (t) => {
  const list = [ep('a'), ep('b'), ep('c')]
  let now = 0
  const lb = new PeakEwmaBalancer(list, { random: seeded(5), now: () => now, decayMs: 1000 })
  const latency = new Map([
    ['a', 10],
    ['b', 500],
    ['c', 10],
  ])
  const run = (n: number): Map<string, number> => {
    const picks = []
    for (let i = 0; i < n; i++) {
      now += 1
      const e = lb.pick()!
      picks.push(e)
      lb.observe(e, latency.get(e.key)!)
    }
    return count(picks)
  }
  run(300) // warm up: b gets observed as slow
  t.ok(lb.estimate(list[1])! > 100)
  const slow = run(2000)
  t.ok((slow.get('b') ?? 0) < 20, `slow b got ${slow.get('b') ?? 0}/2000`)
  // b recovers: its idle estimate decays toward 0, it is probed, observed fast, and takes traffic again.
  latency.set('b', 10)
  run(8000)
  const back = run(3000)
  t.ok(back.get('b')! > 700, `recovered b got ${back.get('b')}/3000`)
  t.ok(lb.estimate(list[1])! < 20)
})

t.test('peakEwma: peak jump, EWMA decay, active multiplies cost', async (t) => {
  const [a, b] = [ep('a'), ep('b')]
  let now = 0
  const lb = new PeakEwmaBalancer([a, b], { random: seeded(6), now: () => now, decayMs: 1000 })
  lb.observe(a, 100)
  t.equal(lb.estimate(a), 100)
  lb.observe(a, 300) // higher: jump
  t.equal(lb.estimate(a), 300)
  now += 1000 // one decay window, then a lower observation: est = 300/e + 100(1 - 1/e)
  lb.observe(a, 100)
  t.ok(Math.abs(lb.estimate(a)! - (300 * Math.exp(-1) + 100 * (1 - Math.exp(-1)))) < 1e-9)
  t.equal(lb.estimate(b), undefined)
  // b observed faster than a: b wins until its load makes it costlier
  lb.observe(b, 50)
  a.active = 0
  b.active = 0
  t.equal(lb.pick(), b, 'b is faster')
  b.active = 9 // 50 * 10 > ~173 * 1
  t.equal(lb.pick(), a, 'b is faster but too loaded')
  t.equal(lb.pick(undefined, a), b, 'avoid')
})

t.test('peakEwma: new endpoints get traffic, unhealthy skipped', async (t) => {
  const list = [ep('a'), ep('b'), ep('c')]
  let now = 0
  const lb = createBalancer('peakEwma', list, { random: seeded(7), now: () => now })
  lb.observe(list[0], 20)
  lb.observe(list[1], 20)
  const picks = []
  for (let i = 0; i < 300; i++) {
    now++
    const e = lb.pick()!
    picks.push(e)
    lb.observe(e, 20)
  }
  t.ok(count(picks).get('c')! > 50, 'unobserved endpoint is picked')
  list[2].healthy = false
  let bad = 0
  for (let i = 0; i < 100; i++) if (lb.pick() === list[2]) bad++
  t.equal(bad, 0)
})

// ---- ring hash -----------------------------------------------------------------------------------

function mapKeys(lb: { pick(k?: string): LbEndpoint | undefined }): string[] {
  return KEYS.map((k) => lb.pick(k)!.key)
}

for (const policy of ['ringHash', 'maglev'] as const) {
  t.test(`${policy}: same key -> same endpoint, independent of endpoint order`, async (t) => {
    const list = eps(5)
    const lb1 = createBalancer(policy, list)
    const lb2 = createBalancer(policy, list.slice().reverse())
    let same = 0
    for (let i = 0; i < 2000; i++) {
      const k = KEYS[i]
      const p = lb1.pick(k)
      if (p === lb1.pick(k) && p === lb2.pick(k)) same++
    }
    t.equal(same, 2000)
  })

  t.test(`${policy}: keys spread by weight`, async (t) => {
    const list = [ep('10.0.0.1:80', 1), ep('10.0.0.2:80', 2), ep('10.0.0.3:80', 3), ep('10.0.0.4:80', 4)]
    const lb = createBalancer(policy, list)
    const m = count(KEYS.map((k) => lb.pick(k)))
    const tol = policy === 'maglev' ? 0.06 : 0.2
    for (const e of list) {
      const share = m.get(e.key)! / KEYS.length
      const want = e.weight / 10
      t.ok(Math.abs(share - want) / want < tol, `${e.key} share ${share.toFixed(3)} want ${want}`)
    }
  })

  t.test(`${policy}: removing one endpoint of N remaps few keys`, async (t) => {
    const n = 10
    const list = eps(n)
    const before = mapKeys(createBalancer(policy, list))
    const removed = list[3]
    const after = mapKeys(createBalancer(policy, list.filter((e) => e !== removed)))
    let moved = 0
    let movedOthers = 0
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] !== after[i]) {
        moved++
        if (before[i] !== removed.key) movedOthers++
      }
    }
    t.notOk(after.includes(removed.key))
    const frac = moved / KEYS.length
    t.ok(frac > 0.05 && frac < 0.15, `moved ${(frac * 100).toFixed(1)}%`)
    // ring hash: only the removed endpoint's keys move; maglev: a few extra.
    const extra = movedOthers / KEYS.length
    if (policy === 'ringHash') t.equal(movedOthers, 0)
    else t.ok(extra < 0.03, `maglev extra moves ${(extra * 100).toFixed(2)}%`)
  })

  t.test(`${policy}: unhealthy skipped, avoid honoured, no key -> random`, async (t) => {
    const list = eps(4)
    const random = seeded(8)
    const lb = createBalancer(policy, list, { random })
    const before = mapKeys(lb)
    list[1].healthy = false
    const during = mapKeys(lb)
    let changedHealthy = 0
    t.notOk(during.includes(list[1].key), 'unhealthy endpoint skipped')
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] !== list[1].key && before[i] !== during[i]) changedHealthy++
    }
    t.equal(changedHealthy, 0, 'keys of healthy endpoints stay put')
    // the ejected endpoint's keys spread over more than one other endpoint
    const spread = new Set(during.filter((_, i) => before[i] === list[1].key))
    t.ok(spread.size >= 2, `spread over ${spread.size}`)
    list[1].healthy = true
    t.same(mapKeys(lb), before, 'keys come back when healthy again')
    // avoid: a different endpoint, deterministic per key
    let bad = 0
    for (let i = 0; i < 500; i++) {
      const first = lb.pick(KEYS[i])!
      const retry = lb.pick(KEYS[i], first)!
      if (retry === first || lb.pick(KEYS[i], first) !== retry) bad++
    }
    t.equal(bad, 0, 'avoid gives another endpoint, the same one for the same key')
    // no key: random, roughly uniform
    const m = count(Array.from({ length: 4000 }, () => lb.pick()))
    t.equal(m.size, 4)
    for (const v of m.values()) t.ok(Math.abs(v - 1000) < 150, `random pick ${v}`)
    // all unhealthy: still answers
    for (const e of list) e.healthy = false
    t.ok(lb.pick('k'))
    t.not(lb.pick('k', list[0]), list[0])
  })
}

t.test('ringHash: ring size', async (t) => {
  t.equal(new RingHashBalancer(eps(3)).ringSize, 1536)
  t.equal(new RingHashBalancer(eps(100)).ringSize, 1600)
  t.equal(new RingHashBalancer(eps(3, 1000)).ringSize, 1536, 'weights reduced by their gcd')
  t.equal(new RingHashBalancer([ep('a', 1), ep('b', 100000)]).ringSize, 100001)
  t.equal(new RingHashBalancer([ep('a', 1), ep('b', 1000000)], { maxRingSize: 4096 }).ringSize, 4096)
  t.equal(new RingHashBalancer(eps(3), { minRingSize: 10 }).ringSize, 12)
})

t.test('maglev: weighted table fill, table size validation', async (t) => {
  const list = [ep('a', 1), ep('b', 2), ep('c', 5)]
  const lb = new MaglevBalancer(list, { maglevTableSize: 8191 })
  const counts = lb.slotCounts()
  let total = 0
  for (const v of counts.values()) total += v
  t.equal(total, 8191)
  for (const e of list) {
    const share = counts.get(e.key)! / 8191
    t.ok(Math.abs(share - e.weight / 8) < 0.002, `${e.key} ${share}`)
  }
  t.throws(() => new MaglevBalancer(list, { maglevTableSize: 65536 }), RangeError)
  t.throws(() => new MaglevBalancer(eps(20), { maglevTableSize: 13 }), RangeError)
})

// ---- all policies --------------------------------------------------------------------------------

t.test('createBalancer: every policy handles empty, single, avoid, unhealthy', async (t) => {
  const policies: BalancerPolicy[] = ['roundRobin', 'leastRequest', 'peakEwma', 'ringHash', 'maglev']
  for (const policy of policies) {
    t.equal(createBalancer(policy, []).pick('k'), undefined, `${policy} empty`)
    const one = ep('only')
    t.equal(createBalancer(policy, [one]).pick('k', one), one, `${policy} single`)
    const list = eps(5)
    const lb = createBalancer(policy, list, { random: seeded(9), now: () => 0 })
    list[0].healthy = false
    list[2].healthy = false
    for (let i = 0; i < 200; i++) {
      const key = i % 2 === 0 ? KEYS[i] : undefined
      const p = lb.pick(key, list[1])!
      if (p === list[0] || p === list[1] || p === list[2]) {
        t.fail(`${policy} picked ${p.key}`)
        break
      }
    }
    list[3].healthy = false
    list[4].healthy = false
    t.equal(lb.pick('x', list[1]), list[1], `${policy}: avoid when it is the only healthy one`)
  }
  t.throws(() => createBalancer('nope' as BalancerPolicy, [ep('a')]))
})
