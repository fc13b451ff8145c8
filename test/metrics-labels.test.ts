// /metrics as an operator reads it: request counts per route, response code and flag, Istio's
// label set, bodies and TCP counters, Istio naming, and metrics switched off.
import t from 'tap'
import { Pool } from 'undici'
import { cluster, getStatus as get, makeConfig, routeTo, startTestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { samples, sum } from './helpers/policy.ts'
import type { Bootstrap } from '../api/schema.ts'

function config(up: number, extra: Partial<Bootstrap> = {}): Bootstrap {
  const b = makeConfig({
    virtualHosts: [
      {
        name: 'reviews',
        service: { name: 'reviews', namespace: 'shop' },
        routes: [
          { name: 'hello', match: { path: { exact: '/hello' } }, directResponse: { status: 200, body: 'hi' } },
          routeTo('reviews', { name: 'to-reviews' }),
        ],
      },
      { name: 'dead', domains: ['dead'], routes: [routeTo('dead', { name: 'to-dead' })] },
    ],
    clusters: [
      cluster('reviews', [up], { destination: { workload: 'reviews-v1', namespace: 'shop' } }),
      cluster('dead', [1]),
    ],
  })
  b.node = { workload: 'productpage', namespace: 'shop' }
  return { ...b, ...extra }
}

t.test('request metrics: counts, labels, flags, bytes', async (t) => {
  const up = await startHttpUpstream(t, { name: 'reviews' })
  const s = await startTestSidecar(t, config(up.port))
  const p = new Pool(`http://127.0.0.1:${s.port}`)
  t.teardown(() => p.destroy())
  for (let i = 0; i < 5; i++) await (await p.request({ path: '/r', method: 'POST', headers: { host: 'reviews.shop' }, body: 'abcdef' })).body.text()
  await (await p.request({ path: '/hello', method: 'GET', headers: { host: 'reviews' } })).body.text()
  await (await p.request({ path: '/', method: 'GET', headers: { host: 'nowhere' } })).body.text()
  await (await p.request({ path: '/', method: 'GET', headers: { host: 'dead' } })).body.text()

  const r = await s.admin('/metrics')
  t.equal(r.status, 200)
  const all = samples(r.body)
  const ok = {
    reporter: 'source',
    source_workload: 'productpage',
    source_namespace: 'shop',
    destination_service: 'reviews.shop.svc.cluster.local',
    destination_workload: 'reviews-v1',
    destination_namespace: 'shop',
    request_protocol: 'http',
    response_code: '200',
    response_flags: '-',
    route: 'to-reviews',
  }
  t.equal(sum(all, 'weft_requests_total', ok), 5, 'five relayed requests with the full Istio label set')
  t.equal(sum(all, 'weft_request_duration_seconds_count', ok), 5, 'duration histogram count')
  t.ok(sum(all, 'weft_request_duration_seconds_sum', ok) > 0, 'duration histogram sum')
  t.equal(sum(all, 'weft_request_duration_seconds_bucket', { ...ok, le: '+Inf' }), 5, '+Inf bucket holds every observation')
  t.equal(sum(all, 'weft_request_bytes_sum', ok), 30, 'request body bytes: 5 x 6')
  t.ok(sum(all, 'weft_response_bytes_sum', ok) > 0, 'response body bytes')
  t.equal(sum(all, 'weft_requests_total', { route: 'hello', response_flags: 'DR', response_code: '200' }), 1, 'direct response: flag DR')
  t.equal(sum(all, 'weft_requests_total', { route: '', response_flags: 'NR', response_code: '404' }), 1, 'no route: 404 NR')
  t.equal(sum(all, 'weft_requests_total', { route: 'to-dead', response_flags: 'UF', response_code: '503' }), 1, 'connect failure: 503 UF')
  const stats = await s.adminJson('/stats')
  t.equal(sum(all, 'weft_tcp_connections_opened_total', { listener: 'out', reporter: 'source' }), stats.listeners[0].cxTotal, 'client connections opened, as /stats counts them')
  t.equal(sum(all, 'weft_config_version'), 1, 'config version')
  t.equal(sum(all, 'weft_proxy_decisions_total', { listener: 'out', decision: 'no_route' }), 1, 'decision counter')

  // Buckets are cumulative and ordered.
  const buckets = all.filter((x) => x.name === 'weft_request_duration_seconds_bucket' && x.labels.route === 'to-reviews')
  for (let i = 1; i < buckets.length; i++) t.ok(buckets[i].value >= buckets[i - 1].value, `bucket ${buckets[i].labels.le} cumulative`)
})

t.test('istio naming', async (t) => {
  const up = await startHttpUpstream(t, { name: 'reviews' })
  const s = await startTestSidecar(t, config(up.port, { telemetry: { metrics: { naming: 'istio' } } }))
  t.equal(await get(s.port, 'reviews'), 200)
  const all = samples((await s.admin('/metrics')).body)
  t.equal(sum(all, 'istio_requests_total', { route: 'to-reviews', response_code: '200' }), 1)
  t.equal(sum(all, 'istio_request_duration_milliseconds_count', { route: 'to-reviews' }), 1)
  t.ok(all.some((x) => x.name === 'istio_request_duration_milliseconds_bucket' && x.labels.le === '0.5'), 'millisecond buckets')
  t.equal(sum(all, 'weft_requests_total'), 0, 'no weft_ names for request metrics')
  t.equal(
    sum(all, 'istio_requests_total', {
      reporter: 'source',
      source_workload: 'productpage',
      source_workload_namespace: 'shop',
      destination_service: 'reviews.shop.svc.cluster.local',
      destination_service_name: 'reviews',
      destination_service_namespace: 'shop',
      destination_workload: 'reviews-v1',
      destination_workload_namespace: 'shop',
      destination_canonical_service: 'reviews-v1',
      response_code: '200',
      response_flags: '-',
    }),
    1,
    "Istio's standard label names (what its dashboards and Kiali query)",
  )
})

t.test('metrics disabled', async (t) => {
  const up = await startHttpUpstream(t, { name: 'reviews' })
  const s = await startTestSidecar(t, config(up.port, { telemetry: { metrics: { enabled: false } } }))
  t.equal(await get(s.port, 'reviews'), 200)
  t.equal((await s.admin('/metrics')).status, 404)
})

t.test('counters survive a config reload', async (t) => {
  const up = await startHttpUpstream(t, { name: 'reviews' })
  const s = await startTestSidecar(t, config(up.port))
  const hit = () => get(s.port, 'reviews')
  await hit()
  const { writeFileSync } = await import('node:fs')
  const { stringify } = await import('yaml')
  const next = config(up.port)
  next.drainTimeout = '3s'
  writeFileSync(s.file, stringify(next))
  t.equal(await s.sidecar.reload(), true)
  await hit()
  const all = samples((await s.admin('/metrics')).body)
  t.equal(sum(all, 'weft_requests_total', { route: 'to-reviews' }), 2, 'one series across configs')
  t.equal(sum(all, 'weft_config_version'), 2)
})
