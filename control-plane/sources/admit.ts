// Admission of the Kubernetes state: the cross-resource checks of `weft validate`
// (../resources/validate.ts) applied to what the informers hold. In a cluster one bad object
// must not hold back everyone else's changes (a file edit can be fixed and saved again; another
// team's HTTPRoute cannot), so the objects the errors name are left out, the rest checked again,
// and what was left out is reported, as Kubernetes reports an HTTPRoute that does not resolve.
// Each object of the source has a file of its own ("k8s:Kind/namespace/name"), which is how an
// error names it.
import type { ConfigError } from '../../proxy/config/errors.ts'
import type { ResourceSet } from '../resources/load.ts'
import { checkResources } from '../resources/validate.ts'

export interface Admission {
  /** the set without the objects that failed the checks */
  resources: ResourceSet
  /** every error of the objects left out */
  errors: ConfigError[]
  /** the files ("k8s:Kind/ns/name") of the objects left out */
  excluded: string[]
}

export function admitResources(set: ResourceSet): Admission {
  const excluded = new Set<string>()
  const all: ConfigError[] = []
  let current = set
  // Leaving an object out can break another (a route whose Service went): check again, at most
  // once per object that can go.
  for (let round = 0; round < 1 + countOf(set); round++) {
    const errors = checkResources(current)
    if (errors.length === 0) break
    const before = excluded.size
    for (const e of errors) excluded.add(e.file)
    all.push(...errors)
    if (excluded.size === before) break // errors that name no object of the set: nothing more to leave out
    current = without(current, excluded)
  }
  return { resources: current, errors: all, excluded: [...excluded].sort() }
}

function countOf(s: ResourceSet): number {
  return s.services.length + s.endpointSlices.length + s.httpRoutes.length + s.trafficPolicies.length
}

function without(s: ResourceSet, files: ReadonlySet<string>): ResourceSet {
  const keep = <T extends { file: string }>(xs: T[]): T[] => xs.filter((x) => !files.has(x.file))
  return {
    ...s,
    services: keep(s.services),
    endpointSlices: keep(s.endpointSlices),
    httpRoutes: keep(s.httpRoutes),
    trafficPolicies: keep(s.trafficPolicies),
  }
}
