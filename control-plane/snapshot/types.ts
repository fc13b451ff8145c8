// What a snapshot is: one proxy's whole config, split into the four resource types of the API
// (protos/weft/config/v1alpha1/config.proto), in the proxy's own config model
// (api/schema.ts). Any source may build one: translate (Kubernetes or the local files),
// a test by hand, a benchmark.
import type { Cluster, ClusterSpec, Listener, RouteTable } from '../../api/schema.ts'
import type { TypeUrl } from '../../protos/api.ts'

/** A cluster without its endpoints: those are their own, high-churn resource type. */

/** One endpoint as the API carries it; more than the proxy's model (ready, zone, labels). */
export interface EndpointSpec {
  address: string
  port: number
  /** default 1 */
  weight?: number
  /** default true; a not-ready endpoint is sent (so its state is visible) but not balanced to */
  ready?: boolean
  zone?: string
  labels?: Record<string, string>
}

export interface Snapshot {
  listeners: readonly Listener[]
  routeTables: readonly RouteTable[]
  clusters: readonly ClusterSpec[]
  /** cluster name -> its endpoints; every cluster needs an entry (possibly empty) */
  endpoints: ReadonlyMap<string, readonly EndpointSpec[]>
}

/**
 * Snapshots are immutable once given to the cache: build new objects for what changed, never
 * mutate a published one in place.
 *
 * One resource with its version (a content hash). Keep a resource's object identical (===)
 * across snapshots when it did not change: its version is then taken from a cache instead of
 * hashing it again, which is what keeps a 100,000-endpoint snapshot cheap to publish.
 */
export interface VersionedResource {
  readonly name: string
  readonly version: string
  readonly body: ClusterSpec | Listener | RouteTable | readonly EndpointSpec[]
}

/** All resources of one type, in name order, and the type's version. */
export interface TypeSnapshot {
  readonly type: TypeUrl
  /** hash of every (name, version): equal content gives an equal version, in any process */
  readonly version: string
  readonly resources: ReadonlyMap<string, VersionedResource>
  /** what changed since the type's previous version, computed once per publish (not per proxy) */
  readonly delta: TypeDelta | null
}

export interface TypeDelta {
  readonly from: string
  /** added or changed */
  readonly changed: readonly string[]
  readonly removed: readonly string[]
}

/** A snapshot as the cache published it. */
export interface PublishedSnapshot {
  readonly node: string
  /** increments on every publish for this node (for logs; the versions are the hashes) */
  readonly seq: number
  readonly publishedAt: string
  readonly types: Readonly<Record<TypeUrl, TypeSnapshot>>
}

export const SNAPSHOT_INCONSISTENT = 'WEFT_ERR_SNAPSHOT_INCONSISTENT'

export interface SnapshotError {
  readonly code: typeof SNAPSHOT_INCONSISTENT
  /** e.g. routeTables["rt"].virtualHosts[0].routes[1].backends[0].cluster */
  readonly path: string
  readonly message: string
}

export type PublishResult =
  | { readonly ok: true; readonly snapshot: PublishedSnapshot; readonly changed: readonly TypeUrl[] }
  | { readonly ok: false; readonly errors: readonly SnapshotError[] }
