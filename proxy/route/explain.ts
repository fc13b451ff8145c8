// Why a route did not match a request, for `weft explain` (never on the request path): the first
// condition of a route's match that fails, in the order the compiled matcher tries them (path,
// method, headers, query parameters), using the same predicates as proxy/route/table.ts.
import type { RouteMatch } from '../../api/schema.ts'
import { headerValue, queryValue, stringPred, type CompiledRoute, type CompiledVirtualHost, type MatchInput } from './table.ts'

function describeString(m: { exact?: string; prefix?: string; segmentPrefix?: string; regex?: string }): string {
  if (m.exact !== undefined) return `exact ${JSON.stringify(m.exact)}`
  if (m.prefix !== undefined) return `prefix ${JSON.stringify(m.prefix)}`
  if (m.segmentPrefix !== undefined) return `path prefix ${JSON.stringify(m.segmentPrefix)}`
  if (m.regex !== undefined) return `regex ${JSON.stringify(m.regex)}`
  return 'present'
}

/** The first condition of `m` that `x` fails, as one sentence; null when the route matches. */
export function whyNotMatched(m: RouteMatch | undefined, x: MatchInput): string | null {
  if (m === undefined) return null
  if (m.path !== undefined) {
    const p = stringPred(m.path)
    if (p !== undefined && !p(x.pathOnly)) return `path ${JSON.stringify(x.pathOnly)} is not ${describeString(m.path)}`
  }
  if (m.method !== undefined && x.method !== m.method) return `method ${x.method} is not ${m.method}`
  for (const h of m.headers ?? []) {
    const name = h.name.toLowerCase()
    const v = headerValue(x.names, x.values, name)
    const present = h.present !== false
    const test = stringPred(h)
    if (v === undefined) {
      if (present) return `header ${name} is absent (wanted ${describeString(h)})`
    } else if (!present) return `header ${name} is present (wanted absent)`
    else if (test !== undefined && !test(v)) return `header ${name}: ${JSON.stringify(v)} is not ${describeString(h)}`
  }
  for (const q of m.queryParams ?? []) {
    const v = queryValue(x.query, q.name)
    const present = q.present !== false
    const test = stringPred(q)
    if (v === undefined) {
      if (present) return `query parameter ${q.name} is absent (wanted ${describeString(q)})`
    } else if (!present) return `query parameter ${q.name} is present (wanted absent)`
    else if (test !== undefined && !test(v)) return `query parameter ${q.name}: ${JSON.stringify(v)} is not ${describeString(q)}`
  }
  return null
}

/**
 * The `route` and `split` steps of a live decision trace (proxy/telemetry/explain.ts): which virtual
 * host and route took the request, and for each route tried before it, the first condition it
 * failed. Called only for a traced request.
 */
export function routeStep(vh: CompiledVirtualHost | undefined, x: MatchInput, route: CompiledRoute | undefined): Record<string, unknown> {
  if (vh === undefined) return { virtualHost: null, route: null, reason: 'no virtual host has this authority among its domains' }
  const skipped: { route: string; reason: string }[] = []
  for (const r of vh.routes) {
    if (r === route) break
    skipped.push({ route: r.name, reason: whyNotMatched(r.match, x) ?? 'matched (not expected)' })
  }
  return { virtualHost: vh.name, route: route?.name ?? null, skipped, ...(route === undefined ? { reason: 'no route of the virtual host matched' } : {}) }
}

export function splitStep(route: CompiledRoute, picked: number): Record<string, unknown> {
  return { backends: route.backends.map((b) => ({ cluster: b.cluster, weight: b.weight })), picked: picked < 0 ? null : route.backends[picked]!.cluster }
}
