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
import type { Cluster, Endpoint, RouteTable, VirtualHost } from '../../proxy/config/schema.ts'
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

export { OUTBOUND_TABLE } from '../resources/model.ts'
export const DEFAULT_ROUTE = 'default'

export interface Resources {
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
  }
}

export function translate(r: Resources, node: NodeInfo = {}): Translation {
  const nodeNs = node.namespace ?? 'default'
  const cd = node.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN
  const policies = new PolicyIndex(r.trafficPolicies)
  // Sorted, so the output does not depend on file order (a reload of the same state is a no-op).
  const services = [...r.services].sort((a, b) => (idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0))
  const clusters: Cluster[] = []
  const virtualHosts: VirtualHost[] = []
  for (const svc of services) {
    const ns = namespaceOf(svc)
    const id = idOf(svc)
    const ports = routedPorts(svc)
    const portless = ports.find((p) => p.port === 80) ?? ports[0]
    for (const port of ports) {
      const cluster = clusterName(port.port, svc.metadata.name, ns, cd)
      clusters.push({
        name: cluster,
        destination: { service: serviceFqdn(svc.metadata.name, ns, cd), namespace: ns, workload: svc.metadata.name },
        ...policies.cluster(id),
        endpoints: endpointsOf(svc, port, ports.length, r.endpointSlices),
      })
      const ranked = attachedMatches(r.httpRoutes, svc, port.port, nodeNs)
      const routes = ranked.map((x) => translateRule(r.httpRoutes[x.route], x.rule, x.m, id, policies, cd))
      if (!ranked.some((x) => isCatchAll(x.m))) {
        routes.push({ name: DEFAULT_ROUTE, match: { path: { prefix: '/' } }, backends: [{ cluster, weight: 1 }], ...policies.route(id, undefined, undefined) })
      }
      virtualHosts.push({ name: `${serviceFqdn(svc.metadata.name, ns, cd)}|${port.port}`, ...hostsOf(svc, port.port, port === portless, ns === nodeNs, cd), routes })
    }
  }
  return { routeTables: [{ name: OUTBOUND_TABLE, virtualHosts }], clusters }
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
 * Ready endpoints of the Service's slices for one port: the slice port of the same name (or, for a
 * one-port Service, a slice's only port). Readiness unset counts as ready, as in Kubernetes.
 */
function endpointsOf(svc: Service, port: ServicePort, portCount: number, slices: readonly EndpointSlice[]): Endpoint[] {
  const out: Endpoint[] = []
  const seen = new Set<string>()
  for (const s of slices) {
    if (s.metadata.labels[SERVICE_NAME_LABEL] !== svc.metadata.name || namespaceOf(s) !== namespaceOf(svc)) continue
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
