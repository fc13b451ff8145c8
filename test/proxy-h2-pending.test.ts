// An HTTP/2 cluster's pending limit: requests waiting for its one connection beyond
// pool.maxPending get 503 UO at once, and /clusters counts them on the endpoint
// (connections.overflows), as for an HTTP/1 pool.
import t from 'tap'
import { createServer } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { cluster, makeConfig, startTestSidecar } from './helpers/sidecar.ts'

t.test('HTTP/2 cluster: pending overflow answered 503 UO and counted on /clusters', async (t) => {
  const app = createServer((_req, res) => res.end('ok'))
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => app.close(() => r())))
  const port = (app.address() as AddressInfo).port
  const config = makeConfig({
    routes: [{ backends: [{ cluster: 'h2' }] }],
    // no request may wait for the connection: the first one, made while it connects, overflows
    clusters: [cluster('h2', [port], { protocol: 'http2', pool: { maxPending: 0 } })],
  })
  const s = await startTestSidecar(t, config)
  const r = await request(`http://127.0.0.1:${s.port}/x`)
  t.equal(r.statusCode, 503)
  t.equal(r.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_OVERFLOW')
  await r.body.text()
  const view = JSON.parse((await s.admin('/clusters')).body) as { clusters: { name: string; endpoints: { connections: { overflows: number } }[] }[] }
  t.equal(view.clusters.find((c) => c.name === 'h2')!.endpoints[0].connections.overflows, 1, 'counted on the endpoint')
})
