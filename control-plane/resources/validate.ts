// Semantic checks across resources (after the schema passed): duplicates, references between
// resources, Service ports, TrafficPolicy targets and conflicts, durations, and the HTTPRoute
// checks of ./validate-routes.ts. The same checks serve `weft validate`, the proxy's static mode
// and, later, the control plane before it publishes a snapshot.
//
// An EndpointSlice whose Service is not defined is accepted and unused: endpoints without a
// Service are common (a Service deleted before its slices, slices managed by another tool).
import { ConfigErrorCode } from '../../api/errors.ts'
import type { ConfigError } from '../../api/errors.ts'
import { checkRoutePolicy } from '../../api/semantics.ts'
import type { Route } from '../../api/schema.ts'
import { checkDurations, dedupe, sortErrors, unknownRef } from '../../api/yaml-errors.ts'
import type { Seg, Target } from '../../api/yaml-errors.ts'
import { errorAt, parseResources, readResourceFiles } from './load.ts'
import type { Located, ParseResult, ResourceSet } from './load.ts'
import { DURATION, GATEWAY_DURATION, KINDS, ROUTE_BLOCKS, SERVICE_BLOCKS } from './schema.ts'
import type { HTTPRoute, PolicyTargetRef, Service, TrafficPolicy } from './schema.ts'
import { checkRoute, checkShadowing } from './validate-routes.ts'

/** Read, parse and check FILE|DIR paths: everything `weft validate` reports. */
export async function loadResources(paths: readonly string[]): Promise<ParseResult> {
  const { files, errors: readErrors } = await readResourceFiles(paths)
  const parsed = parseResources(files)
  const order = [...paths, ...parsed.resources.files]
  if (readErrors.length > 0 || !parsed.ok) {
    return { ok: false, errors: sortErrors([...readErrors, ...(parsed.ok ? [] : parsed.errors)], order), resources: parsed.resources }
  }
  const errors = checkResources(parsed.resources)
  return errors.length > 0 ? { ok: false, errors: sortErrors(errors, order), resources: parsed.resources } : parsed
}

/** Parse and check texts (no I/O): for tests and for sources that are not files. */
export function checkResourceTexts(files: ReadonlyArray<{ file: string; text: string }>): ParseResult {
  const parsed = parseResources(files)
  if (!parsed.ok) return parsed
  const errors = checkResources(parsed.resources)
  return errors.length > 0 ? { ok: false, errors: sortErrors(errors, parsed.resources.files), resources: parsed.resources } : parsed
}

/** Every semantic error of a set of schema-valid resources, in file order. */
export function checkResources(set: ResourceSet): ConfigError[] {
  const errors: ConfigError[] = []
  const services = unique(set.services, errors)
  unique(set.endpointSlices, errors)
  const routes = unique(set.httpRoutes, errors)
  unique(set.trafficPolicies, errors)
  unique(set.peerAuthentications, errors)
  unique(set.authorizationPolicies, errors)

  const all: Located<unknown>[] = [...set.services, ...set.endpointSlices, ...set.httpRoutes, ...set.trafficPolicies]
  for (const r of all) {
    const schema = KINDS.find((k) => k.kind === r.kind)!.schema
    checkDurations(schema, r.obj, [], (segs, message, target) => errors.push(errorAt(r, ConfigErrorCode.INVALID, segs, message, target)), [DURATION, GATEWAY_DURATION])
  }
  for (const s of set.services) checkService(s, errors)
  checkClusterIPs(set.services, errors)
  for (const r of set.httpRoutes) checkRoute(r, { errors, services })
  checkShadowing(set.httpRoutes, set.services, errors)
  checkPolicies(set.trafficPolicies, services, routes, errors)
  checkSecurity(set, errors)
  return sortErrors(dedupe(errors), set.files)
}

/**
 * PeerAuthentication and AuthorizationPolicy: what the schema cannot say (Istio's own checks):
 * port-level modes need a selector, ports are 1-65535.
 */
