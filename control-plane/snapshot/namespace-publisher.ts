// From a checked set of resources to the snapshots in the cache. Translation depends on the
// proxy's namespace only (its own Services answer to their short names; consumer routes of a
// namespace apply to its proxies), so proxies of one namespace share one snapshot, keyed
// "ns/<namespace>". A namespace is published once a proxy of it said hello, and again on every
// change of the resources; the cache tells the streams which types moved.
//
//   source (files | Kubernetes) -> setResources -> translate per namespace -> cache -> streams
import type { Logger } from 'pino'
import type { Node__Output } from '../../protos/api.ts'
import type { Listener } from '../../proxy/config/schema.ts'
import { OUTBOUND_TABLE, translate, type Resources } from '../translate/translate.ts'
import type { SnapshotCache } from './cache.ts'
import { formatSnapshotError } from './consistency.ts'
import { snapshotFromConfig } from './from-config.ts'

export const OUTBOUND_LISTENER = 'outbound'

export interface NamespacePublisherOptions {
  cache: SnapshotCache
  log: Logger
  /** the port of the "outbound" listener sent to every proxy; a proxy's bootstrap may override it */
  outboundPort: number
}

export class NamespacePublisher {
  private resources: Resources | null = null
  /** cache key -> namespace, for every namespace a proxy asked for */
  private readonly namespaces = new Map<string, string>()
  private readonly o: NamespacePublisherOptions

  constructor(o: NamespacePublisherOptions) {
    this.o = o
  }

  /** The cache key of a proxy (the server's nodeKey). */
  static key(node: Node__Output): string {
    return `ns/${node.namespace || 'default'}`
  }

  get hasResources(): boolean {
    return this.resources !== null
  }

  /** New resources (already checked): every namespace with proxies is translated and published. */
  setResources(r: Resources): void {
    this.resources = r
    for (const [key, ns] of this.namespaces) this.publish(key, ns)
  }

  /** A proxy said hello (the server's onStreamOpen): publish its namespace if nobody did yet. */
  onStreamOpen(key: string, node: Node__Output): void {
    if (this.namespaces.has(key)) return
    const ns = node.namespace || 'default'
    this.namespaces.set(key, ns)
    this.publish(key, ns)
  }

  private publish(key: string, namespace: string): void {
    if (this.resources === null) return
    const t = translate(this.resources, { namespace })
    const listener: Listener = { name: OUTBOUND_LISTENER, direction: 'outbound', address: '127.0.0.1', port: this.o.outboundPort, routeTable: OUTBOUND_TABLE }
    const r = this.o.cache.setSnapshot(key, snapshotFromConfig({ listeners: [listener], routeTables: t.routeTables, clusters: t.clusters }))
    if (!r.ok) {
      // translation of checked resources should be consistent: a bug, reported, never published
      for (const e of r.errors) this.o.log.error({ code: e.code, key }, formatSnapshotError(e))
      return
    }
    if (r.changed.length > 0) this.o.log.info({ key, seq: r.snapshot.seq, changed: r.changed }, 'snapshot published')
  }
}
