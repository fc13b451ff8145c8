// Workload security, resolved per cluster at config time: which identities may serve a Service
// (secure naming, and mutual TLS turned on by itself when every endpoint is a pod with a sidecar),
// and what the Service's own sidecars apply to the calls they receive (PeerAuthentication modes
// and AuthorizationPolicies, Istio's security.istio.io/v1 semantics).
//
//   tls      a cluster whose ready endpoints are all pods with a Weft sidecar (annotation
//            weft.io/status), when the mesh has a CA (trustDomain set): mode mutual, identities the
//            SPIFFE IDs of those pods' ServiceAccounts. A TrafficPolicy `tls` block wins; one with
//            mode mutual and no identities gets them filled in.
//   inbound  for each endpoint (a pod, by IP; without Pods, as in local mode, a workload of the
//            Service's namespace without labels), its mTLS mode at the endpoint's port and its
//            authorization policies:
//              mode: PeerAuthentication with a matching selector (portLevelMtls at the port, then
//                    its mtls) > the Service's TrafficPolicy `inbound.mtls` > the namespace's
//                    PeerAuthentication without selector > the root namespace's (mesh-wide);
//                    UNSET passes to the next; none: the proxy's default (permissive)
//              authorization: every AuthorizationPolicy of the root namespace (mesh-wide, selector
//                    matched in every namespace) and of the pod's namespace (all, or by selector),
//                    then the TrafficPolicy's `inbound.authorization`
//            and `pod`: the workload-wide part (its PeerAuthentication mode without port levels,
//            its AuthorizationPolicies), which the pod's sidecar gives its other inbound ports.
//            The most common policy among the endpoints (on a tie, the namespace's) is the
//            cluster's default; pods with another one are listed in `inbound.workloads`.
//
// Everything is a pure function of its inputs, memoized by object identity per cluster, so an
// unchanged cluster stays the same object (the snapshot cache does not hash it again).
import type { AuthorizationPolicy as ProxyAuthz, AuthorizationRule, ClusterSpec, Endpoint } from '../../api/schema.ts'
import type { Pod } from '../sources/cluster-state.ts'
import type { AuthorizationPolicy, PeerAuthentication } from '../resources/schema.ts'
import { namespaceOf } from '../resources/model.ts'

export const DEFAULT_ROOT_NAMESPACE = 'weft-system'
/** The injector's annotation on a pod it gave a sidecar (control-plane/inject/annotations.ts). */
export const SIDECAR_STATUS = 'weft.io/status'

export interface SecurityOptions {
  /** the mesh-wide policies' namespace (Istio's rootNamespace) */
  rootNamespace?: string
  /** set when the mesh has a CA: turns on mutual TLS to Services whose endpoints all have sidecars */
  trustDomain?: string
}

export interface SecurityInputs {
  pods?: readonly Pod[]
  peerAuthentications?: readonly PeerAuthentication[]
  authorizationPolicies?: readonly AuthorizationPolicy[]
}

type Mode = NonNullable<NonNullable<ClusterSpec['inbound']>['mtls']>
interface Effective {
  mtls?: Mode
  authorization?: ProxyAuthz[]
  /** the workload-wide part (no port-level mode, no Service policy): for the pod's other ports */
  pod?: { mtls?: Mode; authorization?: ProxyAuthz[] }
}

interface Workload {
  namespace: string
  labels: Readonly<Record<string, string>>
  /** spiffe ID, when the pod has a sidecar and the mesh a trust domain */
  identity?: string
}

const MODES: Record<string, Mode | undefined> = { DISABLE: 'disable', PERMISSIVE: 'permissive', STRICT: 'strict', UNSET: undefined }
const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({})

/** The compiled policies and the pod index of one set of inputs. */
class Index {
  readonly byIp = new Map<string, Workload>()
  /** namespace -> PeerAuthentications, oldest first (Istio: the oldest wins a conflict) */
  private readonly peer = new Map<string, { selected: PeerAuthentication[]; wide: PeerAuthentication | undefined }>()
  /** namespace -> [selector (null: all), compiled policy] in namespace/name order */
  private readonly authz = new Map<string, [Record<string, string> | null, ProxyAuthz][]>()
  private readonly root: string

