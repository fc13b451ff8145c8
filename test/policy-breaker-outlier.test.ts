// Cluster protection as a client and the admin API see it: the error-rate circuit breaker (open:
// 503 UO WEFT_ERR_CIRCUIT_OPEN without contacting the upstream; half-open: one probe; closed again
// on its success), outlier ejection and return (capped by maxEjectionPercent), and the overflow of
// the connection pool (maxConnections + maxPending) and of the cluster (maxRequests).
import t from 'tap'
import { cluster, endpointView, makeConfig, routeTo, sleep, startTestSidecar, until, type TestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream, type HttpUpstream } from './helpers/upstream.ts'
import { client, clusterView, Held, metrics, type Client } from './helpers/policy.ts'
import { rawClient } from './helpers/raw.ts'
import { newOutlierState, OutlierDetector, OUTCOME_5XX, OUTCOME_CONNECT, OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../proxy/cluster/outlier.ts'

/** An upstream whose answer the test switches: a status, or held until released. */
async function switchable(t: Parameters<typeof startHttpUpstream>[0], name: string) {
  const held = new Held()
  const ctl = { mode: 200 as number | 'hold', held }
  const up = await startHttpUpstream(t, {
    name,
    handler: (_rec, res) => {
      if (ctl.mode === 'hold') return held.hold(res, 200, name)
      res.writeHead(ctl.mode, { 'content-length': Buffer.byteLength(name) })
      res.end(name)
    },
  })
  t.teardown(() => held.releaseAll())
  return { up, ctl }
}

const breakerState = async (s: TestSidecar) => (await clusterView(s, 'app')).circuitBreaker.state as string

t.test('circuit breaker: opens, fails fast, half-opens after resetTimeout, one probe closes it', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app')],
      clusters: [cluster('app', [up.port], { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 4, window: '10s', resetTimeout: '300ms' } })],
    }),
  )
  const c = client(t, s.port)
  t.equal(await breakerState(s), 'closed')
  ctl.mode = 500
  for (let i = 0; i < 3; i++) t.equal((await c.request('/x')).status, 500, 'failures under the volume threshold are relayed')
  t.equal(await breakerState(s), 'closed', 'fewer than volumeThreshold requests: still closed')
  t.equal((await c.request('/x')).status, 500)
  await until('breaker open', async () => (await breakerState(s)) === 'open')
  const openedAt = performance.now()

  for (let i = 0; i < 3; i++) {
    const r = await c.request('/x')
    t.equal(r.status, 503, 'open: 503 at once')
    t.equal(r.get('x-weft-response-flags'), 'UO')
    t.equal(r.get('x-weft-error'), 'WEFT_ERR_CIRCUIT_OPEN')
  }
  t.equal(up.requests.length, 4, 'the upstream was not contacted while open')
  t.equal((await clusterView(s, 'app')).circuitBreaker.rejected, 3)

  await until('breaker half-open', async () => (await breakerState(s)) === 'half-open', 3000)
  t.ok(performance.now() - openedAt >= 250, `half-open after resetTimeout (${(performance.now() - openedAt).toFixed(0)} ms)`)
  ctl.mode = 'hold'
  const probe = c.request('/probe')
  await ctl.held.waitFor(1)
  const other = await c.request('/during-probe')
  t.equal(other.status, 503, 'while the probe is out, others still fail fast')
  t.equal(other.get('x-weft-error'), 'WEFT_ERR_CIRCUIT_OPEN')
  t.equal(up.requests.length, 5, 'only the probe reached the upstream')
  ctl.mode = 200
  ctl.held.releaseAll()
  t.equal((await probe).status, 200, 'the probe succeeds')
  await until('breaker closed', async () => (await breakerState(s)) === 'closed')
  for (let i = 0; i < 5; i++) t.equal((await c.request('/after')).status, 200, 'closed: traffic flows')
  t.equal(up.requests.length, 10)

  const m = await metrics(s)
  t.equal(m.decision('circuit_open'), 4)
  t.equal(m.clusterDecision('app', 'circuit_open'), 4)
  t.equal(m.requests({ response_code: '503', response_flags: 'UO' }), 4)
})

