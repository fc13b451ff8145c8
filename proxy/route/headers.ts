// Header mutations compiled once per route: a set of names to drop while serializing and a
// ready-made block of "name: value\r\n" lines to append. Per request this costs one Set lookup per
// header (only when something is removed) and one string append.
import type { HeaderMutation } from '../../api/schema.ts'

export interface CompiledMutation {
  /** lower-case names to drop (removed and set ones), or null when none */
  readonly drop: ReadonlySet<string> | null
  /** "name: value\r\n" lines to append ("" when none) */
  readonly append: string
  /** requestHeaders.set of Host: the authority sent upstream instead of the client's */
  readonly host: string | null
}

export const NO_MUTATION: CompiledMutation = { drop: null, append: '', host: null }

// The config loader rejects these; skipping them here too keeps framing out of reach whatever
// the config source.
const RESERVED = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'trailer', 'expect', 'host'])

export function compileMutation(m: HeaderMutation | undefined): CompiledMutation {
  if (m === undefined) return NO_MUTATION
  const drop = new Set<string>()
  let append = ''
  let host: string | null = null
  for (const n of m.remove ?? []) if (!RESERVED.has(n.toLowerCase())) drop.add(n.toLowerCase())
  for (const [n, v] of Object.entries(m.set ?? {})) {
    const l = n.toLowerCase()
    if (l === 'host') host = v
    if (RESERVED.has(l)) continue
    drop.add(l)
    append += l + ': ' + v + '\r\n'
  }
  for (const [n, v] of Object.entries(m.add ?? {})) {
    const l = n.toLowerCase()
    if (!RESERVED.has(l)) append += l + ': ' + v + '\r\n'
  }
  if (drop.size === 0 && append === '' && host === null) return NO_MUTATION
  return { drop: drop.size === 0 ? null : drop, append, host }
}
