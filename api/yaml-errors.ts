// From YAML and JSON Schema errors to messages a person can act on, tied to file:line:column.
// Shared by the proxy's bootstrap loader (./load.ts) and the traffic resources loader
// (control-plane/resources/load.ts), so both speak the same way about the same mistakes.
import type { ErrorObject } from 'ajv'
import { isAlias, isMap, isScalar, isSeq, visit } from 'yaml'
import type { Document, LineCounter } from 'yaml'
import { ConfigErrorCode } from './errors.ts'
import type { ConfigError } from './errors.ts'
import { MAX_TIMER_MS, parseDuration } from './duration.ts'

export type Seg = string | number
/** Where an error points: at the value of the field (default), or at its key. */
export type Target = 'value' | 'key'
export interface Position {
  line: number
  column: number
}

// Patterns of the proxy schema, for messages that say what is expected instead of quoting a regex.
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'
export const TOKEN_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
const BASE_PATTERN_MESSAGES: Record<string, (segs: Seg[]) => string> = {
  [DURATION_PATTERN]: () => 'must be a duration such as "250ms" or "5s"',
  '^[A-Za-z0-9]([-A-Za-z0-9_.|]*[A-Za-z0-9])?$': () =>
    'must be a name of letters, digits, "-", "_", "." or "|" that starts and ends with a letter or digit',
  [TOKEN_PATTERN]: (segs) =>
    segs[segs.length - 1] === 'method'
      ? 'must be an HTTP method such as GET or POST'
      : "must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
  '^[\\t\\x20-\\x7e\\x80-\\xff]*$': () => 'must be a valid HTTP header value (no control characters)',
  '^/': () => 'must start with "/"',
}

/** How one kind of document talks about its schema errors. */
export interface SchemaMessages {
  /** the message for a document that is not a mapping at all */
  root: string
  /** messages for more string patterns (a pattern without one is quoted) */
  patterns?: Record<string, (segs: Seg[]) => string>
  /** duration patterns besides DURATION_PATTERN: a number there is told the duration form, not "write it in quotes" */
  durations?: string[]
}

/** offset -> 1-based line and column. */
export function positions(lineCounter: LineCounter): (offset: number | undefined) => Position {
  return (offset) => {
    if (offset === undefined) return { line: 1, column: 1 }
    const p = lineCounter.linePos(offset)
    return { line: p.line, column: p.col }
  }
}

/**
 * YAML syntax errors of one parsed document. Warnings (e.g. an unknown tag) are errors too: a
 * config should be unambiguous. An alias whose anchor is not set is reported where it is used.
 */
export function syntaxErrors(doc: Document, file: string, pos: (offset: number | undefined) => Position): ConfigError[] {
  const out: ConfigError[] = []
  for (const e of [...doc.errors, ...doc.warnings]) {
    out.push({ code: ConfigErrorCode.SYNTAX, file, ...pos(e.pos[0]), path: '', message: oneLine(e.message) })
  }
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined) {
        out.push({
          code: ConfigErrorCode.SYNTAX,
          file,
          ...pos(node.range?.[0]),
          path: '',
          message: `undefined alias "*${node.source}" (the anchor must be set before the alias)`,
        })
      }
    },
  })
  return out
}

// ---------------------------------------------------------------------------------------------
// Schema errors -> messages.

export interface SchemaProblem {
  segs: Seg[]
  target: Target
  message: string
}

/** ajv's errors for `data`, as one problem per mistake (unions collapsed), with a message each. */
export function schemaProblems(errors: ErrorObject[], data: unknown, messages: SchemaMessages): SchemaProblem[] {
  return collapseUnions(errors).map((e) => describeSchemaError(e, data, messages))
}

/**
 * ajv reports every failing branch of a union (anyOf) plus the union itself. Keep one thing per
 * union: the union error itself when every branch is a literal ("must be one of ...") or when the
 * value's type fits no branch ("must be a string or a mapping"); otherwise the errors of the branch
 * that came closest (its type fits, fewest errors).
 */
