// From control-plane responses to one Bootstrap the proxy can apply: decode a batch on top of
// what was accepted before (a new value; the accepted one is untouched until the batch applied),
// merge with the proxy's local settings, and validate with the checks of the static bootstrap
// file (the same JSON Schema and semantic checks: one schema governs files and the wire).
//
// Where each part of the applied config comes from:
//   control plane:    listeners, routeTables, clusters, endpoints
//   local bootstrap:  node, admin, drainTimeout, limits, telemetry, identity (the process's own settings),
//                     and, per listener name, address and port: several sidecars on one machine
//                     (the local mode) get the same listeners from the control plane but must
//                     bind distinct ports;
//                     and the proxy's own listeners: those the control plane does not send whose
//                     route table the bootstrap defines, with that table and its clusters
//                     (Envoy's static_resources next to the dynamic ones): a sidecar's inbound
//                     listener to its own application, which no Service resource describes. A
//                     name the control plane also sends is the control plane's.
import { TYPE, type ConfigResponse__Output, type Resource__Output, type TypeUrl, type WireEndpoint__Output } from '../../protos/api.ts'
import { checkBootstrapConfig } from '../../api/load.ts'
import { bootstrapSchema } from '../../api/validator.ts'
import type { Bootstrap, Cluster, ClusterSpec, Endpoint, Listener, RouteTable } from '../../api/schema.ts'
import { fromMessage } from '../../api/wire.ts'


/** The parts of the config that the proxy's own bootstrap provides. */
export type LocalSettings = Pick<Bootstrap, 'node' | 'admin' | 'drainTimeout' | 'drainPeriod' | 'limits' | 'telemetry' | 'identity'> & {
  /**
   * by listener name: a listener the control plane sends takes only address, port and
   * interception (the pod's iptables are the pod's business, not the control plane's) from here
   * (the rest of it is ignored); any other is the proxy's own, kept as it is, when its route
   * table is one of routeTables (and not the control plane's); else it is ignored
   */
  listeners?: readonly Listener[]
  /** looked up for the proxy's own listeners only: their route tables, and those tables' clusters */
  routeTables?: readonly RouteTable[]
  clusters?: readonly Cluster[]
  /**
   * An injected pod's own IP (POD_IP) when its inbound traffic is intercepted: every port at which
   * the control plane's endpoints list this IP gets an inbound hop of its own (see podInbound).
   */
  podIp?: string
}

/** What the proxy accepted from the control plane. Immutable: a batch builds a new one. */
export interface Accepted {
  readonly versions: ReadonlyMap<TypeUrl, string>
  readonly listeners: ReadonlyMap<string, Listener>
  readonly routeTables: ReadonlyMap<string, RouteTable>
  readonly clusters: ReadonlyMap<string, ClusterSpec>
  /** ready endpoints only, in the proxy's model */
  readonly endpoints: ReadonlyMap<string, Endpoint[]>
}

export const NOTHING_ACCEPTED: Accepted = { versions: new Map(), listeners: new Map(), routeTables: new Map(), clusters: new Map(), endpoints: new Map() }

export const XDS_DECODE = 'WEFT_ERR_XDS_DECODE'

export type Outcome<T> = { ok: true; value: T } | { ok: false; code: string; errors: string[] }

const KIND: Record<string, string> = {
  [TYPE.listener]: 'Listener',
  [TYPE.routeTable]: 'RouteTable',
  [TYPE.cluster]: 'Cluster',
  [TYPE.endpoints]: 'ClusterEndpoints',
}

