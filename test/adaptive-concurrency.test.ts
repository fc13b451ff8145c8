// Adaptive concurrency (issue 17). The controller against a queueing model of an upstream, in
// virtual time (an injected clock; no sleeping): C servers, each request takes S ms, the rest wait
// in FIFO order, so latency grows with the requests in flight past C (the knee). Offered load is
// open-loop at twice the capacity. With the limiter the limit settles near the knee, the latency of
// admitted requests stays within 2x the unloaded latency and goodput stays near capacity; with a
// static limit the queue and the latency grow without bound; when the upstream speeds up the
// limiter lets the load through again. Then the real proxy: 503 UO WEFT_ERR_CONCURRENCY_LIMIT, the
// counter, /clusters and the metric.
import t from 'tap'
import { AdaptiveLimiter, ADAPTIVE_DEFAULTS } from '../proxy/cluster/adaptive.ts'
import { cluster, makeConfig, routeTo, startTestSidecar } from './helpers/sidecar.ts'
import { client } from './helpers/policy.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

/** What the simulation needs of a limiter: the adaptive one, or a static limit (as maxRequests is). */
interface Limiter { readonly limit: number; admit(): boolean; finish(latencyMs: number, ok: boolean): void }

class StaticLimit implements Limiter {
  inFlight = 0
  readonly limit: number
  constructor(limit: number) { this.limit = limit }
  admit(): boolean {
    if (this.inFlight >= this.limit) return false
    this.inFlight++
    return true
  }
  finish(): void { this.inFlight-- }
}

interface Run { p99: number; p50: number; goodputPerMs: number; rejected: number; admitted: number; limits: number[] }

/**
 * Simulate `ms` of virtual time from `from`: arrivals every `gap` ms; `serviceMs(t)` per request;
 * C servers. `limiter` null: every request goes (a static limit that never binds).
 */
function simulate(limiter: Limiter | null, clock: { now: number }, o: { servers: number; serviceMs: (t: number) => number; gap: number; from: number; ms: number; measureFrom: number }): Run {
  const free = new Array<number>(o.servers).fill(o.from)
  const done: { at: number; latency: number }[] = [] // pending completions, sorted by `at`
  const lat: number[] = []
  let rejected = 0
  let admitted = 0
  let completedInWindow = 0
  const limits: number[] = []
  const complete = (until: number) => {
    while (done.length > 0 && done[0]!.at <= until) {
      const d = done.shift()!
      clock.now = d.at
      limiter?.finish(d.latency, true)
      if (d.at >= o.measureFrom) {
        lat.push(d.latency)
        completedInWindow++
      }
    }
  }
  for (let at = o.from; at < o.from + o.ms; at += o.gap) {
    complete(at)
    clock.now = at
    if (limiter !== null && !limiter.admit()) {
      if (at >= o.measureFrom) rejected++
      continue
    }
    admitted++
    // FIFO over C servers: the earliest free one takes it
    let k = 0
    for (let i = 1; i < free.length; i++) if (free[i]! < free[k]!) k = i
    const start = Math.max(at, free[k]!)
    const end = start + o.serviceMs(start)
    free[k] = end
    const d = { at: end, latency: end - at }
    let i = done.length
    while (i > 0 && done[i - 1]!.at > end) i--
    done.splice(i, 0, d)
    if (limiter !== null && Math.round(at) % 100 === 0) limits.push(limiter.limit)
  }
  complete(Infinity)
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN
  return { p99: q(0.99), p50: q(0.5), goodputPerMs: completedInWindow / (o.from + o.ms - o.measureFrom), rejected, admitted, limits }
}

const C = 8
const S = 10
const CAPACITY = C / S // requests per ms

