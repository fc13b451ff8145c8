// From control-plane responses to one Bootstrap the proxy can apply: decode a batch on top of
// what was accepted before (a new value; the accepted one is untouched until the batch applied),
// merge with the proxy's local settings, and validate with the checks of the static bootstrap
// file (the same JSON Schema and semantic checks: one schema governs files and the wire).
//
// Where each part of the applied config comes from:
//   control plane:    listeners, routeTables, clusters, endpoints
//   local bootstrap:  node, admin, drainTimeout, limits, telemetry (the process's own settings),
//                     and, per listener name, address and port: several sidecars on one machine
//                     (the local mode) get the same listeners from the control plane but must
//                     bind distinct ports.
import { TYPE, type ConfigResponse__Output, type Resource__Output, type TypeUrl, type WireEndpoint__Output } from '../../protos/api.ts'
import { checkBootstrapConfig } from '../config/load.ts'
import type { Bootstrap, Cluster, Endpoint, Listener, RouteTable } from '../config/schema.ts'

export type ClusterSpec = Omit<Cluster, 'endpoints'>

/** The parts of the config that the proxy's own bootstrap provides. */
export type LocalSettings = Pick<Bootstrap, 'node' | 'admin' | 'drainTimeout' | 'limits' | 'telemetry'> & {
  /** address/port overrides, matched by listener name (the rest of these listeners is ignored) */
  listeners?: readonly Listener[]
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
  const maps = {
    [TYPE.listener]: new Map<string, unknown>(prev.listeners),
    [TYPE.routeTable]: new Map<string, unknown>(prev.routeTables),
    [TYPE.cluster]: new Map<string, unknown>(prev.clusters),
    [TYPE.endpoints]: new Map<string, unknown>(prev.endpoints),
  }
  const errors: string[] = []
  for (const r of batch) {
    const type = r.typeUrl
    const m = maps[type as TypeUrl] as Map<string, unknown> | undefined
    if (m === undefined) {
      errors.push(`unknown type_url "${type}"`)
      continue
    }
    if (!r.incremental) m.clear()
    for (const name of r.removedResources) m.delete(name)
    for (const res of r.resources) {
      const v = decodeResource(type as TypeUrl, res)
      if (typeof v === 'string') errors.push(`${KIND[type]} "${res.name}" (version ${res.version}): ${v}`)
      else m.set(res.name, v)
    }
    versions.set(type as TypeUrl, r.versionInfo)
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
  if (typeof res.json !== 'string') return 'expected a json body'
  let v: unknown
  try {
    v = JSON.parse(res.json)
  } catch (err) {
    return `invalid JSON: ${(err as Error).message}`
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'the JSON body must be an object'
  const o = v as Record<string, unknown>
  if (o.name !== res.name) return `the body's name ${JSON.stringify(o.name)} differs from the resource name`
  if (type === TYPE.cluster && 'endpoints' in o) return 'a Cluster body must not carry endpoints (they come as ClusterEndpoints)'
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
  const b: Bootstrap = {
    listeners: byName(a.listeners).map((l) => {
      const o = overrides.get(l.name)
      return o === undefined ? l : { ...l, address: o.address ?? l.address, port: o.port }
    }),
    routeTables: byName(a.routeTables),
    clusters: byName(a.clusters).map((c) => ({ ...c, endpoints: a.endpoints.get(c.name) ?? [] })),
  }
  if (local.node !== undefined) b.node = local.node
  if (local.admin !== undefined) b.admin = local.admin
  if (local.drainTimeout !== undefined) b.drainTimeout = local.drainTimeout
  if (local.limits !== undefined) b.limits = local.limits
  if (local.telemetry !== undefined) b.telemetry = local.telemetry
  return b
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
