// The control plane's config stream, spoken by hand with a real @grpc/grpc-js client over
// 127.0.0.1: the first batch, ACKs, NACKs (admin endpoint, counter, log), no resend of a
// rejected version (a newer one is sent), stale nonces, reconnection with known versions.
import t from 'tap'
import { credentials, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js'
import pino from 'pino'
import { configDiscoveryClient, TYPE, type ConfigRequest, type ConfigResponse__Output } from '../protos/api.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import type { EndpointSpec, Snapshot } from '../control-plane/snapshot/types.ts'
import { createControlPlaneAdmin, listenAdmin } from '../control-plane/xds/admin.ts'
import { startConfigServer, type ConfigServer } from '../control-plane/xds/server.ts'
import { Cluster, Listener } from '../api/schema.ts'
import { fromMessage } from '../api/wire.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

function snapshot(o: { ports?: number[]; timeout?: string; extra?: string } = {}): Snapshot {
  const endpoints: EndpointSpec[] = (o.ports ?? [8080]).map((port) => ({ address: '10.1.0.1', port }))
  return {
    listeners: [{ name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }], ...(o.timeout ? { timeout: o.timeout } : {}) }] }] }],
    clusters: [{ name: 'app' }, { name: 'db' }, ...(o.extra === undefined ? [] : [{ name: o.extra }])],
    endpoints: new Map([
      ['app', endpoints],
      ['db', [{ address: '10.1.0.9', port: 5432, ready: false, zone: 'z1', labels: { role: 'primary' } }]],
      ...(o.extra === undefined ? [] : ([[o.extra, [{ address: '10.1.0.7', port: 6379 }]]] as [string, EndpointSpec[]][])),
    ]),
  }
}

interface ControlPlane {
  cp: ConfigServer
  cache: SnapshotCache
  logs: Record<string, unknown>[]
  admin<T = any>(path: string): Promise<T>
  metrics(): Promise<string>
}

