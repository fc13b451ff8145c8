// A real proxy fed by a real control plane over gRPC on 127.0.0.1: readiness before and after the
// first config, a NACKed config while the last good one keeps serving, an endpoint change sent
// alone (incremental), the control plane restarting on the same port under continuous traffic,
// and a static bootstrap served until the control plane answers.
import t from 'tap'
import { Pool } from 'undici'
import pino from 'pino'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import type { Snapshot } from '../control-plane/snapshot/types.ts'
import { createControlPlaneAdmin, listenAdmin } from '../control-plane/xds/admin.ts'
import { startConfigServer, type ConfigServer } from '../control-plane/xds/server.ts'
import type { Route } from '../api/schema.ts'
import { startXdsSidecar, type XdsSidecar } from '../proxy/xds/sidecar.ts'
import { freePort, makeConfig, cluster, routeTo, until, type Teardown } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

const silent = pino({ level: 'silent' })

function snapshot(ports: number[], o: { route?: Partial<Route>; listenerPort?: number } = {}): Snapshot {
  return {
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: o.listenerPort ?? 0, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }], ...o.route }] }] }],
    clusters: [{ name: 'app' }],
    endpoints: new Map([['app', ports.map((port) => ({ address: '127.0.0.1', port }))]]),
  }
}

interface ControlPlane {
  cp: ConfigServer
  cache: SnapshotCache
  admin(path: string): Promise<any>
  metrics(): Promise<string>
  stop(): Promise<void>
}

