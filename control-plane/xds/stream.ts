// One proxy's config stream, as a state machine that knows nothing of gRPC (./server.ts feeds it
// requests and gives it a send function). The protocol is protos/README.md's:
//
//   hello (node, known versions) -> batch of responses (one per type that moved, one nonce each)
//   -> one ACK or NACK per response -> the next batch, computed against what the proxy ACKed.
//
// Only one batch is in flight per stream: a slow proxy is sent the latest state when it is ready
// again, never a queue of intermediate ones, and incremental endpoint updates are always computed
// against what the proxy really holds.
import type { Logger } from 'pino'
import { TYPE_URLS, isTypeUrl, typeName, type ConfigRequest__Output, type ConfigResponse, type Node__Output, type TypeUrl } from '../../protos/api.ts'
import type { SnapshotCache } from '../snapshot/cache.ts'
import { INCREMENTAL_TYPES, updateFor, type Known, type TypeUpdate } from '../snapshot/delta.ts'
import type { PublishedSnapshot } from '../snapshot/types.ts'
import type { NackRecord, ProxyRegistry, RegisteredStream, Rejection, StreamView } from './registry.ts'
import type { BudgetWaiter, SendBudget } from './budget.ts'
import { toResponse, updateBytes } from './wire.ts'

export interface StreamDeps {
  cache: SnapshotCache
  registry: ProxyRegistry
  log: Logger
  /** the cache key of a node's snapshot */
  nodeKey(node: Node__Output): string
  /** makes nonces unique across control-plane processes */
  noncePrefix: string
  /** a proxy said hello (a source may publish its snapshot now, synchronously or later) */
  onOpen?(key: string, node: Node__Output): void
  /** a proxy answered a response (ACK or NACK): for measurements, e.g. the time to reach every proxy */
  onAnswer?(a: Answer): void
  /** bytes being written over all streams (./budget.ts); none: no limit */
  budget?: SendBudget
}

export interface Answer {
  readonly key: string
  readonly node: Node__Output
  readonly type: TypeUrl
  /** the version answered: the one applied (ACK) or rejected (NACK) */
  readonly version: string
  readonly nack: boolean
}

export interface StreamTransport {
  /** `written`: called once the response was handed to the connection (not when the stream ended first) */
  send(r: ConfigResponse, written: () => void): void
  /** end the stream with an error (grpc status INVALID_ARGUMENT) */
  fail(message: string): void
}

interface Sent {
  nonce: string
  update: TypeUpdate
  sentAt: string
  /** the versions of the other types (but endpoints) in the snapshot this was sent from */
  with: ReadonlyMap<TypeUrl, string>
}

interface Batch {
  readonly entries: Map<TypeUrl, Sent>
  readonly all: readonly Sent[]
}

export const XDS_NO_NODE = 'WEFT_ERR_XDS_NO_NODE'
export const XDS_NACK = 'WEFT_ERR_XDS_NACK'

let streamIds = 0

export class ConfigStream implements RegisteredStream, BudgetWaiter {
  readonly id = ++streamIds
  private readonly deps: StreamDeps
  private readonly transport: StreamTransport
  private node: Node__Output | null = null
  private key = ''
  private connectedAt = ''
  private readonly known = new Map<TypeUrl, Known>()
  private readonly lastNonce = new Map<TypeUrl, string>()
  private readonly sent = new Map<TypeUrl, number>()
  private inFlight: Batch | null = null
  private lastNack: NackRecord | null = null
  /** rejected on this stream: never sent again on it until something rejected with it moved */
  private readonly rejectedHere = new Map<TypeUrl, Rejection>()
  private unwatch: (() => void) | null = null
  private closed = false
  private nonceSeq = 0
  /** batches taken from the budget and not yet written: their bytes, and responses left to write */
  private readonly held = new Set<{ bytes: number; left: number }>()

  constructor(deps: StreamDeps, transport: StreamTransport) {
    this.deps = deps
    this.transport = transport
  }

