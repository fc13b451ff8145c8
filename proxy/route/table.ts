// Route tables compiled from config: host -> virtual host by one Map lookup, then the virtual
// host's routes tried in order (first match wins). Every matcher (regexes included) is built here,
// once per config; matching a request only reads these objects.
import type { Route, RouteMatch, RouteTable } from '../../api/schema.ts'
import { parseDuration } from '../../api/duration.ts'
import type { Filter } from '../filters/filter.ts'
import { compileFilters } from '../filters/index.ts'
import { CompiledMirror } from '../filters/mirror/mirror.ts'
import { CompiledRetry } from '../filters/retry/policy.ts'
import { virtualHostDomains } from '../../api/domains.ts'
import { compileMutation, type CompiledMutation } from './headers.ts'

/** What a matcher needs from a request. */
export interface MatchInput {
  method: string
  /** path without the query */
  pathOnly: string
  /** query string without '?', "" when none */
  query: string
  names: string[]
  values: string[]
}

type Pred = (v: string) => boolean

interface FieldMatcher {
  name: string
  /** undefined: presence only */
  test: Pred | undefined
  /** true: must be present (and match); false: must be absent */
  present: boolean
}

export interface BackendRef {
  readonly cluster: string
  readonly weight: number
}

export interface DirectReply {
  readonly status: number
  /** complete response bytes minus the Connection line and final CRLF */
  readonly head: string
  readonly body: Buffer
}

export interface CompiledRoute {
  /** index of the route in its table (0..table.routeCount-1), for per-route arrays built at config time */
  readonly id: number
  readonly name: string
  readonly vhost: string
  readonly matches: (m: MatchInput) => boolean
  /** the match as configured, for explain (./explain.ts: why a route did not match); never read per request */
  readonly match: RouteMatch | undefined
  /** weighted backends; cumulative weights for the split; empty for a direct reply */
  readonly backends: readonly BackendRef[]
  readonly cumulative: readonly number[]
  readonly totalWeight: number
  readonly direct: DirectReply | null
  readonly requestHeaders: CompiledMutation
  readonly responseHeaders: CompiledMutation
  /** prefix rewrite: the matched prefix and its replacement; null when none */
  readonly rewrite: { from: string; to: string } | null
  /** full path rewrite (the query is kept); null when none */
  readonly rewritePathTo: string | null
  /** Host rewrite; null when none */
  readonly rewriteHost: string | null
  /**
   * The route's request filters in order (proxy/filters/index.ts: rate limit, redirect, fault),
   * null when it has none (the common case costs one comparison). Each is compiled once here;
   * per request only its cheap state changes.
   */
  readonly filters: readonly Filter[] | null
  /** What runs around the upstream tries (timers, retries, the mirror); null when none. */
  readonly policy: RoutePolicy | null
}

export interface RoutePolicy {
  /** whole-request timeout in ms; 0: none */
  readonly timeoutMs: number
  readonly retry: CompiledRetry | null
  readonly mirror: CompiledMirror | null
}

export interface CompiledVirtualHost {
  readonly name: string
  /** the Kubernetes service it stands for, fully qualified, or "" */
  readonly serviceFqdn: string
  readonly serviceNamespace: string
  readonly routes: readonly CompiledRoute[]
}

export function stringPred(m: { exact?: string; prefix?: string; segmentPrefix?: string; regex?: string }): Pred | undefined {
  if (m.exact !== undefined) {
    const e = m.exact
    return (v) => v === e
  }
  if (m.prefix !== undefined) {
    const p = m.prefix
    return (v) => v.startsWith(p)
  }
  if (m.segmentPrefix !== undefined) {
    // whole segments: "/api" (or "/api/") matches "/api" and "/api/..." but not "/apix"
    const p = m.segmentPrefix.endsWith('/') ? m.segmentPrefix.slice(0, -1) : m.segmentPrefix
    if (p === '') return () => true
    const ps = p + '/'
    return (v) => v === p || v.startsWith(ps)
  }
  if (m.regex !== undefined) {
    const re = new RegExp('^(?:' + m.regex + ')$')
    return (v) => re.test(v)
  }
  return undefined
}

