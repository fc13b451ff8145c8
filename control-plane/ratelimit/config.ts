// The limits of `weft ratelimit-server`, written as Envoy's ratelimit service configures them
// (github.com/envoyproxy/ratelimit): one YAML document per domain,
//
//   domain: weft
//   descriptors:
//     - key: route
//       value: reviews            # optional: without it the entry matches any value of the key
//       rate_limit: { unit: minute, requests_per_unit: 100 }
//       descriptors:              # optional: deeper entries of the same descriptor
//         - key: remote_address
//           rate_limit: { unit: second, requests_per_unit: 5 }
//     - key: route
//       value: health
//       unlimited: true
//
// A request's descriptor [(k1, v1), (k2, v2), ...] walks the tree: at each level the entry with the
// same key and value, else the one with the key and no value; the limit is the one of the node its
// last entry reaches (none: not limited). Errors: file:line:column and the field path.
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { LineCounter, parseAllDocuments, type Document } from 'yaml'
import type { ConfigError } from '../../api/errors.ts'
import { nodeOffset, positions, readError } from '../../api/yaml-errors.ts'

export type Unit = 'second' | 'minute' | 'hour' | 'day'
export const UNIT_MS: Record<Unit, number> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 }

export interface LimitNode {
  key: string
  value: string | undefined
  limit: { unit: Unit; requestsPerUnit: number } | null
  unlimited: boolean
  children: LimitNode[]
}

export interface Domain {
  domain: string
  descriptors: LimitNode[]
}

export type LimitsResult = { ok: true; domains: Map<string, Domain> } | { ok: false; errors: ConfigError[] }

/** The limit for one descriptor of a request, and the tree path that names its counter. */
export function findLimit(d: Domain, entries: readonly { key: string; value: string }[]): { limit: NonNullable<LimitNode['limit']>; path: string } | null {
  let level = d.descriptors
  let node: LimitNode | undefined
  let path = ''
  for (const e of entries) {
    node = level.find((n) => n.key === e.key && n.value === e.value) ?? level.find((n) => n.key === e.key && n.value === undefined)
    if (node === undefined) return null
    // a wildcard entry counts each value on its own (as Envoy's service does)
    path += `${e.key}_${e.value}_`
    level = node.children
  }
  if (node === undefined || node.unlimited || node.limit === null) return null
  return { limit: node.limit, path }
}

function checkNodes(raw: unknown, at: (string | number)[], err: (segs: (string | number)[], msg: string) => void): LimitNode[] {
  if (raw === undefined) return []
  if (!Array.isArray(raw)) {
    err(at, 'must be a list of descriptors')
    return []
  }
  return raw.map((r, i) => {
    const here = [...at, i]
    const n: LimitNode = { key: '', value: undefined, limit: null, unlimited: false, children: [] }
    if (r === null || typeof r !== 'object' || Array.isArray(r)) {
      err(here, 'must be a mapping with key (and value, rate_limit, descriptors)')
      return n
    }
    const o = r as Record<string, unknown>
    for (const k of Object.keys(o)) if (!['key', 'value', 'rate_limit', 'descriptors', 'unlimited', 'shadow_mode', 'name'].includes(k)) err([...here, k], `unknown field "${k}" (known: key, value, rate_limit, descriptors, unlimited)`)
    if (typeof o.key !== 'string' || o.key === '') err([...here, 'key'], 'must be a non-empty string')
    else n.key = o.key
    if (o.value !== undefined) {
      if (typeof o.value !== 'string' && typeof o.value !== 'number') err([...here, 'value'], 'must be a string')
      else n.value = String(o.value)
    }
    if (o.unlimited !== undefined) {
      if (typeof o.unlimited !== 'boolean') err([...here, 'unlimited'], 'must be true or false')
      else n.unlimited = o.unlimited
    }
    if (o.rate_limit !== undefined) {
      const rl = o.rate_limit as Record<string, unknown>
      if (rl === null || typeof rl !== 'object') err([...here, 'rate_limit'], 'must be a mapping with unit and requests_per_unit')
      else {
        const unit = typeof rl.unit === 'string' ? rl.unit.toLowerCase() : ''
        const rpu = rl.requests_per_unit
        if (!(unit in UNIT_MS)) err([...here, 'rate_limit', 'unit'], 'must be second, minute, hour or day')
        else if (typeof rpu !== 'number' || !Number.isInteger(rpu) || rpu < 0) err([...here, 'rate_limit', 'requests_per_unit'], 'must be a whole number >= 0')
        else n.limit = { unit: unit as Unit, requestsPerUnit: rpu }
      }
    }
    n.children = checkNodes(o.descriptors, [...here, 'descriptors'], err)
    return n
  })
}

/** Parse the documents of one file into domains (added to `into`). */
export function parseLimits(text: string, file: string, into = new Map<string, Domain>()): { errors: ConfigError[] } {
  const lc = new LineCounter()
  const docs = parseAllDocuments(text, { lineCounter: lc }) as Document[]
  const pos = positions(lc)
  const errors: ConfigError[] = []
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) errors.push({ code: 'WEFT_ERR_CONFIG_SYNTAX', file, line: e.linePos?.[0]?.line ?? 1, column: e.linePos?.[0]?.col ?? 1, path: '', message: e.message.split('\n')[0]! })
      continue
    }
    const js = doc.toJS() as Record<string, unknown> | null
    if (js === null) continue
    const err = (segs: (string | number)[], message: string) => {
      const p = pos(nodeOffset(doc, segs, 'value'))
      errors.push({ code: 'WEFT_ERR_CONFIG_SCHEMA', file, line: p.line, column: p.column, path: segs.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join(''), message })
    }
    if (typeof js !== 'object' || Array.isArray(js)) {
      err([], 'a document must be a mapping with domain and descriptors')
      continue
    }
    for (const k of Object.keys(js)) if (k !== 'domain' && k !== 'descriptors') err([k], `unknown field "${k}" (known: domain, descriptors)`)
    if (typeof js.domain !== 'string' || js.domain === '') {
      err(['domain'], 'must be a non-empty string')
      continue
    }
    if (into.has(js.domain)) err(['domain'], `domain "${js.domain}" is configured twice`)
    into.set(js.domain, { domain: js.domain, descriptors: checkNodes(js.descriptors, ['descriptors'], err) })
  }
  return { errors }
}

/** A file, or a directory's *.yaml / *.yml files (not recursively). */
export async function loadLimits(path: string): Promise<LimitsResult> {
  let files: string[]
  try {
    const s = await stat(path)
    files = s.isDirectory() ? (await readdir(path)).filter((f) => /\.ya?ml$/.test(f) && !f.startsWith('.')).sort().map((f) => join(path, f)) : [path]
  } catch (e) {
    return { ok: false, errors: [readError(path, e, 'the rate limit config')] }
  }
  const domains = new Map<string, Domain>()
  const errors: ConfigError[] = []
  for (const f of files) {
    let text: string
    try {
      text = await readFile(f, 'utf8')
    } catch (e) {
      errors.push(readError(f, e, 'the rate limit config'))
      continue
    }
    errors.push(...parseLimits(text, f, domains).errors)
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, domains }
}
