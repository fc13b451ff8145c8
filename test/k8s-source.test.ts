// The Kubernetes source (control-plane/sources/kubernetes.ts) with the real @kubernetes/client-node
// informers against the test API server (helpers/kube-api-server.ts): initial list, events,
// coalescing, bookmarks, 410 re-lists (including a deletion the watch never saw), server-side
// watch ends, errors and backoff, a missing CRD, invalid objects. Where timing matters the source
// runs on a manual clock; elsewhere on short real delays.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { KubeConfig } from '@kubernetes/client-node'
import { loadKubeConfig } from '../control-plane/sources/kube-api.ts'
import { startKubernetesSource } from '../control-plane/sources/kubernetes.ts'
import type { KubernetesSource, KubernetesSourceOptions } from '../control-plane/sources/kubernetes.ts'
import type { ClusterState } from '../control-plane/sources/cluster-state.ts'
import type { Timers } from '../api/clock.ts'
import { KubeApiServer, until } from './helpers/kube-api-server.ts'
import type { KubeApiServerOptions, KubeKind, KubeObject } from './helpers/kube-api-server.ts'
import { tempDir } from './helpers/sidecar.ts'
import type { Teardown } from './helpers/sidecar.ts'

// ---- fixtures ------------------------------------------------------------------------------------

function service(name: string, namespace = 'shop', port = 9080): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports: [{ name: 'http', port }], selector: { app: name } } }
}

function slice(svc: string, namespace: string, ips: string[]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-x7k2p`, namespace, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
    ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
  }
}

function pod(name: string, namespace: string, ip: string, labels: Record<string, string>): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels, managedFields: [{ manager: 'kubelet', operation: 'Update' }] },
    spec: { serviceAccountName: labels.app ?? 'default', nodeName: 'node-1', containers: [{ name: 'app', image: 'example/app:1' }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
  }
}

function route(name: string, namespace = 'shop'): KubeObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: { parentRefs: [{ kind: 'Service', name: 'reviews', port: 9080 }], rules: [{ backendRefs: [{ name: 'reviews', port: 9080 }] }] },
  }
}

function policy(name: string, namespace = 'shop'): KubeObject {
  return {
    apiVersion: 'policy.weft.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name, namespace },
    spec: { targetRefs: [{ group: '', kind: 'Service', name: 'reviews' }], retry: { attempts: 2 } },
  }
}

/** What a state holds, as "namespace/name" per kind. */
function names(s: ClusterState | undefined): Record<string, string[]> {
  if (s === undefined) return {}
  return {
    services: s.resources.services.map((r) => r.id),
    endpointSlices: s.resources.endpointSlices.map((r) => r.id),
    httpRoutes: s.resources.httpRoutes.map((r) => r.id),
    trafficPolicies: s.resources.trafficPolicies.map((r) => r.id),
    peerAuthentications: s.resources.peerAuthentications.map((r) => r.id),
    authorizationPolicies: s.resources.authorizationPolicies.map((r) => r.id),
    pods: s.pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`),
    rejected: s.rejected.map((r) => `${r.kind} ${r.id}`),
  }
}

// ---- harness -------------------------------------------------------------------------------------

/** A clock the test moves: timers fire only in advance(), in order. */
class ManualClock implements Timers {
  #now = 0
  #next = 1
  #timers = new Map<number, { at: number; fn: () => void }>()

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++
    this.#timers.set(id, { at: this.#now + ms, fn })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number)
  }

  /** Timers due at or before now + ms */
  pending(ms = 0): number {
    return [...this.#timers.values()].filter((x) => x.at <= this.#now + ms).length
  }

  advance(ms: number): void {
    const end = this.#now + ms
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined
      for (const e of this.#timers) if (e[1].at <= end && (first === undefined || e[1].at < first[1].at)) first = e
      if (first === undefined) break
      this.#timers.delete(first[0])
      this.#now = first[1].at
      first[1].fn()
    }
    this.#now = end
  }
}

