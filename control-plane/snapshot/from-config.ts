// A snapshot from the proxy's config model as translate (and the static bootstrap) produce it:
// clusters carry their endpoints inline there, the API carries them as their own type.
import type { Cluster, Listener, RouteTable } from '../../api/schema.ts'
import type { ClusterSpec } from '../../api/schema.ts'
import type { EndpointSpec, Snapshot } from './types.ts'

// Reused input objects give reused output objects, so their versions are not hashed again.
const specs = new WeakMap<Cluster, ClusterSpec>()

export function snapshotFromConfig(c: { listeners: readonly Listener[]; routeTables: readonly RouteTable[]; clusters: readonly Cluster[] }): Snapshot {
  const endpoints = new Map<string, readonly EndpointSpec[]>()
  const clusters: ClusterSpec[] = []
  for (const cl of c.clusters) {
    let spec = specs.get(cl)
    if (spec === undefined) {
      const { endpoints: _eps, ...rest } = cl
      spec = rest
      specs.set(cl, spec)
    }
    clusters.push(spec)
    endpoints.set(cl.name, cl.endpoints)
  }
  return { listeners: c.listeners, routeTables: c.routeTables, clusters, endpoints }
}
