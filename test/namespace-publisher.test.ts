// The incremental path from resources to published snapshots (control-plane/translate/incremental.ts,
// control-plane/snapshot/namespace-publisher.ts) gives exactly what translating each namespace on its own
// gives (the local source's path: translate -> snapshotFromConfig -> setSnapshot), with the same
// versions, while keeping unchanged objects; and the wire's spliced encoding is byte for byte the
// generated serializer's.
import t from 'tap'
import { TYPE, configDiscoveryService, type ConfigResponse } from '../protos/api.ts'
import type { Listener } from '../api/schema.ts'
import type { ResourceSet } from '../control-plane/resources/load.ts'
import { checkResources } from '../control-plane/resources/validate.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import { snapshotFromConfig } from '../control-plane/snapshot/from-config.ts'
import pino from 'pino'
import { NamespacePublisher } from '../control-plane/snapshot/namespace-publisher.ts'
import type { PublishedSnapshot } from '../control-plane/snapshot/types.ts'
import { resourceJson } from '../control-plane/snapshot/version.ts'
import { Translator } from '../control-plane/translate/incremental.ts'
import { OUTBOUND_TABLE, resourcesOf, translate } from '../control-plane/translate/translate.ts'
import { serializeResponse, toResponse } from '../control-plane/xds/wire.ts'
import { updateFor } from '../control-plane/snapshot/delta.ts'
import { changeOneEndpoint, generateMesh, namespaceName } from '../bench/cp/generate.ts'

const LISTENERS: Listener[] = [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 15001, routeTable: OUTBOUND_TABLE }]
const NAMESPACES = [0, 1, 2, 3].map(namespaceName).concat(['default'])

function mesh(): ResourceSet {
  // 80 Services: more than 64 virtual hosts, so route tables take resourceJson's spliced form
  const set = generateMesh({ services: 80, endpoints: 400, namespaces: 4, routeFraction: 0.1, policyFraction: 0.1 })
  if (checkResources(set).length > 0) throw new Error('invalid mesh')
  return set
}

/** translate() per namespace, with its clusters' endpoints apart, as the translator gives them. */
function expected(set: ResourceSet, ns: string) {
  const x = translate(resourcesOf(set), { namespace: ns })
  return { routeTables: x.routeTables, clusters: x.clusters.map(({ endpoints: _e, ...c }) => c), endpoints: Object.fromEntries(x.clusters.map((c) => [c.name, c.endpoints])) }
}

function actual(m: ReturnType<Translator['translate']>, ns: string) {
  return { routeTables: m.routeTables.get(ns), clusters: m.clusters, endpoints: Object.fromEntries(m.endpoints) }
}

function versions(s: PublishedSnapshot | undefined): Record<string, string> {
  return Object.fromEntries(Object.values(s?.types ?? {}).map((x) => [x.type, x.version]))
}