t.test('at twice the capacity: the limit settles near the knee, p99 within 2x unloaded, goodput >= 80 %', async (t) => {
  const clock = { now: 0 }
  const lim = new AdaptiveLimiter({ ...ADAPTIVE_DEFAULTS }, () => clock.now, () => 0.5)
  const r = simulate(lim, clock, { servers: C, serviceMs: () => S, gap: 1 / (2 * CAPACITY), from: 0, ms: 20_000, measureFrom: 5_000 })
  const settled = r.limits.slice(Math.floor(r.limits.length / 4))
  const avg = settled.reduce((a, b) => a + b, 0) / settled.length
  t.ok(avg >= C && avg <= 2.5 * C, `the limit settles near the knee (${C} servers): average ${avg.toFixed(1)}`)
  t.equal(lim.phase, 'gradient')
  t.equal(lim.minRttMs, S, 'minRTT measured with no queue')
  t.ok(r.p99 <= 2 * S, `p99 of admitted requests ${r.p99.toFixed(1)} ms <= 2x the unloaded ${S} ms`)
  t.ok(r.goodputPerMs >= 0.8 * CAPACITY, `goodput ${(r.goodputPerMs * 1000).toFixed(0)}/s >= 80 % of capacity ${CAPACITY * 1000}/s`)
  t.ok(r.rejected > 0, `the excess is refused at once (${r.rejected})`)

  // the same load without the limiter: the queue grows for the whole run
  const none = simulate(null, { now: 0 }, { servers: C, serviceMs: () => S, gap: 1 / (2 * CAPACITY), from: 0, ms: 20_000, measureFrom: 5_000 })
  t.ok(none.p99 > 100 * S, `without it, p99 ${none.p99.toFixed(0)} ms explodes`)

  // a static limit set by guess above the knee (256 in flight, 32x the 8 workers) binds, but only
  // once a queue of 248 waits at the upstream: every admitted request waits through it
  const fixed = simulate(new StaticLimit(256), { now: 0 }, { servers: C, serviceMs: () => S, gap: 1 / (2 * CAPACITY), from: 0, ms: 20_000, measureFrom: 5_000 })
  t.ok(fixed.rejected > 0, 'the static limit binds too')
  t.ok(fixed.p99 > 10 * r.p99, `a static limit of 256: p99 ${fixed.p99.toFixed(0)} ms, over 10x the adaptive ${r.p99.toFixed(1)} ms`)
  t.ok(fixed.p99 >= 0.9 * (256 / C) * S, `it sits at the queue the limit allows (256/${C} x ${S} ms)`)
})

t.test('the upstream speeds up: the limit grows and the refusals stop', async (t) => {
  const clock = { now: 0 }
  const lim = new AdaptiveLimiter({ ...ADAPTIVE_DEFAULTS }, () => clock.now, () => 0.5)
  const gap = 1 / (2 * CAPACITY)
  const slow = simulate(lim, clock, { servers: C, serviceMs: () => S, gap, from: 0, ms: 10_000, measureFrom: 5_000 })
  t.ok(slow.rejected > 0)
  const before = lim.limit
  // five times faster: the same offered load is now 40 % of the capacity
  const fast = simulate(lim, clock, { servers: C, serviceMs: () => S / 5, gap, from: 10_000, ms: 10_000, measureFrom: 15_000 })
  t.equal(fast.rejected, 0, 'nothing refused once the upstream keeps up')
  t.ok(fast.p99 <= 2 * (S / 5) + 1, `p99 ${fast.p99.toFixed(2)} ms`)
  t.ok(lim.limit >= before, `the limit did not shrink (${before} -> ${lim.limit})`)
})

t.test('minRTT is measured again every interval, the limit pinned to minConcurrency meanwhile', async (t) => {
  const clock = { now: 0 }
  const lim = new AdaptiveLimiter({ ...ADAPTIVE_DEFAULTS, minRttIntervalMs: 2_000, jitter: 0 }, () => clock.now)
  t.equal(lim.limit, 3, 'starts measuring minRTT')
  for (let i = 0; i < 50; i++) {
    t.equal(lim.admit(), true)
    clock.now += 1
    lim.finish(4, true)
  }
  t.equal(lim.phase, 'gradient')
  t.equal(lim.minRttMs, 4)
  clock.now += 2_001
  lim.admit()
  t.equal(lim.phase, 'min-rtt', 'measuring again after the interval')
  t.equal(lim.limit, 3)
  // failures release their slot but are no latency samples
  lim.finish(1_000, false)
  t.equal(lim.inFlight, 0)
})

