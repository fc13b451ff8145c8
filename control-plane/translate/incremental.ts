// translate() for many namespaces at once, again and again as the cluster state moves: the same
// output as translate(r, { namespace }) for each namespace, but
//
//   - what does not depend on the proxy's namespace (clusters, endpoints) is built once and
//     shared by every namespace's result;
//   - a virtual host is the same for every namespace except the Service's own (short names) and
//     the namespaces with consumer routes to it (GAMMA), so the route tables of 50 namespaces
//     share most of their virtual host objects;
//   - everything whose inputs are the same objects (===) as in the previous call is the same
//     object as in the previous call, so the snapshot cache neither hashes nor diffs it again.
//     An endpoint change builds one endpoint list again; route tables and clusters stay.
//
// The inputs must be treated as immutable, as sources do (an informer replaces an object that
// changed, it never edits one): an object edited in place would keep its old translation.
import type { Endpoint, RouteTable, VirtualHost } from '../../api/schema.ts'
import { DEFAULT_CLUSTER_DOMAIN, OUTBOUND_TABLE, idOf, namespaceOf, routedPorts } from '../resources/model.ts'
import { SERVICE_NAME_LABEL } from '../resources/schema.ts'
import type { EndpointSlice, HTTPRoute, Service, TrafficPolicy } from '../resources/schema.ts'
import { PolicyIndex } from './policy.ts'
import { clusterOf, endpointsOf, indexRoutes, indexSlices, sortServices, virtualHostOf } from './translate.ts'
import type { ClusterSpec } from '../../api/schema.ts'
import type { Resources } from './translate.ts'
import { WorkloadSecurity, type SecurityOptions } from './security.ts'

/** Every namespace's translation; the clusters and endpoints are shared by all of them. */
export interface MeshTranslation {
  /** one per Service port, in translate()'s order, without endpoints */
  readonly clusters: readonly ClusterSpec[]
  /** cluster name -> ready endpoints (what translate() puts in Cluster.endpoints) */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>
  /** namespace -> translate()'s route tables for the proxies of that namespace */
  readonly routeTables: ReadonlyMap<string, readonly RouteTable[]>
  /** what was built again in this call (the rest is the previous call's objects) */
  readonly rebuilt: { clusters: number; endpoints: number; virtualHosts: number; routeTables: number }
}

interface Memo<T> {
  readonly deps: readonly object[]
  readonly value: T
}

/** The memos of one port of one Service object. */
interface PortState {
  cluster?: Memo<ClusterSpec>
  endpoints?: Memo<Endpoint[]>
  /** OWN, FOREIGN, or "from:<namespace>" for a namespace with consumer routes to the Service */
  hosts: Map<string, Memo<VirtualHost>>
}

/** One Service port as the proxies of each namespace see it. */
interface PortView {
  readonly namespace: string
  readonly own: VirtualHost
  /** any other namespace without consumer routes to the Service */
  readonly foreign: VirtualHost
  readonly consumers: ReadonlyMap<string, VirtualHost> | null
}

interface Index {
  services: readonly Service[]
  slices: ReadonlyMap<string, readonly EndpointSlice[]>
  routes: ReadonlyMap<string, readonly HTTPRoute[]>
  policies: PolicyIndex
}

const NO_SLICES: readonly EndpointSlice[] = []
const NO_ROUTES: readonly HTTPRoute[] = []
const OWN = 'own'
const FOREIGN = 'foreign'

export class Translator {
  private readonly cd: string
  private readonly states = new WeakMap<Service, PortState[]>()
  private inputs: Resources | null = null
  private index: Index | null = null
  private views: readonly PortView[] = []
  private clusters: readonly ClusterSpec[] = []
  private endpoints: ReadonlyMap<string, readonly Endpoint[]> = new Map()
  private tables = new Map<string, readonly RouteTable[]>()

  private readonly security: WorkloadSecurity

  constructor(o: { clusterDomain?: string; security?: SecurityOptions } = {}) {
    this.cd = o.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN
    this.security = new WorkloadSecurity(o.security)
  }

  /** The mesh's translation; clusters with their workload security resolved (./security.ts). */
  translate(r: Resources, namespaces: readonly string[]): MeshTranslation {
    const t = this.routing(r, namespaces)
    const clusters = this.security.apply(r, t.clusters, t.endpoints)
    return clusters === t.clusters ? t : { ...t, clusters }
  }