function kubeConfigFor(api: KubeApiServer, token?: string): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: api.url, skipTLSVerify: true }],
    users: [token === undefined ? { name: 'nobody' } : { name: 'weft', token }],
    contexts: [{ name: 'test', cluster: 'test', user: token === undefined ? 'nobody' : 'weft' }],
    currentContext: 'test',
  })
  return kc
}

interface Harness {
  api: KubeApiServer
  source: KubernetesSource
  states: ClusterState[]
  logs: Record<string, any>[]
  /** the state last given to onChange */
  last(): ClusterState
}

interface SetupOptions {
  api?: KubeApiServerOptions
  /** objects that exist before the source starts */
  seed?: (api: KubeApiServer) => void
  source?: Partial<KubernetesSourceOptions>
  token?: string
}

async function setup(t: Teardown, opts: SetupOptions = {}): Promise<Harness> {
  const api = await KubeApiServer.start(opts.api)
  opts.seed?.(api)
  const states: ClusterState[] = []
  const logs: Record<string, any>[] = []
  const log = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) })
  const source = startKubernetesSource({
    kubeConfig: kubeConfigFor(api, opts.token),
    onChange: (s) => {
      states.push(s)
    },
    debounceMs: 5,
    maxDelayMs: 50,
    backoff: { initialMs: 10, maxMs: 100 },
    log,
    ...opts.source,
  })
  t.teardown(async () => {
    await source.stop()
    await api.stop()
  })
  return { api, source, states, logs, last: () => states[states.length - 1] }
}

function seedAll(api: KubeApiServer): void {
  api.create('Service', service('reviews'))
  api.create('Service', service('details', 'default'))
  api.create('EndpointSlice', slice('reviews', 'shop', ['10.1.0.1', '10.1.0.2']))
  // an injected pod: of its annotations only the sidecar's status is kept
  api.create('Pod', { ...pod('reviews-v1-abc', 'shop', '10.1.0.1', { app: 'reviews', version: 'v1' }), metadata: { name: 'reviews-v1-abc', namespace: 'shop', labels: { app: 'reviews', version: 'v1' }, annotations: { 'weft.io/status': '{"created":["weft-proxy"]}', 'example.com/other': 'x' } } })
  api.create('Pod', pod('reviews-v2-def', 'shop', '10.1.0.2', { app: 'reviews', version: 'v2' }))
  api.create('HTTPRoute', route('reviews'))
  api.create('TrafficPolicy', policy('reviews-retry'))
}

const ALL: Record<string, string[]> = {
  services: ['default/details', 'shop/reviews'],
  endpointSlices: ['shop/reviews-x7k2p'],
  httpRoutes: ['shop/reviews'],
  trafficPolicies: ['shop/reviews-retry'],
  peerAuthentications: [],
  authorizationPolicies: [],
  pods: ['shop/reviews-v1-abc', 'shop/reviews-v2-def'],
  rejected: [],
}

const KINDS: KubeKind[] = ['Service', 'EndpointSlice', 'Pod', 'HTTPRoute', 'TrafficPolicy', 'PeerAuthentication', 'AuthorizationPolicy']

// ---- tests ---------------------------------------------------------------------------------------

