// The filter chain: registered once (proxy/filters/index.ts), compiled per route in order, and
// run by both codecs: the same route answers an HTTP/1.1 and an HTTP/2 client alike, and the
// decision counters and response flags come from the registered filters.
import { connect } from 'node:http2'
import t from 'tap'
import { Flags } from '../proxy/router/exchange.ts'
import { compileFilters, FILTER_DECISIONS, FILTERS, newFilterCounters } from '../proxy/filters/index.ts'
import { cluster, makeConfig, routeTo, startTestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { metrics } from './helpers/policy.ts'
import type { Route } from '../api/schema.ts'

t.test('the tables are derived from the registered filters', async (t) => {
  t.same(FILTERS.map((f) => f.name), ['rateLimit', 'globalRateLimit', 'redirect', 'fault'], 'Envoy order: local rate limit, global rate limit, redirect, fault')
  t.same(FILTER_DECISIONS, [['rateLimited', 'rate_limited'], ['globalRateLimitAllowed', 'global_rate_limit_allowed'], ['globalRateLimited', 'global_rate_limited'], ['rateLimitServiceFailedOpen', 'rate_limit_service_failed_open'], ['rateLimitServiceError', 'rate_limit_service_error'], ['faultAborts', 'fault_abort'], ['faultDelays', 'fault_delay'], ['authzDenied', 'authz_denied'], ['authzAudited', 'authz_audit']], 'the route filters, then the listener-only authorization filter')
  t.same(newFilterCounters(), { rateLimited: 0, globalRateLimitAllowed: 0, globalRateLimited: 0, rateLimitServiceFailedOpen: 0, rateLimitServiceError: 0, faultAborts: 0, faultDelays: 0, authzDenied: 0, authzAudited: 0 })
  t.equal(Flags.RateLimitServiceError, 'RLSE')
  t.equal(Flags.RateLimited, 'RL')
  t.equal(Flags.FaultInjected, 'FI')
  t.equal(Flags.DelayInjected, 'DI')
  const plain: Route = { backends: [{ cluster: 'a' }], timeout: '1s' }
  t.equal(compileFilters(plain, { matchedPrefix: '/' }), null, 'a route without filters: null')
  const chain = compileFilters({ fault: { abort: { percent: 100, status: 503 } }, rateLimit: { requests: 1, interval: '1s' } }, { matchedPrefix: '/' })
  t.equal(chain?.length, 2)
  t.equal(chain?.[0].constructor.name, 'RateLimitFilter', 'in registry order, not config order')
  t.equal(chain?.[1].constructor.name, 'FaultFilter')
})

/** An HTTP/2 (h2c, prior knowledge) GET: status and headers. */
function h2get(port: number, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`)
    session.on('error', reject)
    const req = session.request({ ':method': 'GET', ':path': path, ':authority': 'app.test' })
    let body = ''
    let headers: Record<string, string | string[] | undefined> = {}
    req.setEncoding('utf8')
    req.on('response', (h) => (headers = h))
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      session.close()
      resolve({ status: Number(headers[':status']), headers, body })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('one chain for both codecs: rate limit, redirect and fault abort answer HTTP/1.1 and HTTP/2 alike', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(t, makeConfig({
    routes: [
      routeTo('app', { name: 'limited', match: { path: { prefix: '/limited' } }, rateLimit: { requests: 1, interval: '1h', burst: 1 } }),
      { name: 'moved', match: { path: { prefix: '/moved' } }, redirect: { path: '/new', status: 301 } },
      routeTo('app', { name: 'broken', match: { path: { prefix: '/broken' } }, fault: { abort: { percent: 100, status: 418 } } }),
    ],
    clusters: [cluster('app', [up.port])],
  }))
  const base = `http://127.0.0.1:${s.port}`

  const h1ok = await fetch(`${base}/limited`)
  t.equal(h1ok.status, 200, 'HTTP/1.1: the first request takes the only token')
  await h1ok.text()
  const h1 = await fetch(`${base}/limited`)
  t.equal(h1.status, 429)
  t.equal(h1.headers.get('x-weft-response-flags'), 'RL')
  t.equal(h1.headers.get('retry-after'), '3600')
  await h1.text()
  const h2 = await h2get(s.port, '/limited')
  t.equal(h2.status, 429, 'HTTP/2: the same bucket, the same answer')
  t.equal(h2.headers['x-weft-response-flags'], 'RL')
  t.equal(h2.headers['retry-after'], '3600')

  const r1 = await fetch(`${base}/moved?q=1`, { redirect: 'manual' })
  t.equal(r1.status, 301)
  t.equal(r1.headers.get('location'), `http://127.0.0.1:${s.port}/new?q=1`, 'the Location keeps the request\'s authority')
  await r1.text()
  const r2 = await h2get(s.port, '/moved?q=1')
  t.equal(r2.status, 301)
  t.equal(r2.headers.location, 'http://app.test/new?q=1')

  const f1 = await fetch(`${base}/broken`)
  t.equal(f1.status, 418)
  t.equal(f1.headers.get('x-weft-response-flags'), 'FI')
  t.equal(await f1.text(), 'WEFT_ERR_FAULT_ABORT: fault injected\n')
  const f2 = await h2get(s.port, '/broken')
  t.equal(f2.status, 418)
  t.equal(f2.headers['x-weft-response-flags'], 'FI')
  t.equal(f2.body, 'WEFT_ERR_FAULT_ABORT: fault injected\n')

  t.equal(up.requests.length, 1, 'only the first request reached the upstream')
  const m = await metrics(s)
  t.equal(m.decision('rate_limited'), 2, 'one rate_limited decision per codec')
  t.equal(m.decision('fault_abort'), 2)
  t.equal(m.decision('fault_delay'), 0, 'a registered filter\'s counter is exported at 0')
})

t.test('listener-level filters run for every request of the listener, both codecs, before routing', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const config = makeConfig({
    routes: [routeTo('app', { name: 'a', match: { path: { prefix: '/a' } } }), routeTo('app', { name: 'b', match: { path: { prefix: '/b' } } })],
    clusters: [cluster('app', [up.port])],
  })
  config.listeners[0].filters = { rateLimit: { requests: 2, interval: '1h' } }
  const s = await startTestSidecar(t, config)
  const base = `http://127.0.0.1:${s.port}`
  const a = await fetch(`${base}/a`)
  t.equal(a.status, 200)
  await a.text()
  const b = await h2get(s.port, '/b')
  t.equal(b.status, 200, 'another route, another codec: the same listener bucket')
  const c = await fetch(`${base}/nowhere`)
  t.equal(c.status, 429, 'before routing: even a request no route matches is limited')
  t.equal(c.headers.get('x-weft-response-flags'), 'RL')
  await c.text()
  const d = await h2get(s.port, '/a')
  t.equal(d.status, 429)
  t.equal(d.headers['x-weft-response-flags'], 'RL')
  t.equal(up.requests.length, 2)
  const m = await metrics(s)
  t.equal(m.decision('rate_limited'), 2)
  t.equal(m.decision('no_route'), 0, 'the limited request never reached routing')
})