function checkSecurity(set: ResourceSet, errors: ConfigError[]): void {
  const badPort = (p: string) => Number(p) < 1 || Number(p) > 65535
  for (const r of set.peerAuthentications) {
    const levels = Object.keys(r.obj.spec.portLevelMtls ?? {})
    if (levels.length > 0 && r.obj.spec.selector === undefined) {
      errors.push(errorAt(r, ConfigErrorCode.INVALID, ['spec', 'portLevelMtls'], 'portLevelMtls needs a selector (Istio: a port belongs to a workload, not a namespace)', 'key'))
    }
    for (const p of levels) if (badPort(p)) errors.push(errorAt(r, ConfigErrorCode.INVALID, ['spec', 'portLevelMtls', p], `port ${p} is not 1-65535`, 'key'))
  }
  for (const r of set.authorizationPolicies) {
    ;(r.obj.spec.rules ?? []).forEach((rule, i) => {
      ;(rule.to ?? []).forEach((to, j) => {
        for (const f of ['ports', 'notPorts'] as const) {
          ;(to.operation[f] ?? []).forEach((p, k) => {
            if (badPort(p)) errors.push(errorAt(r, ConfigErrorCode.INVALID, ['spec', 'rules', i, 'to', j, 'operation', f, k], `port ${p} is not 1-65535`))
          })
        }
      })
    })
  }
}

/** First of each kind/namespace/name; later ones are errors. */
function unique<T>(items: readonly Located<T>[], errors: ConfigError[]): Map<string, Located<T>> {
  const seen = new Map<string, Located<T>>()
  for (const r of items) {
    const first = seen.get(r.id)
    if (first === undefined) {
      seen.set(r.id, r)
      continue
    }
    const at = first.locate(['metadata', 'name'])
    errors.push(errorAt(r, ConfigErrorCode.INVALID, ['metadata', 'name'], `duplicate ${r.kind} ${r.id} (first defined at ${first.file}:${at.line}:${at.column})`))
  }
  return seen
}

function checkService(s: Located<Service>, errors: ConfigError[]): void {
  const ports = s.obj.spec.ports
  const numbers = new Map<number, number>()
  const names = new Map<string, number>()
  ports.forEach((p, i) => {
    const segs: Seg[] = ['spec', 'ports', i]
    if (ports.length > 1 && p.name === undefined) {
      errors.push(errorAt(s, ConfigErrorCode.INVALID, segs, `port ${p.port} needs a name: every port of a Service with more than one port is named`))
    }
    const key = p.port * 4 + ['TCP', 'UDP', 'SCTP'].indexOf(p.protocol ?? 'TCP')
    const first = numbers.get(key)
    if (first !== undefined) errors.push(errorAt(s, ConfigErrorCode.INVALID, [...segs, 'port'], `duplicate port ${p.port} (also ports[${first}])`))
    else numbers.set(key, i)
    if (p.name !== undefined) {
      const firstName = names.get(p.name)
      if (firstName !== undefined) errors.push(errorAt(s, ConfigErrorCode.INVALID, [...segs, 'name'], `duplicate port name "${p.name}" (also ports[${firstName}])`))
      else names.set(p.name, i)
    }
  })
}

