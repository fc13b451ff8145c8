// The proxy's config client in parts: reconnection with exponential backoff and full jitter
// (injected random and timers: no sleeping), staleness on an injected clock, and the decoding of
// responses (malformed resources, incremental merges, not-ready endpoints, local overrides,
// errors that name the resource).
import t from 'tap'
import pino from 'pino'
import { configDiscoveryService, TYPE, type ConfigResponse__Output, type Resource__Output } from '../protos/api.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import { startConfigServer } from '../control-plane/xds/server.ts'
import { assemble, checkAssembled, decodeBatch, NOTHING_ACCEPTED } from '../proxy/xds/assemble.ts'
import { backoffDelay, DEFAULT_BACKOFF } from '../proxy/xds/backoff.ts'
import { startConfigClient } from '../proxy/xds/client.ts'
import { Proxy } from '../proxy/proxy.ts'
import { freePort, until } from './helpers/sidecar.ts'

const silent = pino({ level: 'silent' })

t.test('backoff: full jitter under a cap that doubles up to max', async (t) => {
  const o = { baseMs: 100, maxMs: 1000 }
  t.same([0, 1, 2, 3, 4, 5, 40].map((n) => backoffDelay(n, o, () => 0.999999)), [99, 199, 399, 799, 999, 999, 999])
  t.same([0, 1, 2].map((n) => backoffDelay(n, o, () => 0)), [0, 0, 0], 'full jitter reaches down to 0')
})

/** A snapshot cache with one listener for node p1. */
function oneListenerCache(): SnapshotCache {
  const cache = new SnapshotCache()
  cache.setSnapshot('p1', {
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [] }],
    clusters: [],
    endpoints: new Map(),
  })
  return cache
}

t.test('the client reconnects on the backoff schedule, resets it after a config, and reports staleness', async (t) => {
  const port = await freePort()
  const scheduled: { fn: () => void; ms: number }[] = []
  const timers = {
    setTimeout: (fn: () => void, ms: number) => scheduled.push({ fn, ms }),
    clearTimeout: () => {},
  }
  let clock = 1_000_000
  const proxy = new Proxy(silent)
  t.teardown(() => proxy.close())
  const logs: { level: number; code?: string; msg: string }[] = []
  const log = pino({ level: 'debug' }, { write: (l: string) => void logs.push(JSON.parse(l)) })
  const client = await startConfigClient(proxy, {
    address: `127.0.0.1:${port}`,
    node: { id: 'p1' },
    backoff: { baseMs: 100, maxMs: 400 },
    random: () => 0.5,
    timers,
    now: () => clock,
    log,
  })
  t.teardown(() => client.close())
  const delays: number[] = []
  for (let i = 0; i < 5; i++) {
    await until(`attempt ${i + 1} failed`, () => scheduled.length === i + 1)
    delays.push(scheduled[i].ms)
    if (i < 4) scheduled[i].fn()
  }
  t.same(delays, [50, 100, 200, 200, 200], 'random 0.5 of 100, 200, 400, then the 400 cap')
  // a new user sees at once (warn, not debug) that nothing connects, and what to check
  const warned = logs.filter((l) => l.code === 'WEFT_ERR_CONTROL_PLANE_UNREACHABLE')
  t.equal(warned.length, 1, 'the first failure is a warning; the next nine are debug')
  t.match(warned[0], { level: 40, msg: new RegExp(`control plane 127\\.0\\.0\\.1:${port} unreachable .*gRPC address \\(weft control-plane --listen`) })
  clock += 7_500
  t.match(client.status(), { connected: false, source: 'none', reconnects: 5, staleSeconds: 7.5 }, 'never connected: stale since start')
  t.equal(proxy.ready, false, 'no config, not ready')

  // The control plane appears; the next attempt connects and gets a config.
  const cache = oneListenerCache()
  const cp = await startConfigServer({ cache, address: `127.0.0.1:${port}`, log: silent })
  t.teardown(() => cp.stop())
  scheduled[4].fn()
  await until('config applied', () => client.status().source === 'control-plane')
  t.equal(proxy.ready, true)
  t.match(client.status(), { connected: true, staleSeconds: 0, updates: { ack: 4, nack: 0 } })

  // It goes away: the schedule starts over, and staleness counts from the disconnection.
  const downAt = clock
  await cp.stop()
  await until('disconnection seen', () => scheduled.length === 6)
  t.equal(scheduled[5].ms, 50, 'a stream that delivered config resets the backoff')
  clock += 2_000
  t.match(client.status(), { connected: false, since: new Date(downAt).toISOString(), staleSeconds: 2 })
  t.equal(proxy.ready, true, 'still serving the last config')
  client.close()
  t.equal(scheduled.length, 6, 'closed: no further attempt')
})

