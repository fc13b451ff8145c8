// Loads the static bootstrap YAML: parse (keeping node positions), validate against the schema,
// then check what the schema cannot say (references, duplicates, conflicting fields, regexes).
// Every error carries file:line:column of the offending field and a message a person can act on.
// Nothing here mutates the config: defaults are applied later, by the compiler.
import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { Ajv } from 'ajv'
import type { ErrorObject } from 'ajv'
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, visit } from 'yaml'
import type { Document } from 'yaml'
import { Bootstrap } from './schema.ts'
import type {
  Bootstrap as BootstrapConfig,
  HeaderMatch,
  QueryMatch,
  RouteMatch,
  VirtualHost,
} from './schema.ts'
import { ConfigErrorCode, formatPath } from './errors.ts'
import type { ConfigError } from './errors.ts'
import { MAX_TIMER_MS, parseDuration } from './duration.ts'
import { serviceDomains } from '../route/domains.ts'

export type LoadResult = { ok: true; config: BootstrapConfig } | { ok: false; errors: ConfigError[] }

// Compiled once. No useDefaults: the loader never mutates the config.
const ajv = new Ajv({ allErrors: true, strict: false, verbose: true })
const validate = ajv.compile(Bootstrap)

type Seg = string | number
/** Where an error points: at the value of the field (default), at its key, or at the enclosing object. */
type Target = 'value' | 'key'

// Patterns of the schema, for messages that say what is expected instead of quoting a regex.
const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'
const TOKEN_PATTERN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
const PATTERN_MESSAGES: Record<string, (segs: Seg[]) => string> = {
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

/** Parse and check bootstrap YAML text. file is only used in the errors. */
export function parseBootstrap(text: string, file: string): LoadResult {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false })
  const pos = (offset: number | undefined): { line: number; column: number } => {
    if (offset === undefined) return { line: 1, column: 1 }
    const p = lineCounter.linePos(offset)
    return { line: p.line, column: p.col }
  }

  // 1. YAML syntax. Warnings (e.g. an unknown tag) are errors too: a config should be unambiguous.
  const syntax: ConfigError[] = []
  for (const e of [...doc.errors, ...doc.warnings]) {
    syntax.push({ code: ConfigErrorCode.SYNTAX, file, ...pos(e.pos[0]), path: '', message: oneLine(e.message) })
  }
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined) {
        syntax.push({
          code: ConfigErrorCode.SYNTAX,
          file,
          ...pos(node.range?.[0]),
          path: '',
          message: `undefined alias "*${node.source}" (the anchor must be set before the alias)`,
        })
      }
    },
  })
  if (syntax.length > 0) return { ok: false, errors: sortErrors(syntax) }

  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: 1000 })
  } catch (err) {
    return {
      ok: false,
      errors: [{ code: ConfigErrorCode.SYNTAX, file, line: 1, column: 1, path: '', message: oneLine(errorText(err)) }],
    }
  }
  if (data === null || data === undefined) {
    return {
      ok: false,
      errors: [{
        code: ConfigErrorCode.SCHEMA,
        file,
        line: 1,
        column: 1,
        path: '',
        message: 'the file is empty: expected a mapping with listeners, routeTables and clusters',
      }],
    }
  }

  const locate = (segs: Seg[], target: Target = 'value'): { line: number; column: number } =>
    pos(nodeOffset(doc, segs, target))

  // 2. Schema.
  if (!validate(data)) {
    const errors: ConfigError[] = []
    for (const e of collapseUnions(validate.errors ?? [])) {
      const d = describeSchemaError(e, data)
      errors.push({ code: ConfigErrorCode.SCHEMA, file, ...locate(d.segs, d.target), path: formatPath(d.segs), message: d.message })
    }
    return { ok: false, errors: sortErrors(dedupe(errors)) }
  }

  // 3. Semantics.
  const config = data as BootstrapConfig
  const errors = checkSemantics(config, (code, segs, message, target) => {
    return { code, file, ...locate(segs, target), path: formatPath(segs), message }
  }, (segs) => locate(segs).line)
  if (errors.length > 0) return { ok: false, errors: sortErrors(dedupe(errors)) }
  return { ok: true, config }
}

/** Read and check a bootstrap YAML file. */
export async function loadBootstrapFile(path: string): Promise<LoadResult> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    return { ok: false, errors: [readError(path, err)] }
  }
  return parseBootstrap(text, path)
}