  onRequest(req: ConfigRequest__Output): void {
    if (this.closed) return
    if (this.node === null) return this.hello(req)
    const type = req.typeUrl
    if (type === '') return // a repeated hello: nothing to do
    if (!isTypeUrl(type)) {
      this.deps.log.warn({ code: 'WEFT_ERR_XDS_TYPE', node: this.node.id, typeUrl: type }, 'request for an unknown type ignored')
      return
    }
    if (req.responseNonce === '') {
      // (re)subscription: the proxy tells what it holds and wants what is newer
      this.subscribe(type, req.versionInfo, this.deps.cache.getSnapshot(this.key))
      return this.pump()
    }
    const entry = this.inFlight?.entries.get(type)
    if (entry === undefined || req.responseNonce !== this.lastNonce.get(type) || req.responseNonce !== entry.nonce) {
      // xDS: an answer to anything but the latest response of its type is stale, and ignored
      this.deps.registry.metrics.staleRequests.inc({ type: typeName(type) })
      this.deps.log.debug({ node: this.node.id, type: typeName(type), nonce: req.responseNonce }, 'stale nonce ignored')
      return
    }
    const batch = this.inFlight!
    batch.entries.delete(type)
    const nack = req.errorDetail != null
    if (nack) this.nack(type, entry, req)
    else if (req.versionInfo === entry.update.version) {
      this.known.set(type, entry.update.after)
      this.rejectedHere.delete(type)
      this.deps.registry.clearRejection(this.node.id, type)
      this.deps.registry.metrics.acks.inc({ type: typeName(type) })
    } else {
      // an answer without an error that names another version: trust the version, not the content
      this.deps.log.warn({ node: this.node.id, type: typeName(type), sent: entry.update.version, answered: req.versionInfo }, 'answer names a version that was not sent')
      this.known.set(type, { version: req.versionInfo, resources: null })
    }
    this.deps.onAnswer?.({ key: this.key, node: this.node, type, version: nack ? entry.update.version : req.versionInfo, nack })
    if (batch.entries.size > 0) return
    this.inFlight = null
    this.pump()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.unwatch?.()
    this.unwatch = null
    const budget = this.deps.budget
    if (budget !== undefined) {
      budget.leave(this)
      for (const h of this.held) budget.give(h.bytes)
      this.held.clear()
    }
    if (this.node !== null) {
      this.deps.registry.close(this)
      this.deps.log.info({ node: this.node.id, key: this.key, stream: this.id }, 'proxy disconnected')
    }
  }

  view(): StreamView {
    const n = this.node!
    const byType = <T>(m: ReadonlyMap<TypeUrl, T>, f: (v: T) => string | number) =>
      Object.fromEntries([...m].map(([t, v]) => [typeName(t), f(v)]))
    return {
      stream: this.id,
      node: { id: n.id, pod: n.pod, namespace: n.namespace, serviceAccount: n.serviceAccount, workload: n.workload, labels: n.labels, proxyVersion: n.proxyVersion, adminAddress: n.adminAddress },
      key: this.key,
      connectedAt: this.connectedAt,
      acked: byType(this.known, (k) => k.version) as Record<string, string>,
      inFlight: (this.inFlight?.all ?? [])
        .filter((s) => this.inFlight!.entries.get(s.update.type) === s)
        .map((s) => ({
          type: typeName(s.update.type),
          version: s.update.version,
          nonce: s.nonce,
          incremental: s.update.incremental,
          resources: s.update.resources.length,
          removed: s.update.removed.length,
          sentAt: s.sentAt,
        })),
      sent: byType(this.sent, (n) => n) as Record<string, number>,
      lastNack: this.lastNack,
    }
  }

  private hello(req: ConfigRequest__Output): void {
    const n = req.node
    if (n == null || n.id === '') {
      this.deps.log.warn({ code: XDS_NO_NODE }, 'stream without a node refused')
      this.transport.fail(`${XDS_NO_NODE}: the first message of a stream must carry node.id`)
      this.closed = true
      return
    }
    this.node = n
    this.key = this.deps.nodeKey(n)
    this.connectedAt = new Date().toISOString()
    const snap = this.deps.cache.getSnapshot(this.key)
    for (const [url, version] of Object.entries(req.knownVersions ?? {})) {
      if (isTypeUrl(url) && version !== '') this.subscribe(url, version, snap)
    }
    this.deps.registry.open(this)
    this.unwatch = this.deps.cache.watch(this.key, () => this.pump())
    this.deps.log.info(
      { node: n.id, key: this.key, pod: n.pod, namespace: n.namespace, proxyVersion: n.proxyVersion, stream: this.id, known: req.knownVersions },
      'proxy connected',
    )
    this.deps.onOpen?.(this.key, n)
    this.pump()
  }

  private subscribe(type: TypeUrl, version: string, snap: PublishedSnapshot | undefined): void {
    const current = snap?.types[type]
    // Same version as published: the proxy holds exactly these resources, so the next endpoint
    // change can go out incrementally even on a fresh stream.
    this.known.set(type, { version, resources: current !== undefined && current.version === version ? current.resources : null })
  }

  /** The send budget has room again (./budget.ts): send what is pending, if anything. */
  resume(): void {
    this.pump()
  }

