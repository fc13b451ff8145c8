// Versions are content hashes, not counters. A restarted control plane computes the same versions
// for the same state, so a proxy that reconnects with what it still serves is sent nothing new
// (a counter would restart at 1 and could name different content with a version the proxy holds).
// The hash is over JSON.stringify, not a key-sorted form (ten times slower on a 10,000-service
// route table): a source that builds objects with another key order only causes a resend, never
// a wrong "unchanged". translate builds its objects the same way every time.
import { createHash } from 'node:crypto'
import { TYPE_URLS, type TypeUrl } from '../../protos/api.ts'
import type { EndpointSpec, Snapshot, TypeSnapshot, VersionedResource } from './types.ts'

// Objects reused across snapshots (a translate that keeps unchanged objects) are hashed once.
const hashes = new WeakMap<object, string>()

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16)
}

/** Version of one resource body. */
export function resourceVersion(body: object): string {
  let v = hashes.get(body)
  if (v === undefined) {
    v = digest(JSON.stringify(body))
    hashes.set(body, v)
  }
  return v
}

function typeSnapshot(type: TypeUrl, items: Iterable<[string, object]>): TypeSnapshot {
  const list: VersionedResource[] = []
  for (const [name, body] of items) list.push({ name, version: resourceVersion(body), body: body as VersionedResource['body'] })
  list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const h = createHash('sha256')
  for (const r of list) h.update(`${r.name}\0${r.version}\n`)
  return { type, version: h.digest('hex').slice(0, 16), resources: new Map(list.map((r) => [r.name, r])), delta: null }
}

/** Every type of a (consistent) snapshot, versioned (without deltas: the cache adds them). */
export function versionSnapshot(s: Snapshot): Record<TypeUrl, TypeSnapshot> {
  const [cluster, endpoints, routeTable, listener] = TYPE_URLS
  return {
    [cluster]: typeSnapshot(cluster, s.clusters.map((c) => [c.name, c])),
    [endpoints]: typeSnapshot(endpoints, [...s.endpoints].map(([name, eps]): [string, readonly EndpointSpec[]] => [name, eps])),
    [routeTable]: typeSnapshot(routeTable, s.routeTables.map((t) => [t.name, t])),
    [listener]: typeSnapshot(listener, s.listeners.map((l) => [l.name, l])),
  } as Record<TypeUrl, TypeSnapshot>
}
