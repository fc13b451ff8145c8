// Reads traffic resources from YAML files and directories: every document of every file (and
// every item of a `kind: List`) is dispatched on apiVersion + kind and checked against its schema
// (./schema.ts). Errors carry file:line:column and a path that starts with the resource's
// identity, e.g. "HTTPRoute shop/reviews: spec.rules[1].matches[0].path.value". Semantic checks
// across resources are ./validate.ts; both together are checkResources().
//
// Directories are read like `kubectl apply -f DIR`: their *.yaml, *.yml and *.json files in name
// order, not recursively; names starting with "." are skipped (Kubernetes ConfigMap volumes keep
// their real files under "..data").
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import type { ValidateFunction } from 'ajv'
import { LineCounter, parseAllDocuments } from 'yaml'
import type { Document } from 'yaml'
import { ConfigErrorCode, formatPath } from '../../api/errors.ts'
import type { ConfigError } from '../../api/errors.ts'
import { checkBootstrapDocument } from '../../api/load.ts'
import type { ExternalNames } from '../../api/load.ts'
import type { Bootstrap } from '../../api/schema.ts'
import {
  TOKEN_PATTERN,
  dedupe,
  errorText,
  isObject,
  nodeOffset,
  oneLine,
  positions,
  readError,
  schemaProblems,
  sortErrors,
  syntaxErrors,
} from '../../api/yaml-errors.ts'
import type { Position, SchemaMessages, Seg, Target } from '../../api/yaml-errors.ts'
import { OUTBOUND_TABLE, clusterName, routedPorts } from './model.ts'
import { DNS_1035_LABEL, DNS_LABEL, DNS_SUBDOMAIN, GATEWAY_DURATION, KINDS, TIMESTAMP } from './schema.ts'
import type { AuthorizationPolicy, EndpointSlice, HTTPRoute, Kind, PeerAuthentication, Service, TrafficPolicy } from './schema.ts'

/** One resource and where it came from. */
export interface Located<T> {
  readonly kind: Kind
  readonly obj: T
  readonly namespace: string
  readonly name: string
  /** "namespace/name" */
  readonly id: string
  readonly file: string
  /** place of a field of this resource (segs relative to the resource) */
  locate(segs: Seg[], target?: Target): Position
}

export interface ResourceSet {
  services: Located<Service>[]
  endpointSlices: Located<EndpointSlice>[]
  httpRoutes: Located<HTTPRoute>[]
  trafficPolicies: Located<TrafficPolicy>[]
  peerAuthentications: Located<PeerAuthentication>[]
  authorizationPolicies: Located<AuthorizationPolicy>[]
  /** proxy bootstrap documents (no apiVersion/kind, a `listeners` field), checked as `weft proxy --config` does */
  bootstraps: { file: string; line: number; column: number; config: Bootstrap }[]
  /** the files read, in order */
  files: string[]
}

export type ParseResult = { ok: true; resources: ResourceSet } | { ok: false; errors: ConfigError[]; resources: ResourceSet }

export function emptyResourceSet(): ResourceSet {
  return { services: [], endpointSlices: [], httpRoutes: [], trafficPolicies: [], peerAuthentications: [], authorizationPolicies: [], bootstraps: [], files: [] }
}

export function resourceCount(r: ResourceSet): number {
  return r.services.length + r.endpointSlices.length + r.httpRoutes.length + r.trafficPolicies.length + r.peerAuthentications.length + r.authorizationPolicies.length + r.bootstraps.length
}

/** The error's path: the resource's identity, then the field. */
export function resourcePath(r: Pick<Located<unknown>, 'kind' | 'id'>, segs: Seg[]): string {
  return segs.length === 0 ? `${r.kind} ${r.id}` : `${r.kind} ${r.id}: ${formatPath(segs)}`
}

/** An error at a field of a resource. */
export function errorAt(r: Located<unknown>, code: ConfigErrorCode, segs: Seg[], message: string, target?: Target): ConfigError {
  return { code, file: r.file, ...r.locate(segs, target), path: resourcePath(r, segs), message }
}

const ajv = new Ajv({ allErrors: true, strict: false, verbose: true })
const validators = new Map<string, { kind: Kind; validate: ValidateFunction }>(
  KINDS.map((k) => [`${k.apiVersion} ${k.kind}`, { kind: k.kind, validate: ajv.compile(k.schema) }]),
)
const SUPPORTED = KINDS.map((k) => `${k.apiVersion} ${k.kind}`).join(', ')