/** Same as loadBootstrapFile, synchronously (for startup paths and the CLI). */
export function loadBootstrapFileSync(path: string): LoadResult {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    return { ok: false, errors: [readError(path, err)] }
  }
  return parseBootstrap(text, path)
}

export { serviceDomains, virtualHostDomains } from '../route/domains.ts'

// Framing and hop-by-hop headers belong to the proxy; Host may only be replaced (requestHeaders.set).
const RESERVED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'trailer', 'expect'])
function isReservedHeader(name: string, hostAllowed: boolean): boolean {
  const n = name.toLowerCase()
  return RESERVED_HEADERS.has(n) || (n === 'host' && !hostAllowed)
}

// ---------------------------------------------------------------------------------------------
// Semantic checks (run only when the schema passes, so the shapes are known).

type MakeError = (code: ConfigErrorCode, segs: Seg[], message: string, target?: Target) => ConfigError

function checkSemantics(cfg: BootstrapConfig, mk: MakeError, lineOf: (segs: Seg[]) => number): ConfigError[] {
  const errors: ConfigError[] = []
  const invalid = (segs: Seg[], message: string, target?: Target): void => {
    errors.push(mk(ConfigErrorCode.INVALID, segs, message, target))
  }

  // Unique names: listeners, route tables, clusters.
  const uniqueNames = (kind: string, items: ReadonlyArray<{ name: string }>, base: Seg[]): Map<string, number> => {
    const seen = new Map<string, number>()
    items.forEach((item, i) => {
      const first = seen.get(item.name)
      if (first === undefined) seen.set(item.name, i)
      else invalid([...base, i, 'name'], `duplicate ${kind} name "${item.name}" (first defined at line ${lineOf([...base, first, 'name'])})`)
    })
    return seen
  }
  uniqueNames('listener', cfg.listeners, ['listeners'])
  const tables = uniqueNames('route table', cfg.routeTables, ['routeTables'])
  const clusters = uniqueNames('cluster', cfg.clusters, ['clusters'])

  // Listeners: route table references, ports.
  const ports = new Map<number, number>()
  cfg.listeners.forEach((l, i) => {
    if (!tables.has(l.routeTable)) {
      errors.push(mk(ConfigErrorCode.REF, ['listeners', i, 'routeTable'], unknownRef('route table', l.routeTable, tables.keys())))
    }
    if (l.port === 0) return
    const first = ports.get(l.port)
    if (first === undefined) ports.set(l.port, i)
    else {
      invalid(['listeners', i, 'port'],
        `port ${l.port} is already used by listener "${cfg.listeners[first].name}" (line ${lineOf(['listeners', first, 'port'])})`)
    }
  })
  if (cfg.admin && cfg.admin.port !== 0) {
    const clash = ports.get(cfg.admin.port)
    if (clash !== undefined) {
      invalid(['admin', 'port'],
        `admin port ${cfg.admin.port} is also used by listener "${cfg.listeners[clash].name}" (line ${lineOf(['listeners', clash, 'port'])})`)
    }
  }

  // Route tables.
  cfg.routeTables.forEach((table, t) => {
    const tSegs: Seg[] = ['routeTables', t]
    uniqueNames('virtual host', table.virtualHosts, [...tSegs, 'virtualHosts'])
    checkDomains(table.virtualHosts, [...tSegs, 'virtualHosts'], invalid, lineOf)
    table.virtualHosts.forEach((vh, v) => {
      const vSegs: Seg[] = [...tSegs, 'virtualHosts', v]
      vh.routes.forEach((route, r) => {
        const rSegs: Seg[] = [...vSegs, 'routes', r]
        if (route.backends === undefined && route.directResponse === undefined) {
          invalid(rSegs, 'route must set one of "backends" or "directResponse"')
        } else if (route.backends !== undefined && route.directResponse !== undefined) {
          invalid([...rSegs, 'directResponse'], 'route must set only one of "backends" or "directResponse", not both', 'key')
        }
        if (route.backends) {
          route.backends.forEach((b, i) => {
            if (!clusters.has(b.cluster)) {
              errors.push(mk(ConfigErrorCode.REF, [...rSegs, 'backends', i, 'cluster'], unknownRef('cluster', b.cluster, clusters.keys())))
            }
          })
          if (route.backends.every((b) => (b.weight ?? 1) === 0)) {
            invalid([...rSegs, 'backends'], 'all backend weights are 0: at least one backend needs a positive weight')
          }
        }
        for (const dir of ['requestHeaders', 'responseHeaders'] as const) {
          const m = route[dir]
          if (m === undefined) continue
          for (const op of ['add', 'set'] as const) {
            for (const name of Object.keys(m[op] ?? {})) {
              if (isReservedHeader(name, dir === 'requestHeaders' && op === 'set'))
                invalid([...rSegs, dir, op, name], `header "${name}" is managed by the proxy (framing and connection headers cannot be changed)`, 'key')
            }
          }
          ;(m.remove ?? []).forEach((name, i) => {
            if (isReservedHeader(name, false))
              invalid([...rSegs, dir, 'remove', i], `header "${name}" is managed by the proxy (framing and connection headers cannot be removed)`)
          })
        }
        const match = route.match
        if (!match) return
        const mSegs: Seg[] = [...rSegs, 'match']
        if (match.path) checkPathMatch(match.path, [...mSegs, 'path'], invalid)
        match.headers?.forEach((h, i) => checkValueMatch('header', h, [...mSegs, 'headers', i], invalid))
        match.queryParams?.forEach((q, i) => checkValueMatch('query parameter', q, [...mSegs, 'queryParams', i], invalid))
      })
    })
  })

  // Clusters.
  cfg.clusters.forEach((c, i) => {
    const policy = c.lb?.policy
    if ((policy === 'ringHash' || policy === 'maglev') && c.lb?.hashHeader === undefined) {
      invalid(['clusters', i, 'lb', 'policy'],
        `policy "${policy}" requires lb.hashHeader (the request header whose value picks the endpoint)`)
    }
  })

  // Durations, wherever the schema has one.
  checkDurations(Bootstrap, cfg, [], invalid)
  return errors
}