  private routing(r: Resources, namespaces: readonly string[]): MeshTranslation {
    const rebuilt = { clusters: 0, endpoints: 0, virtualHosts: 0, routeTables: 0 }
    const fast = this.slicesOnly(r, namespaces, rebuilt)
    if (fast !== null) return fast
    const ix = this.reindex(r)
    const cd = this.cd
    const clusters: ClusterSpec[] = []
    const names: string[] = []
    const lists: Endpoint[][] = []
    const views: PortView[] = []
    for (const svc of ix.services) {
      const id = idOf(svc)
      const svcNs = namespaceOf(svc)
      const ports = routedPorts(svc)
      const slices = ix.slices.get(id) ?? NO_SLICES
      const routes = ix.routes.get(id) ?? NO_ROUTES
      const svcPolicies = ix.policies.about('Service', id)
      // a virtual host depends on the routes that may attach and on every policy on them
      const hostDeps: object[] = [...routes, ...svcPolicies]
      const consumerNs: string[] = []
      for (const rt of routes) {
        hostDeps.push(...ix.policies.about('HTTPRoute', idOf(rt)))
        const ns = namespaceOf(rt)
        if (ns !== svcNs && !consumerNs.includes(ns)) consumerNs.push(ns)
      }
      let states = this.states.get(svc)
      if (states === undefined) this.states.set(svc, (states = ports.map(() => ({ hosts: new Map() }))))
      for (let i = 0; i < ports.length; i++) {
        const port = ports[i]
        const st = states[i]
        const cluster = memo(st.cluster, svcPolicies, () => clusterOf(svc, port, ix.policies, cd))
        if (cluster !== st.cluster) rebuilt.clusters++
        const eps = memo(st.endpoints, slices, () => endpointsOf(port, ports.length, slices))
        if (eps !== st.endpoints) rebuilt.endpoints++
        st.cluster = cluster
        st.endpoints = eps
        clusters.push(cluster.value)
        names.push(cluster.value.name)
        lists.push(eps.value)
        const host = (key: string, nodeNs: string | undefined): VirtualHost => {
          const before = st.hosts.get(key)
          const m = memo(before, hostDeps, () => virtualHostOf(svc, port, ports, routes, nodeNs, ix.policies, cd))
          if (m !== before) {
            rebuilt.virtualHosts++
            st.hosts.set(key, m)
          }
          return m.value
        }
        for (const key of st.hosts.keys()) {
          if (key.startsWith('from:') && !consumerNs.includes(key.slice(5))) st.hosts.delete(key)
        }
        views.push({
          namespace: svcNs,
          own: host(OWN, svcNs),
          foreign: host(FOREIGN, undefined),
          consumers: consumerNs.length === 0 ? null : new Map(consumerNs.map((ns) => [ns, host(`from:${ns}`, ns)])),
        })
      }
    }
    if (!sameItems(clusters, this.clusters)) this.clusters = clusters
    if (!sameItems(names, [...this.endpoints.keys()]) || !sameItems(lists, [...this.endpoints.values()])) {
      this.endpoints = new Map(names.map((n, i) => [n, lists[i]]))
    }
    const viewsSame = sameViews(views, this.views)
    this.views = views
    const tables = new Map<string, readonly RouteTable[]>()
    for (const ns of namespaces) {
      const prev = this.tables.get(ns)
      if (viewsSame && prev !== undefined) {
        tables.set(ns, prev)
        continue
      }
      const hosts = views.map((v) => (v.namespace === ns ? v.own : (v.consumers?.get(ns) ?? v.foreign)))
      if (prev !== undefined && sameItems(hosts, prev[0].virtualHosts)) tables.set(ns, prev)
      else {
        rebuilt.routeTables++
        tables.set(ns, [{ name: OUTBOUND_TABLE, virtualHosts: hosts }])
      }
    }
    this.tables = tables
    return { clusters: this.clusters, endpoints: this.endpoints, routeTables: tables, rebuilt }
  }

