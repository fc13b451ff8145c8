// inject(workload, mesh): the pure function behind both front doors (the admission webhook and
// `weft inject`). It returns a new object and never mutates its input; uninject() undoes it
// exactly, from what the annotation weft.io/status and the proxy's WEFT_APP_PROBES env record.
//
// The injected pod (native sidecar layout, the default):
//   initContainers: [weft-init, weft-proxy (restartPolicy: Always, startupProbe /ready), ...the pod's own]
//   containers: the pod's own, their HTTP probes rewritten to the proxy's admin port
//               (GET /app-health/<container>/<livez|readyz|startupz>, forwarded by the proxy to the app)
// classic (weft.io/sidecar-mode: classic, clusters before 1.29): weft-proxy is containers[0] with a
// postStart hook that waits for /ready (the kubelet starts the next container only after it).
import { A, podOptions, type PodOptions } from './annotations.ts'
import { copyToTemplate, podTemplate, type PodTemplate } from './template.ts'
import type { AppProbe, Container, HttpGetAction, InjectResult, InjectStatus, KubeObject, MeshConfig, PodSpec, Probe, SkipReason } from './types.ts'

export const INIT_NAME = 'weft-init'
export const PROXY_NAME = 'weft-proxy'
export const TMP_VOLUME = 'weft-proxy-tmp'
export const APP_PROBES_ENV = 'WEFT_APP_PROBES'
const PROBES = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const
const PROBE_PATH = { livenessProbe: 'livez', readinessProbe: 'readyz', startupProbe: 'startupz' } as const

/** The admin path a rewritten probe uses. */
export function appHealthPath(container: string, probe: AppProbe['probe']): string {
  return `/app-health/${container}/${PROBE_PATH[probe]}`
}

export function isInjected(spec: PodSpec, annotations: Record<string, string> | undefined): boolean {
  if (annotations?.[A.status] !== undefined) return true
  const proxyIn = (cs: Container[] | undefined) => cs !== undefined && cs.some((c) => c.name === PROXY_NAME)
  return proxyIn(spec.initContainers) || proxyIn(spec.containers)
}

/** One HTTP probe to rewrite: containers[index][kind].httpGet becomes `httpGet`. */
export interface ProbeRewrite {
  index: number
  kind: AppProbe['probe']
  /** the container's probe as it is */
  probe: Probe
  /** what its httpGet becomes (the proxy's admin port) */
  httpGet: HttpGetAction
}

/**
 * What inject() does to one pod (template), decided before anything is built: shared by inject()
 * (which builds the new objects) and the webhook's JSON Patch path (./patch.ts, which writes the
 * same changes as patch operations), so the two cannot disagree.
 */
export type InjectPlan =
  | { ok: false; skipped: SkipReason; warnings: string[] }
  | { ok: true; opts: PodOptions; rewrites: ProbeRewrite[]; probes: AppProbe[]; warnings: string[] }

export function planInjection(holder: PodTemplate['holder'], workload: KubeObject, mesh: MeshConfig): InjectPlan {
  const meta = holder.metadata
  const spec = holder.spec!
  const annotations = meta?.annotations
  if (annotations?.[A.inject] === 'false') return { ok: false, skipped: 'disabled', warnings: [] }
  if (isInjected(spec, annotations)) return { ok: false, skipped: 'already-injected', warnings: [] }
  if (spec.hostNetwork === true) {
    return { ok: false, skipped: 'host-network', warnings: [`weft: ${describe(workload)} not injected: hostNetwork pods share the node's network namespace, which the proxy must not intercept`] }
  }
  const parsed = podOptions(meta)
  if (!parsed.ok) {
    return { ok: false, skipped: 'invalid-annotation', warnings: parsed.errors.map((e) => `weft: ${describe(workload)} not injected: ${e}`) }
  }
  const opts = parsed.options
  const warnings: string[] = []
  const rewrites: ProbeRewrite[] = []
  const probes: AppProbe[] = []
  if (opts.rewriteProbes) planProbes(spec.containers, mesh, rewrites, probes, warnings)
  return { ok: true, opts, rewrites, probes, warnings }
}

