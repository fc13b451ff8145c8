// `weft proxy-config` and `weft proxy-status`, the real CLI against a real sidecar and a real
// control plane with proxies connected over gRPC.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { startControlPlane } from '../cli/control-plane.ts'
import { startXdsSidecar } from '../proxy/xds/sidecar.ts'
import { cluster, freePort, makeConfig, startTestSidecar, tempDir, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { WEB_SERVICE, webSlice } from './helpers/resources.ts'
import { weft } from './helpers/cli.ts'

t.test('weft proxy-config listeners|routes|clusters|endpoints|policies --admin', async (t) => {
  const up = await startHttpUpstream(t)
  const config = makeConfig({
    routes: [
      { name: 'api', match: { path: { prefix: '/api' } }, backends: [{ cluster: 'web', weight: 3 }, { cluster: 'web2', weight: 1 }], timeout: '2s' },
      { name: 'rest', backends: [{ cluster: 'web' }] },
    ],
    clusters: [cluster('web', [up.port], { outlierDetection: { consecutive5xx: 3 } }), cluster('web2', [up.port])],
  })
  const s = await startTestSidecar(t, config)
  const admin = `127.0.0.1:${s.adminPort}`

  const l = await weft(['proxy-config', 'listeners', '--admin', admin])
  t.equal(l.code, 0, l.stderr)
  t.match(l.stdout, /^NAME +DIRECTION +ADDRESS +PORT +PROTOCOL +ROUTE_TABLE\nout +outbound +127\.0\.0\.1 +0 +detect +rt\n$/)

  const r = await weft(['proxy-config', 'routes', '--admin', admin, '-o', 'json'])
  t.equal(r.code, 0, r.stderr)
  const rj = JSON.parse(r.stdout)
  t.equal(rj.kind, 'routes')
  t.equal(rj.version, 1)
  t.same(rj.items.map((x: { route: string; backends: unknown }) => [x.route, x.backends]), [
    ['api', [{ cluster: 'web', weight: 3 }, { cluster: 'web2', weight: 1 }]],
    ['rest', [{ cluster: 'web', weight: 1 }]],
  ])
  const rt = await weft(['proxy-config', 'routes', '--admin', admin])
  t.match(rt.stdout, /\nrt +all +api +\{"path":\{"prefix":"\/api"\}\} +web:3 web2:1\n/)

  // a request, then the endpoint counters show it
  const res = await fetch(`http://127.0.0.1:${s.port}/api`)
  await res.text()
  const e = await weft(['proxy-config', 'endpoints', 'web', '--admin', admin, '-o', 'yaml'])
  t.equal(e.code, 0, e.stderr)
  t.match(e.stdout, new RegExp(`items:\\n  - cluster: web\\n    address: 127\\.0\\.0\\.1:${up.port}\\n    weight: 1\\n    health: healthy\\n`))
  const c = await weft(['proxy-config', 'clusters', '--admin', admin, '-o', 'json'])
  t.same(JSON.parse(c.stdout).items.map((x: { name: string; endpoints: number; healthy: number }) => [x.name, x.endpoints, x.healthy]), [['web', 1, 1], ['web2', 1, 1]])
  const p = await weft(['proxy-config', 'policies', '--admin', admin])
  t.match(p.stdout, /\nroute +all\/api +timeout=2s\n/)
  t.match(p.stdout, /\ncluster +web +outlierDetection=\{"consecutive5xx":3\}\n/)

  const none = await weft(['proxy-config', 'clusters', 'nope', '--admin', admin])
  t.equal(none.code, 1)
  t.match(none.stderr, /nothing named "nope"/)
  const kind = await weft(['proxy-config', 'secrets', '--admin', admin])
  t.equal(kind.code, 2)
  t.match(kind.stderr, /unknown kind "secrets": expected listeners, routes, clusters, endpoints, policies/)
  const dead = await freePort()
  const down = await weft(['proxy-config', 'listeners', '--admin', `127.0.0.1:${dead}`])
  t.equal(down.code, 3)
  t.match(down.stderr, `no Weft proxy admin API answers at 127.0.0.1:${dead} (connection refused)`)
})

t.test('weft proxy-status --control-plane-admin: each proxy synced, versions ACKed', async (t) => {
  const up = await startHttpUpstream(t, { name: 'web' })
  const dir = tempDir(t)
  mkdirSync(join(dir, 'res'))
  writeFileSync(join(dir, 'res', 'web.yaml'), `${WEB_SERVICE}---\n${webSlice(up.port)}`)
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', local: join(dir, 'res'), log: pino({ level: 'silent' }) })
  t.teardown(() => cp.close())
  const s = await startXdsSidecar({
    controlPlane: cp.server.address,
    bootstrap: {
      node: { id: 'client-a', namespace: 'shop', workload: 'client' },
      admin: { address: '127.0.0.1', port: 0 },
      listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'outbound' }],
      routeTables: [],
      clusters: [],
    },
    serveBootstrap: false,
    log: pino({ level: 'silent' }),
  })
  t.teardown(() => s.close())
  await until('ready', () => s.proxy.ready)
  const cpAdmin = `127.0.0.1:${cp.adminPort}`
  const j = await until('synced', async () => {
    const r = await weft(['proxy-status', '--control-plane-admin', cpAdmin, '-o', 'json'])
    const body = JSON.parse(r.stdout)
    return body.proxies[0]?.status === 'SYNCED' ? body : false
  }, 10_000, 100)
  const row = j.proxies[0]
  t.match(row, { node: 'client-a', namespace: 'shop', adminAddress: `127.0.0.1:${s.adminPort}`, nacks: null, staleMs: 0 })
  for (const type of ['listener', 'routeTable', 'cluster', 'endpoints']) {
    t.ok(row.types[type].acked !== null && row.types[type].acked === row.types[type].published, `${type}: ACKed the published version`)
    t.equal(row.types[type].sent, null)
  }
  const tbl = await weft(['proxy-status', '--control-plane-admin', cpAdmin])
  t.equal(tbl.code, 0)
  t.match(tbl.stdout, /^NAME +NAMESPACE +STATUS +LDS +RDS +CDS +EDS +STALE +ADMIN\nclient-a +shop +SYNCED /)
  // the gRPC address where the admin address goes
  const wrong = await weft(['proxy-status', '--control-plane-admin', cp.server.address])
  t.equal(wrong.code, 3)
  t.match(wrong.stderr, /\(not its gRPC port\)/)
})