  constructor(i: SecurityInputs, o: SecurityOptions) {
    this.root = o.rootNamespace ?? DEFAULT_ROOT_NAMESPACE
    for (const p of i.pods ?? []) {
      const w: Workload = { namespace: p.metadata.namespace, labels: strings(p.metadata.labels) }
      if (o.trustDomain !== undefined && strings(p.metadata.annotations)[SIDECAR_STATUS] !== undefined) {
        w.identity = `spiffe://${o.trustDomain}/ns/${p.metadata.namespace}/sa/${p.spec.serviceAccountName ?? 'default'}`
      }
      // a pod that finished keeps its IP in the API for a while, and the IP may be reused
      if (p.status.phase === 'Succeeded' || p.status.phase === 'Failed') continue
      const ips = new Set([p.status.podIP, ...(p.status.podIPs ?? []).map((x) => x.ip)])
      for (const ip of ips) if (ip !== undefined && ip !== '') this.byIp.set(ip, w)
    }
    for (const pa of [...(i.peerAuthentications ?? [])].sort(oldestFirst)) {
      const ns = namespaceOf(pa)
      let e = this.peer.get(ns)
      if (e === undefined) this.peer.set(ns, (e = { selected: [], wide: undefined }))
      if (pa.spec.selector === undefined) e.wide ??= pa
      else e.selected.push(pa)
    }
    const aps = [...(i.authorizationPolicies ?? [])].sort((a, b) => cmp(`${namespaceOf(a)}/${a.metadata.name}`, `${namespaceOf(b)}/${b.metadata.name}`))
    for (const ap of aps) {
      const ns = namespaceOf(ap)
      const list = this.authz.get(ns) ?? []
      list.push([ap.spec.selector === undefined ? null : strings(ap.spec.selector.matchLabels), compileAuthz(ap)])
      this.authz.set(ns, list)
    }
  }

  get empty(): boolean {
    return this.peer.size === 0 && this.authz.size === 0
  }

  effective(w: Workload, port: number, service: ClusterSpec['inbound']): Effective {
    const out: Effective = this.only(w, port, service)
    const pod = this.only(w, undefined, undefined)
    if (pod.mtls !== undefined || pod.authorization !== undefined) out.pod = pod
    return out
  }

  private only(w: Workload, port: number | undefined, service: ClusterSpec['inbound']): Effective {
    const out: Effective = {}
    const mode = this.mode(w, port, service?.mtls)
    if (mode !== undefined) out.mtls = mode
    const authz: ProxyAuthz[] = []
    const add = (ns: string, anyNamespace: boolean) => {
      for (const [sel, p] of this.authz.get(ns) ?? []) {
        if (sel === null ? anyNamespace || w.namespace === ns : matches(sel, w.labels) && (anyNamespace || w.namespace === ns)) authz.push(p)
      }
    }
    add(this.root, true)
    if (w.namespace !== this.root) add(w.namespace, false)
    if (service?.authorization !== undefined) authz.push(...service.authorization)
    if (authz.length > 0) out.authorization = authz
    return out
  }

  private mode(w: Workload, port: number | undefined, service: Mode | undefined): Mode | undefined {
    const own = this.peer.get(w.namespace)
    for (const pa of own?.selected ?? []) {
      if (!matches(strings(pa.spec.selector!.matchLabels), w.labels)) continue
      const levels = pa.spec.portLevelMtls as Record<string, { mode?: string }> | undefined
      const m = (port === undefined ? undefined : MODES[levels?.[String(port)]?.mode ?? 'UNSET']) ?? MODES[pa.spec.mtls?.mode ?? 'UNSET']
      if (m !== undefined) return m
      break // the oldest selecting policy decides; UNSET passes to the parents
    }
    if (service !== undefined) return service
    const ns = MODES[own?.wide?.spec.mtls?.mode ?? 'UNSET']
    if (ns !== undefined) return ns
    return MODES[this.peer.get(this.root)?.wide?.spec.mtls?.mode ?? 'UNSET']
  }
}

/** Istio's AuthorizationPolicy as the proxy's listener authorization policy ("namespace/name"). */
export function compileAuthz(ap: AuthorizationPolicy): ProxyAuthz {
  const out: ProxyAuthz = { name: `${namespaceOf(ap)}.${ap.metadata.name}`, action: ap.spec.action ?? 'ALLOW' }
  if (ap.spec.rules === undefined) return out
  out.rules = ap.spec.rules.map((r) => {
    const rule: AuthorizationRule = {}
    if (r.from !== undefined) rule.from = r.from.map((f) => ({ ...f.source }))
    if (r.to !== undefined) {
      rule.to = r.to.map((t) => {
        const { ports, notPorts, ...rest } = t.operation
        return { ...rest, ...(ports !== undefined ? { ports: ports.map(Number) } : {}), ...(notPorts !== undefined ? { notPorts: notPorts.map(Number) } : {}) }
      })
    }
    if (r.when !== undefined) {
      rule.when = r.when.map((c) => ({
        header: c.key.slice('request.headers['.length, -1).toLowerCase(),
        ...(c.values !== undefined ? { values: c.values } : {}),
        ...(c.notValues !== undefined ? { notValues: c.notValues } : {}),
      }))
    }
    return rule
  })
  return out
}

/** A TypeBox string map (typed `object`). */
function strings(m: object | undefined): Readonly<Record<string, string>> {
  return (m as Record<string, string> | undefined) ?? NO_LABELS
}

function matches(sel: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k in sel) if (labels[k] !== sel[k]) return false
  return true
}