export function inject(workload: KubeObject, mesh: MeshConfig): InjectResult {
  // copy on write: only what changes is copied (the input is never modified); the rest is shared
  // with the input
  const t = copyToTemplate(workload)
  if (t === undefined) return { workload: structuredClone(workload), injected: false, skipped: 'not-a-workload', warnings: [] }
  const out = t.out
  const spec = t.holder.spec!
  const plan = planInjection(t.holder, workload, mesh)
  if (!plan.ok) return { workload: out, injected: false, skipped: plan.skipped, warnings: plan.warnings }
  const { opts, rewrites, probes, warnings } = plan
  const created: string[] = []

  const own = spec.containers
  spec.containers = [...own]
  for (const r of rewrites) {
    // copy each container the first time one of its probes changes
    const c = spec.containers[r.index] === own[r.index] ? spec.containers[r.index] = { ...own[r.index]! } : spec.containers[r.index]!
    c[r.kind] = { ...r.probe, httpGet: r.httpGet }
  }
  const proxy = sidecarContainer(mesh, opts, probes.length > 0 ? JSON.stringify(probes) : undefined)
  const init = initContainer(mesh, opts)

  if (spec.initContainers === undefined) { spec.initContainers = []; created.push('spec.initContainers') } else spec.initContainers = [...spec.initContainers]
  if (opts.mode === 'native') spec.initContainers.unshift(init, proxy)
  else {
    spec.initContainers.unshift(init)
    spec.containers.unshift(proxy)
  }
  if (spec.volumes === undefined) { spec.volumes = []; created.push('spec.volumes') } else spec.volumes = [...spec.volumes]
  spec.volumes.push(tmpVolume())

  if (t.holder.metadata === undefined) { t.holder.metadata = {}; created.push('metadata') }
  const m = t.holder.metadata
  if (m.annotations === undefined) { m.annotations = {}; created.push('metadata.annotations') } else m.annotations = { ...m.annotations }
  m.annotations[A.status] = statusAnnotation(opts.mode, created)
  return { workload: out, injected: true, warnings }
}

/** The value of the weft.io/status annotation. */
export function statusAnnotation(mode: PodOptions['mode'], created: string[]): string {
  const status: InjectStatus = { version: 1, mode, created }
  return JSON.stringify(status)
}

/** The proxy's /tmp (the root filesystem is read-only). */
export function tmpVolume(): Record<string, unknown> {
  return { name: TMP_VOLUME, emptyDir: { medium: 'Memory' } }
}

function describe(w: KubeObject): string {
  const name = w.metadata?.name ?? w.metadata?.generateName ?? ''
  return `${w.kind ?? 'object'} ${w.metadata?.namespace !== undefined ? `${w.metadata.namespace}/` : ''}${name}`
}

/** The HTTP probes of `containers` to rewrite, and their originals for WEFT_APP_PROBES. */
function planProbes(containers: Container[], mesh: MeshConfig, rewrites: ProbeRewrite[], probes: AppProbe[], warnings: string[]): void {
  for (let i = 0; i < containers.length; i++) {
    const c = containers[i]!
    for (const kind of PROBES) {
      const p: Probe | undefined = c[kind]
      if (p?.httpGet === undefined) continue
      const port = resolvePort(c, p.httpGet.port)
      if (port === undefined) {
        warnings.push(`weft: container ${c.name} ${kind}: port "${p.httpGet.port}" is not one of its named ports; probe left as it is`)
        continue
      }
      probes.push({ container: c.name, probe: kind, port, httpGet: p.httpGet })
      rewrites.push({ index: i, kind, probe: p, httpGet: { path: appHealthPath(c.name, kind), port: mesh.ports.admin, scheme: 'HTTP' } })
    }
  }
}

function resolvePort(c: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port
  if (/^\d+$/.test(port)) return Number(port)
  return c.ports?.find((p) => p.name === port)?.containerPort
}

/** The init container that programs the interception (`weft init`). */
export function initContainer(mesh: MeshConfig, o: PodOptions): Container {
  const args = [
    'init',
    '--proxy-uid', String(mesh.proxyUid),
    '--outbound-port', String(mesh.ports.outbound),
    '--inbound-port', String(mesh.ports.inbound),
    // the admin port (probes, /ready) is never intercepted
    '--exclude-inbound-ports', [mesh.ports.admin, ...o.excludeInboundPorts].join(','),
  ]
  if (o.excludeOutboundPorts.length > 0) args.push('--exclude-outbound-ports', o.excludeOutboundPorts.join(','))
  if (o.excludeOutboundCidrs.length > 0) args.push('--exclude-outbound-cidrs', o.excludeOutboundCidrs.join(','))
  return {
    name: INIT_NAME,
    image: mesh.image,
    ...(mesh.imagePullPolicy !== undefined ? { imagePullPolicy: mesh.imagePullPolicy } : {}),
    command: ['weft'],
    args,
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  }
}

/**
 * The proxy container in the pod's layout (native: a restartable init container with a startup
 * probe; classic: a container whose postStart waits for /ready). `probesJson`: the WEFT_APP_PROBES
 * value (JSON of the rewritten probes' originals), undefined when none were rewritten.
 */
export function sidecarContainer(mesh: MeshConfig, o: PodOptions, probesJson: string | undefined): Container {
  const proxy = proxyContainer(mesh, o, probesJson)
  if (o.mode === 'native') {
    proxy.restartPolicy = 'Always'
    proxy.startupProbe = { httpGet: { path: '/ready', port: mesh.ports.admin }, periodSeconds: 1, failureThreshold: 120 }
  } else {
    // the kubelet runs postStart to completion before it starts the next container
    proxy.lifecycle = { postStart: { exec: { command: ['weft', 'wait-ready', '--port', String(mesh.ports.admin), '--timeout', '120'] } } }
  }
  return proxy
}