function collapseUnions(input: ErrorObject[]): ErrorObject[] {
  let list = [...input]
  const unions = list
    .filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf')
    .sort((a, b) => b.schemaPath.length - a.schemaPath.length || b.instancePath.length - a.instancePath.length)
  for (const u of unions) {
    if (!list.includes(u)) continue
    const prefix = `${u.schemaPath}/`
    const within = (e: ErrorObject): boolean =>
      e !== u &&
      e.schemaPath.startsWith(prefix) &&
      (e.instancePath === u.instancePath || e.instancePath.startsWith(`${u.instancePath}/`))
    const subs = list.filter(within)
    let keep: ErrorObject[] = [u]
    const branches = Array.isArray(u.schema) ? u.schema : []
    if (!(branches.length > 0 && branches.every((b) => isObject(b) && 'const' in b))) {
      const byBranch = new Map<number, ErrorObject[]>()
      for (const e of subs) {
        const i = Number(e.schemaPath.slice(prefix.length).split('/')[0])
        byBranch.set(i, [...(byBranch.get(i) ?? []), e])
      }
      let best: ErrorObject[] | undefined
      for (const errs of byBranch.values()) {
        const typeMismatch = errs.some((e) => e.keyword === 'type' && e.instancePath === u.instancePath)
        if (!typeMismatch && (best === undefined || errs.length < best.length)) best = errs
      }
      if (best !== undefined) keep = best
    }
    list = list.filter((e) => e !== u && !within(e)).concat(keep)
  }
  return list
}

function describeSchemaError(e: ErrorObject, root: unknown, m: SchemaMessages): SchemaProblem {
  const segs = pointerSegments(e.instancePath, root)
  const parent = isObject(e.parentSchema) ? e.parentSchema : {}
  const params = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'required':
      return { segs, target: 'value', message: `missing required field "${String(params.missingProperty)}"` }
    case 'additionalProperties': {
      const key = String(params.additionalProperty)
      const keySegs = [...segs, key]
      if (isObject(parent.patternProperties)) {
        const pattern = Object.keys(parent.patternProperties)[0] ?? ''
        const message = pattern === TOKEN_PATTERN
          ? `invalid header name "${key}" (use letters, digits and !#$%&'*+-.^_\`|~)`
          : `invalid key "${key}": ${patternMessage(pattern, keySegs, m)}`
        return { segs: keySegs, target: 'key', message }
      }
      const fields = isObject(parent.properties) ? Object.keys(parent.properties) : []
      const near = closest(key, fields)
      const hint = near !== undefined ? ` (did you mean "${near}"?)` : fields.length > 0 ? ` (expected one of ${fields.join(', ')})` : ''
      return { segs: keySegs, target: 'key', message: `unknown field "${key}"${hint}` }
    }
    case 'type': {
      if (e.instancePath === '') return { segs, target: 'value', message: m.root }
      return { segs, target: 'value', message: expectation(parent, segs, e.data, m) }
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { segs, target: 'value', message: expectation(parent, segs, e.data, m) }
    case 'pattern':
      return { segs, target: 'value', message: patternMessage(String(params.pattern), segs, m) }
    case 'minLength': {
      const n = Number(params.limit)
      return { segs, target: 'value', message: n === 1 ? 'must not be empty' : `must be at least ${n} characters long` }
    }
    case 'maxLength':
      return { segs, target: 'value', message: `must be at most ${String(params.limit)} characters long` }
    case 'minItems': {
      const n = Number(params.limit)
      return { segs, target: 'value', message: n === 1 ? 'must not be empty' : `must have at least ${n} entries` }
    }
    case 'maxItems':
      return { segs, target: 'value', message: `must have at most ${String(params.limit)} entries` }
    case 'maxProperties':
      return { segs, target: 'value', message: `must have at most ${String(params.limit)} entries` }
    case 'uniqueItems':
      return { segs, target: 'value', message: `must not repeat an entry (entries ${String(params.j)} and ${String(params.i)} are the same)` }
    case 'const':
      return { segs, target: 'value', message: `must be ${JSON.stringify(params.allowedValue)}` }
    case 'enum': {
      const values = Array.isArray(params.allowedValues) ? params.allowedValues : []
      return { segs, target: 'value', message: `must be one of ${values.map(String).join(', ')}` }
    }
    case 'anyOf':
    case 'oneOf': {
      const branches = (Array.isArray(e.schema) ? e.schema : []).filter(isObject)
      if (branches.length > 0 && branches.every((b) => 'const' in b)) {
        return { segs, target: 'value', message: `must be one of ${branches.map((b) => String(b.const)).join(', ')}` }
      }
      const types = [...new Set(branches.map((b) => typeName(b.type)).filter((t) => t !== ''))]
      return { segs, target: 'value', message: types.length > 0 ? `must be ${types.join(' or ')}` : 'matches none of the allowed forms' }
    }
    default:
      return { segs, target: 'value', message: e.message ?? `fails "${e.keyword}"` }
  }
}

