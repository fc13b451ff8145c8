// From a checked set of resources to the snapshots in the cache. Translation depends on the
// proxy's namespace only (its own Services answer to their short names; consumer routes of a
// namespace apply to its proxies), so proxies of one namespace share one snapshot, keyed
// "ns/<namespace>". A namespace is published once a proxy of it said hello, and again on every
// change of the resources; the cache tells the streams which types moved.
//
//   source (files | Kubernetes) -> setResources -> Translator (every namespace at once) -> cache -> streams
//
// Translating each namespace on its own and building each snapshot from new objects costs the
// whole mesh once per namespace on every change (10,000 Services in 50 namespaces: about 25 s
// for one endpoint). Here the namespaces share their clusters, endpoints and most virtual hosts
// (../translate/incremental.ts), unchanged objects stay the same objects, and the cache
// versions and checks what it has seen once: an endpoint change costs about one endpoint list,
// whatever the number of namespaces (bench/control-plane.ts measures it).
import type { Logger } from 'pino'
import type { Node__Output, TypeUrl } from '../../protos/api.ts'
import type { Listener } from '../../api/schema.ts'
import { Translator, type MeshTranslation } from '../translate/incremental.ts'
import type { SecurityOptions } from '../translate/security.ts'
import { OUTBOUND_TABLE, type Resources } from '../translate/translate.ts'
import type { SnapshotCache } from './cache.ts'
import { formatSnapshotError } from './consistency.ts'
import type { Snapshot, SnapshotError } from './types.ts'

export const OUTBOUND_LISTENER = 'outbound'

export interface NamespacePublisherOptions {
  cache: SnapshotCache
  log: Logger
  /** the port of the "outbound" listener sent to every proxy; a proxy's bootstrap may override it */
  outboundPort: number
  clusterDomain?: string
  /** workload security: mesh-wide policies' namespace, auto mutual TLS (../translate/security.ts) */
  security?: SecurityOptions
}

export interface PublishReport {
  /** keys published, in order */
  readonly keys: readonly string[]
  /** key -> the types that moved, for the keys whose snapshot moved */
  readonly changed: ReadonlyMap<string, readonly TypeUrl[]>
  /** key -> why its snapshot was refused (it keeps its last one): a translation bug */
  readonly refused: ReadonlyMap<string, readonly SnapshotError[]>
  readonly translateMs: number
  /** version, check and publish (the watchers send to their streams before setSnapshot returns) */
  readonly publishMs: number
  readonly rebuilt: MeshTranslation['rebuilt']
}

const NOTHING: MeshTranslation['rebuilt'] = { clusters: 0, endpoints: 0, virtualHosts: 0, routeTables: 0 }

export class NamespacePublisher {
  private resources: Resources | null = null
  /** cache key -> namespace, for every namespace a proxy asked for */
  private readonly namespaces = new Map<string, string>()
  private readonly o: NamespacePublisherOptions
  private readonly translator: Translator
  // one array for every snapshot: the cache versions it once
  private readonly listeners: readonly Listener[]

  constructor(o: NamespacePublisherOptions) {
    this.o = o
    this.translator = new Translator({ clusterDomain: o.clusterDomain, security: o.security })
    this.listeners = [{ name: OUTBOUND_LISTENER, direction: 'outbound', address: '127.0.0.1', port: o.outboundPort, routeTable: OUTBOUND_TABLE }]
  }

  /** The cache key of a proxy (the server's nodeKey). */
  static key(node: Pick<Node__Output, 'namespace'>): string {
    return `ns/${node.namespace || 'default'}`
  }

  get hasResources(): boolean {
    return this.resources !== null
  }

  /** The namespaces published, by key. */
  get published(): ReadonlyMap<string, string> {
    return this.namespaces
  }

  /**
   * New resources (already checked; the objects that did not change the same objects as
   * before, as sources give them): every namespace with proxies is published again.
   */
  setResources(r: Resources): PublishReport {
    this.resources = r
    return this.publish([...this.namespaces.keys()])
  }

  /** A proxy said hello (the server's onStreamOpen): publish its namespace if nobody did yet. */
  onStreamOpen(key: string, node: Node__Output): void {
    if (this.namespaces.has(key)) return
    this.addNamespaces([node.namespace || 'default'])
  }

  /** Publish these namespaces (before their proxies connect, or again). */
  addNamespaces(namespaces: Iterable<string>): PublishReport {
    const keys: string[] = []
    for (const namespace of namespaces) {
      const key = NamespacePublisher.key({ namespace })
      this.namespaces.set(key, namespace)
      keys.push(key)
    }
    return this.publish(keys)
  }

  private publish(keys: readonly string[]): PublishReport {
    const changed = new Map<string, readonly TypeUrl[]>()
    const refused = new Map<string, readonly SnapshotError[]>()
    if (this.resources === null || keys.length === 0) return { keys: [], changed, refused, translateMs: 0, publishMs: 0, rebuilt: NOTHING }
    const t0 = performance.now()
    // every namespace, so the translator keeps all their tables (those not published now did not change)
    const t = this.translator.translate(this.resources, [...this.namespaces.values()])
    const t1 = performance.now()
    for (const key of keys) {
      const s: Snapshot = { listeners: this.listeners, routeTables: t.routeTables.get(this.namespaces.get(key)!)!, clusters: t.clusters, endpoints: t.endpoints }
      const r = this.o.cache.setSnapshot(key, s)
      if (!r.ok) {
        // translation of checked resources should be consistent: a bug, reported, never published
        refused.set(key, r.errors)
        for (const e of r.errors) this.o.log.error({ code: e.code, key }, formatSnapshotError(e))
      } else if (r.changed.length > 0) {
        changed.set(key, r.changed)
        this.o.log.info({ key, seq: r.snapshot.seq, changed: r.changed }, 'snapshot published')
      }
    }
    return { keys, changed, refused, translateMs: t1 - t0, publishMs: performance.now() - t1, rebuilt: t.rebuilt }
  }
}