/** Apply a batch of responses on top of `prev`; nothing is changed when a resource is malformed. */
export function decodeBatch(prev: Accepted, batch: readonly ConfigResponse__Output[]): Outcome<Accepted> {
  const versions = new Map(prev.versions)
  // Only the maps of the types in the batch are copied; the others are shared with `prev` (an
  // Accepted is never changed), so an endpoint update does not copy thousands of clusters.
  const maps: Record<TypeUrl, ReadonlyMap<string, unknown>> = {
    [TYPE.listener]: prev.listeners,
    [TYPE.routeTable]: prev.routeTables,
    [TYPE.cluster]: prev.clusters,
    [TYPE.endpoints]: prev.endpoints,
  }
  const copied = new Set<TypeUrl>()
  const errors: string[] = []
  for (const r of batch) {
    const type = r.typeUrl as TypeUrl
    if (!Object.hasOwn(maps, type)) {
      errors.push(`unknown type_url "${type}"`)
      continue
    }
    let m: Map<string, unknown>
    if (copied.has(type)) m = maps[type] as Map<string, unknown>
    else {
      // a complete set starts empty: nothing to copy
      m = r.incremental ? new Map(maps[type]) : new Map()
      maps[type] = m
      copied.add(type)
    }
    if (!r.incremental) m.clear()
    for (const name of r.removedResources) m.delete(name)
    for (const res of r.resources) {
      const v = decodeResource(type, res)
      if (typeof v === 'string') errors.push(`${KIND[type]} "${res.name}" (version ${res.version}): ${v}`)
      else m.set(res.name, v)
    }
    versions.set(type, r.versionInfo)
  }
  if (errors.length > 0) return { ok: false, code: XDS_DECODE, errors }
  return {
    ok: true,
    value: {
      versions,
      listeners: maps[TYPE.listener] as Map<string, Listener>,
      routeTables: maps[TYPE.routeTable] as Map<string, RouteTable>,
      clusters: maps[TYPE.cluster] as Map<string, ClusterSpec>,
      endpoints: maps[TYPE.endpoints] as Map<string, Endpoint[]>,
    },
  }
}

/** The resource's body, or what is wrong with it. Shapes are checked later, with the schema. */
function decodeResource(type: TypeUrl, res: Resource__Output): unknown {
  if (type === TYPE.endpoints) {
    const ce = res.endpoints
    if (ce == null) return 'expected an endpoints body'
    if (ce.clusterName !== res.name) return `cluster_name "${ce.clusterName}" differs from the resource name`
    return ce.endpoints.filter((e) => e.ready).map(toEndpoint)
  }
  const body = type === TYPE.listener ? res.listener : type === TYPE.routeTable ? res.routeTable : res.cluster
  // the item schemas of the bootstrap's lists (as data: a sidecar from dist/ does not load typebox)
  const lists = (bootstrapSchema() as { properties: Record<string, { items: object }> }).properties
  const schema = lists[type === TYPE.listener ? 'listeners' : type === TYPE.routeTable ? 'routeTables' : 'clusters'].items
  if (body == null) return `expected a ${type === TYPE.listener ? 'listener' : type === TYPE.routeTable ? 'route_table' : 'cluster'} body`
  // the model's fields only; the schema checks the values later, with the whole config
  const o = fromMessage(schema, body) as Record<string, unknown>
  if (o.name !== res.name) return `the body's name ${JSON.stringify(o.name)} differs from the resource name`
  return o
}

function toEndpoint(e: WireEndpoint__Output): Endpoint {
  // weight 0 is proto3's "not set": the default
  return e.weight === 0 ? { address: e.address, port: e.port } : { address: e.address, port: e.port, weight: e.weight }
}

/** One Bootstrap from the local settings and the accepted resources (names sorted: stable hashes). */
export function assemble(local: LocalSettings, a: Accepted): Bootstrap {
  const byName = <T extends { name: string }>(m: ReadonlyMap<string, T>): T[] => [...m.values()].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))
  const overrides = new Map((local.listeners ?? []).map((l) => [l.name, l]))
  const own = ownResources(local, a)
  if (local.podIp !== undefined) podInbound(local.podIp, a, own, local)
  const b: Bootstrap = {
    listeners: byName(
      new Map([
        ...[...a.listeners.values()].map((l): [string, Listener] => {
          const o = overrides.get(l.name)
          if (o === undefined) return [l.name, l]
          const merged: Listener = { ...l, address: o.address ?? l.address, port: o.port }
          if (o.interception !== undefined) merged.interception = o.interception
          return [l.name, merged]
        }),
        ...own.listeners.map((l): [string, Listener] => [l.name, l]),
      ]),
    ),
    routeTables: byName(new Map([...a.routeTables, ...own.routeTables.map((t): [string, RouteTable] => [t.name, t])])),
    clusters: [
      // `inbound` is for the Service's own pods (podInbound), not the callers' clusters
      ...[...a.clusters.values()].map(({ inbound: _inbound, ...c }) => ({ ...c, endpoints: a.endpoints.get(c.name) ?? [] })),
      ...own.clusters,
    ].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)),
  }
  if (local.node !== undefined) b.node = local.node
  if (local.admin !== undefined) b.admin = local.admin
  if (local.drainTimeout !== undefined) b.drainTimeout = local.drainTimeout
  if (local.drainPeriod !== undefined) b.drainPeriod = local.drainPeriod
  if (local.limits !== undefined) b.limits = local.limits
  if (local.telemetry !== undefined) b.telemetry = local.telemetry
  if (local.identity !== undefined) b.identity = local.identity
  return b
}