/** What a value must be, from its schema: "must be an integer between 0 and 65535", a duration, ... */
function expectation(schema: Record<string, unknown>, segs: Seg[], data: unknown, m: SchemaMessages): string {
  const type = schema.type
  if (type === 'integer' || type === 'number') {
    const min = typeof schema.minimum === 'number' ? schema.minimum : undefined
    const max = typeof schema.maximum === 'number' ? schema.maximum : undefined
    const what = type === 'integer' ? 'an integer' : 'a number'
    if (min !== undefined && max !== undefined) return `must be ${what} between ${min} and ${max}`
    if (min !== undefined) return `must be ${what} of at least ${min}`
    if (max !== undefined) return `must be ${what} of at most ${max}`
    return `must be ${what}`
  }
  if (type === 'string') {
    const pattern = typeof schema.pattern === 'string' ? schema.pattern : undefined
    if (pattern !== undefined && (pattern === DURATION_PATTERN || (m.durations ?? []).includes(pattern))) return patternMessage(pattern, segs, m)
    if (typeof data === 'number' || typeof data === 'boolean') return `must be a string: write it in quotes, "${String(data)}"`
    if (pattern !== undefined && (BASE_PATTERN_MESSAGES[pattern] || m.patterns?.[pattern])) return patternMessage(pattern, segs, m)
    return 'must be a string'
  }
  return `must be ${typeName(type) || 'valid'}`
}

function patternMessage(pattern: string, segs: Seg[], m: SchemaMessages): string {
  const f = m.patterns?.[pattern] ?? BASE_PATTERN_MESSAGES[pattern]
  return f?.(segs) ?? `must match the pattern ${pattern}`
}

function typeName(type: unknown): string {
  switch (type) {
    case 'integer': return 'an integer'
    case 'number': return 'a number'
    case 'string': return 'a string'
    case 'boolean': return 'true or false'
    case 'object': return 'a mapping'
    case 'array': return 'a list'
    case 'null': return 'null'
    default: return ''
  }
}

/** JSON pointer -> path segments, with array indexes as numbers (decided by the data). */
function pointerSegments(pointer: string, root: unknown): Seg[] {
  if (pointer === '') return []
  const segs: Seg[] = []
  let cur: unknown = root
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(cur) && /^[0-9]+$/.test(key)) {
      segs.push(Number(key))
      cur = cur[Number(key)]
    } else {
      segs.push(key)
      cur = isObject(cur) ? cur[key] : undefined
    }
  }
  return segs
}

export type Invalid = (segs: Seg[], message: string, target?: Target) => void

/**
 * Every duration of `data` (where its schema has one of `patterns`) must parse and fit a Node.js
 * timer. Walks objects and arrays along the schema; unions and records are not entered.
 */