async function startControlPlane(t: Teardown, address = '127.0.0.1:0', cache = new SnapshotCache()): Promise<ControlPlane> {
  // A restarted server binds the port its predecessor just released: retry briefly.
  let cp: ConfigServer | null = null
  for (let i = 0; cp === null; i++) {
    try {
      cp = await startConfigServer({ cache, address, log: silent })
    } catch (err) {
      if (i > 50) throw err
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  const http = createControlPlaneAdmin(cp)
  const port = await listenAdmin(http, '127.0.0.1:0')
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await cp.stop()
    http.closeAllConnections()
    await new Promise<void>((r) => http.close(() => r()))
  }
  t.teardown(stop)
  return {
    cp,
    cache,
    stop,
    async admin(path) {
      return (await fetch(`http://127.0.0.1:${port}${path}`)).json()
    },
    async metrics() {
      return (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    },
  }
}

async function startProxy(t: Teardown, controlPlane: string, extra: Partial<Parameters<typeof startXdsSidecar>[0]> = {}): Promise<XdsSidecar> {
  const s = await startXdsSidecar({ controlPlane, node: { id: 'p1', namespace: 'shop' }, log: silent, backoff: { baseMs: 10, maxMs: 50 }, adminPort: 0, ...extra })
  t.teardown(() => s.close())
  return s
}

async function adminGet(s: XdsSidecar, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${s.adminPort}${path}`)
  return { status: r.status, body: await r.text() }
}

/** GET / through the proxy listener "out": status and body. */
async function get(s: XdsSidecar): Promise<{ status: number; body: string }> {
  const pool = new Pool(`http://127.0.0.1:${s.port('out')}`)
  try {
    const r = await pool.request({ path: '/', method: 'GET' })
    return { status: r.statusCode, body: await r.body.text() }
  } finally {
    await pool.close()
  }
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

t.test('no config, not ready; the first config makes it ready and routes to the upstream', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const cp = await startControlPlane(t)
  const s = await startProxy(t, cp.cp.address)
  await until('connected', () => s.client.status().connected)
  t.same(await adminGet(s, '/ready'), { status: 503, body: 'no config\n' }, 'connected but no config yet: not ready')
  t.equal(s.proxy.listeners.size, 0, 'serving nothing')
  t.equal(s.client.status().source, 'none')

  const r = cp.cache.setSnapshot('p1', snapshot([a.port]))
  if (!r.ok) return t.fail('refused')
  await until('ready', async () => (await adminGet(s, '/ready')).status === 200)
  t.same(await get(s), { status: 200, body: 'A GET /' })
  const st = JSON.parse((await adminGet(s, '/control_plane')).body)
  t.match(st, { controlPlane: cp.cp.address, node: 'p1', connected: true, source: 'control-plane', staleSeconds: 0, updates: { ack: 4, nack: 0 }, lastNack: null })
  t.same(st.versions, Object.fromEntries(Object.values(r.snapshot.types).map((x) => [shortType(x.type), x.version])))
  const p = await until('acked', async () => {
    const v = await cp.admin('/debug/proxies')
    return v.proxies[0]?.inFlight.length === 0 ? v.proxies[0] : null
  })
  t.same(p.acked, st.versions, 'the control plane sees the versions the proxy applied')
  const m = (await adminGet(s, '/metrics')).body
  t.equal(metricValue(m, 'weft_xds_connected'), 1)
  t.equal(metricValue(m, 'weft_xds_config_staleness_seconds'), 0)
  t.equal(metricValue(m, 'weft_xds_updates_total{type="routeTable",result="ack"}'), 1)
})

t.test('a config the proxy rejects is NACKed with the validation error; the last good one keeps serving', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const cp = await startControlPlane(t)
  cp.cache.setSnapshot('p1', snapshot([a.port]))
  const s = await startProxy(t, cp.cp.address)
  await until('ready', () => s.proxy.ready)
  const good = s.client.status().versions

  // Consistent for the control plane (every reference resolves), invalid for the proxy: the regex.
  const bad = cp.cache.setSnapshot('p1', snapshot([a.port], { route: { match: { path: { regex: '([' } } } }))
  t.ok(bad.ok, 'the cache publishes it')
  const nacks = await until('NACK recorded', async () => {
    const v = await cp.admin('/debug/nacks')
    return v.nacks.length > 0 ? v.nacks : null
  })
  t.match(nacks, [{ node: 'p1', type: 'routeTable', error: { code: 'WEFT_ERR_CONFIG_INVALID', message: /^RouteTable "rt": virtualHosts\[0\]\.routes\[0\]\.match\.path\.regex: .+ \(WEFT_ERR_CONFIG_INVALID\)$/ } }])
  t.same(await get(s), { status: 200, body: 'A GET /' }, 'still serving the last good config')
  const st = s.client.status()
  t.same(st.versions, good, 'the applied versions did not move')
  t.match(st.lastNack, { code: 'WEFT_ERR_CONFIG_INVALID', responses: [{ type: 'routeTable' }], errors: [/match\.path\.regex/] })
  const dump = JSON.parse((await adminGet(s, '/config_dump')).body)
  t.match(dump.lastRejection, { source: `control-plane ${cp.cp.address}`, errors: [/^WEFT_ERR_CONFIG_INVALID: RouteTable "rt": virtualHosts\[0\]\.routes\[0\]\.match\.path\.regex/] })
  t.equal(dump.rejectedConfigs, 1)
  t.equal(metricValue((await adminGet(s, '/metrics')).body, 'weft_xds_updates_total{type="routeTable",result="nack"}'), 1)

  // The fix goes out and is applied.
  cp.cache.setSnapshot('p1', snapshot([a.port], { route: { match: { path: { regex: '/.*' } } } }))
  await until('fixed config applied', () => s.client.status().updates.ack === 5)
  t.equal(s.proxy.current?.source.routeTables[0].virtualHosts[0].routes[0].match?.path?.regex, '/.*')
  t.same(await get(s), { status: 200, body: 'A GET /' })
})

t.test('an endpoint change moves traffic, and only the endpoints are sent (incrementally)', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const b = await startHttpUpstream(t, { name: 'B' })
  const cp = await startControlPlane(t)
  cp.cache.setSnapshot('p1', snapshot([a.port]))
  const s = await startProxy(t, cp.cp.address)
  await until('ready', () => s.proxy.ready)
  const before = await until('acked', async () => {
    const v = await cp.admin('/debug/proxies')
    return v.proxies[0]?.inFlight.length === 0 ? v.proxies[0] : null
  })
  t.same(before.sent, { cluster: 1, endpoints: 1, routeTable: 1, listener: 1 })
  const listenerPort = s.port('out')

  cp.cache.setSnapshot('p1', snapshot([b.port]))
  await until('traffic on B', async () => (await get(s)).body === 'B GET /')
  const after = await until('acked', async () => {
    const v = await cp.admin('/debug/proxies')
    return v.proxies[0]?.inFlight.length === 0 ? v.proxies[0] : null
  })
  t.same(after.sent, { cluster: 1, endpoints: 2, routeTable: 1, listener: 1 }, 'one more response, of ClusterEndpoints only')
  const m = await cp.metrics()
  t.equal(metricValue(m, 'weft_cp_responses_total{type="endpoints",incremental="true"}'), 1)
  t.equal(s.port('out'), listenerPort, 'the listener was kept')
  t.same(s.client.status().versions.routeTable, before.acked.routeTable)
})

t.test('a route moves to a new cluster as the old one goes: one batch, applied at once (no NACK)', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const b = await startHttpUpstream(t, { name: 'B' })
  const cp = await startControlPlane(t)
  cp.cache.setSnapshot('p1', snapshot([a.port]))
  const s = await startProxy(t, cp.cp.address)
  await until('ready', () => s.proxy.ready)
  // Applied type by type, the new clusters (without "app") would meet the old routes (to "app"):
  // invalid. The batch is validated and swapped as one config.
  const moved: Snapshot = {
    ...snapshot([]),
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ backends: [{ cluster: 'app2' }] }] }] }],
    clusters: [{ name: 'app2' }],
    endpoints: new Map([['app2', [{ address: '127.0.0.1', port: b.port }]]]),
  }
  t.ok(cp.cache.setSnapshot('p1', moved).ok)
  await until('traffic on B', async () => (await get(s)).body === 'B GET /')
  t.same((await cp.admin('/debug/nacks')).nacks, [])
  t.match(s.client.status(), { updates: { ack: 7, nack: 0 }, lastNack: null })
  t.same(s.proxy.current?.source.clusters.map((c) => c.name), ['app2'])
})