function proxyContainer(mesh: MeshConfig, o: PodOptions, probesJson: string | undefined): Container {
  const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } })
  const env: Record<string, unknown>[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldEnv('POD_IP', 'status.podIP'),
    { name: 'WEFT_CONTROL_PLANE', value: mesh.controlPlaneAddress },
    // the mesh CA: an SVID for the pod's ServiceAccount, proven by its projected token
    ...(mesh.caAddress !== undefined ? [{ name: 'WEFT_CA_ADDRESS', value: mesh.caAddress }] : []),
    ...(mesh.caAddress !== undefined && mesh.caRoot !== undefined ? [{ name: 'WEFT_CA_ROOT', value: mesh.caRoot }] : []),
    // weft.io/inbound-mtls: the pod's inbound mutual TLS mode (all its inbound hops)
    ...(o.inboundMtls !== undefined ? [{ name: 'WEFT_INBOUND_MTLS', value: o.inboundMtls }] : []),
    { name: 'WEFT_LOG_LEVEL', value: o.logLevel ?? mesh.logLevel },
    { name: 'WEFT_ADMIN_PORT', value: String(mesh.ports.admin) },
    { name: 'WEFT_INBOUND_PORT', value: String(mesh.ports.inbound) },
    { name: 'WEFT_OUTBOUND_PORT', value: String(mesh.ports.outbound) },
  ]
  if (probesJson !== undefined) env.push({ name: APP_PROBES_ENV, value: probesJson })
  const requests: Record<string, string> = {}
  const limits: Record<string, string> = {}
  const r = mesh.resources
  const set = (into: Record<string, string>, k: string, v: string | undefined) => { if (v !== undefined) into[k] = v }
  set(requests, 'cpu', o.cpuRequest ?? r.cpuRequest)
  set(requests, 'memory', o.memoryRequest ?? r.memoryRequest)
  set(limits, 'cpu', o.cpuLimit ?? r.cpuLimit)
  set(limits, 'memory', o.memoryLimit ?? r.memoryLimit)
  return {
    name: PROXY_NAME,
    image: mesh.image,
    ...(mesh.imagePullPolicy !== undefined ? { imagePullPolicy: mesh.imagePullPolicy } : {}),
    command: ['weft'],
    args: ['proxy', '--control-plane', mesh.controlPlaneAddress],
    env,
    ports: [{ name: 'weft-admin', containerPort: mesh.ports.admin, protocol: 'TCP' }],
    readinessProbe: { httpGet: { path: '/ready', port: mesh.ports.admin }, periodSeconds: 2, failureThreshold: 3 },
    resources: { ...(Object.keys(requests).length > 0 ? { requests } : {}), ...(Object.keys(limits).length > 0 ? { limits } : {}) },
    volumeMounts: [{ name: TMP_VOLUME, mountPath: '/tmp' }],
    securityContext: {
      runAsUser: mesh.proxyUid,
      runAsGroup: mesh.proxyUid,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
  }
}

/** The app probes a proxy container serves (its WEFT_APP_PROBES env); [] when none or unreadable. */
export function appProbesOf(proxy: Container | undefined): AppProbe[] {
  const v = proxy?.env?.find((e) => e.name === APP_PROBES_ENV)?.value
  if (typeof v !== 'string') return []
  try {
    const parsed: unknown = JSON.parse(v)
    return Array.isArray(parsed) ? (parsed as AppProbe[]) : []
  } catch {
    return []
  }
}

/** Undo inject(): the original workload, exactly. An object that is not injected comes back unchanged. */
export function uninject(workload: KubeObject): { workload: KubeObject; uninjected: boolean } {
  const out = structuredClone(workload)
  const t = podTemplate(out)
  const raw = t?.holder.metadata?.annotations?.[A.status]
  if (t === undefined || raw === undefined) return { workload: out, uninjected: false }
  let status: InjectStatus
  try {
    status = JSON.parse(raw) as InjectStatus
  } catch {
    status = { version: 1, mode: 'native', created: [] }
  }
  const spec = t.holder.spec!
  const proxy = [...(spec.initContainers ?? []), ...spec.containers].find((c) => c.name === PROXY_NAME)
  for (const p of appProbesOf(proxy)) {
    const c = spec.containers.find((x) => x.name === p.container)
    const probe = c?.[p.probe]
    if (probe !== undefined) probe.httpGet = p.httpGet
  }
  const ours = (c: Container) => c.name !== PROXY_NAME && c.name !== INIT_NAME
  spec.containers = spec.containers.filter(ours)
  if (spec.initContainers !== undefined) spec.initContainers = spec.initContainers.filter(ours)
  if (spec.volumes !== undefined) spec.volumes = spec.volumes.filter((v) => v.name !== TMP_VOLUME)
  const m = t.holder.metadata!
  delete m.annotations![A.status]
  const created = new Set(status.created)
  const emptyArray = (v: unknown) => Array.isArray(v) && v.length === 0
  if (created.has('spec.initContainers') && emptyArray(spec.initContainers)) delete spec.initContainers
  if (created.has('spec.volumes') && emptyArray(spec.volumes)) delete spec.volumes
  if (created.has('metadata.annotations') && Object.keys(m.annotations!).length === 0) delete m.annotations
  if (created.has('metadata') && Object.keys(m).length === 0) delete t.holder.metadata
  return { workload: out, uninjected: true }
}