/**
 * The bootstrap's own listeners (names the control plane does not send, on a route table the
 * bootstrap defines and the control plane does not send), those tables and the local clusters
 * they route or mirror to or tunnel TCP to, leaving out every cluster name the control plane sends. A reference
 * to a cluster nobody defines is left for the checks to report.
 */
function ownResources(local: LocalSettings, a: Accepted): { listeners: Listener[]; routeTables: RouteTable[]; clusters: Cluster[] } {
  const tables = new Map((local.routeTables ?? []).map((t) => [t.name, t]))
  const listeners = (local.listeners ?? []).filter((l) => !a.listeners.has(l.name) && tables.has(l.routeTable) && !a.routeTables.has(l.routeTable))
  if (listeners.length === 0) return { listeners, routeTables: [], clusters: [] }
  const clusters = new Map((local.clusters ?? []).map((c) => [c.name, c]))
  const ownTables = new Map<string, RouteTable>()
  const ownClusters = new Map<string, Cluster>()
  const keep = (name: string): void => {
    const c = clusters.get(name)
    if (c !== undefined && !a.clusters.has(name)) ownClusters.set(name, c)
  }
  for (const l of listeners) {
    const t = tables.get(l.routeTable)!
    ownTables.set(t.name, t)
    // a TCP target (protocol: tcp, or detect with a fallback) is one of its clusters too
    if (l.tcp !== undefined) keep(l.tcp.cluster)
    for (const vh of t.virtualHosts) {
      for (const r of vh.routes) {
        for (const be of r.backends ?? []) keep(be.cluster)
        if (r.mirror !== undefined) keep(r.mirror.cluster)
      }
    }
  }
  return { listeners, routeTables: [...ownTables.values()], clusters: [...ownClusters.values()] }
}

/**
 * An injected pod's inbound hops, derived at config time from what the control plane sent: for each
 * port at which some Service's endpoints list the pod's own IP (the Service's target port on this
 * pod), a listener `inbound|<port>` that binds nothing (the intercepting inbound listener hands it
 * the connections redirected to that port), with a route table and a cluster `inbound|<port>` to
 * the app on 127.0.0.1:<port>. A port the bootstrap already has a listener for is left to it.
 */
type InboundPolicy = Pick<NonNullable<ClusterSpec['inbound']>, 'mtls' | 'authorization'>

