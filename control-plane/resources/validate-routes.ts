// Semantic checks of HTTPRoutes: references to Services and their ports, filters Weft supports and
// how they combine, regular expressions, weights, timeouts, and matches made unreachable by an
// earlier one in the final precedence order of a Service port.
import { ConfigErrorCode } from '../../api/errors.ts'
import type { ConfigError } from '../../api/errors.ts'
import { parseDuration } from '../../api/duration.ts'
import { isReservedHeader } from '../../api/semantics.ts'
import { errorText, unknownRef } from '../../api/yaml-errors.ts'
import type { Seg, Target } from '../../api/yaml-errors.ts'
import { errorAt } from './load.ts'
import type { Located } from './load.ts'
import { attachedMatches, namespaceOf, routedPorts, ruleLabel, ruleMatches } from './model.ts'
import { covers } from './model.ts'
import type { HTTPRoute, HTTPRouteFilter, HTTPRouteRule, HeaderModifier, Service } from './schema.ts'

export interface RouteContext {
  errors: ConfigError[]
  /** by "namespace/name"; the first of duplicates */
  services: Map<string, Located<Service>>
}

type Report = (segs: Seg[], message: string, target?: Target, code?: ConfigErrorCode) => void

const FILTER_FIELD = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  URLRewrite: 'urlRewrite',
  RequestRedirect: 'requestRedirect',
  RequestMirror: 'requestMirror',
  ExtensionRef: 'extensionRef',
} as const
const FILTER_FIELDS = Object.values(FILTER_FIELD)

export function checkRoute(r: Located<HTTPRoute>, ctx: RouteContext): void {
  const report: Report = (segs, message, target, code = ConfigErrorCode.INVALID) => {
    ctx.errors.push(errorAt(r, code, segs, message, target))
  }
  const ns = r.namespace
  /** A Service reference (parentRef, backendRef, mirror): it exists, and has the port if one is named. */
  const checkServiceRef = (ref: { name: string; namespace?: string; port?: number }, segs: Seg[]): void => {
    const id = `${ref.namespace ?? ns}/${ref.name}`
    const svc = ctx.services.get(id)
    if (svc === undefined) {
      report([...segs, 'name'], unknownRef('Service', id, ctx.services.keys()), 'value', ConfigErrorCode.REF)
    } else if (ref.port !== undefined && !svc.obj.spec.ports.some((p) => p.port === ref.port)) {
      report([...segs, 'port'], `Service ${id} has no port ${ref.port} (its ports: ${svc.obj.spec.ports.map((p) => p.port).join(', ')})`, 'value', ConfigErrorCode.REF)
    }
  }

  r.obj.spec.parentRefs.forEach((p, i) => checkServiceRef(p, ['spec', 'parentRefs', i]))

  const ruleNames = new Map<string, number>()
  ;(r.obj.spec.rules ?? []).forEach((rule, i) => {
    const segs: Seg[] = ['spec', 'rules', i]
    if (rule.name !== undefined) {
      const first = ruleNames.get(rule.name)
      if (first === undefined) ruleNames.set(rule.name, i)
      else report([...segs, 'name'], `duplicate rule name "${rule.name}" (first used by rules[${first}], line ${r.locate(['spec', 'rules', first, 'name']).line})`)
    }
    checkMatches(rule, segs, report)
    checkFilters(rule, segs, report, checkServiceRef)
    const backends = rule.backendRefs ?? []
    backends.forEach((b, j) => {
      checkServiceRef(b, [...segs, 'backendRefs', j])
      if (b.filters !== undefined) {
        report([...segs, 'backendRefs', j, 'filters'], 'filters on a backendRef are not supported by Weft: put them on the rule', 'key')
      }
    })
    if (backends.length > 0 && backends.every((b) => (b.weight ?? 1) === 0)) {
      report([...segs, 'backendRefs'], 'all backendRef weights are 0: at least one backend needs a positive weight')
    }
    const t = rule.timeouts
    if (t?.request !== undefined && t.backendRequest !== undefined) {
      const request = msOrUndefined(t.request)
      const backend = msOrUndefined(t.backendRequest)
      // "0s" turns a timeout off; a try without its own timeout is still bounded by the request's
      // (the Gateway API's own rule: backendRequest > request is invalid, unless request is 0s)
      if (request !== undefined && backend !== undefined && request > 0 && backend > request) {
        report([...segs, 'timeouts', 'backendRequest'], `backendRequest "${t.backendRequest}" is longer than request "${t.request}" (the request timeout covers every try)`)
      }
    }
  })
}

