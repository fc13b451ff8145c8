// Header mutations compiled once per route: a set of names to drop while serializing and a
// ready-made block of "name: value\r\n" lines to append. Per request this costs one Set lookup per
// header (only when something is removed) and one string append.
import type { HeaderMutation } from '../config/schema.ts'

export interface CompiledMutation {
  /** lower-case names to drop (removed and set ones), or null when none */
  readonly drop: ReadonlySet<string> | null
  /** "name: value\r\n" lines to append ("" when none) */
  readonly append: string
}

export const NO_MUTATION: CompiledMutation = { drop: null, append: '' }

export function compileMutation(m: HeaderMutation | undefined): CompiledMutation {
  if (m === undefined) return NO_MUTATION
  const drop = new Set<string>()
  let append = ''
  for (const n of m.remove ?? []) drop.add(n.toLowerCase())
  for (const [n, v] of Object.entries(m.set ?? {})) {
    drop.add(n.toLowerCase())
    append += n.toLowerCase() + ': ' + v + '\r\n'
  }
  for (const [n, v] of Object.entries(m.add ?? {})) append += n.toLowerCase() + ': ' + v + '\r\n'
  if (drop.size === 0 && append === '') return NO_MUTATION
  return { drop: drop.size === 0 ? null : drop, append }
}