type Invalid = (segs: Seg[], message: string, target?: Target) => void

function checkPathMatch(m: NonNullable<RouteMatch['path']>, segs: Seg[], invalid: Invalid): void {
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined)
  if (set.length > 1) {
    invalid([...segs, set[1]], `path match must set at most one of exact, prefix or regex, found ${set.join(' and ')}`, 'key')
  }
  if (m.regex !== undefined) checkRegex(m.regex, [...segs, 'regex'], invalid)
}

function checkValueMatch(kind: string, m: HeaderMatch | QueryMatch, segs: Seg[], invalid: Invalid): void {
  const set = (['exact', 'prefix', 'regex', 'present'] as const).filter((k) => m[k] !== undefined)
  if (set.length === 0) {
    invalid(segs, `${kind} match "${m.name}" must set one of exact, prefix, regex or present`)
  } else if (set.length > 1) {
    invalid([...segs, set[1]], `${kind} match "${m.name}" must set only one of exact, prefix, regex or present, found ${set.join(' and ')}`, 'key')
  }
  if (m.regex !== undefined) checkRegex(m.regex, [...segs, 'regex'], invalid)
}

function checkRegex(source: string, segs: Seg[], invalid: Invalid): void {
  try {
    new RegExp(source)
  } catch (err) {
    invalid(segs, errorText(err))
  }
}

/** No two virtual hosts of a table may claim the same host name (compared case-insensitively). */
function checkDomains(vhosts: VirtualHost[], base: Seg[], invalid: Invalid, lineOf: (segs: Seg[]) => number): void {
  const owner = new Map<string, { vh: number; segs: Seg[] }>()
  vhosts.forEach((vh, v) => {
    const sources: Array<{ segs: Seg[]; domains: string[]; via: string }> = []
    if (vh.service) {
      sources.push({ segs: [...base, v, 'service'], domains: serviceDomains(vh.service), via: ` (from service "${vh.service.name}")` })
    }
    vh.domains?.forEach((d, i) => sources.push({ segs: [...base, v, 'domains', i], domains: [d], via: '' }))
    if (sources.length === 0 || sources.every((s) => s.domains.length === 0)) {
      invalid([...base, v], `virtual host "${vh.name}" matches no host: set "service" or "domains"`)
      return
    }
    for (const s of sources) {
      let reported = false
      for (const d of s.domains) {
        const key = d.toLowerCase()
        const prev = owner.get(key)
        if (prev === undefined) owner.set(key, { vh: v, segs: s.segs })
        else if (prev.vh !== v && !reported) {
          reported = true
          invalid(s.segs, `domain "${d}"${s.via} is already claimed by virtual host "${vhosts[prev.vh].name}" (line ${lineOf(prev.segs)})`)
        }
      }
    }
  })
}

