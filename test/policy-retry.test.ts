// Retries as a client sees them: another endpoint after a 503, a connect failure or a reset; the
// request body sent again (up to 64 KiB); retriable status codes; the attempts limit (URX); and the
// retry budget that keeps a failing upstream from a retry storm. Every decision is read back from
// weft_proxy_decisions_total.
import t from 'tap'
import { Readable } from 'node:stream'
import { cluster, endpointView, freePort, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream, startRawUpstream, rawResponse } from './helpers/upstream.ts'
import { client, metrics } from './helpers/policy.ts'
import type { RetryPolicy } from '../api/schema.ts'
import { RetryBudget } from '../proxy/filters/retry/budget.ts'
import { CompiledRetry } from '../proxy/filters/retry/policy.ts'

/** No waiting between tries (the backoff itself is not what these tests look at). */
const quick: Pick<RetryPolicy, 'backoff'> = { backoff: { base: '1ms', max: '2ms' } }

/** An upstream answering every request with `status` and body `name`. */
function answering(status: number, name: string) {
  return (_rec: unknown, res: import('node:http').ServerResponse) => {
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(name) })
    res.end(name)
  }
}

for (const policy of ['ringHash', 'maglev'] as const) t.test(`a 503 is retried on a different endpoint (${policy} would pick the same one again)`, async (t) => {
  const bad = await startHttpUpstream(t, { name: 'bad', handler: answering(503, 'bad') })
  const good = await startHttpUpstream(t, { name: 'good', handler: answering(200, 'good') })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { retry: { attempts: 1, ...quick } })],
      // Affinity by header: without "avoid the previous endpoint" a retry would hash to the same one.
      clusters: [cluster('app', [bad.port, good.port], { lb: { policy, hashHeader: 'x-user' } })],
    }),
  )
  const c = client(t, s.port)
  const N = 30
  for (let i = 0; i < N; i++) {
    const r = await c.request('/item', { headers: { 'x-user': `user-${i}` } })
    t.equal(r.status, 200, `user-${i}: 200`)
    t.equal(r.body, 'good')
    t.equal(r.get('x-weft-response-flags'), undefined, 'a relayed response carries no flag')
  }
  // 30 keys all hashing to the good endpoint: probability 2^-30
  t.ok(bad.requests.length >= 1, `some keys hash to the failing endpoint (${bad.requests.length})`)
  t.equal(good.requests.length, N, 'every request ended on the good endpoint, once')
  const m = await metrics(s)
  t.equal(m.decision('retry'), bad.requests.length, 'one retry per 503')
  t.equal(m.decision('retry_limit_exceeded'), 0)
  t.equal(m.requests({ route: 'all/0', response_code: '200', response_flags: '-' }), N, 'metrics: 200, no flag')
})

t.test('a connect failure is retried on the other endpoint', async (t) => {
  const dead = await freePort()
  const live = await startHttpUpstream(t, { name: 'live' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { retry: { attempts: 2, on: ['connect-failure'], ...quick } })],
      clusters: [cluster('app', [dead, live.port])],
    }),
  )
  const c = client(t, s.port)
  for (let i = 0; i < 4; i++) {
    const r = await c.request(`/r${i}`)
    t.equal(r.status, 200)
    t.equal(r.body, `live GET /r${i}`)
  }
  const failures = (await endpointView(s, 'app', 0)).connections.connectFailures
  t.ok(failures >= 1, 'the closed port was tried')
  const m = await metrics(s)
  t.equal(m.decision('retry'), failures, 'one retry per connect failure')
  t.equal(m.decision('upstream_error'), 0, 'no failure reached a client')
})

t.test('a connection reset before the response is retried', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    const req = await conn.nextRequest()
    if (conn.index === 0) conn.socket.resetAndDestroy()
    else conn.write(rawResponse(200, 'fine ' + req.line.split(' ')[1]))
  })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { retry: { attempts: 1, on: ['reset'], ...quick } })], clusters: [cluster('app', [up.port])] }),
  )
  const r = await client(t, s.port).request('/once')
  t.equal(r.status, 200)
  t.equal(r.body, 'fine /once')
  t.equal(up.conns.length, 2, 'a second connection for the retry')
  t.equal((await metrics(s)).decision('retry'), 1)
})

