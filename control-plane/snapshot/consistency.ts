// The check a snapshot passes before it is published (as go-control-plane's Consistent()): every
// reference resolves inside the snapshot, so a proxy is never sent a route to a cluster it does
// not have. It checks references only; the shapes of the objects are the source's business
// (translate works from validated resources) and the proxy validates everything again anyway.
import type { Snapshot, SnapshotError } from './types.ts'
import { SNAPSHOT_INCONSISTENT } from './types.ts'

export function checkConsistency(s: Snapshot): SnapshotError[] {
  const errors: SnapshotError[] = []
  const err = (path: string, message: string) => errors.push({ code: SNAPSHOT_INCONSISTENT, path, message })
  const names = (kind: string, items: readonly { name: string }[]): Set<string> => {
    const seen = new Set<string>()
    for (const i of items) {
      if (seen.has(i.name)) err(`${kind}[${JSON.stringify(i.name)}]`, `duplicate name "${i.name}"`)
      seen.add(i.name)
    }
    return seen
  }
  const clusters = names('clusters', s.clusters)
  const tables = names('routeTables', s.routeTables)
  names('listeners', s.listeners)

  for (const l of s.listeners) {
    if (!tables.has(l.routeTable)) err(`listeners[${JSON.stringify(l.name)}].routeTable`, `unknown route table "${l.routeTable}"`)
  }
  for (const t of s.routeTables) {
    t.virtualHosts.forEach((vh, v) => {
      vh.routes.forEach((r, i) => {
        const at = `routeTables[${JSON.stringify(t.name)}].virtualHosts[${v}].routes[${i}]`
        r.backends?.forEach((b, j) => {
          if (!clusters.has(b.cluster)) err(`${at}.backends[${j}].cluster`, `unknown cluster "${b.cluster}"`)
        })
        if (r.mirror !== undefined && !clusters.has(r.mirror.cluster)) err(`${at}.mirror.cluster`, `unknown cluster "${r.mirror.cluster}"`)
      })
    })
  }
  for (const c of clusters) {
    if (!s.endpoints.has(c)) err(`endpoints[${JSON.stringify(c)}]`, `cluster "${c}" has no endpoints entry (an empty list is fine)`)
  }
  for (const name of s.endpoints.keys()) {
    if (!clusters.has(name)) err(`endpoints[${JSON.stringify(name)}]`, `endpoints for unknown cluster "${name}"`)
  }
  return errors
}

export function formatSnapshotError(e: SnapshotError): string {
  return `${e.code}: ${e.path}: ${e.message}`
}
