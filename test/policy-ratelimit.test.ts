// Local rate limiting as a client sees it: a burst of the configured size passes, the rest get
// 429 with Retry-After and the RateLimit-* fields, flag RL; tokens come back at the configured
// rate; per-key buckets (a header's value) are independent.
import t from 'tap'
import { Pool } from 'undici'
import { cluster, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { client, metrics } from './helpers/policy.ts'
import { LocalRateLimiter } from '../proxy/filters/ratelimit/local.ts'

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

t.test('2 per 10 s: the 429 fields tell the window and when the next token is back', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { name: 'slow-refill', rateLimit: { requests: 2, interval: '10s' } })], clusters: [cluster('app', [up.port])] }),
  )
  const c = client(t, s.port)
  const t0 = performance.now()
  const replies = []
  for (let i = 0; i < 4; i++) replies.push(await c.request(`/r${i}`))
  const elapsed = performance.now() - t0
  t.same(replies.map((r) => r.status), [200, 200, 429, 429], 'burst = requests: two pass')
  t.ok(elapsed < 1000, `the four took ${elapsed.toFixed(0)} ms (the expectations below assume under 1 s)`)
  for (const r of replies.slice(2)) {
    t.equal(r.get('ratelimit-limit'), '2')
    t.equal(r.get('ratelimit-policy'), '2;w=10', 'requests;w=window seconds')
    t.equal(r.get('ratelimit-remaining'), '0')
    // one token every 5 s, the last taken under a second ago: back in 4..5 s, rounded up
    t.equal(r.get('ratelimit-reset'), '5', 'seconds until a token is back')
    t.equal(r.get('retry-after'), '5')
    t.equal(r.get('x-weft-response-flags'), 'RL')
  }
  t.equal(replies[0].get('ratelimit-limit'), undefined, 'a request that passed carries no RateLimit fields')
  t.equal(up.requests.length, 2)
  const m = await metrics(s)
  t.equal(m.decision('rate_limited'), 2)
  t.equal(m.requests({ route: 'slow-refill', response_code: '429', response_flags: 'RL' }), 2)
  t.equal(m.requests({ route: 'slow-refill', response_code: '200', response_flags: '-' }), 2)
})

t.test('per-client buckets (key.clientAddress): each source address has its own burst', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { rateLimit: { requests: 3, interval: '10s', key: { clientAddress: true } } })], clusters: [cluster('app', [up.port])] }),
  )
  /** status codes of n requests in a row from a client bound to `localAddress` */
  const from = async (localAddress: string, n: number) => {
    const pool = new Pool(`http://127.0.0.1:${s.port}`, { localAddress })
    t.teardown(() => pool.destroy())
    const out: number[] = []
    for (let i = 0; i < n; i++) {
      const r = await pool.request({ path: '/x', method: 'GET', headers: { host: 'svc' } })
      await r.body.text()
      out.push(r.statusCode)
    }
    return out
  }
  t.same(await from('127.0.0.1', 5), [200, 200, 200, 429, 429], '127.0.0.1: its burst of 3')
  t.same(await from('127.0.0.2', 4), [200, 200, 200, 429], '127.0.0.2: a burst of its own')
  t.same(await from('127.0.0.1', 1), [429], 'a new connection from 127.0.0.1 shares that address\'s bucket')
  t.same(up.requests.map((r) => r.header('x-forwarded-for')), ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.2', '127.0.0.2', '127.0.0.2'])
  t.equal((await metrics(s)).decision('rate_limited'), 4)
})

// ---- the limiter with an injected clock -------------------------------------------------------------

t.test('token bucket (injected clock): the configured rate over a minute, the burst cap, the wait', async (t) => {
  let now = 0
  const rl = new LocalRateLimiter({ requests: 5, interval: '1s', burst: 10 }, () => now)
  let passed = 0
  for (let i = 0; i < 15; i++) if (rl.take('') === 0) passed++
  t.equal(passed, 10, 'a full bucket: the burst')
  t.equal(rl.take(''), 200, 'empty: the next token is 200 ms away')
  t.equal(rl.rejectFields(200), 'ratelimit-limit: 5\r\nratelimit-policy: 5;w=1\r\nratelimit-remaining: 0\r\nratelimit-reset: 1\r\nretry-after: 1\r\n')
  now = 150
  t.equal(rl.take(''), 50, 'three quarters of a token back: 50 ms to go')
  // a request every millisecond for a minute: the rate, not the request rate, decides
  passed = 0
  for (now = 151; now <= 60_150; now++) if (rl.take('') === 0) passed++
  t.ok(passed >= 299 && passed <= 300, `${passed} passed in 60 s at 5 per second`)
  t.equal(rl.allowed, 10 + passed)
  // idle for a long time: the bucket holds at most the burst
  now += 3_600_000
  passed = 0
  for (let i = 0; i < 20; i++) if (rl.take('') === 0) passed++
  t.equal(passed, 10, 'after an hour idle: the burst, not an hour of tokens')
})

t.test('keyed buckets (injected clock): independent, and the least recently used dropped past maxKeys', async (t) => {
  let now = 0
  const rl = new LocalRateLimiter({ requests: 1, interval: '1m', key: { header: 'X-Tenant' }, maxKeys: 2 }, () => now)
  t.equal(rl.keyHeader, 'x-tenant', 'the header name is matched lower-case')
  t.equal(rl.take('a'), 0)
  t.equal(rl.take('b'), 0)
  t.ok(rl.take('a') > 0, 'a spent its token')
  t.equal(rl.keys, 2)
  t.equal(rl.take('c'), 0, 'a third key: the least recently used (b) is dropped')
  t.equal(rl.keys, 2)
  t.ok(rl.take('a') > 0, 'a was used more recently than b: still spent')
  t.equal(rl.take('b'), 0, 'b starts afresh with a full bucket')
  now = 60_001
  t.equal(rl.take('a'), 0, 'a minute later a has its token back')
})

t.test('ratelimit-policy states whole seconds: a fractional interval is the same rate over the next whole second', async (t) => {
  const half = new LocalRateLimiter({ requests: 5, interval: '500ms' }, () => 0)
  t.match(half.rejectFields(100), /ratelimit-policy: 10;w=1\r\n/)
  const odd = new LocalRateLimiter({ requests: 3, interval: '1500ms' }, () => 0)
  t.match(odd.rejectFields(100), /ratelimit-policy: 4;w=2\r\n/)
})