t.test('the initial LIST of every kind becomes one state, in the ResourceSet shape of the file loader', async (t) => {
  const h = await setup(t, { seed: seedAll, source: { pageSize: 1 }, token: 'tok3n', api: { token: 'tok3n' } })
  await until('the first state', () => h.states.length === 1)
  const s = h.last()
  t.same(names(s), ALL)
  for (const k of KINDS) t.ok(h.api.lists(k) >= 1, `${k} listed`)
  t.equal(h.api.lists('Service'), 2, 'pageSize 1: two Services, two pages')
  t.same(h.api.requests.filter((r) => r.verb === 'list' && r.kind === 'Service').map((r) => [r.query.limit, r.query.continue === undefined]), [['1', true], ['1', false]])

  const svc = s.resources.services[1]
  t.match(svc, { kind: 'Service', namespace: 'shop', name: 'reviews', id: 'shop/reviews', file: 'k8s:Service/shop/reviews' })
  t.same(svc.locate(['spec', 'ports', 0]), { line: 0, column: 0 })
  t.equal(svc.obj.apiVersion, 'v1', 'apiVersion and kind filled in: typed lists leave them out')
  t.equal(svc.obj.kind, 'Service')
  t.match(svc.obj.metadata, { uid: /./, resourceVersion: /^\d+$/, creationTimestamp: /Z$/ })
  t.same(s.resources.bootstraps, [])
  t.same(s.resources.files, [])

  t.same(s.pods[0], {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'reviews-v1-abc', namespace: 'shop', uid: s.pods[0].metadata.uid, resourceVersion: '4', labels: { app: 'reviews', version: 'v1' }, annotations: { 'weft.io/status': '{"created":["weft-proxy"]}' } },
    spec: { serviceAccountName: 'reviews' },
    status: { podIP: '10.1.0.1', podIPs: [{ ip: '10.1.0.1' }], phase: 'Running' },
  }, 'a Pod is cut down to identity, labels and addresses')
  t.same(s.resourceVersions, { Service: '7', EndpointSlice: '7', Pod: '7', HTTPRoute: '7', TrafficPolicy: '7', PeerAuthentication: '7', AuthorizationPolicy: '7' })
  t.match(h.source.status(), { synced: true, emits: 1, kinds: { Service: { synced: true, objects: 2, errors: 0 } } })
})