export function headerValue(names: string[], values: string[], name: string): string | undefined {
  for (let i = 0; i < names.length; i++) if (names[i] === name) return values[i]
  return undefined
}

export function queryValue(query: string, name: string): string | undefined {
  if (query === '') return undefined
  const parts = query.split('&')
  for (let i = 0; i < parts.length; i++) {
    const eq = parts[i].indexOf('=')
    const k = eq === -1 ? parts[i] : parts[i].slice(0, eq)
    let key = k
    try {
      key = decodeURIComponent(k.replace(/\+/g, ' '))
    } catch {}
    if (key !== name) continue
    const raw = eq === -1 ? '' : parts[i].slice(eq + 1)
    try {
      return decodeURIComponent(raw.replace(/\+/g, ' '))
    } catch {
      return raw
    }
  }
  return undefined
}

function fieldMatchers(list: { name: string; exact?: string; prefix?: string; regex?: string; present?: boolean }[] | undefined, lower: boolean): FieldMatcher[] {
  return (list ?? []).map((h) => ({
    name: lower ? h.name.toLowerCase() : h.name,
    test: stringPred(h),
    present: h.present !== false,
  }))
}

function compileMatch(m: RouteMatch | undefined): (x: MatchInput) => boolean {
  if (m === undefined) return () => true
  const path = m.path === undefined ? undefined : stringPred(m.path)
  const method = m.method
  const headers = fieldMatchers(m.headers, true)
  const query = fieldMatchers(m.queryParams, false)
  if (path !== undefined && method === undefined && headers.length === 0 && query.length === 0) {
    return (x) => path(x.pathOnly)
  }
  return (x) => {
    if (path !== undefined && !path(x.pathOnly)) return false
    if (method !== undefined && x.method !== method) return false
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i]
      const v = headerValue(x.names, x.values, h.name)
      if (v === undefined) {
        if (h.present) return false
      } else if (!h.present || (h.test !== undefined && !h.test(v))) return false
    }
    for (let i = 0; i < query.length; i++) {
      const q = query[i]
      const v = queryValue(x.query, q.name)
      if (v === undefined) {
        if (q.present) return false
      } else if (!q.present || (q.test !== undefined && !q.test(v))) return false
    }
    return true
  }
}

function compileDirect(d: NonNullable<Route['directResponse']>): DirectReply {
  const body = Buffer.from(d.body ?? '', 'utf8')
  let head = ''
  let hasType = false
  for (const [n, v] of Object.entries(d.headers ?? {})) {
    if (n.toLowerCase() === 'content-type') hasType = true
    head += n.toLowerCase() + ': ' + v + '\r\n'
  }
  if (!hasType && body.length > 0) head += 'content-type: text/plain\r\n'
  head += 'content-length: ' + body.length + '\r\n'
  return { status: d.status, head, body }
}

function compilePolicy(r: Route): RoutePolicy | null {
  if (r.timeout === undefined && r.retry === undefined && r.mirror === undefined) return null
  return {
    timeoutMs: r.timeout === undefined ? 0 : parseDuration(r.timeout),
    // attempts 0 with a perTryTimeout: no retries, but the one try is still timed
    retry: r.retry === undefined || (r.retry.attempts === 0 && r.retry.perTryTimeout === undefined) ? null : new CompiledRetry(r.retry),
    mirror: r.mirror === undefined ? null : new CompiledMirror(r.mirror.cluster, r.mirror.percent ?? 100),
  }
}

function compileRoute(r: Route, vhost: string, index: number, id: number): CompiledRoute {
  const backends = (r.backends ?? []).map((b) => ({ cluster: b.cluster, weight: b.weight ?? 1 }))
  const cumulative: number[] = []
  let total = 0
  for (const b of backends) {
    total += b.weight
    cumulative.push(total)
  }
  const path = r.match?.path
  const segment = path?.segmentPrefix
  const prefix = path?.prefix ?? (segment === undefined ? undefined : segment.length > 1 && segment.endsWith('/') ? segment.slice(0, -1) : segment)
  return {
    id,
    name: r.name ?? `${vhost}/${index}`,
    vhost,
    matches: compileMatch(r.match),
    match: r.match,
    backends,
    cumulative,
    totalWeight: total,
    direct: r.directResponse === undefined ? null : compileDirect(r.directResponse),
    requestHeaders: compileMutation(r.requestHeaders),
    responseHeaders: compileMutation(r.responseHeaders),
    rewrite: r.rewrite?.pathPrefix === undefined ? null : { from: prefix ?? '/', to: r.rewrite.pathPrefix },
    rewritePathTo: r.rewrite?.path ?? null,
    rewriteHost: r.rewrite?.host ?? null,
    filters: compileFilters(r, { matchedPrefix: prefix ?? '/', routeName: r.name ?? `${vhost}/${index}` }),
    policy: compilePolicy(r),
  }
}