function podInbound(podIp: string, a: Accepted, own: { listeners: Listener[]; routeTables: RouteTable[]; clusters: Cluster[] }, local: LocalSettings): void {
  const ports = new Set<number>()
  for (const eps of a.endpoints.values()) for (const e of eps) if (e.address === podIp) ports.add(e.port)
  const taken = new Set((local.listeners ?? []).filter((l) => l.direction === 'inbound').map((l) => l.port))
  // the pod's workload-wide policy as the control plane resolved it (PeerAuthentication,
  // AuthorizationPolicy: `pod` of the first cluster by name that lists this IP) replaces the
  // bootstrap's on the intercepting inbound listener, which serves the ports no Service names
  const names = [...a.clusters.keys()].sort()
  let podWide: InboundPolicy | undefined
  for (const name of names) {
    const inb = a.clusters.get(name)!.inbound
    if (inb === undefined || !(a.endpoints.get(name) ?? []).some((e) => e.address === podIp)) continue
    podWide = (inb.workloads?.find((w) => w.addresses.includes(podIp)) ?? inb).pod
    if (podWide !== undefined) break
  }
  if (podWide !== undefined) {
    const i = own.listeners.findIndex((l) => l.direction === 'inbound' && l.interception === 'inbound')
    if (i >= 0) {
      // what the control plane leaves unsaid stays the bootstrap's (the pod's weft.io/inbound-mtls)
      own.listeners[i] = { ...own.listeners[i], ...(podWide.mtls !== undefined ? { mtls: podWide.mtls } : {}), ...(podWide.authorization !== undefined && podWide.authorization.length > 0 ? { authorization: podWide.authorization } : {}) }
    }
  }
  // the pod's inbound policy (mutual TLS mode, authorization) is its intercepting inbound
  // listener's: every hop it hands connections to gets the same, or the hop would be a way around it
  const pod = own.listeners.find((l) => l.direction === 'inbound' && l.interception === 'inbound') ?? (local.listeners ?? []).find((l) => l.direction === 'inbound' && l.interception === 'inbound')
  const policy: Partial<Listener> = {
    ...(pod?.mtls !== undefined ? { mtls: pod.mtls } : {}),
    ...(pod?.authorization !== undefined ? { authorization: pod.authorization } : {}),
  }
  // a Service's own inbound policy (its TrafficPolicy `inbound` block, PeerAuthentication and
  // AuthorizationPolicy resources, on its clusters) for the port at which its endpoints list this
  // pod: it wins over the pod's; the entry of `workloads` that lists the pod's IP, if any, replaces
  // the defaults; the first cluster by name that has one decides when several Services share the port
  const byPort = new Map<number, InboundPolicy>()
  for (const name of names) {
    const inb = a.clusters.get(name)!.inbound
    if (inb === undefined) continue
    for (const e of a.endpoints.get(name) ?? []) {
      if (e.address !== podIp || byPort.has(e.port)) continue
      byPort.set(e.port, inb.workloads?.find((w) => w.addresses.includes(podIp)) ?? inb)
    }
  }
  for (const port of [...ports].sort((x, y) => x - y)) {
    if (taken.has(port)) continue
    const name = `inbound|${port}`
    if (a.listeners.has(name) || a.routeTables.has(name) || a.clusters.has(name)) continue
    const svc = byPort.get(port)
    own.listeners.push({
      name, direction: 'inbound', address: '0.0.0.0', port, bindToPort: false, routeTable: name, ...policy,
      ...(svc?.mtls !== undefined ? { mtls: svc.mtls } : {}),
      ...(svc?.authorization !== undefined ? { authorization: svc.authorization } : {}),
    })
    own.routeTables.push({ name, virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: name }] }] }] })
    own.clusters.push({ name, endpoints: [{ address: '127.0.0.1', port }] })
  }
}

/**
 * The static bootstrap's checks. Errors name the resource rather than an index:
 * `RouteTable "rt": virtualHosts[0].routes[0].match.path.regex: ... (WEFT_ERR_CONFIG_INVALID)`.
 */
export function checkAssembled(b: Bootstrap): Outcome<Bootstrap> {
  const r = checkBootstrapConfig(b, 'control-plane')
  if (r.ok) return { ok: true, value: b }
  const errors = r.errors.map((e) => `${describePath(b, e.path)}: ${e.message} (${e.code})`)
  return { ok: false, code: r.errors[0]?.code ?? 'WEFT_ERR_CONFIG_INVALID', errors }
}

const TOP: Record<string, string> = { listeners: 'Listener', routeTables: 'RouteTable', clusters: 'Cluster' }

function describePath(b: Bootstrap, path: string): string {
  const m = /^(listeners|routeTables|clusters)\[(\d+)\]\.?(.*)$/.exec(path)
  if (m === null) return path === '' ? 'config' : path
  const item = (b[m[1] as 'listeners' | 'routeTables' | 'clusters'] as { name?: unknown }[])[Number(m[2])]
  const name = typeof item?.name === 'string' ? item.name : `#${m[2]}`
  return m[3] === '' ? `${TOP[m[1]]} "${name}"` : `${TOP[m[1]]} "${name}": ${m[3]}`
}