function checkMatches(rule: HTTPRouteRule, segs: Seg[], report: Report): void {
  ;(rule.matches ?? []).forEach((m, j) => {
    const mSegs: Seg[] = [...segs, 'matches', j]
    const path = m.path
    if (path?.value !== undefined) {
      const type = path.type ?? 'PathPrefix'
      if (type === 'RegularExpression') checkRegex(path.value, [...mSegs, 'path', 'value'], report)
      else if (!path.value.startsWith('/')) report([...mSegs, 'path', 'value'], `must start with "/" (path type ${type})`)
    }
    for (const [field, fold] of [['headers', true], ['queryParams', false]] as const) {
      const seen = new Set<string>()
      ;(m[field] ?? []).forEach((h, k) => {
        const key = fold ? h.name.toLowerCase() : h.name
        if (seen.has(key)) report([...mSegs, field, k, 'name'], `"${h.name}" is matched twice in this match (each name at most once)`)
        seen.add(key)
        if (h.type === 'RegularExpression') checkRegex(h.value, [...mSegs, field, k, 'value'], report)
      })
    }
  })
}

function checkFilters(
  rule: HTTPRouteRule,
  segs: Seg[],
  report: Report,
  checkServiceRef: (ref: { name: string; namespace?: string; port?: number }, segs: Seg[]) => void,
): void {
  const filters = rule.filters ?? []
  const seen = new Map<string, number>()
  filters.forEach((f, i) => {
    const fSegs: Seg[] = [...segs, 'filters', i]
    const field = FILTER_FIELD[f.type]
    if (f.type === 'ExtensionRef') {
      report([...fSegs, 'type'], 'filter type ExtensionRef is not supported by Weft (what Weft adds is in TrafficPolicy)')
      return
    }
    if (f[field] === undefined) report(fSegs, `a filter of type ${f.type} needs the field "${field}"`)
    for (const other of FILTER_FIELDS) {
      if (other !== field && f[other] !== undefined) report([...fSegs, other], `field "${other}" does not belong to a filter of type ${f.type}`, 'key')
    }
    const first = seen.get(f.type)
    if (first !== undefined) {
      report([...fSegs, 'type'], f.type === 'RequestMirror'
        ? `only one RequestMirror per rule is supported by Weft (another is filters[${first}])`
        : `filter ${f.type} is already used by filters[${first}] (each filter type at most once per rule)`)
    } else seen.set(f.type, i)
    checkFilter(f, rule, fSegs, report, checkServiceRef)
  })
  const rewrite = seen.get('URLRewrite')
  const redirect = seen.get('RequestRedirect')
  if (rewrite !== undefined && redirect !== undefined) {
    report([...segs, 'filters', Math.max(rewrite, redirect), 'type'], 'a rule cannot have both URLRewrite and RequestRedirect')
  }
  if (redirect !== undefined && (rule.backendRefs ?? []).length > 0) {
    report([...segs, 'backendRefs'], 'a rule with a RequestRedirect answers the request itself: its backendRefs would never be used', 'key')
  }
}

function checkFilter(
  f: HTTPRouteFilter,
  rule: HTTPRouteRule,
  fSegs: Seg[],
  report: Report,
  checkServiceRef: (ref: { name: string; namespace?: string; port?: number }, segs: Seg[]) => void,
): void {
  if (f.requestHeaderModifier) checkHeaderModifier(f.requestHeaderModifier, true, [...fSegs, 'requestHeaderModifier'], report)
  if (f.responseHeaderModifier) checkHeaderModifier(f.responseHeaderModifier, false, [...fSegs, 'responseHeaderModifier'], report)
  for (const [field, path] of [['urlRewrite', f.urlRewrite?.path], ['requestRedirect', f.requestRedirect?.path]] as const) {
    if (path === undefined) continue
    const pSegs: Seg[] = [...fSegs, field, 'path']
    const wanted = path.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch'
    const unwanted = path.type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath'
    const value = path[wanted]
    if (value === undefined) report(pSegs, `path type ${path.type} needs the field "${wanted}"`)
    else if (!value.startsWith('/')) report([...pSegs, wanted], 'must start with "/"')
    if (path[unwanted] !== undefined) report([...pSegs, unwanted], `field "${unwanted}" does not belong to path type ${path.type}`, 'key')
    if (path.type === 'ReplacePrefixMatch') {
      const bad = ruleMatches(rule).findIndex((m) => m.path.type !== 'PathPrefix')
      if (bad !== -1) {
        report([...pSegs, 'type'], `ReplacePrefixMatch replaces the matched prefix: every match of the rule needs a PathPrefix path, matches[${bad}] is ${ruleMatches(rule)[bad].path.type}`)
      }
    }
  }
  const mirror = f.requestMirror
  if (mirror !== undefined) {
    const mSegs: Seg[] = [...fSegs, 'requestMirror']
    checkServiceRef(mirror.backendRef, [...mSegs, 'backendRef'])
    if (mirror.percent !== undefined && mirror.fraction !== undefined) {
      report([...mSegs, 'fraction'], 'set percent or fraction, not both', 'key')
    } else if (mirror.fraction !== undefined && mirror.fraction.numerator > (mirror.fraction.denominator ?? 100)) {
      report([...mSegs, 'fraction', 'numerator'], `must not be more than the denominator (${mirror.fraction.denominator ?? 100})`)
    }
  }
}