t.test('circuit breaker: a failed probe opens it again', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app')],
      clusters: [cluster('app', [up.port], { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeout: '150ms' } })],
    }),
  )
  const c = client(t, s.port)
  ctl.mode = 503
  for (let i = 0; i < 2; i++) t.equal((await c.request('/x')).status, 503)
  await until('open', async () => (await breakerState(s)) === 'open')
  await until('half-open', async () => (await breakerState(s)) === 'half-open')
  t.equal((await c.request('/probe')).get('x-weft-error'), undefined, 'the probe reaches the upstream (its own 503)')
  await until('open again', async () => (await breakerState(s)) === 'open')
  const r = await c.request('/x')
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_CIRCUIT_OPEN')
  t.equal(up.requests.length, 3)
})

t.test('circuit breaker: after closing, the window starts afresh (one failure does not reopen it)', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app')],
      clusters: [cluster('app', [up.port], { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 3, window: '10s', resetTimeout: '150ms' } })],
    }),
  )
  const c = client(t, s.port)
  ctl.mode = 500
  for (let i = 0; i < 3; i++) await c.request('/x')
  await until('open', async () => (await breakerState(s)) === 'open')
  await until('half-open', async () => (await breakerState(s)) === 'half-open')
  ctl.mode = 200
  t.equal((await c.request('/probe')).status, 200)
  await until('closed', async () => (await breakerState(s)) === 'closed')
  ctl.mode = 500
  t.equal((await c.request('/one-failure')).status, 500, 'a failure after recovery is relayed')
  ctl.mode = 200
  t.equal((await c.request('/x')).status, 200, 'and the next request still goes through')
  t.equal(await breakerState(s), 'closed', 'the failures that opened it before are forgotten')
  t.equal(up.requests.length, 6)
})

t.test('circuit breaker: failures older than the window do not count', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app')],
      clusters: [cluster('app', [up.port], { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 2, window: '300ms', buckets: 3 } })],
    }),
  )
  const c = client(t, s.port)
  ctl.mode = 500
  await c.request('/old')
  // kept: the window is time and the in-process sidecar takes no clock (the breaker does: see
  // test/breaker-window.test.ts); 300 ms window + one 100 ms bucket + margin, and a late wake-up
  // only makes the old failure older
  await sleep(450)
  await c.request('/new')
  t.equal(await breakerState(s), 'closed', 'one failure in the window: under the volume threshold')
  t.equal((await c.request('/x')).status, 500, 'requests still reach the upstream')
  await until('two failures in the window open it', async () => (await breakerState(s)) === 'open')
  t.equal(up.requests.length, 3)
})

t.test('circuit breaker: the error threshold counts "or more", as documented', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  const s = await startTestSidecar(
    t,
    makeConfig({
      clusters: [
        cluster('app', [up.port], { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeout: '10s' } }),
        cluster('all', [up.port], { circuitBreaker: { errorThresholdPercentage: 100, volumeThreshold: 2, resetTimeout: '10s' } }),
      ],
      virtualHosts: [
        { name: 'app', domains: ['svc'], routes: [routeTo('app')] },
        { name: 'all', domains: ['all'], routes: [routeTo('all')] },
      ],
    }),
  )
  const c = client(t, s.port)
  for (const status of [200, 200, 500, 500]) {
    ctl.mode = status
    t.equal((await c.request('/x')).status, status)
  }
  await until('2 failures of 4 at a 50 % threshold open the breaker', async () => (await breakerState(s)) === 'open')
  ctl.mode = 500
  for (let i = 0; i < 2; i++) t.equal((await c.request('/x', { headers: { host: 'all' } })).status, 500)
  await until('100 %: every request failed, the breaker opens', async () => (await clusterView(s, 'all')).circuitBreaker.state === 'open')
  t.equal((await c.request('/x', { headers: { host: 'all' } })).get('x-weft-error'), 'WEFT_ERR_CIRCUIT_OPEN')
})