export function checkDurations(schema: unknown, data: unknown, segs: Seg[], invalid: Invalid, patterns: readonly string[] = [DURATION_PATTERN]): void {
  if (!isObject(schema)) return
  if (typeof schema.pattern === 'string' && patterns.includes(schema.pattern) && typeof data === 'string') {
    let ms: number
    try {
      ms = parseDuration(data)
    } catch (err) {
      invalid(segs, errorText(err))
      return
    }
    if (ms > MAX_TIMER_MS) invalid(segs, `duration "${data}" is too long: the maximum is ${MAX_TIMER_MS}ms (about 596h)`)
    return
  }
  if (Array.isArray(data)) {
    data.forEach((item, i) => checkDurations(schema.items, item, [...segs, i], invalid, patterns))
  } else if (isObject(data)) {
    const props = isObject(schema.properties) ? schema.properties : {}
    for (const [k, v] of Object.entries(data)) {
      if (Object.hasOwn(props, k)) checkDurations(props[k], v, [...segs, k], invalid, patterns)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Positions.

/**
 * Source offset of the node at segs: the value (or, for target 'key', the key of the last mapping
 * entry). Follows aliases. When the path goes further than the YAML (it should not), the deepest
 * node found is used.
 */
export function nodeOffset(doc: Document, segs: Seg[], target: Target): number | undefined {
  let node: unknown = doc.contents
  let offset = rangeStart(node)
  for (let i = 0; i < segs.length; i++) {
    if (isAlias(node)) node = node.resolve(doc)
    const seg = segs[i]
    const last = i === segs.length - 1
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(seg))
      if (!pair) break
      const keyStart = rangeStart(pair.key)
      const valueStart = rangeStart(pair.value)
      if (last && target === 'key') return keyStart ?? offset
      // An empty value ("port:") has no useful place of its own: point at the key.
      const emptyValue = pair.value === null || (isScalar(pair.value) && pair.value.value === null && pair.value.source === '')
      offset = emptyValue ? (keyStart ?? offset) : (valueStart ?? keyStart ?? offset)
      node = pair.value
    } else if (isSeq(node)) {
      const item: unknown = node.items[Number(seg)]
      if (item === undefined) break
      offset = rangeStart(item) ?? offset
      node = item
    } else {
      break
    }
  }
  return offset
}

function rangeStart(node: unknown): number | undefined {
  if (isObject(node) && Array.isArray(node.range) && typeof node.range[0] === 'number') return node.range[0]
  return undefined
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value)
  return undefined
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/** A file that could not be read, as an error without a place; `what` names it ("the config file"). */
export function readError(path: string, err: unknown, what = 'the config file'): ConfigError {
  const code = isObject(err) && typeof err.code === 'string' ? err.code : ''
  const reasons: Record<string, string> = {
    ENOENT: `cannot read ${what}: it does not exist`,
    EACCES: `cannot read ${what}: permission denied`,
    EPERM: `cannot read ${what}: permission denied`,
    EISDIR: `cannot read ${what}: it is a directory`,
    ENOTDIR: `cannot read ${what}: a part of the path is not a directory`,
  }
  return {
    code: ConfigErrorCode.READ,
    file: path,
    line: 0,
    column: 0,
    path: '',
    message: reasons[code] ?? `cannot read ${what}: ${oneLine(errorText(err))}`,
  }
}

/** "unknown cluster "x"" with a "did you mean" or the list of what is defined. */
export function unknownRef(kind: string, name: string, known: Iterable<string>): string {
  const names = [...known]
  const near = closest(name, names)
  if (near !== undefined) return `unknown ${kind} "${name}" (did you mean "${near}"?)`
  if (names.length === 0) return `unknown ${kind} "${name}" (none is defined)`
  const list = names.length > 8 ? `${names.slice(0, 8).join(', ')}, ...` : names.join(', ')
  return `unknown ${kind} "${name}" (defined: ${list})`
}

/** The closest candidate within a small edit distance (for "did you mean"), if any. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  const limit = word.length <= 4 ? 1 : 2
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase())
    if (d <= limit && d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return best
}

/** Edit distance counting a swap of two neighbouring letters as one edit ("prot" -> "port" is 1). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

/** In file order: by file (in the order of `files`, others last), then line and column; stable. */
export function sortErrors(errors: ConfigError[], files: readonly string[] = []): ConfigError[] {
  const rank = (f: string): number => {
    const i = files.indexOf(f)
    return i === -1 ? files.length : i
  }
  return errors.sort((a, b) => rank(a.file) - rank(b.file) || a.line - b.line || a.column - b.column)
}

export function dedupe(errors: ConfigError[]): ConfigError[] {
  const seen = new Set<string>()
  return errors.filter((e) => {
    const k = `${e.file}:${e.line}:${e.column}:${e.path}:${e.message}`
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
