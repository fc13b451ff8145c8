// The translation from cluster state (Services, EndpointSlices, HTTPRoutes, TrafficPolicies) to
// one proxy's routing config: a pure function, the same for the static mode and, later, the
// control plane. Its input is assumed valid (control-plane/resources/validate.ts).
//
//   one cluster per Service port:  outbound|<port>||<name>.<ns>.svc.<clusterDomain> (Istio's names),
//                                  endpoints: the ready endpoints of the Service's EndpointSlices
//   one route table "outbound":    one virtual host per Service port, answering its host names
//   routes of a virtual host:      the matches of the HTTPRoutes attached to that port, in
//                                  Gateway API precedence order, then a default route to the
//                                  Service itself (unless a rule already takes everything)
import type { Cluster, ClusterSpec, Endpoint, RouteTable, VirtualHost } from '../../api/schema.ts'
import type { ResourceSet } from '../resources/load.ts'
import {
  DEFAULT_CLUSTER_DOMAIN,
  OUTBOUND_TABLE,
  attachedMatches,
  clusterName,
  idOf,
  isCatchAll,
  namespaceOf,
  routedPorts,
  serviceFqdn,
} from '../resources/model.ts'
import { SERVICE_NAME_LABEL } from '../resources/schema.ts'
import type { EndpointSlice, HTTPRoute, Service, ServicePort, TrafficPolicy } from '../resources/schema.ts'
import { PolicyIndex, defined } from './policy.ts'
import { translateRule } from './routes.ts'
import type { SecurityInputs } from './security.ts'

export { OUTBOUND_TABLE } from '../resources/model.ts'
export const DEFAULT_ROUTE = 'default'

export interface Resources extends SecurityInputs {
  services: readonly Service[]
  endpointSlices: readonly EndpointSlice[]
  httpRoutes: readonly HTTPRoute[]
  trafficPolicies: readonly TrafficPolicy[]
}

/** The proxy the config is for. */
export interface NodeInfo {
  /** its namespace: Services there also answer to their short name; consumer routes of it apply (default "default") */
  namespace?: string
  clusterDomain?: string
}

export interface Translation {
  routeTables: RouteTable[]
  clusters: Cluster[]
}

/** The resource objects of a loaded set. */
export function resourcesOf(set: ResourceSet): Resources {
  return {
    services: set.services.map((r) => r.obj),
    endpointSlices: set.endpointSlices.map((r) => r.obj),
    httpRoutes: set.httpRoutes.map((r) => r.obj),
    trafficPolicies: set.trafficPolicies.map((r) => r.obj),
    peerAuthentications: set.peerAuthentications.map((r) => r.obj),
    authorizationPolicies: set.authorizationPolicies.map((r) => r.obj),
  }
}

export function translate(r: Resources, node: NodeInfo = {}): Translation {
  const nodeNs = node.namespace ?? 'default'
  const cd = node.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN
  const ix = indexResources(r)
  const clusters: Cluster[] = []
  const virtualHosts: VirtualHost[] = []
  for (const svc of ix.services) {
    const id = idOf(svc)
    const ports = routedPorts(svc)
    const slices = ix.slices.get(id) ?? []
    const routes = ix.routes.get(id) ?? []
    for (const port of ports) {
      clusters.push({ ...clusterOf(svc, port, ix.policies, cd), endpoints: endpointsOf(port, ports.length, slices) })
      virtualHosts.push(virtualHostOf(svc, port, ports, routes, nodeNs, ix.policies, cd))
    }
  }
  return { routeTables: [{ name: OUTBOUND_TABLE, virtualHosts }], clusters }
}

/** A cluster without its endpoints (they change far more often: see endpointsOf). */

/**
 * What translation looks up, built once per set of resources: without it every Service port
 * would scan every EndpointSlice and every HTTPRoute (10,000 Services: 10^8 steps).
 */
export interface ResourceIndex {
  /** sorted by namespace/name, so the output does not depend on input order */
  services: readonly Service[]
  /** by the Service id ("namespace/name") of their kubernetes.io/service-name label, in input order */
  slices: ReadonlyMap<string, readonly EndpointSlice[]>
  /** by the id of each Service a parentRef names, in input order (the precedence tie-break) */
  routes: ReadonlyMap<string, readonly HTTPRoute[]>
  policies: PolicyIndex
}

export function indexResources(r: Resources): ResourceIndex {
  return { services: sortServices(r.services), slices: indexSlices(r.endpointSlices), routes: indexRoutes(r.httpRoutes), policies: new PolicyIndex(r.trafficPolicies) }
}

export function sortServices(services: readonly Service[]): Service[] {
  const ids = new Map(services.map((s) => [s, idOf(s)]))
  return [...services].sort((a, b) => (ids.get(a)! < ids.get(b)! ? -1 : ids.get(a)! > ids.get(b)! ? 1 : 0))
}

export function indexSlices(slices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>()
  for (const s of slices) {
    const id = `${namespaceOf(s)}/${s.metadata.labels[SERVICE_NAME_LABEL]}`
    const list = out.get(id)
    if (list === undefined) out.set(id, [s])
    else list.push(s)
  }
  return out
}

export function indexRoutes(routes: readonly HTTPRoute[]): Map<string, HTTPRoute[]> {
  const out = new Map<string, HTTPRoute[]>()
  for (const rt of routes) {
    const ns = namespaceOf(rt)
    for (const p of rt.spec.parentRefs) {
      const id = `${p.namespace ?? ns}/${p.name}`
      const list = out.get(id)
      if (list === undefined) out.set(id, [rt])
      else if (list[list.length - 1] !== rt) list.push(rt)
    }
  }
  return out
}

