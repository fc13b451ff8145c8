// Timeouts as a client sees them: the per-try timeout (another endpoint answers, or 504 UT), the
// route timeout over all tries (504 UT WEFT_ERR_REQUEST_TIMEOUT, the upstream connection closed;
// a response already under way is cut off), and an endpoint whose connect hangs.
import t from 'tap'
import { cluster, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream, startRawUpstream } from './helpers/upstream.ts'
import { rawClient } from './helpers/raw.ts'
import { client, Held, metrics, startBlackhole } from './helpers/policy.ts'

const quick = { backoff: { base: '1ms', max: '2ms' } }

t.test('per-try timeout with a retry: the other endpoint answers', async (t) => {
  const held = new Held()
  const slow = await startHttpUpstream(t, { name: 'slow', handler: (_rec, res) => held.hold(res) })
  t.teardown(() => held.releaseAll())
  const fast = await startHttpUpstream(t, { name: 'fast' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { retry: { attempts: 1, perTryTimeout: '100ms', ...quick } })],
      clusters: [cluster('app', [slow.port, fast.port])],
    }),
  )
  const c = client(t, s.port)
  for (let i = 0; i < 3; i++) {
    const r = await c.request(`/p${i}`)
    t.equal(r.status, 200)
    t.equal(r.body, `fast GET /p${i}`)
  }
  t.ok(slow.requests.length >= 1, 'the silent endpoint was tried')
  const m = await metrics(s)
  t.equal(m.decision('per_try_timeout'), slow.requests.length, 'one per-try timeout per silent try')
  t.equal(m.decision('retry'), slow.requests.length)
  await until('the timed-out tries closed their upstream connections', () => slow.sockets.size === 0)
})

t.test('per-try timeout without retries: 504 UT', async (t) => {
  const held = new Held()
  const up = await startHttpUpstream(t, { handler: (_rec, res) => held.hold(res) })
  t.teardown(() => held.releaseAll())
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { retry: { attempts: 0, perTryTimeout: '100ms' } })], clusters: [cluster('app', [up.port])] }),
  )
  const r = await client(t, s.port).request('/x')
  t.equal(r.status, 504)
  t.equal(r.get('x-weft-response-flags'), 'UT')
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_TIMEOUT')
  t.ok(r.ms >= 90 && r.ms < 1500, `answered after the per-try timeout (${r.ms.toFixed(0)} ms)`)
  t.equal(up.requests.length, 1)
  await until('upstream connection closed', () => up.sockets.size === 0)
  const m = await metrics(s)
  t.equal(m.decision('per_try_timeout'), 1)
  t.equal(m.decision('retry'), 0)
  t.equal(m.decision('retry_limit_exceeded'), 0, 'no retries configured: nothing refused')
  t.equal(m.requests({ response_code: '504', response_flags: 'UT' }), 1)
})

t.test('per-try timeout on every try: 504 after the last one, flag URX', async (t) => {
  const held = new Held()
  const up = await startHttpUpstream(t, { handler: (_rec, res) => held.hold(res) })
  t.teardown(() => held.releaseAll())
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { retry: { attempts: 1, perTryTimeout: '80ms', ...quick } })], clusters: [cluster('app', [up.port])] }),
  )
  const r = await client(t, s.port).request('/x')
  t.equal(r.status, 504)
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_TIMEOUT')
  t.equal(r.get('x-weft-response-flags'), 'URX', 'retries exhausted: URX (the error code tells the timeout)')
  t.ok(r.ms >= 150, `two tries of 80 ms (${r.ms.toFixed(0)} ms)`)
  t.equal(up.requests.length, 2)
  const m = await metrics(s)
  t.equal(m.decision('per_try_timeout'), 2)
  t.equal(m.decision('retry'), 1)
  t.equal(m.decision('retry_limit_exceeded'), 1)
})