t.test('a control plane restarted on the same port has its sidecar back within 2 s (real timers, default backoff)', async (t) => {
  t.same([0, 1, 2, 3, 10, 40].map((n) => backoffDelay(n, DEFAULT_BACKOFF, () => 0.999999)), [249, 499, 999, 1499, 1499, 1499], 'the default cap is 1.5 s')
  t.not(backoffDelay(10, DEFAULT_BACKOFF, () => 0.2), backoffDelay(10, DEFAULT_BACKOFF, () => 0.7), 'jittered at the cap')
  const port = await freePort()
  const cache = oneListenerCache()
  const first = await startConfigServer({ cache, address: `127.0.0.1:${port}`, log: silent })
  t.teardown(() => first.stop())
  const proxy = new Proxy(silent)
  t.teardown(() => proxy.close())
  const client = await startConfigClient(proxy, { address: `127.0.0.1:${port}`, node: { id: 'p1' }, log: silent })
  t.teardown(() => client.close())
  await until('connected', () => client.status().source === 'control-plane', 5000)

  await first.stop()
  await until('disconnection seen', () => !client.status().connected, 5000)
  // Down long enough for the backoff to reach its cap (attempts 0-3 double it): 6 refused attempts.
  const before = client.status().reconnects
  await until('six refused attempts', () => client.status().reconnects >= before + 6, 15_000, 10)
  t.equal(proxy.ready, true, 'the last config keeps serving meanwhile')

  const second = await startConfigServer({ cache, address: `127.0.0.1:${port}`, log: silent })
  t.teardown(() => second.stop())
  const upAt = performance.now()
  await until('reconnected', () => client.status().connected, 5000, 5)
  const delay = performance.now() - upAt
  t.ok(delay <= 2000, `back ${Math.round(delay)} ms after the control plane (<= 2000)`)
  t.match(client.status(), { connected: true, staleSeconds: 0 })
})

// A resource of the model; response() puts it in its type's body field (listener, routeTable, cluster).
interface ModelResource { name: string; version: string; model: object | null }
const res = (name: string, model: object | null, version = 'v1'): ModelResource => ({ name, version, model })
const BODY_FIELD: Record<string, string> = { [TYPE.cluster]: 'cluster', [TYPE.routeTable]: 'routeTable', [TYPE.listener]: 'listener' }
const codec = configDiscoveryService().StreamConfig
// Through the real protobuf codec, as the stream delivers it.
const response = (typeUrl: string, resources: (Resource__Output | ModelResource)[], o: Partial<ConfigResponse__Output> = {}): ConfigResponse__Output =>
  codec.responseDeserialize(codec.responseSerialize({
    typeUrl,
    versionInfo: 'x1',
    nonce: 'n',
    resources: resources.map((r) => ('model' in r ? { name: r.name, version: r.version, ...(r.model === null ? {} : { [BODY_FIELD[typeUrl] ?? 'cluster']: r.model }) } : r)),
    removedResources: [],
    incremental: false,
    batchRemaining: 0,
    ...o,
  })) as ConfigResponse__Output
const eps = (cluster: string, list: { port: number; ready?: boolean; weight?: number }[]): Resource__Output => ({
  name: cluster,
  version: 'e1',
  body: 'endpoints',
  endpoints: { clusterName: cluster, endpoints: list.map((e) => ({ address: '10.0.0.1', port: e.port, weight: e.weight ?? 0, ready: e.ready ?? true, zone: '', labels: {} })) },
})

t.test('decoding: malformed resources are errors that name the resource; nothing is half-applied', async (t) => {
  const r = decodeBatch(NOTHING_ACCEPTED, [
    response(TYPE.cluster, [res('a', null), res('b', { name: 'c' }), { name: 'd', version: 'v1', body: 'listener', listener: { name: 'd', direction: 'outbound', port: 1, routeTable: 'rt' } } as Resource__Output]),
    response('weft.config.v1alpha1.Secret', []),
    response(TYPE.endpoints, [{ name: 'a', version: 'e', body: 'endpoints', endpoints: { clusterName: 'z', endpoints: [] } }, { name: 'q', version: 'e', body: 'cluster', cluster: { name: 'q' } } as Resource__Output]),
  ])
  t.match(r, {
    ok: false,
    code: 'WEFT_ERR_XDS_DECODE',
    errors: [
      'Cluster "a" (version v1): expected a cluster body',
      'Cluster "b" (version v1): the body\'s name "c" differs from the resource name',
      'Cluster "d" (version v1): expected a cluster body',
      'unknown type_url "weft.config.v1alpha1.Secret"',
      'ClusterEndpoints "a" (version e): cluster_name "z" differs from the resource name',
      'ClusterEndpoints "q" (version e): expected an endpoints body',
    ],
  })
})

