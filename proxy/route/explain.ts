// Why a route did not match a request, for `weft explain` (never on the request path): the first
// condition of a route's match that fails, in the order the compiled matcher tries them (path,
// method, headers, query parameters), using the same predicates as proxy/route/table.ts.
import type { RouteMatch } from '../../api/schema.ts'
import { headerValue, queryValue, stringPred, type MatchInput } from './table.ts'

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