async function startControlPlane(t: Teardown): Promise<ControlPlane> {
  const cache = new SnapshotCache()
  const logs: Record<string, unknown>[] = []
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s)) })
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0', log })
  const http = createControlPlaneAdmin(cp)
  const port = await listenAdmin(http, '127.0.0.1:0')
  t.teardown(async () => {
    await cp.stop()
    http.closeAllConnections()
    await new Promise<void>((r) => http.close(() => r()))
  })
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`)
    return res.text()
  }
  return { cp, cache, logs, admin: async (p) => JSON.parse(await get(p)), metrics: () => get('/metrics') }
}

/** A hand-driven stream: write requests, await responses one at a time. */
interface HandStream {
  write(r: ConfigRequest): void
  next(timeoutMs?: number): Promise<ConfigResponse__Output>
  /** the next full batch (until batch_remaining = 0) */
  batch(): Promise<ConfigResponse__Output[]>
  ack(r: ConfigResponse__Output): void
  nack(r: ConfigResponse__Output, held: string, message: string): void
  status: Promise<StatusObject>
}

function openStream(t: Teardown, cp: ConfigServer): HandStream {
  const Client = configDiscoveryClient()
  const client = new Client(cp.address, credentials.createInsecure())
  const call: ClientDuplexStream<ConfigRequest, ConfigResponse__Output> = client.StreamConfig()
  const queue: ConfigResponse__Output[] = []
  let wake: (() => void) | null = null
  call.on('data', (r: ConfigResponse__Output) => {
    queue.push(r)
    wake?.()
  })
  call.on('error', () => {})
  const status = new Promise<StatusObject>((resolve) => call.on('status', resolve))
  t.teardown(() => {
    call.cancel()
    client.close()
  })
  const next = async (timeoutMs = 3000): Promise<ConfigResponse__Output> => {
    const deadline = Date.now() + timeoutMs
    while (queue.length === 0) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('no response in time')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      wake = null
    }
    return queue.shift()!
  }
  return {
    write: (r) => call.write(r),
    next,
    async batch() {
      const out = [await next()]
      while (out[out.length - 1].batchRemaining > 0) out.push(await next())
      return out
    },
    ack: (r) => call.write({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce }),
    nack: (r, held, message) =>
      call.write({ typeUrl: r.typeUrl, versionInfo: held, responseNonce: r.nonce, errorDetail: { code: 'WEFT_ERR_CONFIG_INVALID', message, details: [message] } }),
    status,
  }
}

const hello = (id: string, knownVersions: Record<string, string> = {}): ConfigRequest => ({
  node: { id, pod: `${id}-pod`, namespace: 'shop', serviceAccount: 'reviews', workload: 'reviews-v1', labels: { app: 'reviews' }, proxyVersion: 'test/1' },
  knownVersions,
})

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

t.test('hello, then the first batch: every type, clusters first, one nonce each; ACKs recorded', async (t) => {
  const { cp, cache, admin, metrics } = await startControlPlane(t)
  const published = cache.setSnapshot('p1', snapshot())
  if (!published.ok) return t.fail('refused')
  const s = openStream(t, cp)
  s.write(hello('p1'))
  const batch = await s.batch()
  t.same(batch.map((r) => [r.typeUrl, r.batchRemaining, r.incremental]), [
    [TYPE.cluster, 3, false],
    [TYPE.endpoints, 2, false],
    [TYPE.routeTable, 1, false],
    [TYPE.listener, 0, false],
  ])
  t.equal(new Set(batch.map((r) => r.nonce)).size, 4, 'a nonce per response')
  for (const r of batch) t.equal(r.versionInfo, published.snapshot.types[r.typeUrl as keyof typeof published.snapshot.types].version)
  t.same(batch[0].resources.map((r) => [r.name, r.body, fromMessage(Cluster, r.cluster)]), [['app', 'cluster', { name: 'app' }], ['db', 'cluster', { name: 'db' }]])
  t.same(batch[1].resources[1].endpoints, {
    clusterName: 'db',
    endpoints: [{ address: '10.1.0.9', port: 5432, weight: 0, ready: false, zone: 'z1', labels: { role: 'primary' } }],
  })
  t.same(fromMessage(Listener, batch[3].resources[0].listener), { name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' })

  const before = await admin('/debug/proxies')
  t.equal(before.connected, 1)
  t.equal(before.proxies[0].inFlight.length, 4)
  t.same(before.proxies[0].acked, {})
  for (const r of batch) s.ack(r)
  const v = await waitFor(() => admin('/debug/proxies'), (p) => p.proxies[0].inFlight.length === 0)
  t.match(v.proxies[0], {
    node: { id: 'p1', pod: 'p1-pod', namespace: 'shop', serviceAccount: 'reviews', workload: 'reviews-v1', labels: { app: 'reviews' }, proxyVersion: 'test/1' },
    key: 'p1',
    acked: Object.fromEntries(batch.map((r) => [shortType(r.typeUrl), r.versionInfo])),
    sent: { cluster: 1, endpoints: 1, routeTable: 1, listener: 1 },
    lastNack: null,
  })
  const m = await metrics()
  t.equal(metricValue(m, 'weft_cp_acks_total{type="routeTable"}'), 1)
  t.equal(metricValue(m, 'weft_cp_connected_proxies'), 1)
  t.equal(metricValue(m, 'weft_cp_responses_total{type="endpoints",incremental="false"}'), 1)
})

t.test('a stream whose first message has no node is refused', async (t) => {
  const { cp } = await startControlPlane(t)
  const s = openStream(t, cp)
  s.write({ typeUrl: TYPE.cluster })
  const st = await s.status
  t.equal(st.code, 3, 'INVALID_ARGUMENT')
  t.match(st.details, /WEFT_ERR_XDS_NO_NODE/)
})

t.test('NACK: recorded (admin, counter, log); the rejected version is not resent; a newer one is', async (t) => {
  const { cp, cache, admin, metrics, logs } = await startControlPlane(t)
  cache.setSnapshot('p1', snapshot())
  const s = openStream(t, cp)
  s.write(hello('p1'))
  const first = await s.batch()
  for (const r of first) s.ack(r)
  const heldRoutes = first[2].versionInfo

  // a route change the proxy rejects
  cache.setSnapshot('p1', snapshot({ timeout: '5s' }))
  const [bad] = await s.batch()
  t.equal(bad.typeUrl, TYPE.routeTable)
  s.nack(bad, heldRoutes, 'RouteTable "rt": virtualHosts[0].routes[0].timeout: too long')

  const nacks = await waitFor(() => admin('/debug/nacks'), (n) => n.nacks.length === 1)
  t.match(nacks.nacks[0], {
    node: 'p1',
    key: 'p1',
    type: 'routeTable',
    typeUrl: TYPE.routeTable,
    version: bad.versionInfo,
    nonce: bad.nonce,
    error: { code: 'WEFT_ERR_CONFIG_INVALID', message: 'RouteTable "rt": virtualHosts[0].routes[0].timeout: too long' },
  })
  t.equal(metricValue(await metrics(), 'weft_cp_nacks_total{type="routeTable"}'), 1)
  t.match(logs.find((l) => l.msg === 'proxy rejected config'), { level: 40, code: 'WEFT_ERR_XDS_NACK', node: 'p1', type: 'routeTable', version: bad.versionInfo, stillApplied: heldRoutes })
  const p = (await admin('/debug/proxies')).proxies[0]
  t.equal(p.acked.routeTable, heldRoutes, 'the proxy still holds the old routes')
  t.equal(p.lastNack.version, bad.versionInfo)

  // Endpoints move; the routes did not: only the endpoints go out (incremental), not the rejected routes.
  cache.setSnapshot('p1', snapshot({ timeout: '5s', ports: [8080, 8081] }))
  const eps = await s.batch()
  t.same(eps.map((r) => [r.typeUrl, r.incremental, r.resources.map((x) => x.name), r.removedResources]), [[TYPE.endpoints, true, ['app'], []]])
  s.ack(eps[0])
  t.ok(metricValue(await metrics(), 'weft_cp_withheld_total{type="routeTable"}') >= 1, 'the withheld version is counted')

  // A proxy reconnecting (new stream) is not sent the rejected version either.
  const again = openStream(t, cp)
  again.write(hello('p1', { [TYPE.routeTable]: heldRoutes, [TYPE.cluster]: first[0].versionInfo, [TYPE.listener]: first[3].versionInfo, [TYPE.endpoints]: eps[0].versionInfo }))
  await waitFor(() => admin('/debug/proxies'), (v) => v.connected === 2)
  // A newer route version: sent (on both streams).
  cache.setSnapshot('p1', snapshot({ timeout: '2s', ports: [8080, 8081] }))
  for (const stream of [s, again]) {
    const [fixed] = await stream.batch()
    t.equal(fixed.typeUrl, TYPE.routeTable, 'the first thing sent is the newer routes')
    t.not(fixed.versionInfo, bad.versionInfo)
    t.equal(fixed.resources[0].routeTable!.virtualHosts[0].routes[0].timeout, '2s')
    stream.ack(fixed)
  }
  const done = await waitFor(() => admin('/debug/proxies'), (v) => v.proxies.every((x: { inFlight: unknown[] }) => x.inFlight.length === 0))
  t.equal(done.connected, 2)
  t.equal(metricValue(await metrics(), 'weft_cp_nacks_total{type="routeTable"}'), 1, 'one NACK in all')
})

t.test('stale nonces are ignored; the answer to the latest response counts', async (t) => {
  const { cp, cache, admin, metrics } = await startControlPlane(t)
  cache.setSnapshot('p1', snapshot())
  const s = openStream(t, cp)
  s.write(hello('p1'))
  const first = await s.batch()
  for (const r of first.slice(0, 3)) s.ack(r)
  const listener = first[3]
  // an answer with a nonce never sent, then a NACK with an old nonce of another type's response
  s.write({ typeUrl: TYPE.listener, versionInfo: listener.versionInfo, responseNonce: 'not-a-nonce' })
  s.write({ typeUrl: TYPE.listener, versionInfo: '', responseNonce: first[0].nonce, errorDetail: { code: 'X', message: 'stale', details: [] } })
  const m = await waitFor(metrics, (text) => metricValue(text, 'weft_cp_stale_requests_total{type="listener"}') === 2)
  t.equal(metricValue(m, 'weft_cp_nacks_total{type="listener"}'), 0, 'the stale NACK was not recorded')
  const p = (await admin('/debug/proxies')).proxies[0]
  t.equal(p.acked.listener, undefined, 'not ACKed by a stale answer')
  t.same(p.inFlight.map((x: { type: string }) => x.type), ['listener'])
  t.same((await admin('/debug/nacks')).nacks, [])
  s.ack(listener)
  const v = await waitFor(() => admin('/debug/proxies'), (x) => x.proxies[0].inFlight.length === 0)
  t.equal(v.proxies[0].acked.listener, listener.versionInfo)
})

t.test('a proxy that reconnects with current versions is sent nothing, then incremental endpoint updates', async (t) => {
  const { cp, cache, admin } = await startControlPlane(t)
  const r = cache.setSnapshot('p2', snapshot())
  if (!r.ok) return t.fail('refused')
  const known = Object.fromEntries(Object.values(r.snapshot.types).map((x) => [x.type, x.version]))
  const s = openStream(t, cp)
  s.write(hello('p2', known))
  await waitFor(() => admin('/debug/proxies'), (v) => v.connected === 1)
  cache.setSnapshot('p2', snapshot({ ports: [9090] }))
  const [u] = await s.batch()
  t.same([u.typeUrl, u.incremental, u.resources.map((x) => x.name)], [TYPE.endpoints, true, ['app']], 'the first response is the endpoint change alone')
  t.same(u.resources[0].endpoints!.endpoints.map((e) => e.port), [9090])
})

// Each of the next three: after the NACKs, an endpoint change is published; the next batch must be
// that change alone. A rejected version sent again would come first (at once, in a loop).
const only = (b: ConfigResponse__Output[]) => b.map((r) => shortType(r.typeUrl))

t.test('a fresh proxy that rejects its first config is not sent it again on that stream', async (t) => {
  const { cp, cache } = await startControlPlane(t)
  cache.setSnapshot('p3', snapshot())
  const s = openStream(t, cp)
  s.write(hello('p3'))
  const first = await s.batch()
  t.same(only(first), ['cluster', 'endpoints', 'routeTable', 'listener'])
  for (const r of first) s.nack(r, '', 'listeners[0]: port 15001 in use (WEFT_ERR_XDS_APPLY)')
  cache.setSnapshot('p3', snapshot({ ports: [9090] }))
  const next = await s.batch()
  t.same(only(next), ['endpoints'], 'the endpoint change alone; the rejected versions are withheld')
  t.equal(next[0].incremental, false, 'the proxy holds no endpoints: the complete set')
})

t.test('two types rejected one after the other are both withheld (no ping-pong)', async (t) => {
  const { cp, cache } = await startControlPlane(t)
  cache.setSnapshot('p4', snapshot())
  const s = openStream(t, cp)
  s.write(hello('p4'))
  const first = await s.batch()
  for (const r of first) s.ack(r)
  cache.setSnapshot('p4', snapshot({ timeout: '5s' }))
  const [badRoutes] = await s.batch()
  s.nack(badRoutes, first[2].versionInfo, 'routes rejected')
  // A cluster is added: the routes rejected with the old clusters may work now, so both go out.
  cache.setSnapshot('p4', snapshot({ timeout: '5s', extra: 'cache' }))
  const both = await s.batch()
  t.same(only(both), ['cluster', 'endpoints', 'routeTable'])
  t.equal(both[2].versionInfo, badRoutes.versionInfo, 'the same routes, with the new clusters')
  s.nack(both[0], first[0].versionInfo, 'clusters rejected')
  s.ack(both[1])
  s.nack(both[2], first[2].versionInfo, 'routes rejected')
  cache.setSnapshot('p4', snapshot({ timeout: '5s', extra: 'cache', ports: [9090] }))
  t.same(only(await s.batch()), ['endpoints'], 'neither rejected type comes back')
})

t.test('endpoints rejected with a bad cluster keep flowing; the cluster and routes are withheld', async (t) => {
  const { cp, cache } = await startControlPlane(t)
  cache.setSnapshot('p5', snapshot())
  const s = openStream(t, cp)
  s.write(hello('p5'))
  const first = await s.batch()
  for (const r of first) s.ack(r)
  cache.setSnapshot('p5', snapshot({ timeout: '5s', extra: 'cache' }))
  const batch = await s.batch()
  t.same(only(batch), ['cluster', 'endpoints', 'routeTable'])
  s.nack(batch[0], first[0].versionInfo, 'rejected')
  s.nack(batch[1], first[1].versionInfo, 'rejected')
  s.nack(batch[2], first[2].versionInfo, 'rejected')
  for (const port of [9090, 9091]) {
    cache.setSnapshot('p5', snapshot({ timeout: '5s', extra: 'cache', ports: [port] }))
    const next = await s.batch()
    t.same(only(next), ['endpoints'], `endpoint change to ${port}: endpoints alone`)
    s.ack(next[0])
  }
})

function shortType(url: string): string {
  return { [TYPE.cluster]: 'cluster', [TYPE.endpoints]: 'endpoints', [TYPE.routeTable]: 'routeTable', [TYPE.listener]: 'listener' }[url]!
}

/** Poll `get` until `ok` (short intervals; fails after 3 s). */
async function waitFor<T>(get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 3000
  for (;;) {
    const v = await get()
    if (ok(v)) return v
    if (Date.now() > deadline) throw new Error(`condition not met: ${JSON.stringify(v)}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