  /**
   * The usual change, some EndpointSlices replaced and nothing else: only the endpoint lists of
   * their Services are built again (no walk over every Service port). null: another change.
   */
  private slicesOnly(r: Resources, namespaces: readonly string[], rebuilt: MeshTranslation['rebuilt']): MeshTranslation | null {
    const last = this.inputs
    const ix = this.index
    if (last === null || ix === null || r.endpointSlices === last.endpointSlices) return null
    if (!sameItems(r.services, last.services) || !sameItems(r.httpRoutes, last.httpRoutes) || !sameItems(r.trafficPolicies, last.trafficPolicies)) return null
    if (namespaces.some((ns) => !this.tables.has(ns))) return null
    const before = last.endpointSlices
    const after = r.endpointSlices
    if (before.length !== after.length) return null
    const moved: [EndpointSlice, EndpointSlice][] = []
    const limit = Math.max(16, after.length >> 6)
    for (let i = 0; i < after.length; i++) {
      if (after[i] === before[i]) continue
      // a slice that moves to another Service, or many changes at once: the full walk
      if (moved.length === limit || sliceOwner(after[i]) !== sliceOwner(before[i])) return null
      moved.push([before[i], after[i]])
    }
    const slices = ix.slices as Map<string, readonly EndpointSlice[]>
    const owners = new Set<string>()
    for (const [old, next] of moved) {
      const id = sliceOwner(next)
      slices.set(id, (slices.get(id) ?? []).map((s) => (s === old ? next : s)))
      owners.add(id)
    }
    this.inputs = r
    const endpoints = new Map(this.endpoints)
    for (const id of owners) {
      const svc = this.byId().get(id)
      if (svc === undefined) continue // slices of no Service: unused
      const states = this.states.get(svc)!
      const ports = routedPorts(svc)
      const list = slices.get(id)!
      ports.forEach((port, i) => {
        const st = states[i]
        const eps = memo(st.endpoints, list, () => endpointsOf(port, ports.length, list))
        if (eps === st.endpoints) return
        rebuilt.endpoints++
        st.endpoints = eps
        endpoints.set(st.cluster!.value.name, eps.value)
      })
    }
    if (rebuilt.endpoints > 0) this.endpoints = endpoints
    const tables = new Map<string, readonly RouteTable[]>()
    for (const ns of namespaces) tables.set(ns, this.tables.get(ns)!)
    this.tables = tables
    return { clusters: this.clusters, endpoints: this.endpoints, routeTables: tables, rebuilt }
  }

  private services: { list: readonly Service[]; byId: Map<string, Service> } | null = null

  private byId(): Map<string, Service> {
    const list = this.index!.services
    if (this.services?.list !== list) this.services = { list, byId: new Map(list.map((s) => [idOf(s), s])) }
    return this.services.byId
  }

  /** The lookups, built again only for the kinds whose objects changed. */
  private reindex(r: Resources): Index {
    const last = this.inputs
    const ix = this.index
    const same = <T>(a: readonly T[], b: readonly T[] | undefined) => b !== undefined && sameItems(a, b)
    this.index = {
      services: ix !== null && same(r.services, last?.services) ? ix.services : sortServices(r.services),
      slices: ix !== null && same(r.endpointSlices, last?.endpointSlices) ? ix.slices : indexSlices(r.endpointSlices),
      routes: ix !== null && same(r.httpRoutes, last?.httpRoutes) ? ix.routes : indexRoutes(r.httpRoutes),
      policies: ix !== null && same<TrafficPolicy>(r.trafficPolicies, last?.trafficPolicies) ? ix.policies : new PolicyIndex(r.trafficPolicies),
    }
    this.inputs = r
    return this.index
  }
}

/** "namespace/name" of the Service an EndpointSlice belongs to. */
function sliceOwner(s: EndpointSlice): string {
  return `${namespaceOf(s)}/${s.metadata.labels[SERVICE_NAME_LABEL]}`
}

/** The memo when its dependencies are the same objects, else a new one. */
function memo<T>(m: Memo<T> | undefined, deps: readonly object[], build: () => T): Memo<T> {
  return m !== undefined && sameItems(m.deps, deps) ? m : { deps, value: build() }
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function sameViews(a: readonly PortView[], b: readonly PortView[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (x.namespace !== y.namespace || x.own !== y.own || x.foreign !== y.foreign) return false
    if (x.consumers === null || y.consumers === null) {
      if (x.consumers !== y.consumers) return false
      continue
    }
    if (x.consumers.size !== y.consumers.size) return false
    for (const [ns, vh] of x.consumers) if (y.consumers.get(ns) !== vh) return false
  }
  return true
}