/** A cluster IP is one Service's host name: two Services cannot share it. */
function checkClusterIPs(services: readonly Located<Service>[], errors: ConfigError[]): void {
  const owners = new Map<string, { svc: Located<Service>; segs: Seg[] }>()
  for (const s of services) {
    const ips: Array<[string, Seg[]]> = []
    if (s.obj.spec.clusterIP !== undefined) ips.push([s.obj.spec.clusterIP, ['spec', 'clusterIP']])
    ;(s.obj.spec.clusterIPs ?? []).forEach((ip, i) => ips.push([ip, ['spec', 'clusterIPs', i]]))
    for (const [ip, segs] of ips) {
      if (ip === '' || ip === 'None') continue
      const first = owners.get(ip)
      if (first === undefined) owners.set(ip, { svc: s, segs })
      else if (first.svc !== s) {
        const at = first.svc.locate(first.segs)
        errors.push(errorAt(s, ConfigErrorCode.INVALID, segs, `clusterIP ${ip} is also the address of Service ${first.svc.id} (${first.svc.file}:${at.line}:${at.column})`))
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// TrafficPolicy.

const HTTPROUTE_GROUP = 'gateway.networking.k8s.io'

/** What a targetRef designates, as a key: "Service shop/reviews", "HTTPRoute shop/reviews#canary". */
export function targetKey(policyNs: string, t: PolicyTargetRef): string {
  return `${t.kind} ${policyNs}/${t.name}${t.sectionName === undefined ? '' : `#${t.sectionName}`}`
}

function checkPolicies(
  policies: readonly Located<TrafficPolicy>[],
  services: Map<string, Located<Service>>,
  routes: Map<string, Located<HTTPRoute>>,
  errors: ConfigError[],
): void {
  // target key + block -> the policy that set it first (in file order)
  const owners = new Map<string, Located<TrafficPolicy>>()
  for (const p of policies) {
    const report = (segs: Seg[], message: string, target?: Target, code: ConfigErrorCode = ConfigErrorCode.INVALID) =>
      errors.push(errorAt(p, code, segs, message, target))
    const spec = p.obj.spec
    const targets = new Map<string, number>()
    spec.targetRefs.forEach((t, i) => {
      const segs: Seg[] = ['spec', 'targetRefs', i]
      const id = `${p.namespace}/${t.name}`
      const wantGroup = t.kind === 'Service' ? ['', 'core'] : [HTTPROUTE_GROUP]
      if (!wantGroup.includes(t.group)) {
        report([...segs, 'group'], t.kind === 'Service' ? 'the group of a Service is "" (or "core")' : `the group of an HTTPRoute is "${HTTPROUTE_GROUP}"`)
      }
      if (t.kind === 'Service') {
        if (!services.has(id)) report([...segs, 'name'], unknownRef('Service', id, services.keys()), 'value', ConfigErrorCode.REF)
        if (t.sectionName !== undefined) {
          report([...segs, 'sectionName'], 'sectionName is only supported for HTTPRoute targets (a rule name): a policy on a Service applies to all its ports', 'key')
        }
      } else {
        const route = routes.get(id)
        if (route === undefined) report([...segs, 'name'], unknownRef('HTTPRoute', id, routes.keys()), 'value', ConfigErrorCode.REF)
        else if (t.sectionName !== undefined && !(route.obj.spec.rules ?? []).some((r) => r.name === t.sectionName)) {
          const named = (route.obj.spec.rules ?? []).flatMap((r) => (r.name === undefined ? [] : [r.name]))
          report([...segs, 'sectionName'], `HTTPRoute ${id} has no rule named "${t.sectionName}" (${named.length > 0 ? `its rules: ${[...new Set(named)].join(', ')}` : 'its rules have no names'})`, 'value', ConfigErrorCode.REF)
        }
      }
      const key = targetKey(p.namespace, t)
      const dup = targets.get(key)
      if (dup !== undefined) report(segs, `the same target as targetRefs[${dup}]`)
      else targets.set(key, i)
    })

    const blocks = [...SERVICE_BLOCKS, ...ROUTE_BLOCKS].filter((b) => spec[b] !== undefined)
    if (blocks.length === 0) {
      report(['spec'], `the policy sets nothing: add at least one of ${[...SERVICE_BLOCKS, ...ROUTE_BLOCKS].join(', ')}`)
    }
    const nonService = spec.targetRefs.findIndex((t) => t.kind !== 'Service')
    for (const b of SERVICE_BLOCKS) {
      if (spec[b] !== undefined && nonService !== -1) {
        const t = spec.targetRefs[nonService]
        report(['spec', b], `${b} applies to Services only, but targetRefs[${nonService}] is ${t.kind} ${t.name}`, 'key')
      }
    }
    if (spec.loadBalancer !== undefined) {
      const lb = spec.loadBalancer
      if ((lb.policy === 'ringHash' || lb.policy === 'maglev') && lb.hashHeader === undefined) {
        report(['spec', 'loadBalancer', 'policy'], `policy "${lb.policy}" requires loadBalancer.hashHeader (the request header whose value picks the endpoint)`)
      }
    }
    // The route blocks are the proxy's own route fields: the proxy's checks, at this policy's fields.
    checkRoutePolicy({ retry: spec.retry, rateLimit: spec.rateLimit, fault: spec.fault } as Route, ['spec'], (segs, message, target) => report(segs, message, target))

    for (const b of blocks) {
      for (const [key] of targets) {
        const slot = `${key} ${b}`
        const owner = owners.get(slot)
        if (owner === undefined) {
          owners.set(slot, p)
          continue
        }
        const at = owner.locate(['spec', b], 'key')
        report(['spec', b], `${b} for ${key.replace('#', ' rule ')} is also set by TrafficPolicy ${owner.id} (${owner.file}:${at.line}:${at.column})`, 'key')
      }
    }
  }
}