  /** Send what moved, unless a batch is in flight (its answer calls pump again). */
  private pump(): void {
    if (this.closed || this.node === null || this.inFlight !== null) return
    const snap = this.deps.cache.getSnapshot(this.key)
    if (snap === undefined) return
    let updates: TypeUpdate[] = []
    for (const t of TYPE_URLS) {
      const u = updateFor(snap.types[t], this.known.get(t))
      if (u !== null) updates.push(u)
    }
    // A rejected version goes out again only once something rejected with it has moved (the
    // cause may be fixed); until then the rest (endpoint updates) still flows. Never again on the
    // stream that rejected it; on a new stream, a proxy that holds nothing of the type (restarted)
    // is sent it once: there is no last good one to keep.
    const earlier = this.deps.registry.rejected(this.node.id)
    updates = updates.filter((u) => {
      const r = this.rejectedHere.get(u.type) ?? (this.known.has(u.type) ? earlier?.get(u.type) : undefined)
      if (r === undefined || r.version !== u.version || released(r, snap)) return true
      this.deps.registry.metrics.withheld.inc({ type: typeName(u.type) })
      return false
    })
    const budget = this.deps.budget
    if (updates.length === 0) {
      budget?.leave(this)
      return
    }
    // A large batch (a complete snapshot) waits while others are being written; it is computed
    // again from the then-latest snapshot when its turn comes.
    let ticket: { bytes: number; left: number } | null = null
    if (budget !== undefined) {
      const bytes = updates.reduce((a, u) => a + updateBytes(u), 0)
      if (!budget.take(bytes, this)) return
      ticket = { bytes, left: updates.length }
      this.held.add(ticket)
    }
    const sentAt = new Date().toISOString()
    const all = updates.map((update): Sent => ({ nonce: `${this.deps.noncePrefix}-${this.id}-${++this.nonceSeq}`, update, sentAt, with: othersOf(snap, update.type) }))
    this.inFlight = { entries: new Map(all.map((s) => [s.update.type, s])), all }
    const m = this.deps.registry.metrics
    all.forEach((s, i) => {
      const type = s.update.type
      this.lastNonce.set(type, s.nonce)
      this.sent.set(type, (this.sent.get(type) ?? 0) + 1)
      m.responses.inc({ type: typeName(type), incremental: String(s.update.incremental) })
      this.transport.send(toResponse(s.update, s.nonce, all.length - 1 - i), () => this.written(ticket))
    })
    // built only when it is logged: 1,000 streams x every change
    if (this.deps.log.isLevelEnabled('debug')) {
      this.deps.log.debug(
        { node: this.node.id, seq: snap.seq, batch: all.map((s) => ({ type: typeName(s.update.type), version: s.update.version, incremental: s.update.incremental, resources: s.update.resources.length })) },
        'config sent',
      )
    }
  }

  /** One response of a batch was handed to the connection; the batch's bytes go back with its last. */
  private written(ticket: { bytes: number; left: number } | null): void {
    if (ticket === null || --ticket.left > 0 || !this.held.delete(ticket)) return // (close() gave back what was held)
    this.deps.budget!.give(ticket.bytes)
  }

  private nack(type: TypeUrl, entry: Sent, req: ConfigRequest__Output): void {
    const e = req.errorDetail!
    const rec: NackRecord = {
      node: this.node!.id,
      key: this.key,
      type: typeName(type),
      typeUrl: type,
      version: entry.update.version,
      nonce: entry.nonce,
      error: { code: e.code, message: e.message, details: e.details },
      at: new Date().toISOString(),
    }
    this.lastNack = rec
    const rejection: Rejection = { version: entry.update.version, with: entry.with }
    this.rejectedHere.set(type, rejection)
    this.deps.registry.addRejection(this.node!.id, type, rejection)
    this.deps.registry.recordNack(rec)
    this.deps.log.warn(
      { code: XDS_NACK, node: rec.node, type: rec.type, version: rec.version, stillApplied: req.versionInfo, error: rec.error },
      'proxy rejected config',
    )
  }
}

// snapshot -> type -> the versions of its other types: the same for every stream sent from it
const others = new WeakMap<PublishedSnapshot, Map<TypeUrl, ReadonlyMap<TypeUrl, string>>>()

/** The versions of the snapshot's other types, endpoints left out (they never fix a rejection). */
function othersOf(snap: PublishedSnapshot, type: TypeUrl): ReadonlyMap<TypeUrl, string> {
  let byType = others.get(snap)
  if (byType === undefined) others.set(snap, (byType = new Map()))
  let m = byType.get(type)
  if (m === undefined) {
    const fresh = new Map<TypeUrl, string>()
    for (const t of TYPE_URLS) if (t !== type && !INCREMENTAL_TYPES.has(t)) fresh.set(t, snap.types[t].version)
    byType.set(type, (m = fresh))
  }
  return m
}

/** Has something the version was rejected with moved since? */
function released(r: Rejection, snap: PublishedSnapshot): boolean {
  for (const [t, v] of r.with) if (snap.types[t].version !== v) return true
  return false
}