t.test('a POST is retried with the same body (Content-Length and chunked)', async (t) => {
  const bad = await startHttpUpstream(t, { name: 'bad', handler: answering(503, 'bad') })
  const good = await startHttpUpstream(t, {
    name: 'good',
    handler: (rec, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.end(rec.body)
    },
  })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { retry: { attempts: 1, ...quick } })], clusters: [cluster('app', [bad.port, good.port])] }),
  )
  const c = client(t, s.port)
  const body = Buffer.from('order=' + 'x'.repeat(4000) + '&end=1')
  const r1 = await c.request('/orders', { method: 'POST', body })
  t.equal(r1.status, 200)
  t.equal(r1.body, body.toString(), 'the client gets the good endpoint\'s echo of its body')
  const tries = () => bad.requests.length + good.requests.length
  const before = tries()
  async function* pieces() {
    yield Buffer.from('first-piece;')
    // the second piece once the first try is at an upstream: the body crosses the proxy in two reads
    await until('the first try at an upstream', () => tries() > before)
    yield Buffer.from('second-piece')
  }
  const r2 = await c.request('/orders', { method: 'POST', body: Readable.from(pieces()) })
  t.equal(r2.status, 200)
  t.equal(r2.body, 'first-piece;second-piece', 'a chunked body is sent again too')

  t.ok(bad.requests.length >= 1, 'the failing endpoint was tried first')
  for (const rec of [...bad.requests, ...good.requests]) {
    t.equal(rec.method, 'POST')
    t.equal(rec.url, '/orders')
  }
  const bodies = (recs: typeof bad.requests) => recs.map((x) => x.body.toString()).sort()
  t.same(bodies(good.requests), [body.toString(), 'first-piece;second-piece'].sort(), 'the good endpoint got each body whole')
  for (const b of bodies(bad.requests)) t.ok(b === body.toString() || b === 'first-piece;second-piece', 'the failing endpoint got a whole body too')
  t.equal(good.requests.find((x) => x.body.toString().startsWith('first'))!.header('transfer-encoding'), 'chunked')
  t.equal((await metrics(s)).decision('retry'), bad.requests.length)
})

t.test('a body over 64 KiB is not retried; exactly 64 KiB is', async (t) => {
  const bad = await startHttpUpstream(t, { name: 'bad', handler: answering(503, 'bad') })
  const good = await startHttpUpstream(t, { name: 'good', handler: (rec, res) => res.end(String(rec.body.length)) })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { retry: { attempts: 1, ...quick } })], clusters: [cluster('app', [bad.port, good.port])] }),
  )
  const c = client(t, s.port, 1)
  // Two requests each: round robin sends one of them to the failing endpoint first.
  const limit = await Promise.all([0, 1].map(() => c.request('/up', { method: 'POST', body: Buffer.alloc(65536, 0x61) })))
  t.same(limit.map((r) => [r.status, r.body]), [[200, '65536'], [200, '65536']], '64 KiB: kept and retried')
  const retriesBefore = (await metrics(s)).decision('retry')
  t.equal(retriesBefore, bad.requests.length)
  t.ok(retriesBefore >= 1)

  const badBefore = bad.requests.length
  const goodBefore = good.requests.length
  const over = []
  for (let i = 0; i < 2; i++) over.push(await c.request('/up', { method: 'POST', body: Buffer.alloc(65537, 0x62) }))
  t.same(over.map((r) => r.status).sort(), [200, 503], 'over 64 KiB: the 503 reaches the client')
  t.equal(over.find((r) => r.status === 503)!.body, 'bad', "it is the upstream's 503")
  t.equal(bad.requests.length - badBefore, 1)
  t.equal(good.requests.length - goodBefore, 1, 'no second try')
  t.equal(bad.requests.at(-1)!.body.length, 65537, 'the failing endpoint did get the whole body')
  const r503 = over.find((r) => r.status === 503)!
  t.equal(r503.get('x-weft-response-flags'), undefined, 'relayed as it is')
  const m = await metrics(s)
  t.equal(m.decision('retry'), retriesBefore, 'no retry counted')
  t.equal(m.decision('retry_limit_exceeded'), 0, 'a body too large to keep is not "retries refused"')
  t.equal(m.requests({ response_code: '503', response_flags: '-' }), 1, 'metrics: the 503 is not flagged URX')
})