function checkHeaderModifier(h: HeaderModifier, request: boolean, segs: Seg[], report: Report): void {
  for (const op of ['set', 'add'] as const) {
    const seen = new Set<string>()
    ;(h[op] ?? []).forEach((p, i) => {
      const n = p.name.toLowerCase()
      if (seen.has(n)) report([...segs, op, i, 'name'], `header "${p.name}" is listed twice in ${op}`)
      seen.add(n)
      if (isReservedHeader(p.name, request && op === 'set')) {
        report([...segs, op, i, 'name'], `header "${p.name}" is managed by the proxy (framing and connection headers cannot be changed)`)
      }
    })
  }
  ;(h.remove ?? []).forEach((name, i) => {
    if (isReservedHeader(name, false)) report([...segs, 'remove', i], `header "${name}" is managed by the proxy (framing and connection headers cannot be removed)`)
  })
}

function checkRegex(source: string, segs: Seg[], report: Report): void {
  try {
    new RegExp(source)
  } catch (err) {
    const m = /^Invalid regular expression: \/.*\/[a-z]*: (.*)$/s.exec(errorText(err))
    report(segs, `not a valid JavaScript regular expression: ${m?.[1] ?? errorText(err)}`)
  }
}

function msOrUndefined(s: string): number | undefined {
  try {
    return parseDuration(s)
  } catch {
    return undefined
  }
}

/**
 * Matches that can never be chosen: for every Service port, in the final precedence order of the
 * routes attached to it (for the clients of each namespace that has consumer routes), a match
 * is unreachable when an earlier match takes every request it would take.
 */
export function checkShadowing(routes: readonly Located<HTTPRoute>[], services: readonly Located<Service>[], errors: ConfigError[]): void {
  // Routes by the Service their parentRefs name ("namespace/name"): each Service ranks only the
  // routes that may attach to it (scanning every route for every Service and client namespace
  // took seconds at 10,000 Services).
  const byParent = new Map<string, number[]>()
  routes.forEach((r, i) => {
    for (const p of r.obj.spec.parentRefs) {
      const key = `${p.namespace ?? r.namespace}/${p.name}`
      const list = byParent.get(key)
      if (list === undefined) byParent.set(key, [i])
      else if (list[list.length - 1] !== i) list.push(i)
    }
  })
  const reported = new Set<string>()
  for (const svc of services) {
    const candidates = byParent.get(`${svc.namespace}/${svc.name}`)
    if (candidates === undefined) continue
    const objs = candidates.map((i) => routes[i].obj)
    const svcNs = svc.namespace
    const clientNamespaces = new Set<string | undefined>([undefined])
    for (const r of objs) if (namespaceOf(r) !== svcNs) clientNamespaces.add(namespaceOf(r))
    for (const port of routedPorts(svc.obj)) {
      for (const client of clientNamespaces) {
        const ranked = attachedMatches(objs, svc.obj, port.port, client)
        ranked.forEach((b, j) => {
          const loser = routes[candidates[b.route]]
          const key = `${candidates[b.route]}/${b.rule}/${b.match}`
          if (reported.has(key)) return
          const a = ranked.slice(0, j).find((x) => covers(x.m, b.m))
          if (a === undefined) return
          reported.add(key)
          const winner = routes[candidates[a.route]]
          const rule = winner.obj.spec.rules?.[a.rule]
          const where = winner.locate(matchSegs(rule, a.rule, a.match))
          const loserRule = loser.obj.spec.rules?.[b.rule]
          errors.push(errorAt(loser, ConfigErrorCode.INVALID, matchSegs(loserRule, b.rule, b.match),
            `unreachable: shadowed by ${winner.id}/${ruleLabel(winner.obj, a.rule)} match ${a.match} (${winner.file}:${where.line}:${where.column})`))
        })
      }
    }
  }
}

/** Where a match is: the match itself, or the rule when it has no matches (the implicit "/"). */
function matchSegs(rule: HTTPRouteRule | undefined, r: number, m: number): Seg[] {
  if (rule?.matches === undefined) return ['spec', 'rules', r]
  if (rule.matches.length === 0) return ['spec', 'rules', r, 'matches']
  return ['spec', 'rules', r, 'matches', m]
}