t.test('the proxy: over the limit a request gets 503 UO WEFT_ERR_CONCURRENCY_LIMIT; /clusters, metrics and explain show the limit', async (t) => {
  // a slow upstream: 2 workers, 30 ms each, the rest wait (kept: that latency is what the limiter measures)
  let busy = 0
  const waiting: (() => void)[] = []
  const up = await startHttpUpstream(t, {
    name: 'slow',
    handler: (_rec: unknown, res: import('node:http').ServerResponse) => {
      const run = () => {
        busy++
        setTimeout(() => {
          busy--
          res.writeHead(200, { 'content-length': '2' })
          res.end('ok')
          waiting.shift()?.()
        }, 30)
      }
      if (busy < 2) run()
      else waiting.push(run)
    },
  })
  const s = await startTestSidecar(t, makeConfig({
    routes: [routeTo('slow')],
    clusters: [cluster('slow', [up.port], { adaptiveConcurrency: { sampleWindow: '50ms', minRttRequests: 5, minConcurrency: 2, maxConcurrency: 50 } })],
  }))
  const c = client(t, s.port, 64)
  const statuses = new Map<number, number>()
  let limited: { flag?: string; error?: string } = {}
  const deadline = performance.now() + 1500
  await Promise.all(Array.from({ length: 30 }, async () => {
    while (performance.now() < deadline) {
      const r = await c.request('/x')
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
      if (r.status === 503) limited = { flag: r.get('x-weft-response-flags'), error: r.get('x-weft-error') }
      else await new Promise((res) => setTimeout(res, 5)) // kept: load pacing
    }
  }))
  t.ok((statuses.get(200) ?? 0) > 0, `served: ${JSON.stringify([...statuses])}`)
  t.ok((statuses.get(503) ?? 0) > 0, 'refused over the limit')
  t.same(limited, { flag: 'UO', error: 'WEFT_ERR_CONCURRENCY_LIMIT' })
  const view = (await s.adminJson('/clusters')).clusters.find((x: any) => x.name === 'slow').adaptiveConcurrency
  t.equal(view.phase, 'gradient')
  t.ok(view.limit >= 2 && view.limit < 30, `limit ${view.limit} well under the 30 callers`)
  t.ok(view.minRttMs >= 25, `minRTT ${view.minRttMs} ms (the upstream's 30 ms)`)
  t.equal(view.rejected, statuses.get(503))
  const m = (await s.admin('/metrics')).body
  t.match(m, new RegExp(`weft_cluster_decisions_total\\{cluster="slow",decision="concurrency_limited"\\} ${statuses.get(503)}\\b`))
  t.match(m, /weft_cluster_concurrency_limit\{cluster="slow"\} \d+/)
  // its inputs: minRTT near the upstream's 30 ms, the last window's sampleRTT, the gradient in 0.5..2
  const gauge = (name: string) => Number(new RegExp(`${name}\\{cluster="slow"\\} ([0-9.e+-]+)`).exec(m)?.[1])
  t.ok(gauge('weft_cluster_concurrency_min_rtt_seconds') >= 0.025, `min_rtt_seconds ${gauge('weft_cluster_concurrency_min_rtt_seconds')}`)
  t.ok(gauge('weft_cluster_concurrency_sample_rtt_seconds') >= 0.025, `sample_rtt_seconds ${gauge('weft_cluster_concurrency_sample_rtt_seconds')}`)
  const g = gauge('weft_cluster_concurrency_gradient')
  t.ok(g >= 0.5 && g <= 2, `gradient ${g}`)
  t.ok(Math.abs(gauge('weft_cluster_concurrency_min_rtt_seconds') * 1000 - view.minRttMs) < 0.01, 'the metric and /clusters agree (/clusters rounds to the microsecond)')
  t.match(m, /weft_proxy_decisions_total\{listener="out",decision="concurrency_limited"\} [1-9]/)
  // explain: the dispatch step carries the limiter's state
  const r = await c.request('/x', { headers: { 'x-weft-explain': '1' } })
  const e = await s.adminJson(`/explain/${encodeURIComponent(r.get('x-weft-explain-id')!)}`)
  t.match(e.steps.find((x: any) => x.stage === 'dispatch'), { cluster: 'slow', adaptiveConcurrency: { phase: 'gradient' } })
})
