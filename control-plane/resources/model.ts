// What validation and translation must agree on: names (clusters, FQDNs), which HTTPRoute
// matches attach to which Service port, their Gateway API precedence order, and when an earlier
// match makes a later one unreachable. Pure functions over the resource objects.
import type { HTTPRoute, HTTPRouteMatch, HTTPRouteRule, ParentRef, Service, ServicePort } from './schema.ts'

export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local'
/** The route table the resources become. */
export const OUTBOUND_TABLE = 'outbound'

export function namespaceOf(o: { metadata: { namespace?: string } }): string {
  return o.metadata.namespace ?? 'default'
}

/** "namespace/name" */
export function idOf(o: { metadata: { name: string; namespace?: string } }): string {
  return `${namespaceOf(o)}/${o.metadata.name}`
}

export function serviceFqdn(name: string, namespace: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN): string {
  return `${name}.${namespace}.svc.${clusterDomain}`
}

/** Istio's outbound cluster name for one port of a Service. */
export function clusterName(port: number, name: string, namespace: string, clusterDomain = DEFAULT_CLUSTER_DOMAIN): string {
  return `outbound|${port}||${serviceFqdn(name, namespace, clusterDomain)}`
}

/** The ports Weft routes: TCP ones (UDP and SCTP ports carry no HTTP). */
export function routedPorts(svc: Service): ServicePort[] {
  return svc.spec.ports.filter((p) => (p.protocol ?? 'TCP') === 'TCP')
}

export type PathType = 'Exact' | 'PathPrefix' | 'RegularExpression'
export type ValueType = 'Exact' | 'RegularExpression'

/** An HTTPRoute match with Gateway API defaults applied. */
export interface NormalizedMatch {
  path: { type: PathType; value: string }
  method: string | undefined
  /** names lower-cased (header names are case-insensitive) */
  headers: { type: ValueType; name: string; value: string }[]
  queryParams: { type: ValueType; name: string; value: string }[]
}

/**
 * Defaults: path PathPrefix "/", value types Exact. A PathPrefix loses its trailing "/" ("/api/"
 * matches what "/api" matches, Gateway API), except "/" itself.
 */
export function normalizeMatch(m: HTTPRouteMatch | undefined): NormalizedMatch {
  const type = m?.path?.type ?? 'PathPrefix'
  let value = m?.path?.value ?? '/'
  if (type === 'PathPrefix' && value.length > 1) value = value.replace(/\/+$/, '') || '/'
  return {
    path: { type, value },
    method: m?.method,
    headers: (m?.headers ?? []).map((h) => ({ type: h.type ?? 'Exact', name: h.name.toLowerCase(), value: h.value })),
    queryParams: (m?.queryParams ?? []).map((q) => ({ type: q.type ?? 'Exact', name: q.name, value: q.value })),
  }
}

/** A rule's matches; a rule without any matches everything (PathPrefix "/"). */
export function ruleMatches(rule: HTTPRouteRule): NormalizedMatch[] {
  return rule.matches !== undefined && rule.matches.length > 0 ? rule.matches.map(normalizeMatch) : [normalizeMatch(undefined)]
}

/** Matches every request: PathPrefix "/" and nothing else. */
export function isCatchAll(m: NormalizedMatch): boolean {
  return m.path.type === 'PathPrefix' && m.path.value === '/' && m.method === undefined && m.headers.length === 0 && m.queryParams.length === 0
}

/** The rule's name, or its index. */
export function ruleLabel(route: HTTPRoute, rule: number): string {
  return route.spec.rules?.[rule]?.name ?? String(rule)
}

/** Does the parentRef (of a route in routeNs) attach to this port of the Service? */
export function attaches(p: ParentRef, routeNs: string, svc: Service, port: number): boolean {
  return p.name === svc.metadata.name && (p.namespace ?? routeNs) === namespaceOf(svc) && (p.port === undefined || p.port === port)
}

export interface RankedMatch {
  /** index of the route in the list given */
  route: number
  rule: number
  match: number
  m: NormalizedMatch
}

/**
 * The matches of every rule attached to this port of the Service, in precedence order. Routes in
 * the Service's namespace (producer routes) apply to every client; a route in another namespace
 * (a consumer route, GAMMA) only to clients in its own namespace, i.e. when clientNamespace is it.
 *
 * Order (Gateway API, with Istio's choice for regular expressions): Exact path, then PathPrefix,
 * then RegularExpression, longer values first within each; then a method match before none; then
 * more header matches; then more query parameter matches. Ties: the older route
 * (creationTimestamp; a route without one counts as newest), then namespace/name alphabetically,
 * then rule order, then match order.
 */
export function attachedMatches(routes: readonly HTTPRoute[], svc: Service, port: number, clientNamespace: string | undefined): RankedMatch[] {
  const out: RankedMatch[] = []
  const svcNs = namespaceOf(svc)
  routes.forEach((route, r) => {
    const ns = namespaceOf(route)
    if (ns !== svcNs && ns !== clientNamespace) return
    if (!route.spec.parentRefs.some((p) => attaches(p, ns, svc, port))) return
    ;(route.spec.rules ?? []).forEach((rule, i) => {
      ruleMatches(rule).forEach((m, j) => out.push({ route: r, rule: i, match: j, m }))
    })
  })
  const created = routes.map((rt) => {
    const t = rt.metadata.creationTimestamp === undefined ? NaN : Date.parse(rt.metadata.creationTimestamp)
    return Number.isNaN(t) ? Infinity : t
  })
  const ids = routes.map(idOf)
  return out.sort((a, b) =>
    compareMatches(a.m, b.m) ||
    (created[a.route] === created[b.route] ? 0 : created[a.route] < created[b.route] ? -1 : 1) ||
    (ids[a.route] < ids[b.route] ? -1 : ids[a.route] > ids[b.route] ? 1 : 0) ||
    a.route - b.route || a.rule - b.rule || a.match - b.match)
}

const PATH_RANK: Record<PathType, number> = { Exact: 3, PathPrefix: 2, RegularExpression: 1 }

/** Negative when a is more specific than b (comes first). */
export function compareMatches(a: NormalizedMatch, b: NormalizedMatch): number {
  return (
    PATH_RANK[b.path.type] - PATH_RANK[a.path.type] ||
    b.path.value.length - a.path.value.length ||
    (a.method === undefined ? 1 : 0) - (b.method === undefined ? 1 : 0) ||
    b.headers.length - a.headers.length ||
    b.queryParams.length - a.queryParams.length
  )
}

/** Does every request that b matches also match a? (Decided on the conditions' form; two regular expressions only when equal.) */
export function covers(a: NormalizedMatch, b: NormalizedMatch): boolean {
  if (a.method !== undefined && a.method !== b.method) return false
  if (!pathCovers(a.path, b.path)) return false
  const same = (x: { type: string; name: string; value: string }, y: { type: string; name: string; value: string }) =>
    x.type === y.type && x.name === y.name && x.value === y.value
  return a.headers.every((h) => b.headers.some((g) => same(h, g))) && a.queryParams.every((q) => b.queryParams.some((g) => same(q, g)))
}

function pathCovers(a: NormalizedMatch['path'], b: NormalizedMatch['path']): boolean {
  if (a.type === 'RegularExpression') return b.type === 'RegularExpression' && a.value === b.value
  if (a.type === 'Exact') return b.type === 'Exact' && a.value === b.value
  // a is a (segment) prefix
  if (a.value === '/') return true
  if (b.type === 'RegularExpression') return false
  return b.value === a.value || b.value.startsWith(`${a.value}/`)
}
