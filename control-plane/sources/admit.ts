// Admission of the Kubernetes state: the cross-resource checks of `weft validate`
// (../resources/validate.ts) applied to what the informers hold. In a cluster one bad object
// must not hold back everyone else's changes (a file edit can be fixed and saved again; another
// team's HTTPRoute cannot), so the objects the errors name are left out, the rest checked again,
// and what was left out is reported, as Kubernetes reports an HTTPRoute that does not resolve.
// Each object of the source has a file of its own ("k8s:Kind/namespace/name"), which is how an
// error names it.
import type { ConfigError } from '../../api/errors.ts'
import type { ResourceSet } from '../resources/load.ts'
import { checkResources } from '../resources/validate.ts'

export interface Admission {
  /** the set without the objects that failed the checks */
  resources: ResourceSet
  /** every error of the objects left out */
  errors: ConfigError[]
  /**
   * Findings that leave nothing out: a route rule shadowed by an earlier one is harmless in a
   * cluster (it never matches; the API server accepts it too), and leaving out the route would
   * take its reachable rules with it. `weft validate` still reports it as an error.
   */
  warnings: ConfigError[]
  /** the files ("k8s:Kind/ns/name") of the objects left out */
  excluded: string[]
  /** the input it was computed from (for the next call's fast path) */
  readonly input: ResourceSet
}

/**
 * `previous`: the admission of the last state. When only EndpointSlices changed (the common
 * case: pods come and go) and every other object is the very same object as then (informers
 * replace an object when it changes, never edit it), the checks are not run again: none of them
 * reads EndpointSlices except for duplicate names, which the API server rules out. At 10,000
 * Services the full checks take about a second; an endpoint change must not wait for them.
 */
export function admitResources(set: ResourceSet, previous?: Admission): Admission {
  if (previous !== undefined && onlySlicesChanged(previous.input, set)) {
    const excluded = new Set(previous.excluded)
    return {
      ...previous,
      resources: { ...previous.resources, endpointSlices: set.endpointSlices.filter((x) => !excluded.has(x.file)) },
      input: set,
    }
  }
  const excluded = new Set<string>()
  const all: ConfigError[] = []
  let current = set
  // Leaving an object out can break another (a route whose Service went): check again, at most
  // once per object that can go.
  let warnings: ConfigError[] = []
  for (let round = 0; round < 1 + countOf(set); round++) {
    const found = checkResources(current)
    warnings = found.filter(isShadowed)
    const errors = found.filter((e) => !isShadowed(e))
    if (errors.length === 0) break
    const before = excluded.size
    for (const e of errors) excluded.add(e.file)
    all.push(...errors)
    if (excluded.size === before) break // errors that name no object of the set: nothing more to leave out
    current = without(current, excluded)
  }
  return { resources: current, errors: all, warnings, excluded: [...excluded].sort(), input: set }
}

/** validate-routes.ts checkShadowing's finding */
function isShadowed(e: ConfigError): boolean {
  return e.message.startsWith('unreachable: shadowed by ')
}

function onlySlicesChanged(a: ResourceSet, b: ResourceSet): boolean {
  return same(a.services, b.services) && same(a.httpRoutes, b.httpRoutes) && same(a.trafficPolicies, b.trafficPolicies) &&
    same(a.peerAuthentications, b.peerAuthentications) && same(a.authorizationPolicies, b.authorizationPolicies)
}

function same<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function countOf(s: ResourceSet): number {
  return s.services.length + s.endpointSlices.length + s.httpRoutes.length + s.trafficPolicies.length + s.peerAuthentications.length + s.authorizationPolicies.length
}

function without(s: ResourceSet, files: ReadonlySet<string>): ResourceSet {
  const keep = <T extends { file: string }>(xs: T[]): T[] => xs.filter((x) => !files.has(x.file))
  return {
    ...s,
    services: keep(s.services),
    endpointSlices: keep(s.endpointSlices),
    httpRoutes: keep(s.httpRoutes),
    trafficPolicies: keep(s.trafficPolicies),
    peerAuthentications: keep(s.peerAuthentications),
    authorizationPolicies: keep(s.authorizationPolicies),
  }
}