t.test('a chunked body streamed past 64 KiB is not retried; a short chunked one is', async (t) => {
  const bad = await startHttpUpstream(t, { name: 'bad', handler: answering(503, 'bad') })
  const good = await startHttpUpstream(t, { name: 'good', handler: (rec, res) => res.end(String(rec.body.length)) })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { retry: { attempts: 1, ...quick } })], clusters: [cluster('app', [bad.port, good.port])] }),
  )
  const c = client(t, s.port, 1)
  /** `n` pieces of `size` bytes, each in its own chunk, a tick apart: the body streams through the proxy. */
  const stream = (n: number, size: number) =>
    Readable.from((async function* () {
      for (let i = 0; i < n; i++) {
        yield Buffer.alloc(size, 0x63)
        await new Promise((r) => setImmediate(r))
      }
    })())
  // Round robin over two endpoints: of two requests in a row, one goes to the failing one first.
  const big = []
  for (let i = 0; i < 2; i++) big.push(await c.request('/up', { method: 'POST', body: stream(3, 30 * 1024) }))
  t.same(big.map((r) => [r.status, r.body]).sort(), [[200, '92160'], [503, 'bad']], '90 KiB streamed: the 503 reaches the client')
  t.equal(big.find((r) => r.status === 503)!.get('x-weft-response-flags'), undefined)
  t.equal(bad.requests.length, 1)
  t.equal(bad.requests[0].body.length, 92160, 'the failing endpoint got the whole streamed body')
  t.equal(bad.requests[0].header('transfer-encoding'), 'chunked')
  t.equal((await metrics(s)).decision('retry'), 0, 'not retried')

  const small = []
  for (let i = 0; i < 2; i++) small.push(await c.request('/up', { method: 'POST', body: stream(3, 1024) }))
  t.same(small.map((r) => [r.status, r.body]), [[200, '3072'], [200, '3072']], '3 KiB streamed: kept, and retried on the other endpoint')
  t.ok(bad.requests.length >= 2, 'the failing endpoint was tried again')
  const m = await metrics(s)
  t.equal(m.decision('retry'), bad.requests.length - 1, 'every 503 of a short body was retried')
  t.equal(m.requests({ response_code: '503', response_flags: '-' }), 1, 'only the long body\'s 503 reached a client')
})

t.test('retriable-status-codes: only the listed codes are retried', async (t) => {
  // One endpoint: the first request for a path gets the status named by the path, later ones 200.
  const seen = new Map<string, number>()
  const up = await startHttpUpstream(t, {
    handler: (rec, res) => {
      const n = (seen.get(rec.url) ?? 0) + 1
      seen.set(rec.url, n)
      const status = n === 1 ? Number(rec.url.slice(1)) : 200
      res.writeHead(status, { 'content-length': 5 })
      res.end(`${status}`.padEnd(5, '.'))
    },
  })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { retry: { attempts: 1, on: ['retriable-status-codes'], retriableStatusCodes: [409, 429], ...quick } })],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = client(t, s.port)
  for (const [path, status] of [['/409', 200], ['/429', 200], ['/503', 503], ['/500', 500]] as const) {
    const r = await c.request(path)
    t.equal(r.status, status, `${path}: ${status}`)
  }
  t.same(Object.fromEntries(seen), { '/409': 2, '/429': 2, '/503': 1, '/500': 1 }, 'the listed codes were tried twice, 5xx once')
  const m = await metrics(s)
  t.equal(m.decision('retry'), 2)
  t.equal(m.decision('retry_limit_exceeded'), 0, 'not retriable is not "refused"')
  t.equal(m.requests({ response_code: '503', response_flags: '-' }), 1, 'a 503 not retriable under this policy: no URX')
})

