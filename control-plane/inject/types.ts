// Types of the sidecar injector: the part of a Kubernetes workload it reads and writes, and the
// mesh settings it injects. Shared by the control plane (admission webhook) and the CLI
// (`weft inject`); the proxy never imports this folder.

/** A Kubernetes object as JSON; only the fields the injector touches are typed. */
export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata?: ObjectMeta
  spec?: Record<string, unknown>
  [field: string]: unknown
}

export interface ObjectMeta {
  name?: string
  generateName?: string
  namespace?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  [field: string]: unknown
}

export interface HttpGetAction {
  path?: string
  port: number | string
  host?: string
  scheme?: 'HTTP' | 'HTTPS'
  httpHeaders?: { name: string; value: string }[]
}

export interface Probe {
  httpGet?: HttpGetAction
  [field: string]: unknown
}

export interface Container {
  name: string
  image?: string
  command?: string[]
  args?: string[]
  ports?: { name?: string; containerPort: number; protocol?: string }[]
  env?: Record<string, unknown>[]
  livenessProbe?: Probe
  readinessProbe?: Probe
  startupProbe?: Probe
  restartPolicy?: string
  [field: string]: unknown
}

export interface PodSpec {
  containers: Container[]
  initContainers?: Container[]
  volumes?: Record<string, unknown>[]
  hostNetwork?: boolean
  serviceAccountName?: string
  [field: string]: unknown
}

/** Everything the injected pod depends on that is not in the pod: one per mesh installation. */
export interface MeshConfig {
  /** the one Weft image (proxy, control plane, CLI) */
  image: string
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never'
  /** host:port the proxies dial (the control plane's Service) */
  controlPlaneAddress: string
  /** host:port of the mesh CA (the control plane's certificate service): the proxies get an SVID and speak mutual TLS; unset: no identity */
  caAddress?: string
  /** PEM of the mesh root when the CA serves TLS: the proxies check the CA's certificate against it (env WEFT_CA_ROOT) */
  caRoot?: string
  /** the control plane's own namespace: never injected */
  controlPlaneNamespace: string
  /** uid (and gid) the proxy runs as; its traffic is not intercepted */
  proxyUid: number
  ports: { outbound: number; inbound: number; admin: number }
  /** proxy resources when the pod does not set them by annotation */
  resources: { cpuRequest?: string; cpuLimit?: string; memoryRequest?: string; memoryLimit?: string }
  logLevel: string
}

export const DEFAULT_MESH: MeshConfig = {
  image: 'ghcr.io/weft-mesh/weft:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  controlPlaneAddress: 'weft-control-plane.weft-system.svc:15010',
  controlPlaneNamespace: 'weft-system',
  proxyUid: 1337,
  ports: { outbound: 15001, inbound: 15006, admin: 15000 },
  resources: { cpuRequest: '100m', memoryRequest: '128Mi', memoryLimit: '256Mi' },
  logLevel: 'info',
}

/**
 * What inject() decided. `workload` is a new object (the input is never mutated); it is the input
 * unchanged (deep-equal) when `injected` is false.
 */
export interface InjectResult {
  workload: KubeObject
  injected: boolean
  /** why nothing was injected: 'not-a-workload', 'disabled', 'already-injected', 'host-network', 'invalid-annotation' */
  skipped?: SkipReason
  /** for the user: AdmissionReview warnings, `weft inject` stderr */
  warnings: string[]
}

export type SkipReason = 'not-a-workload' | 'disabled' | 'already-injected' | 'host-network' | 'invalid-annotation'

/** The original of a rewritten HTTP probe, kept in the proxy's WEFT_APP_PROBES env (the proxy serves it; uninject restores it). */
export interface AppProbe {
  /** container the probe belongs to */
  container: string
  /** livenessProbe | readinessProbe | startupProbe */
  probe: 'livenessProbe' | 'readinessProbe' | 'startupProbe'
  /** the app's port, resolved from a named port at injection time */
  port: number
  /** the original httpGet, exactly */
  httpGet: HttpGetAction
}

/** Kept in the annotation weft.io/status of an injected pod: what uninject must undo. */
export interface InjectStatus {
  version: 1
  mode: 'native' | 'classic'
  /** fields of the pod the injector created (absent before): uninject deletes them when they are empty again */
  created: string[]
}