const LABEL_TEXT = 'lower-case letters, digits and "-", starting and ending with a letter or digit'
export const RESOURCE_MESSAGES: SchemaMessages = {
  root: 'a resource must be a mapping with apiVersion, kind, metadata and spec',
  patterns: {
    [DNS_LABEL]: () => `must be ${LABEL_TEXT} (a DNS label)`,
    [DNS_1035_LABEL]: () => 'must be a Service name: lower-case letters, digits and "-", starting with a letter and ending with a letter or digit',
    [DNS_SUBDOMAIN]: (segs) =>
      segs[segs.length - 1] === 'hostname'
        ? 'must be a host name such as "example.com" (lower case, no port, no wildcard)'
        : 'must be lower-case letters, digits, "-" and ".", starting and ending with a letter or digit',
    [GATEWAY_DURATION]: () => 'must be a Gateway API duration such as "10s", "500ms" or "1h30m" (whole numbers of at most 5 digits; units h, m, s, ms)',
    [TIMESTAMP]: () => 'must be an RFC 3339 time such as "2024-05-01T12:00:00Z"',
    [TOKEN_PATTERN]: (segs) =>
      segs.includes('queryParams')
        ? "must be a valid query parameter name (letters, digits and !#$%&'*+-.^_`|~)"
        : "must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
  },
  durations: [GATEWAY_DURATION],
}

/**
 * Parse and schema-check resource texts (pure: no I/O). Each file may hold many documents.
 * Semantic checks across resources are not done here (see checkResources in ./validate.ts).
 */
export function parseResources(files: ReadonlyArray<{ file: string; text: string }>): ParseResult {
  const set = emptyResourceSet()
  const errors: ConfigError[] = []
  const bootstraps: PendingBootstrap[] = []
  for (const { file, text } of files) {
    set.files.push(file)
    const lineCounter = new LineCounter()
    const pos = positions(lineCounter)
    const docs = parseAllDocuments(text, { lineCounter, prettyErrors: false })
    if (!Array.isArray(docs)) continue // only comments or nothing: no resources
    docs.forEach((doc, i) => parseDocumentResources(doc, i + 1, file, pos, set, errors, bootstraps))
  }
  // A bootstrap validated together with resources is checked as static mode runs it: its
  // listeners may name the route table "outbound" and its routes the Services' clusters.
  const external: ExternalNames | undefined = resourceCount(set) === 0 ? undefined : {
    routeTables: new Set([OUTBOUND_TABLE]),
    clusters: new Set(set.services.flatMap((s) => routedPorts(s.obj).map((p) => clusterName(p.port, s.name, s.namespace)))),
    from: 'the resources',
  }
  for (const b of bootstraps) {
    const r = checkBootstrapDocument(b.doc, b.pos, b.file, external)
    if (r.ok) set.bootstraps.push({ file: b.file, ...b.pos(nodeOffset(b.doc, [], 'value')), config: r.config })
    else errors.push(...r.errors)
  }
  return errors.length > 0 ? { ok: false, errors: sortErrors(dedupe(errors), set.files), resources: set } : { ok: true, resources: set }
}

interface PendingBootstrap {
  doc: Document
  pos: (offset: number | undefined) => Position
  file: string
}

