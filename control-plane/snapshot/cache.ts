// The snapshot cache: one versioned snapshot per proxy (or per group of proxies that share a
// config: the key is the caller's choice), and watchers told which types moved. It knows nothing
// of gRPC or of where snapshots come from; the server (../xds/) watches it, sources publish to it.
import { TYPE_URLS, type TypeUrl } from '../../protos/api.ts'
import { checkConsistency } from './consistency.ts'
import { diff } from './delta.ts'
import type { PublishResult, PublishedSnapshot, Snapshot, TypeSnapshot } from './types.ts'
import { derivedDelta, versionSnapshot } from './version.ts'

/** Called with the new snapshot and the types whose version moved (never empty). */
export type Watcher = (snapshot: PublishedSnapshot, changed: readonly TypeUrl[]) => void

export class SnapshotCache {
  private readonly snapshots = new Map<string, PublishedSnapshot>()
  private readonly watchers = new Map<string, Set<Watcher>>()
  private seq = 0

  /**
   * Check and publish a snapshot for `node`. An inconsistent snapshot is refused (an error
   * value, nothing thrown) and the node keeps its last one. Publishing equal content is a no-op
   * for the watchers (changed is empty).
   */
  setSnapshot(node: string, s: Snapshot): PublishResult {
    const errors = checkConsistency(s)
    if (errors.length > 0) return { ok: false, errors }
    const prev = this.snapshots.get(node)
    const next = versionSnapshot(s)
    const changed: TypeUrl[] = []
    for (const type of TYPE_URLS) {
      const old = prev?.types[type]
      const t = next[type]
      if (old !== undefined && old.version === t.version) {
        next[type] = old // same content: keep the object, and its delta, as they were
        continue
      }
      changed.push(type)
      if (old !== undefined) next[type] = withDelta(t, old)
    }
    if (prev !== undefined && changed.length === 0) return { ok: true, snapshot: prev, changed }
    const snapshot: PublishedSnapshot = { node, seq: ++this.seq, publishedAt: new Date().toISOString(), types: next }
    this.snapshots.set(node, snapshot)
    const ws = this.watchers.get(node)
    if (ws !== undefined) for (const w of [...ws]) w(snapshot, changed)
    return { ok: true, snapshot, changed }
  }

  getSnapshot(node: string): PublishedSnapshot | undefined {
    return this.snapshots.get(node)
  }

  /** Forget a node's snapshot; its proxies keep what they have and are sent nothing new. */
  clearSnapshot(node: string): void {
    this.snapshots.delete(node)
  }

  /** Keys with a snapshot. */
  nodes(): string[] {
    return [...this.snapshots.keys()]
  }

  /** Watch a node's snapshot; returns the function that stops watching. */
  watch(node: string, w: Watcher): () => void {
    let ws = this.watchers.get(node)
    if (ws === undefined) this.watchers.set(node, (ws = new Set()))
    ws.add(w)
    return () => {
      ws.delete(w)
      if (ws.size === 0 && this.watchers.get(node) === ws) this.watchers.delete(node)
    }
  }

  watcherCount(node: string): number {
    return this.watchers.get(node)?.size ?? 0
  }
}

// (type, previous version) -> the type with its delta: nodes that move from the same version to
// the same type (50 namespaces after one endpoint change) share one diff
const deltas = new WeakMap<TypeSnapshot, Map<string, TypeSnapshot>>()
const DELTAS_PER_TYPE = 64

function withDelta(t: TypeSnapshot, old: TypeSnapshot): TypeSnapshot {
  let m = deltas.get(t)
  if (m === undefined) deltas.set(t, (m = new Map()))
  let out = m.get(old.version)
  if (out === undefined) {
    out = { ...t, delta: derivedDelta(t, old.version) ?? { from: old.version, ...diff(old.resources, t.resources) } }
    if (m.size >= DELTAS_PER_TYPE) m.delete(m.keys().next().value!)
    m.set(old.version, out)
  }
  return out
}