// Known bug (reported, not fixed here: proxy/router/exchange.ts endPolicy flags URX only when the
// final status is >= 500): a listed 4xx that stays failing is returned without URX.
t.test('retriable-status-codes: a listed 4xx returned after the last try is flagged URX', async (t) => {
  const up = await startHttpUpstream(t, { handler: answering(429, 'busy') })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { name: 'codes', retry: { attempts: 1, on: ['retriable-status-codes'], retriableStatusCodes: [429], ...quick } })],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const r = await client(t, s.port).request('/x')
  t.equal(r.status, 429)
  t.equal(r.body, 'busy')
  t.equal(up.requests.length, 2)
  const m = await metrics(s)
  t.equal(m.decision('retry_limit_exceeded'), 1, 'the retry it wanted was refused')
  t.equal(m.requests({ route: 'codes', response_code: '429', response_flags: 'URX' }), 1, 'so the 429 says URX, as a 503 would')
})

t.test('attempts limit: the last failure reaches the client, flag URX', async (t) => {
  const up = await startHttpUpstream(t, { name: 'down', handler: answering(503, 'down') })
  const dead = await freePort()
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        routeTo('dead', { name: 'to-dead', match: { path: { prefix: '/dead' } }, retry: { attempts: 2, ...quick } }),
        routeTo('app', { name: 'to-app', retry: { attempts: 2, ...quick } }),
      ],
      clusters: [cluster('app', [up.port]), cluster('dead', [dead])],
    }),
  )
  const c = client(t, s.port)
  const r = await c.request('/x')
  t.equal(r.status, 503)
  t.equal(r.body, 'down', "the upstream's own 503 is relayed")
  t.equal(r.get('x-weft-response-flags'), undefined, 'relayed: no flag header')
  t.equal(up.requests.length, 3, 'first try + 2 retries')

  const d = await c.request('/dead')
  t.equal(d.status, 503)
  t.equal(d.get('x-weft-response-flags'), 'URX', 'a local reply after the last try says URX')
  t.equal(d.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_CONNECT', 'and the error code says what failed')
  t.equal((await endpointView(s, 'dead')).connections.connectFailures, 3)

  const m = await metrics(s)
  t.equal(m.decision('retry'), 4)
  t.equal(m.decision('retry_limit_exceeded'), 2)
  t.equal(m.requests({ route: 'to-app', response_code: '503', response_flags: 'URX' }), 1, 'metrics: the relayed 503 is flagged URX')
  t.equal(m.requests({ route: 'to-dead', response_code: '503', response_flags: 'URX' }), 1)
})

