// What the control plane knows about its proxies: the open streams (who, what they ACKed, what
// is in flight), the NACKs they sent, and which versions each rejected, so they are not sent
// again blindly. Shown on the admin listener (/debug/proxies, /debug/nacks) and in metrics.
import type { TypeUrl } from '../../protos/api.ts'
import { ControlPlaneMetrics } from './metrics.ts'

export interface NackRecord {
  /** Node.id of the proxy */
  node: string
  /** the cache key its snapshot is published under */
  key: string
  /** short type name: cluster, endpoints, routeTable, listener */
  type: string
  typeUrl: string
  /** the version rejected */
  version: string
  nonce: string
  error: { code: string; message: string; details: string[] }
  at: string
}

export interface StreamView {
  stream: number
  node: { id: string; pod: string; namespace: string; serviceAccount: string; workload: string; labels: Record<string, string>; proxyVersion: string; adminAddress: string }
  key: string
  connectedAt: string
  /** type -> version the proxy holds (ACKed, or declared on its hello) */
  acked: Record<string, string>
  /** the batch sent and not yet answered */
  inFlight: { type: string; version: string; nonce: string; incremental: boolean; resources: number; removed: number; sentAt: string }[]
  /** responses sent on this stream, per type */
  sent: Record<string, number>
  lastNack: NackRecord | null
}

/**
 * A version a proxy rejected, and the versions the other types had in the snapshot it was sent
 * from: it goes out again only once one of those moved (the cause may be fixed then). Endpoint
 * versions are not among them: endpoints move all the time and never fix a rejected route,
 * cluster or listener.
 */
export interface Rejection {
  version: string
  with: ReadonlyMap<TypeUrl, string>
}

export interface RegisteredStream {
  readonly id: number
  view(): StreamView
}

const NACK_LOG = 200
const POISONED_NODES = 10_000

export class ProxyRegistry {
  readonly metrics: ControlPlaneMetrics
  private readonly streams = new Set<RegisteredStream>()
  private readonly nackLog: NackRecord[] = []
  // node id -> per type, its rejected version (merged per type; a type's entry goes when it is ACKed)
  private readonly poisoned = new Map<string, Map<TypeUrl, Rejection>>()

  constructor() {
    this.metrics = new ControlPlaneMetrics(() => this.streams.size)
  }

  open(s: RegisteredStream): void {
    this.streams.add(s)
  }

  close(s: RegisteredStream): void {
    this.streams.delete(s)
  }

  get connected(): number {
    return this.streams.size
  }

  recordNack(r: NackRecord): void {
    this.nackLog.push(r)
    if (this.nackLog.length > NACK_LOG) this.nackLog.shift()
    this.metrics.nacks.inc({ type: r.type })
  }

  /** The NACKs kept (the last 200), oldest first. */
  nacks(): NackRecord[] {
    return [...this.nackLog]
  }

  proxies(): StreamView[] {
    return [...this.streams].map((s) => s.view()).sort((a, b) => (a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : a.stream - b.stream))
  }

  /** What the node rejected and has not applied since, per type (kept across its reconnections). */
  rejected(nodeId: string): ReadonlyMap<TypeUrl, Rejection> | undefined {
    return this.poisoned.get(nodeId)
  }

  addRejection(nodeId: string, type: TypeUrl, r: Rejection): void {
    let m = this.poisoned.get(nodeId)
    if (m === undefined) {
      this.poisoned.set(nodeId, (m = new Map()))
      // bounded: the oldest entries go first (a Map iterates in insertion order)
      if (this.poisoned.size > POISONED_NODES) this.poisoned.delete(this.poisoned.keys().next().value!)
    }
    m.set(type, r)
  }

  /** The node applied a version of `type`: its rejection of that type is over. */
  clearRejection(nodeId: string, type: TypeUrl): void {
    const m = this.poisoned.get(nodeId)
    if (m === undefined) return
    m.delete(type)
    if (m.size === 0) this.poisoned.delete(nodeId)
  }
}
