// TrafficPolicy blocks, resolved for one cluster or one route. Blocks are not merged field by
// field: the most specific policy that sets a block gives the whole block.
//   cluster blocks (loadBalancer, connectionPool, circuitBreaker, outlierDetection,
//     adaptiveConcurrency, tls, inbound): the policy
//     targeting the Service;
//   route blocks (retry, timeout, rateLimit, fault): HTTPRoute rule (sectionName) > HTTPRoute >
//     the Service the route is attached to. The rule's own timeouts and retry beat all of them
//     (./routes.ts).
// Conflicting policies are rejected by validation; should two still meet here, the first wins.
import type { Cluster, Route } from '../../api/schema.ts'
import { namespaceOf } from '../resources/model.ts'
import type { TrafficPolicy } from '../resources/schema.ts'

export type RouteBlocks = Pick<Route, 'retry' | 'timeout' | 'rateLimit' | 'globalRateLimit' | 'fault'>
export type ClusterBlocks = Pick<Cluster, 'lb' | 'pool' | 'circuitBreaker' | 'outlierDetection' | 'adaptiveConcurrency' | 'tls' | 'inbound'>

const ROUTE_BLOCKS = ['retry', 'timeout', 'rateLimit', 'globalRateLimit', 'fault'] as const
const NONE: readonly TrafficPolicy[] = []

/** Policies indexed by what they target: "Service ns/name", "HTTPRoute ns/name", "HTTPRoute ns/name#rule". */
export class PolicyIndex {
  private readonly byTarget = new Map<string, TrafficPolicy[]>()
  // "Service ns/name", "HTTPRoute ns/name" (any rule) -> policies: what a translation depends on
  private readonly byObject = new Map<string, TrafficPolicy[]>()

  constructor(policies: readonly TrafficPolicy[]) {
    const add = (m: Map<string, TrafficPolicy[]>, key: string, p: TrafficPolicy) => {
      const list = m.get(key) ?? []
      if (!list.includes(p)) list.push(p)
      m.set(key, list)
    }
    for (const p of policies) {
      const ns = namespaceOf(p)
      for (const t of p.spec.targetRefs) {
        add(this.byTarget, `${t.kind} ${ns}/${t.name}${t.sectionName === undefined ? '' : `#${t.sectionName}`}`, p)
        add(this.byObject, `${t.kind} ${ns}/${t.name}`, p)
      }
    }
  }

  /** Every policy with a target on this Service or HTTPRoute (any rule), in input order. */
  about(kind: 'Service' | 'HTTPRoute', id: string): readonly TrafficPolicy[] {
    return this.byObject.get(`${kind} ${id}`) ?? NONE
  }

  /** The cluster fields of a Service's policies. */
  cluster(serviceId: string): ClusterBlocks {
    const out: ClusterBlocks = {}
    for (const p of this.byTarget.get(`Service ${serviceId}`) ?? []) {
      const s = p.spec
      if (out.lb === undefined && s.loadBalancer !== undefined) out.lb = structuredClone(s.loadBalancer)
      if (out.pool === undefined && s.connectionPool !== undefined) {
        const c = s.connectionPool
        out.pool = defined({
          maxConnections: c.maxConnections,
          maxPending: c.maxPendingRequests,
          maxRequests: c.maxRequests,
          connectTimeout: c.connectTimeout,
          idleTimeout: c.idleTimeout,
        })
      }
      if (out.circuitBreaker === undefined && s.circuitBreaker !== undefined) out.circuitBreaker = structuredClone(s.circuitBreaker)
      if (out.outlierDetection === undefined && s.outlierDetection !== undefined) out.outlierDetection = structuredClone(s.outlierDetection)
      if (out.adaptiveConcurrency === undefined && s.adaptiveConcurrency !== undefined) out.adaptiveConcurrency = structuredClone(s.adaptiveConcurrency)
      if (out.tls === undefined && s.tls !== undefined) out.tls = structuredClone(s.tls)
      if (out.inbound === undefined && s.inbound !== undefined) out.inbound = structuredClone(s.inbound)
    }
    return out
  }

  /**
   * The route fields for a route made from rule `rule` (its name, if any) of HTTPRoute routeId,
   * attached to Service serviceId; routeId undefined: the Service's default route.
   */
  route(serviceId: string, routeId: string | undefined, rule: string | undefined): RouteBlocks {
    const levels: string[] = []
    if (routeId !== undefined) {
      if (rule !== undefined) levels.push(`HTTPRoute ${routeId}#${rule}`)
      levels.push(`HTTPRoute ${routeId}`)
    }
    levels.push(`Service ${serviceId}`)
    const out: RouteBlocks = {}
    for (const b of ROUTE_BLOCKS) {
      for (const level of levels) {
        const p = (this.byTarget.get(level) ?? []).find((x) => x.spec[b] !== undefined)
        if (p !== undefined) {
          Object.assign(out, { [b]: structuredClone(p.spec[b]) })
          break
        }
      }
    }
    return out
  }
}

/** The object without its undefined fields (the proxy config never carries explicit undefineds). */
export function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}