// Known bug (reported, not fixed here: the fix is in proxy/router/exchange.ts endTry, a hot-path
// file): a "neutral" end of a try (the client left, the endpoint's pending queue was full) tells
// the breaker "success", so a half-open probe whose client left closes the breaker.
t.test('circuit breaker: a half-open probe whose client went away does not close it', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app')],
      clusters: [cluster('app', [up.port], { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeout: '150ms' } })],
    }),
  )
  const c = client(t, s.port)
  ctl.mode = 500
  for (let i = 0; i < 2; i++) t.equal((await c.request('/x')).status, 500)
  await until('open', async () => (await breakerState(s)) === 'open')
  await until('half-open', async () => (await breakerState(s)) === 'half-open')
  ctl.mode = 'hold'
  const raw = await rawClient(t, s.port)
  await raw.write('GET /probe HTTP/1.1\r\nHost: svc\r\n\r\n')
  await ctl.held.waitFor(1)
  raw.socket.resetAndDestroy() // the probe's client leaves: the upstream never answered
  await until('the probe is over', async () => (await clusterView(s, 'app')).activeRequests === 0)
  t.not(await breakerState(s), 'closed', 'no answer from the upstream is no proof it recovered')
  ctl.mode = 500
  ctl.held.releaseAll()
  const r = await c.request('/x')
  t.ok(r.status === 503 || r.status === 500, `the next request is a fail-fast 503 or a new probe (${r.status})`)
  t.equal(up.requests.length, r.status === 500 ? 4 : 3, 'no flood of requests to the broken upstream')
})

// ---- outlier detection ------------------------------------------------------------------------------

async function healthOf(s: TestSidecar): Promise<string[]> {
  return (await clusterView(s, 'app')).endpoints.map((e: { health: string }) => e.health)
}

async function hits(c: Client, n: number): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await c.request('/x')).status)
  return out
}

t.test('outlier detection: a failing endpoint is ejected, traffic avoids it, it returns after baseEjectionTime', async (t) => {
  const bad = await switchable(t, 'bad')
  bad.ctl.mode = 500
  const good: HttpUpstream[] = []
  for (let i = 0; i < 3; i++) good.push((await switchable(t, `good${i}`)).up)
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app')],
      clusters: [
        cluster('app', [bad.up.port, ...good.map((g) => g.port)], {
          outlierDetection: { consecutive5xx: 3, baseEjectionTime: '300ms', maxEjectionPercent: 50 },
        }),
      ],
    }),
  )
  const c = client(t, s.port)
  t.same(await healthOf(s), ['healthy', 'healthy', 'healthy', 'healthy'])
  // round robin: every 4th request goes to the bad endpoint; its third 500 ejects it
  const first = await hits(c, 12)
  t.equal(first.filter((x) => x === 500).length, 3)
  t.equal(bad.up.requests.length, 3)
  const ejectedAt = performance.now()
  const v = await clusterView(s, 'app')
  t.equal(v.endpoints[0].health, 'ejected', '/clusters shows the endpoint ejected')
  t.equal(v.endpoints[0].ejections, 1)
  t.equal(v.outlierDetection.ejected, 1)
  t.equal(v.outlierDetection.ejectionsTotal, 1)

  const during = await hits(c, 9)
  t.same(during, Array(9).fill(200), 'while ejected, all traffic goes to the others')
  t.equal(bad.up.requests.length, 3, 'the ejected endpoint got nothing')

  await until('the endpoint returns', async () => (await healthOf(s))[0] === 'healthy', 3000)
  const back = performance.now() - ejectedAt
  t.ok(back >= 250, `back after ~baseEjectionTime (${back.toFixed(0)} ms)`)
  bad.ctl.mode = 200
  await hits(c, 8)
  t.ok(bad.up.requests.length > 3, 'it gets traffic again')
  const m = await metrics(s)
  t.equal(m.clusterDecision('app', 'ejection'), 1)
})