t.test('the control plane restarts on the same port: zero failed requests; the proxy reconnects and ACKs', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const b = await startHttpUpstream(t, { name: 'B' })
  const first = await startControlPlane(t)
  const address = first.cp.address
  const r = first.cache.setSnapshot('p1', snapshot([a.port]))
  if (!r.ok) return t.fail('refused')
  const s = await startProxy(t, address)
  await until('ready', () => s.proxy.ready)

  // Continuous traffic through the proxy for the whole test.
  const pool = new Pool(`http://127.0.0.1:${s.port('out')}`, { connections: 2 })
  t.teardown(() => pool.close())
  const tally = { ok: 0, failed: 0, duringOutage: 0, bodies: new Set<string>() }
  let outage = false
  let running = true
  const loop = (async () => {
    while (running) {
      try {
        const res = await pool.request({ path: '/', method: 'GET' })
        const body = await res.body.text()
        if (res.statusCode === 200) tally.ok++
        else tally.failed++
        tally.bodies.add(body)
        if (outage) tally.duringOutage++
      } catch {
        tally.failed++
      }
    }
  })()

  await until('some traffic', () => tally.ok > 20)
  await first.stop()
  outage = true
  await until('the proxy saw the stream go', () => !s.client.status().connected)
  await until('traffic during the outage', () => tally.duringOutage > 50)
  const stale = s.client.status()
  t.ok(stale.staleSeconds > 0, 'staleness grows while disconnected')
  t.equal(metricValue((await adminGet(s, '/metrics')).body, 'weft_xds_connected'), 0)
  t.equal((await adminGet(s, '/ready')).status, 200, 'still ready: serving the last config')

  // Same port, a fresh process state: the same content has the same versions, nothing is resent.
  const second = await startControlPlane(t, address)
  second.cache.setSnapshot('p1', snapshot([a.port]))
  const back = await until('reconnected', async () => {
    const v = await second.admin('/debug/proxies')
    return v.proxies[0] ?? null
  })
  outage = false
  t.same(back.acked, s.client.status().versions, 'the proxy declared what it serves: the current versions')
  t.same(back.sent, {}, 'nothing had to be sent')
  t.ok(s.client.status().connected)

  // A change after the restart is sent, applied and ACKed.
  const moved = second.cache.setSnapshot('p1', snapshot([b.port]))
  if (!moved.ok) return t.fail('refused')
  const endpointsVersion = moved.snapshot.types['weft.config.v1alpha1.ClusterEndpoints'].version
  await until('ACK of the new endpoints', async () => (await second.admin('/debug/proxies')).proxies[0]?.acked.endpoints === endpointsVersion)
  await until('traffic on B', () => tally.bodies.has('B GET /'))
  running = false
  await loop
  t.equal(tally.failed, 0, `zero failed requests (${tally.ok} ok, ${tally.duringOutage} during the outage)`)
  t.ok(s.client.status().reconnects >= 1)
})

t.test('a static bootstrap is served at once, with no control plane; its listener ports override', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const b = await startHttpUpstream(t, { name: 'B' })
  const port = await freePort()
  const bootstrap = makeConfig({ routes: [routeTo('static')], clusters: [cluster('static', [a.port])] })
  const s = await startProxy(t, `127.0.0.1:${port}`, { bootstrap })
  t.equal((await adminGet(s, '/ready')).status, 200, 'ready without a control plane')
  t.same(await get(s), { status: 200, body: 'A GET /' })
  t.match(s.client.status(), { source: 'static', connected: false, versions: {} })
  const bound = s.port('out')

  // The control plane comes up later and says the listener is on another port: the local one wins.
  const cp = await startControlPlane(t, `127.0.0.1:${port}`)
  cp.cache.setSnapshot('p1', snapshot([b.port], { listenerPort: 1 }))
  await until('control-plane config', () => s.client.status().source === 'control-plane', 5000)
  t.equal(s.port('out'), bound, 'same listener, same port')
  t.equal(s.proxy.current?.source.listeners[0].port, 0, 'the bootstrap listener port was used')
  t.same(await get(s), { status: 200, body: 'B GET /' })
  t.same(s.proxy.current?.source.admin, bootstrap.admin, 'local settings come from the bootstrap')
})

function shortType(url: string): string {
  return url.slice(url.lastIndexOf('.') + 1).replace('ClusterEndpoints', 'endpoints').replace(/^./, (c) => c.toLowerCase())
}
