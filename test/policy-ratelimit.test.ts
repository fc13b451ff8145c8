// Local rate limiting as a client sees it: a burst of the configured size passes, the rest get
// 429 with Retry-After and the RateLimit-* fields, flag RL; tokens come back at the configured
// rate; per-key buckets (a header's value) are independent.
import t from 'tap'
import { cluster, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { client, metrics } from './helpers/policy.ts'

/** Tokens that may have come back during `ms` at `perSecond` (rounded up: a bound, not a count). */
const refilled = (ms: number, perSecond: number) => Math.ceil((ms * perSecond) / 1000)

t.test('5 per second, burst 5: a burst of 20 lets 5 through, 429s say when to come back', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { name: 'limited', rateLimit: { requests: 5, interval: '1s', burst: 5 } })], clusters: [cluster('app', [up.port])] }),
  )
  const c = client(t, s.port, 20)
  const t0 = performance.now()
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.request(`/r${i}`)))
  const elapsed = performance.now() - t0
  const ok = replies.filter((r) => r.status === 200)
  const limited = replies.filter((r) => r.status === 429)
  t.equal(ok.length + limited.length, 20)
  // Exactly 5 when the burst took under 200 ms (one token per 200 ms); a slow machine may see more.
  t.ok(ok.length >= 5 && ok.length <= 5 + refilled(elapsed, 5), `${ok.length} passed in ${elapsed.toFixed(0)} ms`)
  if (elapsed < 200) t.equal(ok.length, 5, 'exactly the burst passed')
  t.equal(up.requests.length, ok.length, 'limited requests never reach the upstream')
  const r = limited[0]
  t.equal(r.get('x-weft-response-flags'), 'RL')
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_RATE_LIMITED')
  t.equal(r.get('ratelimit-limit'), '5')
  t.equal(r.get('ratelimit-remaining'), '0')
  t.equal(r.get('ratelimit-policy'), '5;w=1')
  t.equal(r.get('ratelimit-reset'), '1', 'a token is back within a second')
  t.equal(r.get('retry-after'), '1')
  for (const x of limited) t.ok(x.get('retry-after') !== undefined && x.get('ratelimit-reset') !== undefined, 'every 429 says when to retry')

  // The next token comes back 200 ms after the last one was taken.
  let polled429 = 0
  await until(
    'a token comes back',
    async () => {
      const next = await c.request('/again')
      if (next.status === 429) polled429++
      return next.status === 200
    },
    3000,
    20,
  )
  const waited = performance.now() - t0
  t.ok(waited >= 180, `the next request passed ${waited.toFixed(0)} ms after the burst started (refill: 200 ms per token)`)

  const m = await metrics(s)
  t.equal(m.decision('rate_limited'), limited.length + polled429, 'rate_limited counts every 429')
  t.equal(m.requests({ route: 'limited', response_code: '429', response_flags: 'RL' }), limited.length + polled429, 'metrics: 429 RL')
})

t.test('per-key buckets: each header value has its own burst', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { rateLimit: { requests: 5, interval: '1s', key: { header: 'X-Tenant' } } })],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = client(t, s.port, 30)
  const t0 = performance.now()
  const keys = ['a', 'b', '']
  const replies = await Promise.all(
    Array.from({ length: 30 }, (_, i) => {
      const k = keys[i % 3]
      return c.request('/r', { headers: k === '' ? {} : { 'x-tenant': k } }).then((r) => ({ k, r }))
    }),
  )
  const elapsed = performance.now() - t0
  for (const k of keys) {
    const passed = replies.filter((x) => x.k === k && x.r.status === 200).length
    t.ok(passed >= 5 && passed <= 5 + refilled(elapsed, 5), `key "${k}": ${passed} of 10 passed in ${elapsed.toFixed(0)} ms`)
    if (elapsed < 200) t.equal(passed, 5, `key "${k}": exactly its burst`)
  }
  const tenants = up.requests.map((x) => x.header('x-tenant') ?? '')
  t.equal(tenants.filter((x) => x === 'a').length, replies.filter((x) => x.k === 'a' && x.r.status === 200).length)
  const m = await metrics(s)
  t.equal(m.decision('rate_limited'), replies.filter((x) => x.r.status === 429).length)
})