t.test('Translator: translate() for every namespace, through changes; unchanged parts stay the same objects', async (t) => {
  let set = mesh()
  t.ok(set.httpRoutes.some((r) => r.obj.spec.parentRefs.some((p) => p.namespace !== undefined && p.namespace !== r.namespace)), 'the mesh has a consumer route')
  const tr = new Translator()
  const check = (what: string) => {
    const m = tr.translate(resourcesOf(set), NAMESPACES)
    for (const ns of NAMESPACES) t.same(actual(m, ns), expected(set, ns), `${what}: ${ns}`)
    return m
  }
  const m0 = check('from scratch')
  t.not(m0.routeTables.get(NAMESPACES[0]), m0.routeTables.get(NAMESPACES[1]), 'namespaces have their own tables')
  const hosts = NAMESPACES.map((ns) => new Set(m0.routeTables.get(ns)![0].virtualHosts))
  const shared = [...hosts[0]].filter((h) => hosts[4].has(h)).length // team-00 and default
  t.ok(shared > hosts[0].size / 2, 'but share most virtual hosts')

  const again = tr.translate(resourcesOf(set), NAMESPACES)
  t.equal(again.clusters, m0.clusters, 'same input: the same clusters array')
  t.equal(again.endpoints, m0.endpoints)
  for (const ns of NAMESPACES) t.equal(again.routeTables.get(ns), m0.routeTables.get(ns))
  t.same(again.rebuilt, { clusters: 0, endpoints: 0, virtualHosts: 0, routeTables: 0 })

  // an endpoint moves: one endpoint list (per port of its Service) is new, nothing else
  const c = changeOneEndpoint(set, 3)
  set = c.set
  const m1 = check('endpoint change')
  t.equal(m1.clusters, m0.clusters, 'clusters unchanged')
  for (const ns of NAMESPACES) t.equal(m1.routeTables.get(ns), m0.routeTables.get(ns), `route table of ${ns} unchanged`)
  const moved = [...m1.endpoints].filter(([name, eps]) => m0.endpoints.get(name) !== eps)
  t.ok(moved.length >= 1 && moved.length <= 2, 'the endpoint lists of one Service are new')

  // two endpoint changes at once, and a slice taken over by another Service (the full walk)
  set = changeOneEndpoint(changeOneEndpoint(set, 4).set, 5).set
  check('two endpoint changes')
  const s0 = set.endpointSlices[0]
  const other = set.services.find((x) => x.namespace === s0.namespace && x.name !== s0.obj.metadata.labels['kubernetes.io/service-name'])!
  const relabelled = { ...s0, obj: { ...s0.obj, metadata: { ...s0.obj.metadata, labels: { 'kubernetes.io/service-name': other.name } } } }
  set = { ...set, endpointSlices: [relabelled, ...set.endpointSlices.slice(1)] }
  const mr = check('a slice moved to another Service')
  t.equal(mr.clusters, m1.clusters)

  // a route goes: only the tables that showed it change
  const gone = set.httpRoutes[0]
  set = { ...set, httpRoutes: set.httpRoutes.slice(1) }
  const m2 = check(`HTTPRoute ${gone.id} removed`)
  t.equal(m2.clusters, mr.clusters)
  t.ok(m2.rebuilt.virtualHosts > 0 && m2.rebuilt.virtualHosts <= 4)

  // a policy on a Service: its clusters and virtual hosts change
  const svc = set.services[5].obj
  set = {
    ...set,
    trafficPolicies: [...set.trafficPolicies, {
      ...set.trafficPolicies[0],
      obj: {
        apiVersion: 'policy.weft.io/v1alpha1',
        kind: 'TrafficPolicy',
        metadata: { name: 'new-policy', namespace: svc.metadata.namespace },
        spec: { targetRefs: [{ group: '', kind: 'Service', name: svc.metadata.name }], timeout: '3s', loadBalancer: { policy: 'leastRequest' } },
      },
    }],
  }
  const m3 = check('a TrafficPolicy added')
  t.not(m3.clusters, m2.clusters)
  t.ok(m3.rebuilt.clusters >= 1 && m3.rebuilt.clusters <= 2)

  // a Service and its slices go, a namespace is no longer asked for
  const removed = set.services[0]
  set = { ...set, services: set.services.slice(1), endpointSlices: set.endpointSlices.filter((s) => s.namespace !== removed.namespace || s.obj.metadata.labels['kubernetes.io/service-name'] !== removed.name) }
  set = { ...set, httpRoutes: set.httpRoutes.filter((r) => checkResources({ ...set, httpRoutes: [r] }).length === 0) }
  check('a Service removed')
  const fewer = tr.translate(resourcesOf(set), NAMESPACES.slice(0, 2))
  t.same([...fewer.routeTables.keys()], NAMESPACES.slice(0, 2))
})