t.test('outlier detection: maxEjectionPercent 25 of 4 endpoints ejects one at a time', async (t) => {
  const ups: Awaited<ReturnType<typeof switchable>>[] = []
  for (let i = 0; i < 4; i++) ups.push(await switchable(t, `e${i}`))
  ups[0].ctl.mode = 500
  ups[1].ctl.mode = 500
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app')],
      clusters: [
        cluster(
          'app',
          ups.map((u) => u.up.port),
          { outlierDetection: { consecutive5xx: 2, baseEjectionTime: '10s', maxEjectionPercent: 25 } },
        ),
      ],
    }),
  )
  const c = client(t, s.port)
  let maxEjected = 0
  for (let i = 0; i < 40; i++) {
    await c.request('/x')
    const v = await clusterView(s, 'app')
    maxEjected = Math.max(maxEjected, v.outlierDetection.ejected)
  }
  const v = await clusterView(s, 'app')
  t.equal(maxEjected, 1, 'never more than 25 % (one endpoint) ejected')
  t.equal(v.endpoints.filter((e: { health: string }) => e.health === 'ejected').length, 1)
  t.ok(v.outlierDetection.ejectionsOverflow >= 1, `the second bad endpoint's ejection was refused (${v.outlierDetection.ejectionsOverflow})`)
  const m = await metrics(s)
  t.equal(m.clusterDecision('app', 'ejection'), 1)
  t.equal(m.clusterDecision('app', 'ejection_overflow'), v.outlierDetection.ejectionsOverflow)
})

// ---- overflow ------------------------------------------------------------------------------------------

t.test('pool overflow: maxConnections 1 + maxPending 0, a second concurrent request gets 503 UO', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  ctl.mode = 'hold'
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port], { pool: { maxConnections: 1, maxPending: 0 } })] }),
  )
  const c = client(t, s.port)
  const first = c.request('/first')
  await ctl.held.waitFor(1)
  const second = await c.request('/second')
  t.equal(second.status, 503)
  t.equal(second.get('x-weft-response-flags'), 'UO')
  t.equal(second.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_OVERFLOW')
  ctl.held.releaseAll()
  t.equal((await first).status, 200, 'the first is served')
  t.equal(up.requests.length, 1)
  t.equal((await endpointView(s, 'app')).connections.overflows, 1, '/clusters counts the pool overflow')
  const m = await metrics(s)
  t.equal(m.decision('overflow'), 1, 'the decision counter moves')
  t.equal(m.requests({ response_code: '503', response_flags: 'UO' }), 1)
})

t.test('cluster maxRequests: one in flight, the next gets 503 UO at once', async (t) => {
  const { up, ctl } = await switchable(t, 'app')
  ctl.mode = 'hold'
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port], { pool: { maxRequests: 1 } })] }))
  const c = client(t, s.port)
  const first = c.request('/first')
  await ctl.held.waitFor(1)
  const second = await c.request('/second')
  t.equal(second.status, 503)
  t.equal(second.get('x-weft-response-flags'), 'UO')
  t.equal(second.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_OVERFLOW')
  const v = await clusterView(s, 'app')
  t.equal(v.activeRequests, 1)
  t.equal(v.maxRequests, 1)
  t.equal(v.overflows, 1)
  ctl.held.releaseAll()
  t.equal((await first).status, 200)
  ctl.mode = 200
  t.equal((await c.request('/third')).status, 200, 'room again once the first is done')
  const m = await metrics(s)
  t.equal(m.decision('overflow'), 1)
  t.equal(m.clusterDecision('app', 'overflow'), 1)
})

// ---- the outlier detector with an injected clock ------------------------------------------------------