t.test('decoding: incremental endpoint merges, not-ready endpoints left out, local listener ports win', async (t) => {
  const first = decodeBatch(NOTHING_ACCEPTED, [
    response(TYPE.cluster, [res('a', { name: 'a' }), res('b', { name: 'b' })], { versionInfo: 'c1', batchRemaining: 3 }),
    response(TYPE.endpoints, [eps('a', [{ port: 1 }, { port: 2, ready: false }]), eps('b', [{ port: 3, weight: 5 }])], { versionInfo: 'e1', batchRemaining: 2 }),
    response(TYPE.routeTable, [res('rt', { name: 'rt', virtualHosts: [{ name: 'h', domains: ['*'], routes: [{ backends: [{ cluster: 'a' }] }] }] })], { versionInfo: 'r1', batchRemaining: 1 }),
    response(TYPE.listener, [res('out', { name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' })], { versionInfo: 'l1' }),
  ])
  if (!first.ok) return t.fail(first.errors.join('\n'))
  t.same(first.value.endpoints.get('a'), [{ address: '10.0.0.1', port: 1 }], 'not ready: left out; weight 0: the default')
  t.same(first.value.endpoints.get('b'), [{ address: '10.0.0.1', port: 3, weight: 5 }])
  const next = decodeBatch(first.value, [response(TYPE.endpoints, [eps('a', [{ port: 9 }])], { versionInfo: 'e2', incremental: true, removedResources: ['b'] })])
  if (!next.ok) return t.fail('rejected')
  t.same([...next.value.endpoints.keys()], ['a'])
  t.same(next.value.endpoints.get('a'), [{ address: '10.0.0.1', port: 9 }])
  t.same(Object.fromEntries(next.value.versions), { [TYPE.cluster]: 'c1', [TYPE.endpoints]: 'e2', [TYPE.routeTable]: 'r1', [TYPE.listener]: 'l1' })
  t.same(first.value.endpoints.get('b'), [{ address: '10.0.0.1', port: 3, weight: 5 }], 'the accepted state it started from is untouched')

  const b = assemble({ admin: { port: 0 }, listeners: [{ name: 'out', direction: 'inbound', address: '127.0.0.2', port: 16001, routeTable: 'ignored' }] }, next.value)
  t.same(b.listeners, [{ name: 'out', direction: 'outbound', address: '127.0.0.2', port: 16001, routeTable: 'rt' }], 'address and port only')
  t.same(b.clusters, [{ name: 'a', endpoints: [{ address: '10.0.0.1', port: 9 }] }, { name: 'b', endpoints: [] }], 'a cluster without endpoints has none')
  t.same(b.admin, { port: 0 })
  t.ok(checkAssembled(b).ok)

  const bad = decodeBatch(next.value, [response(TYPE.routeTable, [res('rt', { name: 'rt', virtualHosts: [{ name: 'h', domains: ['*'], routes: [{ backends: [{ cluster: 'nope' }] }] }] })])])
  if (!bad.ok) return t.fail('decode rejected')
  t.match(checkAssembled(assemble({}, bad.value)), {
    ok: false,
    code: 'WEFT_ERR_CONFIG_REF',
    errors: [/^RouteTable "rt": virtualHosts\[0\]\.routes\[0\]\.backends\[0\]\.cluster: .*"nope".* \(WEFT_ERR_CONFIG_REF\)$/],
  })
})

t.test("assemble: the bootstrap's own listeners keep their tables and the clusters they route, mirror and tunnel to", async (t) => {
  const got = decodeBatch(NOTHING_ACCEPTED, [
    response(TYPE.cluster, [res('a', { name: 'a' })], { versionInfo: 'c1', batchRemaining: 3 }),
    response(TYPE.endpoints, [eps('a', [{ port: 1 }])], { versionInfo: 'e1', batchRemaining: 2 }),
    response(TYPE.routeTable, [res('rt', { name: 'rt', virtualHosts: [{ name: 'h', domains: ['*'], routes: [{ backends: [{ cluster: 'a' }] }] }] })], { versionInfo: 'r1', batchRemaining: 1 }),
    response(TYPE.listener, [res('out', { name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' })], { versionInfo: 'l1' }),
  ])
  if (!got.ok) return t.fail(got.errors.join('\n'))
  const local = {
    admin: { port: 0 },
    listeners: [
      { name: 'inbound', direction: 'inbound' as const, address: '127.0.0.1', port: 0, routeTable: 'in', protocol: 'detect' as const, tcp: { cluster: 'app-tcp' } },
      { name: 'db', direction: 'inbound' as const, address: '127.0.0.1', port: 0, routeTable: 'in', protocol: 'tcp' as const, tcp: { cluster: 'db' } },
    ],
    routeTables: [{ name: 'in', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }], mirror: { cluster: 'shadow' } }] }] }],
    clusters: [
      { name: 'app', endpoints: [{ address: '127.0.0.1', port: 8080 }] },
      { name: 'app-tcp', endpoints: [{ address: '127.0.0.1', port: 8081 }] },
      { name: 'db', endpoints: [{ address: '127.0.0.1', port: 5432 }] },
      { name: 'shadow', endpoints: [{ address: '127.0.0.1', port: 8082 }] },
      { name: 'unused', endpoints: [{ address: '127.0.0.1', port: 9 }] },
    ],
  }
  const b = assemble(local, got.value)
  t.same(b.listeners.map((l) => l.name).sort(), ['db', 'inbound', 'out'])
  t.same(b.clusters.map((c) => c.name).sort(), ['a', 'app', 'app-tcp', 'db', 'shadow'], 'routed, mirrored and tunnelled-to clusters; not the unused one')
  const checked = checkAssembled(b)
  t.ok(checked.ok, checked.ok ? '' : checked.errors.join('\n'))
})