/** The cluster of one Service port, without endpoints. */
export function clusterOf(svc: Service, port: ServicePort, policies: PolicyIndex, cd: string): ClusterSpec {
  const ns = namespaceOf(svc)
  return {
    name: clusterName(port.port, svc.metadata.name, ns, cd),
    destination: { service: serviceFqdn(svc.metadata.name, ns, cd), namespace: ns, workload: svc.metadata.name },
    ...(speaksHttp2(port) ? { protocol: 'http2' as const } : {}),
    ...policies.cluster(idOf(svc)),
  }
}

const H2_APP_PROTOCOLS = new Set(['grpc', 'http2', 'h2c', 'kubernetes.io/h2c', 'grpc-web'])
const H2_NAME = /^(grpc|grpc-web|http2|h2c)(-|$)/

/**
 * The Service port's endpoints speak HTTP/2 (h2c): appProtocol grpc, http2, h2c or
 * kubernetes.io/h2c, or (without appProtocol) a port name grpc, http2, h2c or one of them and a
 * dash and more (Istio's naming convention: "grpc-api").
 */
export function speaksHttp2(port: ServicePort): boolean {
  if (port.appProtocol !== undefined) return H2_APP_PROTOCOLS.has(port.appProtocol.toLowerCase())
  return port.name !== undefined && H2_NAME.test(port.name)
}

/**
 * The virtual host of one Service port for the proxies of nodeNs (undefined: of any namespace
 * that is not the Service's own and has no consumer routes to it). `routes`: the HTTPRoutes with
 * a parentRef naming the Service (others cannot attach), in input order.
 */
export function virtualHostOf(
  svc: Service,
  port: ServicePort,
  ports: readonly ServicePort[],
  routes: readonly HTTPRoute[],
  nodeNs: string | undefined,
  policies: PolicyIndex,
  cd: string,
): VirtualHost {
  const ns = namespaceOf(svc)
  const id = idOf(svc)
  const portless = ports.find((p) => p.port === 80) ?? ports[0]
  const cluster = clusterName(port.port, svc.metadata.name, ns, cd)
  const ranked = attachedMatches(routes, svc, port.port, nodeNs)
  const out = ranked.map((x) => translateRule(routes[x.route], x.rule, x.m, id, policies, cd))
  if (!ranked.some((x) => isCatchAll(x.m))) {
    out.push({ name: DEFAULT_ROUTE, match: { path: { prefix: '/' } }, backends: [{ cluster, weight: 1 }], ...policies.route(id, undefined, undefined) })
  }
  return { name: `${serviceFqdn(svc.metadata.name, ns, cd)}|${port.port}`, ...hostsOf(svc, port.port, port === portless, ns === nodeNs, cd), routes: out }
}

/**
 * The host names of one Service port: name.ns.svc.<domain>, name.ns.svc, name.ns, the bare name
 * only in the proxy's own namespace (Kubernetes DNS search path), and the cluster IP; each with
 * ":port", and without a port for one port of the Service (80 if it has it, else its first port:
 * a Host without a port names port 80, and a one-port Service is unambiguous anyway).
 * `service` is used when its expansion is exactly right (own namespace, the port-less port), so
 * the proxy knows the virtual host's Service; otherwise the names are listed.
 */
function hostsOf(svc: Service, port: number, portless: boolean, own: boolean, cd: string): Pick<VirtualHost, 'service' | 'domains'> {
  const name = svc.metadata.name
  const ns = namespaceOf(svc)
  const ips: string[] = []
  for (const ip of [svc.spec.clusterIP, ...(svc.spec.clusterIPs ?? [])]) {
    if (ip === undefined || ip === '' || ip === 'None') continue
    const host = ip.includes(':') ? `[${ip}]` : ip
    if (!ips.includes(host)) ips.push(host)
  }
  const withPort = (hosts: string[]) => hosts.flatMap((h) => (portless ? [h, `${h}:${port}`] : [`${h}:${port}`]))
  if (own && portless) {
    const service = defined({ name, namespace: ns, port, clusterDomain: cd === DEFAULT_CLUSTER_DOMAIN ? undefined : cd })
    return ips.length > 0 ? { service, domains: withPort(ips) } : { service }
  }
  const names = [serviceFqdn(name, ns, cd), `${name}.${ns}.svc`, `${name}.${ns}`, ...(own ? [name] : [])]
  return { domains: [...withPort(names), ...withPort(ips)] }
}

/**
 * Ready endpoints of the Service's slices (`slices`: those labelled with its name, in its
 * namespace) for one port: the slice port of the same name (or, for a one-port Service, a slice's
 * only port). Readiness unset counts as ready, as in Kubernetes.
 */
export function endpointsOf(port: ServicePort, portCount: number, slices: readonly EndpointSlice[]): Endpoint[] {
  const out: Endpoint[] = []
  const seen = new Set<string>()
  for (const s of slices) {
    const sPorts = (s.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP')
    const sp = sPorts.find((p) => (p.name ?? '') === (port.name ?? '')) ?? (portCount === 1 && sPorts.length === 1 ? sPorts[0] : undefined)
    if (sp === undefined) continue
    for (const e of s.endpoints) {
      if (e.conditions?.ready === false) continue
      for (const address of e.addresses) {
        const key = `${address}:${sp.port}`
        if (seen.has(key)) continue
        seen.add(key)
        out.push({ address, port: sp.port })
      }
    }
  }
  return out
}
