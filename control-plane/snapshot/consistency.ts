// The check a snapshot passes before it is published (as go-control-plane's Consistent()): every
// reference resolves inside the snapshot, so a proxy is never sent a route to a cluster it does
// not have. It checks references only; the shapes of the objects are the source's business
// (translate works from validated resources) and the proxy validates everything again anyway.
//
// Each part of the check depends on one or two of the snapshot's collections, and is remembered
// for those objects (snapshots are immutable): the snapshots of 50 namespaces that share their
// clusters and endpoints, after an endpoint change, check the endpoints once and the route tables
// not at all.
import type { VirtualHost } from '../../api/schema.ts'
import type { Snapshot, SnapshotError } from './types.ts'
import { SNAPSHOT_INCONSISTENT } from './types.ts'

interface Names {
  readonly names: ReadonlySet<string>
  readonly errors: readonly SnapshotError[]
}

const nameSets = new WeakMap<object, Names>()
const pairs = new WeakMap<object, WeakMap<object, readonly SnapshotError[]>>()

function error(path: string, message: string): SnapshotError {
  return { code: SNAPSHOT_INCONSISTENT, path, message }
}

function names(kind: string, items: readonly { name: string }[]): Names {
  const known = nameSets.get(items)
  if (known !== undefined) return known
  const errors: SnapshotError[] = []
  const seen = new Set<string>()
  for (const i of items) {
    if (seen.has(i.name)) errors.push(error(`${kind}[${JSON.stringify(i.name)}]`, `duplicate name "${i.name}"`))
    seen.add(i.name)
  }
  const n = { names: seen, errors }
  nameSets.set(items, n)
  return n
}

/** check(a, b), remembered for the pair of objects. */
function pair(a: object, b: object, check: () => SnapshotError[]): readonly SnapshotError[] {
  let m = pairs.get(a)
  if (m === undefined) pairs.set(a, (m = new WeakMap()))
  let errors = m.get(b)
  if (errors === undefined) m.set(b, (errors = check()))
  return errors
}

// (cluster names, virtual host) -> its unknown clusters: the tables of many namespaces share
// most of their virtual hosts, each is checked once against a set of clusters
const hosts = new WeakMap<Names, WeakMap<VirtualHost, readonly { path: string; message: string }[]>>()
const NONE: readonly { path: string; message: string }[] = []

function hostProblems(vh: VirtualHost, clusters: Names): readonly { path: string; message: string }[] {
  let m = hosts.get(clusters)
  if (m === undefined) hosts.set(clusters, (m = new WeakMap()))
  let problems = m.get(vh)
  if (problems === undefined) {
    const found: { path: string; message: string }[] = []
    vh.routes.forEach((r, i) => {
      r.backends?.forEach((b, j) => {
        if (!clusters.names.has(b.cluster)) found.push({ path: `routes[${i}].backends[${j}].cluster`, message: `unknown cluster "${b.cluster}"` })
      })
      if (r.mirror !== undefined && !clusters.names.has(r.mirror.cluster)) found.push({ path: `routes[${i}].mirror.cluster`, message: `unknown cluster "${r.mirror.cluster}"` })
    })
    problems = found.length === 0 ? NONE : found
    m.set(vh, problems)
  }
  return problems
}

export function checkConsistency(s: Snapshot): SnapshotError[] {
  const clusters = names('clusters', s.clusters)
  const tables = names('routeTables', s.routeTables)
  const listeners = names('listeners', s.listeners)
  const listenerRefs = pair(s.listeners, s.routeTables, () => {
    const errors: SnapshotError[] = []
    for (const l of s.listeners) {
      if (!tables.names.has(l.routeTable)) errors.push(error(`listeners[${JSON.stringify(l.name)}].routeTable`, `unknown route table "${l.routeTable}"`))
    }
    return errors
  })
  const routeRefs = pair(s.routeTables, s.clusters, () => {
    const errors: SnapshotError[] = []
    for (const t of s.routeTables) {
      t.virtualHosts.forEach((vh, v) => {
        for (const p of hostProblems(vh, clusters)) errors.push(error(`routeTables[${JSON.stringify(t.name)}].virtualHosts[${v}].${p.path}`, p.message))
      })
    }
    return errors
  })
  const endpointRefs = pair(s.clusters, s.endpoints, () => {
    const errors: SnapshotError[] = []
    for (const c of clusters.names) {
      if (!s.endpoints.has(c)) errors.push(error(`endpoints[${JSON.stringify(c)}]`, `cluster "${c}" has no endpoints entry (an empty list is fine)`))
    }
    for (const name of s.endpoints.keys()) {
      if (!clusters.names.has(name)) errors.push(error(`endpoints[${JSON.stringify(name)}]`, `endpoints for unknown cluster "${name}"`))
    }
    return errors
  })
  return [...clusters.errors, ...tables.errors, ...listeners.errors, ...listenerRefs, ...routeRefs, ...endpointRefs]
}

export function formatSnapshotError(e: SnapshotError): string {
  return `${e.code}: ${e.path}: ${e.message}`
}
