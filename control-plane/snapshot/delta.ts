// What a proxy must be sent for one type, given what it holds. Endpoints go out incrementally
// (only the clusters whose endpoints changed, and the names of those removed); the other types
// are sent whole, which keeps the proxy's handling of them trivial and their churn is low.
import { TYPE, type TypeUrl } from '../../protos/api.ts'
import type { TypeSnapshot, VersionedResource } from './types.ts'

/** Types sent incrementally once the proxy holds a known version of them. */
export const INCREMENTAL_TYPES: ReadonlySet<TypeUrl> = new Set([TYPE.endpoints])

/** What a proxy holds of one type: the version, and the resources when the server knows them. */
export interface Known {
  readonly version: string
  /** null: only the version is known (a proxy reconnecting), so the next update is complete */
  readonly resources: ReadonlyMap<string, VersionedResource> | null
}

export interface TypeUpdate {
  readonly type: TypeUrl
  readonly version: string
  readonly incremental: boolean
  /** complete: every resource; incremental: those added or changed */
  readonly resources: readonly VersionedResource[]
  /** incremental only */
  readonly removed: readonly string[]
  /** what the proxy holds once it applied this update */
  readonly after: Known
}

// The complete and the one-publish-behind updates of a type are the same for every proxy: they
// are built once (the same objects, so the wire's encodings of their resource lists are too).
// Complete updates are keyed by the resources, not the TypeSnapshot: the cache gives one
// resources map several TypeSnapshot objects (one per delta it carries), and each would else
// have its own copy of the encoded list.
const complete = new WeakMap<ReadonlyMap<string, VersionedResource>, TypeUpdate>()
const oneBehind = new WeakMap<TypeSnapshot, TypeUpdate>()

/** The update that brings `known` to `t`, or null when the proxy already has t's version. */
export function updateFor(t: TypeSnapshot, known: Known | undefined): TypeUpdate | null {
  if (known !== undefined && known.version === t.version) return null
  const after: Known = { version: t.version, resources: t.resources }
  if (known === undefined || !INCREMENTAL_TYPES.has(t.type) || known.resources === null) {
    let u = complete.get(t.resources)
    if (u === undefined || u.type !== t.type) {
      u = { type: t.type, version: t.version, incremental: false, resources: [...t.resources.values()], removed: [], after }
      complete.set(t.resources, u)
    }
    return u
  }
  // Fast path: the proxy is one publish behind, the delta was computed once for everyone.
  if (t.delta !== null && t.delta.from === known.version) {
    let u = oneBehind.get(t)
    if (u === undefined) {
      const changed = t.delta.changed.map((n) => t.resources.get(n)!)
      u = { type: t.type, version: t.version, incremental: true, resources: changed, removed: t.delta.removed, after }
      oneBehind.set(t, u)
    }
    return u
  }
  const d = diff(known.resources, t.resources)
  return { type: t.type, version: t.version, incremental: true, resources: d.changed.map((n) => t.resources.get(n)!), removed: d.removed, after }
}

/** Names added or changed, and removed, from `from` to `to`. */
export function diff(
  from: ReadonlyMap<string, VersionedResource>,
  to: ReadonlyMap<string, VersionedResource>,
): { changed: string[]; removed: string[] } {
  const changed: string[] = []
  const removed: string[] = []
  for (const [name, r] of to) {
    const old = from.get(name)
    if (old === undefined || old.version !== r.version) changed.push(name)
  }
  for (const name of from.keys()) if (!to.has(name)) removed.push(name)
  return { changed, removed }
}