t.test('request timeout: 504 UT WEFT_ERR_REQUEST_TIMEOUT, upstream connection closed', async (t) => {
  const up = await startRawUpstream(t) // reads requests, never answers
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app', { timeout: '150ms' })], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  const t0 = performance.now()
  await c.write('GET /slow HTTP/1.1\r\nHost: svc\r\n\r\n')
  const conn = await up.nextConn()
  await conn.nextRequest()
  const r = await c.response()
  const ms = performance.now() - t0
  t.equal(r.status, 504)
  t.equal(r.get('x-weft-response-flags'), 'UT')
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_REQUEST_TIMEOUT')
  t.ok(ms >= 140 && ms < 1500, `after the route timeout (${ms.toFixed(0)} ms)`)
  await until('the proxy closed the upstream connection', () => conn.done)
  t.notOk(c.done, 'the client connection stays usable')
  const m = await metrics(s)
  t.equal(m.decision('request_timeout'), 1)
  t.equal(m.requests({ response_code: '504', response_flags: 'UT' }), 1)
})

t.test('request timeout after the response started: the client sees it cut off', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    await conn.nextRequest()
    conn.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789') // then nothing
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app', { timeout: '150ms' })], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response({ timeoutMs: 2000 })
  t.equal(r.status, 200, 'the head was already relayed')
  t.equal(r.complete, false, 'the body is incomplete')
  t.equal(r.body.toString(), '0123456789')
  t.ok(c.done, 'the client connection is closed: the only way to say "incomplete"')
  await until('upstream connection closed', () => up.conns[0]?.done)
  const m = await metrics(s)
  t.equal(m.decision('request_timeout'), 1)
  t.equal(m.requests({ response_code: '200', response_flags: 'UT' }), 1, 'metrics: the 200 that was cut off is flagged UT')
})

t.test('the route timeout bounds all tries; a fast answer is unaffected', async (t) => {
  const held = new Held()
  const up = await startHttpUpstream(t, {
    handler: (rec, res) => {
      if (rec.url === '/fast') return res.end('fast')
      held.hold(res)
    },
  })
  t.teardown(() => held.releaseAll())
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { timeout: '250ms', retry: { attempts: 5, perTryTimeout: '100ms', ...quick } })],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = client(t, s.port)
  const r = await c.request('/slow')
  t.equal(r.status, 504)
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_REQUEST_TIMEOUT')
  t.ok(r.ms >= 240 && r.ms < 550, `the route timeout, not 6 x 100 ms (${r.ms.toFixed(0)} ms)`)
  t.ok(up.requests.length >= 2 && up.requests.length <= 3, `2 or 3 tries started (${up.requests.length})`)
  const f = await c.request('/fast')
  t.equal(f.status, 200)
  t.equal(f.body, 'fast')
  const m = await metrics(s)
  t.equal(m.decision('request_timeout'), 1)
  t.equal(m.decision('per_try_timeout'), m.decision('retry'), 'every per-try timeout but the last was retried')
})

t.test('per-try timeout while connecting to a black-holed endpoint: the retry answers', async (t) => {
  const hole = await startBlackhole(t)
  const held = new Held()
  const slow = await startHttpUpstream(t, { name: 'slow', handler: (_rec, res) => held.hold(res, 200, 'slow but fine') })
  t.teardown(() => held.releaseAll())
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { retry: { attempts: 1, perTryTimeout: '250ms', ...quick } })],
      // the connect to the black hole gives up at 300 ms, while the retry is in flight
      clusters: [cluster('app', [hole, slow.port], { pool: { connectTimeout: '300ms' } })],
    }),
  )
  const c = client(t, s.port)
  const pending = c.request('/x')
  await held.waitFor(1)
  // the abandoned connect times out while the retry waits for its answer
  await until('connect timeout counted', async () => (await s.adminJson('/clusters')).clusters[0].endpoints[0].connections.connectTimeouts === 1)
  held.releaseAll()
  const r = await pending
  t.equal(r.status, 200, 'the late connect failure of the abandoned try does not answer for the retry')
  t.equal(r.body, 'slow but fine')
  const v = (await s.adminJson('/clusters')).clusters[0]
  await until('connect timeout counted', async () => (await s.adminJson('/clusters')).clusters[0].endpoints[0].connections.connectTimeouts === 1)
  t.equal(v.endpoints[1].activeRequests, 0)
  // and the next request is served normally
  const next = c.request('/y')
  await held.waitFor(2)
  held.releaseAll()
  t.equal((await next).status, 200)
  const m = await metrics(s)
  t.equal(m.decision('per_try_timeout'), 2)
  t.equal(m.decision('retry'), 2)
})