export class CompiledRouteTable {
  readonly name: string
  private readonly exact = new Map<string, CompiledVirtualHost>()
  private readonly suffixes: { suffix: string; vhost: CompiledVirtualHost }[] = []
  private fallback: CompiledVirtualHost | undefined
  readonly vhosts: CompiledVirtualHost[] = []
  /** number of routes in all virtual hosts; route ids are 0..routeCount-1 */
  readonly routeCount: number

  constructor(t: RouteTable) {
    this.name = t.name
    let id = 0
    for (const v of t.virtualHosts) {
      const svc = v.service
      const ns = svc?.namespace ?? 'default'
      const vh: CompiledVirtualHost = {
        name: v.name,
        serviceFqdn: svc === undefined ? '' : `${svc.name}.${ns}.svc.${svc.clusterDomain ?? 'cluster.local'}`,
        serviceNamespace: svc === undefined ? '' : ns,
        routes: v.routes.map((r, i) => compileRoute(r, v.name, i, id++)),
      }
      this.vhosts.push(vh)
      for (const d of virtualHostDomains(v).map((x) => x.toLowerCase())) {
        if (d === '*') this.fallback ??= vh
        else if (d.startsWith('*.')) this.suffixes.push({ suffix: d.slice(1), vhost: vh })
        else if (!this.exact.has(d)) this.exact.set(d, vh)
      }
    }
    this.routeCount = id
    // Longest suffix first, as Envoy does for wildcard domains.
    this.suffixes.sort((a, b) => b.suffix.length - a.suffix.length)
  }

  /** The virtual host for a request authority, trying host:port, then host, wildcards, then "*". */
  lookup(authority: string): CompiledVirtualHost | undefined {
    const a = authority.toLowerCase()
    const hit = this.exact.get(a)
    if (hit !== undefined) return hit
    let host = a
    const colon = a.lastIndexOf(':')
    if (colon !== -1 && a.charCodeAt(a.length - 1) !== 0x5d /* ] */) {
      host = a.slice(0, colon)
      const h2 = this.exact.get(host)
      if (h2 !== undefined) return h2
    }
    for (let i = 0; i < this.suffixes.length; i++) {
      if (host.endsWith(this.suffixes[i].suffix)) return this.suffixes[i].vhost
    }
    return this.fallback
  }
}

/** First matching route of a virtual host, or undefined. */
export function matchRoute(vh: CompiledVirtualHost, x: MatchInput): CompiledRoute | undefined {
  const routes = vh.routes
  for (let i = 0; i < routes.length; i++) if (routes[i].matches(x)) return routes[i]
  return undefined
}

/** Weighted choice of a backend: its index in r.backends, -1 when every weight is 0. A single backend costs no random number. */
export function pickBackend(r: CompiledRoute, random: number): number {
  const b = r.backends
  if (b.length === 1) return 0
  if (r.totalWeight === 0) return -1
  const x = random * r.totalWeight
  for (let i = 0; i < b.length; i++) if (x < r.cumulative[i]) return i
  return b.length - 1
}

/** Apply a prefix rewrite with Gateway API ReplacePrefixMatch semantics. */
export function rewritePath(path: string, rw: { from: string; to: string }): string {
  if (!path.startsWith(rw.from)) return path
  let rest = path.slice(rw.from.length)
  if (rw.to.endsWith('/') && rest.startsWith('/')) rest = rest.slice(1)
  else if (!rw.to.endsWith('/') && rest !== '' && !rest.startsWith('/') && !rest.startsWith('?')) rest = '/' + rest
  const out = rw.to + rest
  return out === '' ? '/' : out
}