function endpoints(n: number) {
  return Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i}:80`, outlier: newOutlierState() }))
}

t.test('outlier detector: ejected for base x ejection count, capped at maxEjectionTime; back when it ends', async (t) => {
  const now = 1_000 // the clock ejectedUntil is read on; the return itself is a timer
  const eps = endpoints(2)
  const d = new OutlierDetector({ consecutive5xx: 2, baseEjectionTime: '20ms', maxEjectionTime: '50ms', maxEjectionPercent: 100 }, eps, undefined, () => now)
  const s = eps[0].outlier
  t.teardown(() => {
    for (const e of eps) if (e.outlier.timer !== null) clearTimeout(e.outlier.timer)
  })
  const lengths: number[] = []
  for (let round = 1; round <= 3; round++) {
    d.report(eps[0], OUTCOME_5XX)
    t.notOk(d.isEjected(s), `round ${round}: one failure is not enough`)
    d.report(eps[0], OUTCOME_5XX)
    t.ok(d.isEjected(s), `round ${round}: two in a row eject`)
    lengths.push(s.ejectedUntil - now)
    t.equal(s.ejections, round)
    await until(`round ${round}: the endpoint returns`, () => !d.isEjected(s), 2000, 5)
  }
  t.same(lengths, [20, 40, 50], 'base x 1, base x 2, then capped at max')
  t.same(d.counters, { ejections: 3, ejectionsOverflow: 0 })
})

t.test('outlier detector: which failures count, and a success resets the run', async (t) => {
  const eps = endpoints(1)
  const d = new OutlierDetector(
    { consecutive5xx: 3, consecutiveGatewayErrors: 2, consecutiveConnectFailures: 2, baseEjectionTime: '1h', maxEjectionPercent: 100 },
    eps,
  )
  const s = eps[0].outlier
  t.teardown(() => {
    if (s.timer !== null) clearTimeout(s.timer)
  })
  d.report(eps[0], OUTCOME_5XX)
  d.report(eps[0], OUTCOME_5XX)
  d.report(eps[0], OUTCOME_OK)
  d.report(eps[0], OUTCOME_5XX)
  d.report(eps[0], OUTCOME_5XX)
  t.notOk(d.isEjected(s), 'a success in between: the 5xx run starts again')
  d.report(eps[0], OUTCOME_CONNECT)
  t.notOk(d.isEjected(s), 'a connect failure is not a 5xx, and one is not two')
  t.same([s.consecutive5xx, s.consecutiveGateway, s.consecutiveConnect], [2, 0, 1])
  d.report(eps[0], OUTCOME_GATEWAY)
  t.ok(d.isEjected(s), 'a 503 is a 5xx too: the third 5xx in a row ejects')
  t.same([s.consecutive5xx, s.consecutiveGateway, s.consecutiveConnect], [0, 0, 0], 'an ejection clears the counts')

  const e2 = endpoints(1)
  const g = new OutlierDetector({ consecutive5xx: 0, consecutiveGatewayErrors: 2, consecutiveConnectFailures: 0, baseEjectionTime: '1h' }, e2)
  t.teardown(() => {
    if (e2[0].outlier.timer !== null) clearTimeout(e2[0].outlier.timer)
  })
  g.report(e2[0], OUTCOME_5XX)
  g.report(e2[0], OUTCOME_5XX)
  g.report(e2[0], OUTCOME_CONNECT)
  t.notOk(g.isEjected(e2[0].outlier), 'consecutive5xx and consecutiveConnectFailures 0: off; a 500 is no gateway error')
  g.report(e2[0], OUTCOME_RESET)
  g.report(e2[0], OUTCOME_GATEWAY)
  t.ok(g.isEjected(e2[0].outlier), 'a reset and a 502/503/504 are gateway errors')
})

t.test('outlier detector: maxEjectionPercent rounds down but ejects at least one; 0 ejects none', async (t) => {
  const cases: [number, number, number][] = [
    // endpoints, percent, ejected at most
    [4, 50, 2],
    [4, 25, 1],
    [4, 10, 1],
    [10, 35, 3],
    [3, 100, 3],
    [4, 0, 0],
  ]
  for (const [n, percent, most] of cases) {
    const eps = endpoints(n)
    const d = new OutlierDetector({ consecutive5xx: 1, baseEjectionTime: '1h', maxEjectionPercent: percent }, eps)
    for (const e of eps) d.report(e, OUTCOME_5XX)
    for (const e of eps) if (e.outlier.timer !== null) clearTimeout(e.outlier.timer)
    t.equal(d.ejectedCount(), most, `${n} endpoints, ${percent} %: ${most} ejected`)
    t.same(d.counters, { ejections: most, ejectionsOverflow: n - most })
  }
})
