// One HTTPRoute match -> one proxy route: the match, the rule's backends and filters, its timeouts
// and retry, and the TrafficPolicy route blocks that apply (./policy.ts).
import { parseDuration } from '../../api/duration.ts'
import type { HeaderMutation, Route, RouteMatch } from '../../api/schema.ts'
import { clusterName, namespaceOf, ruleLabel } from '../resources/model.ts'
import type { NormalizedMatch } from '../resources/model.ts'
import type { HTTPRoute, HTTPRouteRule, HeaderModifier, PathModifier } from '../resources/schema.ts'
import { defined } from './policy.ts'
import type { PolicyIndex } from './policy.ts'

/** The proxy route name of an HTTPRoute rule: "<namespace>.<route>.<rule name or index>" (a proxy name cannot hold "/"). */
export function routeName(route: HTTPRoute, rule: number): string {
  return `${namespaceOf(route)}.${route.metadata.name}.${ruleLabel(route, rule)}`
}

export function translateMatch(m: NormalizedMatch): RouteMatch {
  const out: RouteMatch = {}
  const v = m.path.value
  if (m.path.type === 'Exact') out.path = { exact: v }
  else if (m.path.type === 'RegularExpression') out.path = { regex: v }
  // Gateway API PathPrefix is by whole segments; "/" matches everything either way.
  else out.path = v === '/' ? { prefix: '/' } : { segmentPrefix: v }
  if (m.method !== undefined) out.method = m.method
  if (m.headers.length > 0) out.headers = m.headers.map((h) => (h.type === 'Exact' ? { name: h.name, exact: h.value } : { name: h.name, regex: h.value }))
  if (m.queryParams.length > 0) {
    out.queryParams = m.queryParams.map((q) => (q.type === 'Exact' ? { name: q.name, exact: q.value } : { name: q.name, regex: q.value }))
  }
  return out
}

function mutation(h: HeaderModifier): HeaderMutation {
  const record = (pairs: { name: string; value: string }[] | undefined) =>
    pairs === undefined || pairs.length === 0 ? undefined : Object.fromEntries(pairs.map((p) => [p.name, p.value]))
  return defined({ set: record(h.set), add: record(h.add), remove: h.remove === undefined || h.remove.length === 0 ? undefined : [...h.remove] })
}

function pathFields(p: PathModifier | undefined): { path?: string; pathPrefix?: string } {
  if (p === undefined) return {}
  return p.type === 'ReplaceFullPath' ? { path: p.replaceFullPath } : { pathPrefix: p.replacePrefixMatch }
}

function ms(s: string): number {
  return parseDuration(s)
}

/**
 * The proxy route for match `m` of rule `ruleIndex` of `route`, in the virtual host of Service
 * serviceId. clusterDomain names the clusters of backends and mirrors.
 */
export function translateRule(
  route: HTTPRoute,
  ruleIndex: number,
  m: NormalizedMatch,
  serviceId: string,
  policies: PolicyIndex,
  clusterDomain: string,
): Route {
  const rule: HTTPRouteRule = route.spec.rules![ruleIndex]
  const ns = namespaceOf(route)
  const out: Route = { name: routeName(route, ruleIndex), match: translateMatch(m) }
  const ref = (b: { name: string; namespace?: string; port: number }) => clusterName(b.port, b.name, b.namespace ?? ns, clusterDomain)

  for (const f of rule.filters ?? []) {
    if (f.type === 'RequestHeaderModifier' && f.requestHeaderModifier) out.requestHeaders = mutation(f.requestHeaderModifier)
    else if (f.type === 'ResponseHeaderModifier' && f.responseHeaderModifier) out.responseHeaders = mutation(f.responseHeaderModifier)
    else if (f.type === 'URLRewrite' && f.urlRewrite) {
      out.rewrite = defined({ ...pathFields(f.urlRewrite.path), host: f.urlRewrite.hostname })
    } else if (f.type === 'RequestRedirect' && f.requestRedirect) {
      const r = f.requestRedirect
      out.redirect = defined({ scheme: r.scheme, host: r.hostname, port: r.port, ...pathFields(r.path), status: r.statusCode })
    } else if (f.type === 'RequestMirror' && f.requestMirror && out.mirror === undefined) {
      const mr = f.requestMirror
      const fraction = mr.fraction
      const percent = mr.percent ?? (fraction === undefined ? 100 : (fraction.numerator * 100) / (fraction.denominator ?? 100))
      out.mirror = { cluster: ref(mr.backendRef), percent }
    }
  }

  if (out.redirect === undefined) {
    const backends = rule.backendRefs ?? []
    if (backends.length > 0) out.backends = backends.map((b) => ({ cluster: ref(b), weight: b.weight ?? 1 }))
    else {
      // Gateway API: a rule that forwards nowhere answers 500.
      out.directResponse = {
        status: 500,
        body: `WEFT_ERR_NO_BACKEND: HTTPRoute ${ns}/${route.metadata.name} rule ${ruleLabel(route, ruleIndex)} has no backendRefs\n`,
      }
    }
  }

  // Route blocks: TrafficPolicy, then the rule's own timeouts and retry on top.
  Object.assign(out, policies.route(serviceId, `${ns}/${route.metadata.name}`, rule.name))
  const t = rule.timeouts
  if (t?.request !== undefined) {
    // "0s": no timeout (Gateway API)
    if (ms(t.request) === 0) delete out.timeout
    else out.timeout = t.request
  }
  if (rule.retry !== undefined) {
    const codes = rule.retry.codes ?? []
    out.retry = defined({
      attempts: rule.retry.attempts ?? 1,
      on: codes.length > 0 ? ['retriable-status-codes' as const, 'connect-failure' as const, 'reset' as const] : ['connect-failure' as const, 'reset' as const],
      retriableStatusCodes: codes.length > 0 ? [...codes] : undefined,
      backoff: rule.retry.backoff === undefined ? undefined : { base: rule.retry.backoff },
    })
  }
  if (t?.backendRequest !== undefined) {
    if (ms(t.backendRequest) === 0) {
      if (out.retry !== undefined) delete out.retry.perTryTimeout
    } else {
      // each try: with retries off, the one try (attempts 0)
      out.retry = { ...(out.retry ?? { attempts: 0 }), perTryTimeout: t.backendRequest }
    }
  }
  return out
}