t.test('an EndpointSlice\'s endpoints are kept as addresses and readiness only; translation sees the same endpoints', async (t) => {
  const h = await setup(t, {
    seed: (api) => {
      api.create('Service', service('reviews'))
      api.create('EndpointSlice', {
        ...slice('reviews', 'shop', []),
        endpoints: [
          { addresses: ['10.1.0.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'node-1', zone: 'zone-a', targetRef: { kind: 'Pod', name: 'reviews-v1-abc', namespace: 'shop', uid: 'u1' }, hints: { forZones: [{ name: 'zone-a' }] } },
          { addresses: ['10.1.0.2'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'node-2', targetRef: { kind: 'Pod', name: 'reviews-v2-def', namespace: 'shop' } },
          { addresses: ['10.1.0.3'] },
        ],
      })
    },
  })
  await until('the first state', () => h.states.length === 1)
  const eps = h.last().resources.endpointSlices[0].obj
  t.same(eps.endpoints, [{ addresses: ['10.1.0.1'] }, { addresses: ['10.1.0.2'], conditions: { ready: false } }, { addresses: ['10.1.0.3'] }])
  t.same(eps.ports, [{ name: 'http', port: 9080, protocol: 'TCP' }], 'the rest of the slice is kept')
  t.same(eps.metadata.labels, { 'kubernetes.io/service-name': 'reviews' })
  const { endpointsOf } = await import('../control-plane/translate/translate.ts')
  t.same(endpointsOf({ name: 'http', port: 9080 }, 1, [eps]), [{ address: '10.1.0.1', port: 9080 }, { address: '10.1.0.3', port: 9080 }], 'the not-ready endpoint is left out')
})

t.test('ADDED, MODIFIED and DELETED events change the state; a deletion removes the object', async (t) => {
  const h = await setup(t, { seed: seedAll })
  await until('the first state', () => h.states.length === 1)
  await until('every watch', () => h.api.openWatches() === KINDS.length)

  h.api.create('Service', service('ratings'))
  await until('the ADDED', () => names(h.last()).services.includes('shop/ratings'))

  const es = h.api.get('EndpointSlice', 'shop', 'reviews-x7k2p')!
  h.api.update('EndpointSlice', { ...es, endpoints: [{ addresses: ['10.1.0.9'], conditions: { ready: false } }] })
  await until('the MODIFIED', () => h.last().resources.endpointSlices[0].obj.endpoints[0].addresses[0] === '10.1.0.9')
  t.same(h.last().resources.endpointSlices[0].obj.endpoints, [{ addresses: ['10.1.0.9'], conditions: { ready: false } }])

  h.api.delete('HTTPRoute', route('reviews'))
  h.api.delete('Pod', pod('reviews-v1-abc', 'shop', '', {}))
  await until('the DELETEDs', () => names(h.last()).httpRoutes.length === 0 && h.last().pods.length === 1)
  t.same(names(h.last()), { ...ALL, services: ['default/details', 'shop/ratings', 'shop/reviews'], httpRoutes: [], pods: ['shop/reviews-v2-def'] })
  t.equal(h.api.lists('Service'), 1, 'no list after the first: the watches carried everything')
})

t.test('a burst of 50 changes is one onChange; a stream that never pauses still gets one every maxDelayMs', async (t) => {
  const clock = new ManualClock()
  const h = await setup(t, { seed: seedAll, source: { clock, debounceMs: 100, maxDelayMs: 1000 } })
  await until('synced', () => h.source.status().synced && h.api.openWatches() === KINDS.length)
  t.equal(h.states.length, 0, 'nothing before the debounce')
  clock.advance(100)
  t.equal(h.states.length, 1)

  for (let i = 0; i < 50; i++) h.api.create('Pod', pod(`burst-${i}`, 'load', `10.2.0.${i}`, { app: 'burst' }))
  await until('all 50 events', () => h.source.status().kinds.Pod.objects === 52)
  clock.advance(99)
  t.equal(h.states.length, 1, 'not before debounceMs of quiet')
  clock.advance(1)
  t.equal(h.states.length, 2, 'one onChange for the burst')
  t.equal(h.last().pods.length, 52)

  // one change every 60 ms (less than debounceMs): only maxDelayMs after the first does it flush
  const before = h.states.length
  for (let i = 0; i < 20; i++) {
    h.api.create('Service', service(`stream-${i}`, 'load'))
    await until(`event ${i}`, () => h.source.status().kinds.Service.objects === 3 + i)
    clock.advance(60)
  }
  // 20 changes over 1200 ms: a flush at 1000 ms after the first
  t.equal(h.states.length, before + 1, 'the max delay bounds a continuous stream')
  t.equal(names(h.last()).services.filter((n) => n.startsWith('load/')).length, 17, 'the flush at t0+1000 ms had 17 of them')
  clock.advance(100)
  t.equal(h.states.length, before + 2)
  t.equal(names(h.last()).services.filter((n) => n.startsWith('load/')).length, 20)
})

t.test('a BOOKMARK moves the resourceVersion on without a change, and saves a re-list after compaction', async (t) => {
  const clock = new ManualClock()
  const h = await setup(t, { seed: seedAll, source: { clock, debounceMs: 100, maxDelayMs: 1000 } })
  await until('synced', () => h.source.status().synced && h.api.openWatches() === KINDS.length)
  clock.advance(100)
  // writes to other kinds move the global resourceVersion past what the Pod informer saw
  h.api.create('Service', service('ratings'))
  h.api.create('HTTPRoute', route('ratings'))
  await until('the HTTPRoute', () => h.source.status().kinds.HTTPRoute.resourceVersion === '9')
  clock.advance(100)
  t.equal(h.states.length, 2)
  t.equal(h.source.status().kinds.Pod.resourceVersion, '7')
  t.ok(h.api.requests.filter((r) => r.verb === 'watch').every((r) => r.query.allowWatchBookmarks === 'true'), 'every watch asks for bookmarks')

  const events = h.source.status().events
  h.api.bookmark('Pod')
  await until('the bookmark', () => h.source.status().kinds.Pod.resourceVersion === '9')
  t.equal(h.source.status().events, events, 'no add/update/delete')
  t.equal(clock.pending(60_000), 0, 'no onChange scheduled for a bookmark')
  clock.advance(1000)
  t.equal(h.states.length, 2)

  // compaction past 7 but not 9: the Pod informer resumes its watch without listing
  const podLists = h.api.lists('Pod')
  const podWatches = h.api.watches('Pod')
  h.api.expireHistory()
  h.api.closeWatches('Pod')
  await until('the re-watch', () => h.api.watches('Pod') === podWatches + 1 && h.api.openWatches('Pod') === 1)
  t.equal(h.api.lists('Pod'), podLists, 'no re-list')
  t.equal(h.api.requests.filter((r) => r.kind === 'Pod' && r.verb === 'watch').at(-1)!.query.resourceVersion, '9')
})

t.test('410 Gone on a watch: the informer lists again, and the state is right afterwards', async (t) => {
  // The manual clock decides when states are emitted: with the real one, a late add event of the
  // first list could be emitted as a second state under load, and the count below was off by one.
  const clock = new ManualClock()
  const h = await setup(t, { seed: seedAll, source: { clock, debounceMs: 100, maxDelayMs: 1000 } })
  await until('synced', () => h.source.status().synced && h.api.openWatches() === KINDS.length)
  clock.advance(100)
  t.equal(h.states.length, 1, 'the first state')
  const lists = Object.fromEntries(KINDS.map((k) => [k, h.api.lists(k)]))
  h.api.closeWatches(undefined, { expired: true })
  await until('a re-list of every kind', () => KINDS.every((k) => h.api.lists(k) === lists[k] + 1))
  await until('watching again', () => h.api.openWatches() === KINDS.length)
  t.equal(h.states.length, 1, 'not before debounceMs')
  clock.advance(100)
  t.equal(h.states.length, 2, 'a re-list gives a fresh state, changed or not')
  t.same(names(h.last()), ALL)
  t.ok(h.logs.some((l) => l.msg.startsWith('listing again') && l.kind === 'Service'), 'the re-list is logged')

  h.api.create('Service', service('ratings'))
  await until('the event after the re-list', () => h.source.status().kinds.Service.objects === 3)
  clock.advance(100)
  t.ok(names(h.last()).services.includes('shop/ratings'), 'an event after the re-list is emitted')
})

t.test('a deletion the watch never saw (its history expired meanwhile) disappears after the 410 re-list', async (t) => {
  const clock = new ManualClock()
  const h = await setup(t, { seed: seedAll, source: { clock, debounceMs: 100, maxDelayMs: 1000, backoff: { initialMs: 1000, maxMs: 8000 } } })
  await until('synced', () => h.source.status().synced && h.api.openWatches() === KINDS.length)
  clock.advance(100)
  t.same(names(h.last()), ALL)

  // The Service watch breaks and cannot come back at once: the informer waits out a backoff.
  h.api.failNext('Service', 'watch', 503)
  h.api.closeWatches('Service')
  await until('the failed re-watch', () => h.source.status().kinds.Service.errors === 1)
  t.match(h.logs.find((l) => l.code === 'WEFT_ERR_K8S_WATCH'), { level: 40, kind: 'Service', failures: 1, err: "HTTP 503 Service Unavailable" })

  // meanwhile: a deletion, a creation, and compaction
  h.api.delete('Service', service('details', 'default'))
  h.api.create('Service', service('ratings'))
  h.api.expireHistory()
  const lists = h.api.lists('Service')

  clock.advance(999)
  t.equal(h.api.watches('Service'), 2, 'not before the backoff')
  clock.advance(250)
  await until('410, then a re-list', () => h.api.lists('Service') === lists + 1)
  await until('watching again', () => h.api.openWatches('Service') === 1)
  const watches = h.api.requests.filter((r) => r.kind === 'Service' && r.verb === 'watch').map((r) => r.query.resourceVersion)
  t.same(watches.slice(-2), ['7', h.api.resourceVersion], 'watched from its old resourceVersion (410), then from the new list\'s')
  clock.advance(100)
  t.same(names(h.last()).services, ['shop/ratings', 'shop/reviews'], 'default/details is gone')
})

t.test('when the server ends the watch streams, the informers watch again from their last resourceVersion', async (t) => {
  const h = await setup(t, { seed: seedAll })
  await until('the first state', () => h.states.length === 1)
  await until('every watch', () => h.api.openWatches() === KINDS.length)
  h.api.create('Service', service('ratings'))
  await until('the event', () => h.source.status().kinds.Service.resourceVersion === '8')
  const lists = KINDS.map((k) => h.api.lists(k))

  t.equal(h.api.closeWatches(), KINDS.length)
  // a change while no watch is open: the re-watch from resourceVersion 8 replays it
  h.api.delete('Service', service('ratings'))
  await until('every watch again', () => h.api.openWatches() === KINDS.length)
  t.same(KINDS.map((k) => h.api.lists(k)), lists, 'no re-list')
  const last = h.api.requests.filter((r) => r.kind === 'Service' && r.verb === 'watch').at(-1)!
  t.equal(last.query.resourceVersion, '8')
  await until('the replayed deletion', () => !names(h.last()).services.includes('shop/ratings'))
  t.same(names(h.last()), ALL)
})

t.test('an object that fails its schema is left out and reported; fixed, it comes back', async (t) => {
  const bad = service('broken')
  bad.spec = { ports: [{ name: 'http', port: 70000 }] }
  const h = await setup(t, { seed: (api) => (seedAll(api), api.create('Service', bad)) })
  await until('the first state', () => h.states.length === 1)
  t.same(names(h.last()).services, ALL.services)
  t.match(h.last().rejected, [{ kind: 'Service', id: 'shop/broken', resourceVersion: '8', message: /^spec\.ports\[0\]\.port: must be .*65535/ }])
  const logged = h.logs.filter((l) => l.code === 'WEFT_ERR_K8S_REJECTED')
  t.equal(logged.length, 1)
  t.match(logged[0], { level: 40, kind: 'Service', id: 'shop/broken', msg: /^Service shop\/broken left out: spec\.ports\[0\]\.port/ })

  // an unrelated change: the same rejected version is not logged again
  h.api.create('Service', service('ratings'))
  await until('the next state', () => h.states.length === 2)
  t.equal(h.logs.filter((l) => l.code === 'WEFT_ERR_K8S_REJECTED').length, 1)
  t.equal(h.last().rejected.length, 1)

  // invalid custom resources too; and fields Weft does not know are dropped, not rejected
  const badRoute = route('bad')
  ;(badRoute.spec as any).parentRefs = []
  h.api.create('HTTPRoute', badRoute)
  h.api.update('Service', { ...service('broken'), spec: { ports: [{ name: 'http', port: 80 }], externalTrafficPolicy: 'Cluster', type: 'LoadBalancer', allocateLoadBalancerNodePorts: true } })
  await until('the fix', () => names(h.last()).services.includes('shop/broken'))
  t.same(names(h.last()).rejected, ['HTTPRoute shop/bad'])
  t.match(h.last().rejected[0].message, /spec\.parentRefs/)
  const fixed = h.last().resources.services.find((s) => s.id === 'shop/broken')!
  t.same(fixed.obj.spec, { ports: [{ name: 'http', port: 80 }], type: 'LoadBalancer' })
  t.match(h.logs.find((l) => l.id === 'shop/broken' && l.dropped), { level: 20, dropped: ['spec.externalTrafficPolicy', 'spec.allocateLoadBalancerNodePorts'] })
})

t.test('errors restart the informer with a growing backoff until the API answers', async (t) => {
  const clock = new ManualClock()
  const h = await setup(t, {
    seed: seedAll,
    api: {},
    source: { clock, debounceMs: 100, maxDelayMs: 1000, backoff: { initialMs: 1000, maxMs: 8000 } },
  })
  // the source started already; make the next lists fail by failing a re-list
  await until('synced', () => h.source.status().synced && h.api.openWatches() === KINDS.length)
  clock.advance(100)
  h.api.failNext('EndpointSlice', 'list', 500, 2)
  h.api.closeWatches('EndpointSlice', { expired: true })
  await until('the first failure', () => h.source.status().kinds.EndpointSlice.errors === 1)
  clock.advance(999)
  t.equal(h.api.lists('EndpointSlice'), 2, 'no retry before initialMs')
  clock.advance(201)
  await until('the second failure', () => h.source.status().kinds.EndpointSlice.errors === 2)
  clock.advance(1999)
  t.equal(h.api.lists('EndpointSlice'), 3, 'the second wait is twice as long')
  clock.advance(401)
  await until('the list', () => h.api.lists('EndpointSlice') === 4 && h.api.openWatches('EndpointSlice') === 1)
  t.same(h.logs.filter((l) => l.code === 'WEFT_ERR_K8S_WATCH').map((l) => [l.kind, l.failures]), [['EndpointSlice', 1], ['EndpointSlice', 2]])
  t.match(h.source.status().kinds.EndpointSlice, { errors: 2, lastError: /500 injected/ })
  h.api.create('EndpointSlice', slice('details', 'default', ['10.3.0.1']))
  await until('events flow again', () => h.source.status().kinds.EndpointSlice.objects === 2)
})

t.test('no state until every kind has listed once', async (t) => {
  const clock = new ManualClock()
  const h = await setup(t, { seed: (api) => (seedAll(api), api.failNext('EndpointSlice', 'list', 500)), source: { clock, debounceMs: 100, maxDelayMs: 1000, backoff: { initialMs: 1000, maxMs: 8000 } } })
  await until('the failure', () => h.source.status().kinds.EndpointSlice.errors === 1 && h.api.openWatches() === KINDS.length - 1)
  t.equal(h.source.status().synced, false)
  clock.advance(500)
  t.equal(h.states.length, 0, 'Services without their endpoints are not published')
  clock.advance(700)
  await until('synced', () => h.source.status().synced)
  clock.advance(100)
  t.same(names(h.last()), ALL)
})

t.test('a custom resource whose CRD is not installed counts as none, and is picked up once installed', async (t) => {
  const h = await setup(t, { seed: seedAll, api: { notInstalled: ['TrafficPolicy'] }, source: { backoff: { initialMs: 10, maxMs: 40 } } })
  await until('the first state', () => h.states.length === 1)
  t.same(names(h.last()).trafficPolicies, [])
  t.same(names(h.last()).services, ALL.services)
  t.match(h.source.status().kinds.TrafficPolicy, { synced: true, missing: true })
  const missing = h.logs.filter((l) => l.code === 'WEFT_ERR_K8S_KIND_MISSING')
  t.match(missing, [{ level: 40, kind: 'TrafficPolicy', path: '/apis/policy.weft.io/v1alpha1/trafficpolicies' }])
  await until('a few retries', () => h.api.requests.filter((r) => r.kind === 'TrafficPolicy').length >= 2)
  t.equal(h.logs.filter((l) => l.code === 'WEFT_ERR_K8S_KIND_MISSING').length, 1, 'logged once')

  h.api.setInstalled('TrafficPolicy', true)
  h.api.create('TrafficPolicy', policy('late'))
  await until('the policy', () => names(h.last()).trafficPolicies.includes('shop/late'))
  t.equal(h.source.status().kinds.TrafficPolicy.missing, false)
})

t.test('an async onChange is never called twice at once', async (t) => {
  const clock = new ManualClock()
  let running = 0
  let overlap = false
  const seen: number[] = []
  let release: () => void = () => {}
  const h = await setup(t, {
    seed: seedAll,
    source: {
      clock,
      debounceMs: 100,
      maxDelayMs: 1000,
      onChange: async (s) => {
        if (running > 0) overlap = true
        running++
        seen.push(s.resources.services.length)
        await new Promise<void>((resolve) => (release = resolve))
        running--
      },
    },
  })
  await until('synced', () => h.source.status().synced && h.api.openWatches() === KINDS.length)
  clock.advance(100)
  t.equal(seen.length, 1)
  h.api.create('Service', service('a'))
  await until('the first event', () => h.source.status().kinds.Service.objects === 3)
  clock.advance(100)
  h.api.create('Service', service('b'))
  await until('the second event', () => h.source.status().kinds.Service.objects === 4)
  clock.advance(100)
  t.equal(seen.length, 1, 'held while the first call runs')
  release()
  await until('the flush scheduled after it', () => clock.pending(100) === 1)
  clock.advance(100)
  t.equal(seen.length, 2)
  t.same(seen, [2, 4], 'the second call has both changes')
  release()
  t.equal(overlap, false)
})

t.test('stop() closes every watch, and nothing is called or reconnects after it', async (t) => {
  const clock = new ManualClock()
  const h = await setup(t, { seed: seedAll, source: { clock, debounceMs: 100, maxDelayMs: 1000 } })
  await until('synced', () => h.source.status().synced && h.api.openWatches() === KINDS.length)
  h.api.create('Service', service('pending'))
  await until('the event', () => h.source.status().kinds.Service.objects === 3)
  await h.source.stop()
  await until('the watches closed', () => h.api.openWatches() === 0)
  t.equal(clock.pending(60_000), 0, 'the pending flush is dropped')
  h.api.create('Service', service('after-stop'))
  clock.advance(60_000)
  // kept: a negative. The clock is injected, the network is not: a wrong reconnect would be a new
  // request to the API server, and 20 ms gives it the time to show in openWatches()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(h.states.length, 0)
  t.equal(h.api.openWatches(), 0, 'no watch comes back')
  await h.source.stop()
})

t.test('kubeconfig: "default" reads $KUBECONFIG; "cluster" needs the in-cluster environment', async (t) => {
  const api = await KubeApiServer.start({ token: 'from-file' })
  t.teardown(() => api.stop())
  seedAll(api)
  const dir = tempDir(t)
  const file = join(dir, 'kubeconfig')
  writeFileSync(file, [
    'apiVersion: v1',
    'kind: Config',
    'clusters: [{ name: test, cluster: { server: "' + api.url + '", insecure-skip-tls-verify: true } }]',
    'users: [{ name: weft, user: { token: from-file } }]',
    'contexts: [{ name: test, context: { cluster: test, user: weft } }]',
    'current-context: test',
    '',
  ].join('\n'))
  const saved = { KUBECONFIG: process.env.KUBECONFIG, HOST: process.env.KUBERNETES_SERVICE_HOST, PORT: process.env.KUBERNETES_SERVICE_PORT }
  t.teardown(() => {
    for (const [k, v] of [['KUBECONFIG', saved.KUBECONFIG], ['KUBERNETES_SERVICE_HOST', saved.HOST], ['KUBERNETES_SERVICE_PORT', saved.PORT]] as const) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
  process.env.KUBECONFIG = file
  const states: ClusterState[] = []
  const source = startKubernetesSource({ kubeConfig: 'default', onChange: (s) => void states.push(s), debounceMs: 5, maxDelayMs: 50 })
  t.teardown(() => source.stop())
  await until('the first state', () => states.length === 1)
  t.same(names(states[0]), ALL)

  delete process.env.KUBERNETES_SERVICE_HOST
  delete process.env.KUBERNETES_SERVICE_PORT
  t.throws(() => loadKubeConfig('cluster'), /KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/)
  process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1'
  process.env.KUBERNETES_SERVICE_PORT = '443'
  const kc = loadKubeConfig('cluster')
  t.match(kc.getCurrentCluster(), { server: 'https://10.96.0.1:443', caFile: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' })
})
