// The snapshot cache on its own (no gRPC): versions per type, watchers told only about the
// types that moved, incremental endpoint updates, and the consistency check that refuses a
// snapshot (an error value) while the last one stays published.
import t from 'tap'
import { TYPE } from '../protos/api.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import { updateFor } from '../control-plane/snapshot/delta.ts'
import { snapshotFromConfig } from '../control-plane/snapshot/from-config.ts'
import type { EndpointSpec, PublishedSnapshot, Snapshot } from '../control-plane/snapshot/types.ts'
import type { TypeUrl } from '../protos/api.ts'

const ep = (port: number, extra: Partial<EndpointSpec> = {}): EndpointSpec => ({ address: '10.0.0.1', port, ...extra })

/** Two clusters a and b behind one route table, one listener. */
function snap(endpoints: Record<string, EndpointSpec[]>, o: { timeout?: string; clusters?: string[] } = {}): Snapshot {
  const clusters = o.clusters ?? Object.keys(endpoints)
  return {
    listeners: [{ name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' }],
    routeTables: [
      {
        name: 'rt',
        virtualHosts: clusters.map((c) => ({
          name: c,
          domains: [c],
          routes: [{ backends: [{ cluster: c }], ...(o.timeout === undefined ? {} : { timeout: o.timeout }) }],
        })),
      },
    ],
    clusters: clusters.map((name) => ({ name })),
    endpoints: new Map(Object.entries(endpoints)),
  }
}

function versions(s: PublishedSnapshot): Record<string, string> {
  return Object.fromEntries(Object.entries(s.types).map(([k, v]) => [k, v.version]))
}

t.test('versions per type: content hashes, the same in another cache (a restarted control plane)', async (t) => {
  const a = new SnapshotCache()
  const b = new SnapshotCache()
  const r1 = a.setSnapshot('n', snap({ a: [ep(1)], b: [ep(2)] }))
  const r2 = b.setSnapshot('other', snap({ b: [ep(2)], a: [ep(1)] }, { clusters: ['a', 'b'] }))
  t.ok(r1.ok && r2.ok)
  if (!r1.ok || !r2.ok) return
  t.same(r1.changed, [TYPE.cluster, TYPE.endpoints, TYPE.routeTable, TYPE.listener], 'a first snapshot moves every type')
  // a second process (a restarted control plane) names the same content with the same versions
  t.same(versions(r1.snapshot), versions(r2.snapshot))
  for (const v of Object.values(versions(r1.snapshot))) t.match(v, /^[0-9a-f]{16}$/)
  const eps = r1.snapshot.types[TYPE.endpoints]
  t.same([...eps.resources.keys()], ['a', 'b'])
  t.not(eps.resources.get('a')!.version, eps.resources.get('b')!.version, 'each resource has its own version')
})

t.test('only the types that moved are notified', async (t) => {
  const cache = new SnapshotCache()
  const seen: (readonly TypeUrl[])[] = []
  const stop = cache.watch('n', (_s, changed) => seen.push(changed))
  cache.setSnapshot('n', snap({ a: [ep(1)], b: [ep(2)] }))
  cache.setSnapshot('n', snap({ a: [ep(1)], b: [ep(3)] }))
  cache.setSnapshot('n', snap({ a: [ep(1)], b: [ep(3)] }, { timeout: '5s' }))
  const same = cache.setSnapshot('n', snap({ a: [ep(1)], b: [ep(3)] }, { timeout: '5s' }))
  cache.setSnapshot('other', snap({ a: [ep(9)] }))
  t.same(seen, [[TYPE.cluster, TYPE.endpoints, TYPE.routeTable, TYPE.listener], [TYPE.endpoints], [TYPE.routeTable]])
  t.ok(same.ok && same.changed.length === 0, 'the same content again: published as a no-op')
  t.equal(cache.getSnapshot('n')!.seq, 3, 'the no-op did not publish')
  stop()
  cache.setSnapshot('n', snap({ a: [ep(1)] }))
  t.equal(seen.length, 3, 'an unwatched node notifies nobody')
  t.equal(cache.watcherCount('n'), 0)
})

t.test('endpoint updates are incremental: only the clusters that changed, and the removed ones', async (t) => {
  const cache = new SnapshotCache()
  const first = cache.setSnapshot('n', snap({ a: [ep(1)], b: [ep(2)], c: [ep(3)] }))
  if (!first.ok) return t.fail('refused')
  const held = first.snapshot.types[TYPE.endpoints]
  // b changes, c goes away (with its route and cluster), d appears
  const next = cache.setSnapshot('n', snap({ a: [ep(1)], b: [ep(2), ep(4)], d: [ep(5, { ready: false, zone: 'z1' })] }))
  if (!next.ok) return t.fail('refused')
  const eps = next.snapshot.types[TYPE.endpoints]
  t.same(eps.delta, { from: held.version, changed: ['b', 'd'], removed: ['c'] }, 'the delta is computed once per publish')

  const u = updateFor(eps, { version: held.version, resources: held.resources })!
  t.equal(u.incremental, true)
  t.same(u.resources.map((r) => r.name), ['b', 'd'])
  t.same(u.resources[0].body, [ep(2), ep(4)])
  t.same(u.removed, ['c'])
  t.equal(u.after.version, eps.version)

  // a proxy two publishes behind gets a diff against what it holds, not the last delta
  const third = cache.setSnapshot('n', snap({ a: [ep(7)], b: [ep(2), ep(4)], d: [ep(5, { ready: false, zone: 'z1' })] }))
  if (!third.ok) return t.fail('refused')
  const behind = updateFor(third.snapshot.types[TYPE.endpoints], { version: held.version, resources: held.resources })!
  t.same(behind.resources.map((r) => r.name), ['a', 'b', 'd'])
  t.same(behind.removed, ['c'])

  // only the version known (a reconnecting proxy): everything, not incremental
  const full = updateFor(eps, { version: 'something-else', resources: null })!
  t.equal(full.incremental, false)
  t.same(full.resources.map((r) => r.name), ['b', 'd', 'a'].sort())
  // route tables and clusters are always sent whole
  const rt = updateFor(next.snapshot.types[TYPE.routeTable], { version: first.snapshot.types[TYPE.routeTable].version, resources: first.snapshot.types[TYPE.routeTable].resources })!
  t.equal(rt.incremental, false)
  t.equal(updateFor(eps, { version: eps.version, resources: null }), null, 'nothing to send at the same version')
})

t.test('an endpoint change on a large map: only what moved is versioned; versions, order and delta as from scratch', async (t) => {
  // 40 clusters in one map (the translator's shape: the same names, a few lists replaced)
  const names = Array.from({ length: 40 }, (_, i) => `c${String(39 - i).padStart(2, '0')}`) // not in name order
  const lists = (port: (i: number) => number) => Object.fromEntries(names.map((n, i) => [n, [ep(port(i))]]))
  const base = lists((i) => i + 1)
  const cache = new SnapshotCache()
  const s1 = snap(base)
  const first = cache.setSnapshot('n', s1)
  if (!first.ok) return t.fail('refused')
  // c05 moves; c10 gets a new list object with the same content
  const endpoints = new Map(s1.endpoints)
  endpoints.set('c05', [ep(9999)])
  endpoints.set('c10', [...endpoints.get('c10')!])
  const next = cache.setSnapshot('n', { ...s1, endpoints })
  if (!next.ok) return t.fail('refused')
  t.same(next.changed, [TYPE.endpoints], 'only the endpoints moved')
  const before = first.snapshot.types[TYPE.endpoints]
  const eps = next.snapshot.types[TYPE.endpoints]
  t.same(eps.delta, { from: before.version, changed: ['c05'], removed: [] })
  t.equal(eps.resources.get('c10'), before.resources.get('c10'), 'equal content: the resource already sent is kept')
  t.equal(eps.resources.get('c01'), before.resources.get('c01'))
  t.same([...eps.resources.keys()], [...names].sort(), 'name order')
  const u = updateFor(eps, { version: before.version, resources: before.resources })!
  t.same(u.resources.map((r) => r.name), ['c05'])

  // the same content from scratch (a restarted control plane; other names were versioned between)
  new SnapshotCache().setSnapshot('other', snap({ x: [ep(1)] }))
  const fresh = new SnapshotCache().setSnapshot('n', snap({ ...lists((i) => i + 1), c05: [ep(9999)] }))
  if (!fresh.ok) return t.fail('refused')
  t.same(versions(fresh.snapshot), versions(next.snapshot), 'the same versions as a cache that saw only this state')
  t.same([...fresh.snapshot.types[TYPE.endpoints].resources.keys()], [...eps.resources.keys()])

  // many lists at once: versioned from scratch, same result
  const all = new Map([...s1.endpoints].map(([n, l]) => [n, [ep(l[0].port + 1000)]]))
  const moved = cache.setSnapshot('n', { ...s1, endpoints: all })
  if (!moved.ok) return t.fail('refused')
  const scratch = new SnapshotCache().setSnapshot('n', snap(lists((i) => i + 1001)))
  if (!scratch.ok) return t.fail('refused')
  t.equal(moved.snapshot.types[TYPE.endpoints].version, scratch.snapshot.types[TYPE.endpoints].version)
  t.equal(moved.snapshot.types[TYPE.endpoints].delta?.changed.length, 40)
})

t.test('an inconsistent snapshot is refused with errors, and the last one stays', async (t) => {
  const cache = new SnapshotCache()
  const good = cache.setSnapshot('n', snap({ a: [ep(1)] }))
  t.ok(good.ok)
  let notified = 0
  cache.watch('n', () => notified++)
  const bad: Snapshot = {
    ...snap({ a: [ep(1)], ghost: [] }, { clusters: ['a'] }),
    listeners: [{ name: 'out', direction: 'outbound', port: 15001, routeTable: 'nope' }],
  }
  const rt = bad.routeTables[0]
  const withUnknown: Snapshot = {
    ...bad,
    routeTables: [{ ...rt, virtualHosts: [...rt.virtualHosts, { name: 'x', domains: ['x'], routes: [{ backends: [{ cluster: 'missing' }], mirror: { cluster: 'gone' } }] }] }],
    clusters: [...bad.clusters, { name: 'no-endpoints' }],
  }
  const r = cache.setSnapshot('n', withUnknown)
  t.equal(r.ok, false)
  if (r.ok) return
  t.same(
    r.errors.map((e) => `${e.code} ${e.path}: ${e.message}`),
    [
      'WEFT_ERR_SNAPSHOT_INCONSISTENT listeners["out"].routeTable: unknown route table "nope"',
      'WEFT_ERR_SNAPSHOT_INCONSISTENT routeTables["rt"].virtualHosts[1].routes[0].backends[0].cluster: unknown cluster "missing"',
      'WEFT_ERR_SNAPSHOT_INCONSISTENT routeTables["rt"].virtualHosts[1].routes[0].mirror.cluster: unknown cluster "gone"',
      'WEFT_ERR_SNAPSHOT_INCONSISTENT endpoints["no-endpoints"]: cluster "no-endpoints" has no endpoints entry (an empty list is fine)',
      'WEFT_ERR_SNAPSHOT_INCONSISTENT endpoints["ghost"]: endpoints for unknown cluster "ghost"',
    ],
  )
  t.equal(notified, 0, 'watchers hear nothing')
  if (good.ok) t.equal(cache.getSnapshot('n'), good.snapshot, 'the last good snapshot is still published')
  const dup = cache.setSnapshot('n', { ...snap({ a: [ep(1)] }), clusters: [{ name: 'a' }, { name: 'a' }] })
  t.match(dup, { ok: false, errors: [{ path: 'clusters["a"]', message: 'duplicate name "a"' }] })
})

t.test('snapshotFromConfig splits endpoints out of clusters; reused objects keep their versions cheaply', async (t) => {
  const clusters = [{ name: 'a', lb: { policy: 'leastRequest' as const }, endpoints: [{ address: '10.0.0.1', port: 80 }] }]
  const s = snapshotFromConfig({ listeners: [], routeTables: [], clusters })
  t.same(s.clusters, [{ name: 'a', lb: { policy: 'leastRequest' } }])
  t.same(s.endpoints.get('a'), [{ address: '10.0.0.1', port: 80 }])
  const again = snapshotFromConfig({ listeners: [], routeTables: [], clusters })
  t.equal(again.clusters[0], s.clusters[0], 'the same input object gives the same spec object')
  const cache = new SnapshotCache()
  t.ok(cache.setSnapshot('n', s).ok)
  t.same(cache.setSnapshot('n', again), { ok: true, snapshot: cache.getSnapshot('n'), changed: [] })
})