function parseDocumentResources(
  doc: Document,
  n: number,
  file: string,
  pos: (offset: number | undefined) => Position,
  set: ResourceSet,
  errors: ConfigError[],
  bootstraps: PendingBootstrap[],
): void {
  const syntax = syntaxErrors(doc, file, pos)
  if (syntax.length > 0) {
    errors.push(...syntax)
    return
  }
  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: 1000 })
  } catch (err) {
    errors.push({ code: ConfigErrorCode.SYNTAX, file, ...pos(doc.range?.[0]), path: '', message: oneLine(errorText(err)) })
    return
  }
  if (data === null || data === undefined) return // an empty document ("---" at the end)
  const locateIn = (base: Seg[]) => (segs: Seg[], target: Target = 'value'): Position => pos(nodeOffset(doc, [...base, ...segs], target))
  const docError = (base: Seg[], segs: Seg[], message: string, code: ConfigErrorCode = ConfigErrorCode.SCHEMA): void => {
    const all = [...base, ...segs]
    errors.push({ code, file, ...locateIn([])(all), path: all.length === 0 ? `document ${n}` : `document ${n}: ${formatPath(all)}`, message })
  }

  if (isObject(data) && data.apiVersion === undefined && data.kind === undefined && 'listeners' in data) {
    bootstraps.push({ doc, pos, file })
    return
  }
  if (isObject(data) && data.apiVersion === 'v1' && data.kind === 'List') {
    if (!Array.isArray(data.items)) {
      docError([], data.items === undefined ? [] : ['items'], data.items === undefined ? 'missing required field "items"' : 'must be a list')
      return
    }
    data.items.forEach((item, i) => {
      if (isObject(item) && item.kind === 'List') docError(['items', i, 'kind'], [], 'a List inside a List is not supported')
      else dispatch(item, ['items', i])
    })
    return
  }
  dispatch(data, [])

  function dispatch(obj: unknown, base: Seg[]): void {
    if (!isObject(obj)) {
      docError(base, [], RESOURCE_MESSAGES.root)
      return
    }
    for (const f of ['apiVersion', 'kind'] as const) {
      if (obj[f] === undefined) {
        docError(base, [], `missing required field "${f}"`)
        return
      }
      if (typeof obj[f] !== 'string') {
        docError(base, [f], 'must be a string')
        return
      }
    }
    const apiVersion = obj.apiVersion as string
    const kind = obj.kind as string
    const v = validators.get(`${apiVersion} ${kind}`)
    if (v === undefined) {
      const sameKind = KINDS.find((k) => k.kind === kind)
      if (sameKind !== undefined) {
        docError(base, ['apiVersion'], `apiVersion "${apiVersion}" is not supported for ${kind}: use ${sameKind.apiVersion}`)
      } else {
        docError(base, ['kind'], `unknown kind "${kind}" (apiVersion ${apiVersion}); supported: ${SUPPORTED}`)
      }
      return
    }
    const meta = isObject(obj.metadata) ? obj.metadata : {}
    const name = typeof meta.name === 'string' ? meta.name : undefined
    const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default'
    const located = {
      kind: v.kind,
      obj,
      namespace,
      name: name ?? '',
      id: `${namespace}/${name ?? ''}`,
      file,
      locate: locateIn(base),
    }
    if (!v.validate(obj)) {
      for (const p of schemaProblems(v.validate.errors ?? [], obj, RESOURCE_MESSAGES)) {
        if (name === undefined) docError(base, p.segs, p.message)
        else errors.push({ code: ConfigErrorCode.SCHEMA, file, ...located.locate(p.segs, p.target), path: resourcePath(located, p.segs), message: p.message })
      }
      return
    }
    switch (v.kind) {
      case 'Service': set.services.push(located as Located<Service>); break
      case 'EndpointSlice': set.endpointSlices.push(located as Located<EndpointSlice>); break
      case 'HTTPRoute': set.httpRoutes.push(located as Located<HTTPRoute>); break
      case 'TrafficPolicy': set.trafficPolicies.push(located as Located<TrafficPolicy>); break
      case 'PeerAuthentication': set.peerAuthentications.push(located as Located<PeerAuthentication>); break
      case 'AuthorizationPolicy': set.authorizationPolicies.push(located as Located<AuthorizationPolicy>); break
    }
  }
}

const RESOURCE_FILE = /\.(ya?ml|json)$/i

/**
 * Read FILE|DIR arguments: a directory contributes its *.yaml, *.yml and *.json files (sorted,
 * not recursive, no dot-files). An unreadable path or an empty directory is an error (a typo in a
 * path should not look like "no resources").
 */
export async function readResourceFiles(paths: readonly string[]): Promise<{ files: { file: string; text: string }[]; errors: ConfigError[] }> {
  const files: { file: string; text: string }[] = []
  const errors: ConfigError[] = []
  const seen = new Set<string>()
  const read = async (file: string): Promise<void> => {
    if (seen.has(file)) return
    seen.add(file)
    try {
      files.push({ file, text: await readFile(file, 'utf8') })
    } catch (err) {
      errors.push(readError(file, err, 'the resource file'))
    }
  }
  for (const path of paths) {
    let isDir: boolean
    try {
      isDir = (await stat(path)).isDirectory()
    } catch (err) {
      errors.push(readError(path, err, 'the resource file'))
      continue
    }
    if (!isDir) {
      await read(path)
      continue
    }
    let names: string[]
    try {
      names = (await readdir(path)).filter((f) => !f.startsWith('.') && RESOURCE_FILE.test(f)).sort()
    } catch (err) {
      errors.push(readError(path, err, 'the directory'))
      continue
    }
    const found: string[] = []
    for (const name of names) {
      const file = join(path, name)
      try {
        if ((await stat(file)).isFile()) found.push(file)
      } catch {
        // a dangling symlink (a ConfigMap swap in progress): the watcher will call again
      }
    }
    if (found.length === 0) {
      errors.push({ code: ConfigErrorCode.READ, file: path, line: 0, column: 0, path: '', message: 'the directory has no .yaml, .yml or .json files' })
    }
    for (const f of found) await read(f)
  }
  return { files, errors }
}