t.test('NamespacePublisher: the versions of translate -> snapshotFromConfig -> setSnapshot; endpoint changes move only endpoints', async (t) => {
  let set = mesh()
  const cache = new SnapshotCache()
  const pub = new NamespacePublisher({ cache, log: pino({ level: 'silent' }), outboundPort: 15001 })
  t.same(pub.setResources(resourcesOf(set)).keys, [], 'no namespace yet: nothing published')
  const first = pub.addNamespaces(NAMESPACES)
  t.same(first.keys, NAMESPACES.map((namespace) => NamespacePublisher.key({ namespace })))
  t.equal(first.changed.size, NAMESPACES.length)
  t.equal(first.refused.size, 0)

  /** What the local source's path publishes, in a cache of its own (a restarted control plane). */
  const reference = (s: ResourceSet) => {
    const c = new SnapshotCache()
    for (const ns of NAMESPACES) {
      const x = translate(resourcesOf(s), { namespace: ns })
      const r = c.setSnapshot(NamespacePublisher.key({ namespace: ns }), snapshotFromConfig({ listeners: LISTENERS, routeTables: x.routeTables, clusters: x.clusters }))
      t.ok(r.ok)
    }
    return c
  }
  const same = (s: ResourceSet, what: string) => {
    const ref = reference(s)
    for (const ns of NAMESPACES) {
      const key = NamespacePublisher.key({ namespace: ns })
      t.same(versions(cache.getSnapshot(key)), versions(ref.getSnapshot(key)), `${what}: ${key} has the reference's versions`)
    }
  }
  same(set, 'from scratch')

  const seen: string[] = []
  const stop = cache.watch(NamespacePublisher.key({ namespace: NAMESPACES[1] }), (_s, changed) => seen.push(...changed))
  set = changeOneEndpoint(set, 1).set
  const r = pub.setResources(resourcesOf(set))
  t.equal(r.changed.size, NAMESPACES.length, 'every namespace moved')
  for (const types of r.changed.values()) t.same(types, [TYPE.endpoints], 'endpoints only')
  t.same(seen, [TYPE.endpoints])
  same(set, 'after an endpoint change')
  // the delta is computed once and shared
  const deltas = NAMESPACES.map((ns) => cache.getSnapshot(NamespacePublisher.key({ namespace: ns }))!.types[TYPE.endpoints])
  t.ok(deltas.every((d) => d === deltas[0] && d.delta !== null), 'one endpoints type (with its delta) for every namespace')
  t.ok(deltas[0].delta!.changed.length >= 1 && deltas[0].delta!.changed.length <= 2)
  t.same(pub.setResources(resourcesOf(set)).changed.size, 0, 'the same state again: nothing moves')
  stop()

  // a proxy of a new namespace
  pub.onStreamOpen('ns/team-09', { id: 'p', pod: '', namespace: 'team-09', serviceAccount: '', workload: '', labels: {}, proxyVersion: '', adminAddress: '' })
  t.ok(cache.getSnapshot('ns/team-09'))
  t.equal(pub.published.get('ns/team-09'), 'team-09')
})

t.test('an inconsistent snapshot is refused, also when its parts were checked before', async (t) => {
  const cache = new SnapshotCache()
  const endpoints = new Map([['a', []]])
  const ok = { listeners: [{ name: 'l', direction: 'outbound' as const, port: 1, routeTable: 'rt' }], routeTables: [{ name: 'rt', virtualHosts: [{ name: 'v', domains: ['*'], routes: [{ backends: [{ cluster: 'a' }] }] }] }], clusters: [{ name: 'a' }], endpoints }
  t.ok(cache.setSnapshot('n', ok).ok)
  const bad = { ...ok, clusters: [{ name: 'b' }] }
  const r = cache.setSnapshot('n', bad)
  t.notOk(r.ok)
  if (!r.ok) t.same(r.errors.map((e) => e.path), ['routeTables["rt"].virtualHosts[0].routes[0].backends[0].cluster', 'endpoints["b"]', 'endpoints["a"]'])
  t.notOk(cache.setSnapshot('m', bad).ok, 'the same (remembered) check for another node')
})

t.test('resourceJson is JSON.stringify; the spliced wire encoding is the generated one, byte for byte', async (t) => {
  const cache = new SnapshotCache()
  const pub = new NamespacePublisher({ cache, log: pino({ level: 'silent' }), outboundPort: 15001 })
  pub.setResources(resourcesOf(mesh()))
  pub.addNamespaces(['team-01'])
  const snap = cache.getSnapshot('ns/team-01')!
  const table = snap.types[TYPE.routeTable].resources.get(OUTBOUND_TABLE)!.body as { virtualHosts: unknown[] }
  t.ok(table.virtualHosts.length >= 64, 'a large table')
  t.equal(resourceJson(table), JSON.stringify(table))
  t.equal(resourceJson({ ...table, extra: 1 } as object), JSON.stringify({ ...table, extra: 1 }))
  const generated = configDiscoveryService().StreamConfig.responseSerialize as (r: ConfigResponse) => Buffer
  for (const type of [TYPE.cluster, TYPE.endpoints, TYPE.routeTable, TYPE.listener]) {
    const u = updateFor(snap.types[type], undefined)!
    const res = toResponse(u, 'nonce-1', 2)
    const { resources, ...rest } = res
    t.same(serializeResponse(res), generated({ ...rest, resources }), `${type}: same bytes`)
  }
  const incremental = toResponse({ ...updateFor(snap.types[TYPE.endpoints], undefined)!, incremental: true, removed: ['x', 'é'] }, 'n', 0)
  t.same(serializeResponse(incremental), generated({ ...incremental, resources: incremental.resources }), 'removed names, incremental, batch_remaining 0')
  t.same(serializeResponse({ typeUrl: TYPE.listener, nonce: '' }), generated({ typeUrl: TYPE.listener, nonce: '' }), 'a response without encodings')
})