function oldestFirst(a: PeerAuthentication, b: PeerAuthentication): number {
  const t = (x: PeerAuthentication) => {
    const v = x.metadata.creationTimestamp === undefined ? NaN : Date.parse(x.metadata.creationTimestamp)
    return Number.isNaN(v) ? Infinity : v
  }
  return t(a) - t(b) || cmp(`${namespaceOf(a)}/${a.metadata.name}`, `${namespaceOf(b)}/${b.metadata.name}`)
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

interface Memo {
  readonly cluster: ClusterSpec
  readonly endpoints: readonly Endpoint[] | undefined
  readonly index: Index
  readonly out: ClusterSpec
}

/** The security pass of the translator: clusters in, clusters with `tls` and `inbound` resolved out. */
export class WorkloadSecurity {
  private readonly o: SecurityOptions
  private inputs: SecurityInputs = {}
  private index: Index
  private readonly memos = new WeakMap<ClusterSpec, Memo>()

  constructor(o: SecurityOptions = {}) {
    this.o = o
    this.index = new Index({}, o)
  }

  apply(i: SecurityInputs, clusters: readonly ClusterSpec[], endpoints: ReadonlyMap<string, readonly Endpoint[]>): readonly ClusterSpec[] {
    if (!same(i.pods, this.inputs.pods) || !same(i.peerAuthentications, this.inputs.peerAuthentications) || !same(i.authorizationPolicies, this.inputs.authorizationPolicies)) {
      this.index = new Index(i, this.o)
    }
    this.inputs = i
    const ix = this.index
    // nothing to resolve: the clusters as translated (no CA, no policies)
    if (ix.empty && this.o.trustDomain === undefined) return clusters
    const out = clusters.map((c) => {
      const eps = endpoints.get(c.name)
      const m = this.memos.get(c)
      if (m !== undefined && m.endpoints === eps && m.index === ix) return m.out
      const next = resolve(ix, c, eps ?? [], this.o.trustDomain !== undefined)
      const kept = m !== undefined && sameJson(m.out, next) ? m.out : next
      this.memos.set(c, { cluster: c, endpoints: eps, index: ix, out: kept })
      return kept
    })
    // the same array as last time when every cluster is the same object
    if (same(out, this.last)) return this.last
    this.last = same(out, clusters) ? clusters : out
    return this.last
  }

  private last: readonly ClusterSpec[] = []
}

function resolve(ix: Index, c: ClusterSpec, eps: readonly Endpoint[], autoTls: boolean): ClusterSpec {
  const ns = c.destination?.namespace ?? 'default'
  const fallback: Workload = { namespace: ns, labels: NO_LABELS }
  let tls = c.tls
  if (autoTls && eps.length > 0 && tls?.mode !== 'disable' && tls?.identities === undefined) {
    const ids = new Set<string>()
    let meshed = true
    for (const e of eps) {
      const id = ix.byIp.get(e.address)?.identity
      if (id === undefined) {
        meshed = false
        break
      }
      ids.add(id)
    }
    if (meshed) tls = { mode: 'mutual', identities: [...ids].sort() }
  }
  let inbound = c.inbound
  if (!ix.empty && eps.length > 0) {
    // group the endpoints by their effective policy; the largest group is the default
    const groups = new Map<string, { e: Effective; key: string; addresses: string[] }>()
    for (const e of eps) {
      const eff = ix.effective(ix.byIp.get(e.address) ?? fallback, e.port, c.inbound)
      const key = JSON.stringify(eff)
      const g = groups.get(key)
      if (g === undefined) groups.set(key, { e: eff, key, addresses: [e.address] })
      else if (!g.addresses.includes(e.address)) g.addresses.push(e.address)
    }
    // ties: the policy of the namespace (of a workload no selector picks) is the default
    const plain = JSON.stringify(ix.effective(fallback, eps[0].port, c.inbound))
    const sorted = [...groups.values()].sort((a, b) => b.addresses.length - a.addresses.length || (a.key === plain ? 0 : 1) - (b.key === plain ? 0 : 1) || cmp(a.addresses[0], b.addresses[0]))
    const [first, ...rest] = sorted
    const next: NonNullable<ClusterSpec['inbound']> = { ...first.e }
    if (rest.length > 0) next.workloads = rest.map((g) => ({ addresses: g.addresses.sort(), ...g.e }))
    inbound = next.mtls === undefined && next.authorization === undefined && next.workloads === undefined ? undefined : next
  }
  if (tls === c.tls && inbound === c.inbound) return c
  const { tls: _t, inbound: _i, ...rest } = c
  return { ...rest, ...(tls !== undefined ? { tls } : {}), ...(inbound !== undefined ? { inbound } : {}) }
}

function same<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): boolean {
  if (a === b) return true
  if (a === undefined || b === undefined || a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b)
}