function checkDurations(schema: unknown, data: unknown, segs: Seg[], invalid: Invalid): void {
  if (!isObject(schema)) return
  if (schema.pattern === DURATION_PATTERN && typeof data === 'string') {
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
    data.forEach((item, i) => checkDurations(schema.items, item, [...segs, i], invalid))
  } else if (isObject(data)) {
    const props = isObject(schema.properties) ? schema.properties : {}
    for (const [k, v] of Object.entries(data)) {
      if (Object.hasOwn(props, k)) checkDurations(props[k], v, [...segs, k], invalid)
    }
  }
}

function unknownRef(kind: string, name: string, known: Iterable<string>): string {
  const names = [...known]
  const near = closest(name, names)
  if (near !== undefined) return `unknown ${kind} "${name}" (did you mean "${near}"?)`
  if (names.length === 0) return `unknown ${kind} "${name}" (none is defined)`
  const list = names.length > 8 ? `${names.slice(0, 8).join(', ')}, ...` : names.join(', ')
  return `unknown ${kind} "${name}" (defined: ${list})`
}

// ---------------------------------------------------------------------------------------------
// Schema errors -> messages.

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

function describeSchemaError(e: ErrorObject, root: unknown): { segs: Seg[]; target: Target; message: string } {
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
          : `invalid key "${key}": ${patternMessage(pattern, keySegs)}`
        return { segs: keySegs, target: 'key', message }
      }
      const fields = isObject(parent.properties) ? Object.keys(parent.properties) : []
      const near = closest(key, fields)
      const hint = near !== undefined ? ` (did you mean "${near}"?)` : fields.length > 0 ? ` (expected one of ${fields.join(', ')})` : ''
      return { segs: keySegs, target: 'key', message: `unknown field "${key}"${hint}` }
    }
    case 'type': {
      if (e.instancePath === '') {
        return { segs, target: 'value', message: 'the config must be a mapping with listeners, routeTables and clusters' }
      }
      return { segs, target: 'value', message: expectation(parent, segs, e.data) }
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { segs, target: 'value', message: expectation(parent, segs, e.data) }
    case 'pattern':
      return { segs, target: 'value', message: patternMessage(String(params.pattern), segs) }
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
function expectation(schema: Record<string, unknown>, segs: Seg[], data: unknown): string {
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
    if (schema.pattern === DURATION_PATTERN) return patternMessage(schema.pattern, segs)
    if (typeof data === 'number' || typeof data === 'boolean') return `must be a string: write it in quotes, "${String(data)}"`
    if (typeof schema.pattern === 'string' && PATTERN_MESSAGES[schema.pattern]) return patternMessage(schema.pattern, segs)
    return 'must be a string'
  }
  return `must be ${typeName(type) || 'valid'}`
}

function patternMessage(pattern: string, segs: Seg[]): string {
  return PATTERN_MESSAGES[pattern]?.(segs) ?? `must match the pattern ${pattern}`
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

// ---------------------------------------------------------------------------------------------
// Positions.

/**
 * Source offset of the node at segs: the value (or, for target 'key', the key of the last mapping
 * entry). Follows aliases. When the path goes further than the YAML (it should not), the deepest
 * node found is used.
 */
function nodeOffset(doc: Document, segs: Seg[], target: Target): number | undefined {
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

function readError(path: string, err: unknown): ConfigError {
  const code = isObject(err) && typeof err.code === 'string' ? err.code : ''
  const reasons: Record<string, string> = {
    ENOENT: 'cannot read the config file: it does not exist',
    EACCES: 'cannot read the config file: permission denied',
    EPERM: 'cannot read the config file: permission denied',
    EISDIR: 'cannot read the config file: it is a directory',
  }
  return {
    code: ConfigErrorCode.READ,
    file: path,
    line: 0,
    column: 0,
    path: '',
    message: reasons[code] ?? `cannot read the config file: ${oneLine(errorText(err))}`,
  }
}

/** The closest candidate within a small edit distance (for "did you mean"), if any. */
function closest(word: string, candidates: Iterable<string>): string | undefined {
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

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors.sort((a, b) => a.line - b.line || a.column - b.column)
}

function dedupe(errors: ConfigError[]): ConfigError[] {
  const seen = new Set<string>()
  return errors.filter((e) => {
    const k = `${e.line}:${e.column}:${e.path}:${e.message}`
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