t.test('retry budget: a failing upstream sees at most (1 + percent) times the load', async (t) => {
  const failing = await startHttpUpstream(t, { name: 'failing', handler: answering(503, 'failing') })
  const unbudgeted = await startHttpUpstream(t, { name: 'storm', handler: answering(503, 'storm') })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        routeTo('storm', {
          name: 'storm',
          match: { path: { prefix: '/storm' } },
          // a reserve so large the budget never binds: every request is tried 1 + 3 times
          retry: { attempts: 3, budget: { percent: 20, minRetriesPerSecond: 1000 }, ...quick },
        }),
        routeTo('failing', { name: 'budgeted', retry: { attempts: 3, budget: { percent: 20, minRetriesPerSecond: 0, ttl: '10s' }, ...quick } }),
      ],
      clusters: [cluster('failing', [failing.port]), cluster('storm', [unbudgeted.port])],
    }),
  )
  const c = client(t, s.port)
  const N = 50
  for (let i = 0; i < N; i++) t.equal((await c.request('/b')).status, 503)
  const retries = failing.requests.length - N
  // Retries may be 20 % of the requests of the last 10 s: at most 10 for 50 requests.
  t.ok(failing.requests.length <= N * 1.2, `the upstream saw ${failing.requests.length} requests for ${N} (at most ${N * 1.2})`)
  t.ok(retries >= 1, 'the budget did allow some retries')
  let m = await metrics(s)
  t.equal(m.decision('retry'), retries)
  t.equal(m.decision('retry_budget_exhausted') + m.decision('retry_limit_exceeded'), N, 'each request ended refused once: by the budget or the attempts')
  t.ok(m.decision('retry_budget_exhausted') >= N - retries, 'the budget refused the rest')
  t.equal(m.requests({ route: 'budgeted', response_code: '503', response_flags: 'URX' }), N, 'every final 503 is flagged URX')

  const M = 20
  for (let i = 0; i < M; i++) t.equal((await c.request('/storm')).status, 503)
  t.equal(unbudgeted.requests.length, M * 4, 'without a binding budget: 4 tries per request')
  m = await metrics(s)
  t.equal(m.decision('retry'), retries + M * 3)
})

t.test('retry budget reserve: minRetriesPerSecond x ttl retries with percent 0', async (t) => {
  const up = await startHttpUpstream(t, { handler: answering(503, 'x') })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { retry: { attempts: 1, budget: { percent: 0, minRetriesPerSecond: 1, ttl: '10s' }, ...quick } })],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = client(t, s.port)
  for (let i = 0; i < 20; i++) await c.request('/x')
  t.equal(up.requests.length, 30, '20 requests + a reserve of 10 retries (1/s over 10 s)')
  const m = await metrics(s)
  t.equal(m.decision('retry'), 10)
  t.equal(m.decision('retry_limit_exceeded'), 10)
  t.equal(m.decision('retry_budget_exhausted'), 10)
})

// ---- the policy objects with an injected clock and random source ---------------------------------

t.test('retry budget (injected clock): percent of the window\'s requests plus the reserve; the window moves on', async (t) => {
  let now = 0
  const b = new RetryBudget({ percent: 20, minRetriesPerSecond: 1, ttlMs: 10_000 }, () => now)
  for (let i = 0; i < 50; i++) b.deposit()
  let allowed = 0
  while (b.withdraw()) allowed++
  t.equal(allowed, 20, '20 % of 50 requests + a reserve of 1/s x 10 s')
  t.equal(b.spent, 20)
  t.equal(b.exhausted, 1)
  now = 9_999
  t.notOk(b.withdraw(), 'still inside the window: spent')
  now = 10_000
  // the slot of t=0 (its requests and retries) left the window: only the reserve is back
  allowed = 0
  while (b.withdraw()) allowed++
  t.equal(allowed, 10, 'a new window: the reserve only (no requests in it)')
  now = 30_000
  for (let i = 0; i < 100; i++) b.deposit()
  allowed = 0
  while (b.withdraw()) allowed++
  t.equal(allowed, 30, 'after a quiet spell: 20 % of 100 + the reserve')
})

t.test('backoff (injected random): full jitter under base x 2^(n-1), capped at max', async (t) => {
  let r = 0.999999
  const p = new CompiledRetry({ attempts: 5, backoff: { base: '100ms', max: '300ms' } }, () => 0, () => r)
  t.same([1, 2, 3, 4].map((n) => Math.round(p.backoffMs(n))), [100, 200, 300, 300], 'the upper bounds: 100, 200, then max')
  r = 0.5
  t.same([1, 2, 3].map((n) => p.backoffMs(n)), [50, 100, 150], 'a random share of the bound')
  r = 0
  t.equal(p.backoffMs(3), 0, 'full jitter may not wait at all')
  const d = new CompiledRetry({ attempts: 1 }, () => 0, () => 0.999999)
  t.same([1, 5, 6].map((n) => Math.round(d.backoffMs(n))), [25, 250, 250], 'defaults: base 25ms, max 10 x base')
})
