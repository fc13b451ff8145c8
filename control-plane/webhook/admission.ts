// The admission decision, without HTTP: an AdmissionReview (admission.k8s.io/v1) in, an
// AdmissionReview out, or a message for a 400 when the body is not one. Pods only (the webhook
// configuration's rules say so); anything the injector cannot or must not handle is allowed
// unchanged, with a warning where the user should know.
//
// The patch is written directly (compilePodPatcher, compiled once per MeshConfig: the sidecar's
// JSON is serialised and base64-encoded at compile time), and so is the answer's JSON: a review
// costs one JSON.parse of the request and the encoding of what varies per pod, not a copy, a diff
// and two serialisations of the pod.
import { compilePodPatcher, NAMESPACE_LABEL, ANNOTATIONS, type KubeObject, type MeshConfig, type PodPatcher } from '../inject/index.ts'

export interface AdmissionRequest {
  uid: string
  kind?: { group: string; version: string; kind: string }
  namespace?: string
  operation?: string
  object?: KubeObject
  dryRun?: boolean
}

export interface AdmissionResponse {
  uid: string
  allowed: true
  patchType?: 'JSONPatch'
  patch?: string
  warnings?: string[]
}

export interface AdmissionOutcome {
  review: { apiVersion: 'admission.k8s.io/v1'; kind: 'AdmissionReview'; response: AdmissionResponse }
  /** injected | skipped:<reason> | not-a-pod: for the counter and the log */
  decision: string
  /** `review` serialised: the body of the 200 */
  json: string
}

export interface AdmitOptions {
  mesh: MeshConfig
  /** the namespace's labels when the caller knows them (an informer); undefined: trust the namespaceSelector */
  namespaceLabels?: (namespace: string) => Record<string, string> | undefined
}

const NEVER = new Set(['kube-system', 'kube-public', 'kube-node-lease'])

/** Parse and decide. `{ error }` means the body is not an AdmissionReview: answer 400 with it. */
export function admit(body: unknown, o: AdmitOptions): AdmissionOutcome | { error: string } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { error: 'body is not a JSON object (expected an AdmissionReview)' }
  const b = body as Record<string, unknown>
  if (b.kind !== 'AdmissionReview') return { error: `kind is ${JSON.stringify(b.kind)}, expected "AdmissionReview"` }
  if (b.apiVersion !== 'admission.k8s.io/v1') return { error: `apiVersion is ${JSON.stringify(b.apiVersion)}, expected "admission.k8s.io/v1"` }
  const req = b.request as AdmissionRequest | undefined
  if (req === null || typeof req !== 'object' || typeof req.uid !== 'string' || req.uid === '') return { error: 'request.uid is missing (expected an AdmissionReview request)' }
  const reply = (decision: string, extra: Partial<AdmissionResponse> = {}): AdmissionOutcome => {
    const response: AdmissionResponse = { uid: req.uid, allowed: true, ...extra }
    return { review: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }, decision, json: reviewJson(response) }
  }
  const obj = req.object
  if (req.kind?.kind !== undefined && req.kind.kind !== 'Pod') return reply('not-a-pod')
  if (obj === null || typeof obj !== 'object' || (obj.kind !== undefined && obj.kind !== 'Pod')) return reply('not-a-pod')
  if (req.operation !== undefined && req.operation !== 'CREATE') return reply('skipped:not-create')
  const ns = req.namespace ?? obj.metadata?.namespace ?? 'default'
  if (NEVER.has(ns) || ns === o.mesh.controlPlaneNamespace) return reply('skipped:system-namespace')
  const podSays = obj.metadata?.annotations?.[ANNOTATIONS.inject]
  if (podSays !== 'true') {
    const labels = o.namespaceLabels?.(ns)
    if (podSays === 'false' || (labels !== undefined && labels[NAMESPACE_LABEL] !== 'enabled')) return reply('skipped:disabled')
  }
  // a pod of the wrong shape (the API server refuses it after admission anyway): unchanged, with a warning
  const shape = podShapeError(obj)
  if (shape !== null) return reply('skipped:invalid-pod', { warnings: [`weft: pod not injected: ${shape}`] })
  // the API server's object may lack kind/apiVersion on some paths: the injector recognises pods by kind
  const pod: KubeObject = obj.kind === 'Pod' && obj.apiVersion !== undefined ? obj : { ...obj, kind: 'Pod', apiVersion: obj.apiVersion ?? 'v1' }
  const r = patcherOf(o.mesh)(pod)
  const warnings = r.warnings.length > 0 ? { warnings: r.warnings } : {}
  if (!r.injected) return reply(`skipped:${r.skipped}`, warnings)
  return reply('injected', { patchType: 'JSONPatch', patch: r.patch, ...warnings })
}

/** One compiled patcher per mesh configuration (a MeshConfig is not changed once in use). */
const patchers = new WeakMap<MeshConfig, PodPatcher>()
function patcherOf(mesh: MeshConfig): PodPatcher {
  let p = patchers.get(mesh)
  if (p === undefined) patchers.set(mesh, p = compilePodPatcher(mesh))
  return p
}

/** JSON.stringify of the AdmissionReview holding `r`, without walking the base64 patch again. */
export function reviewJson(r: AdmissionResponse): string {
  let s = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":${JSON.stringify(r.uid)},"allowed":true`
  if (r.patchType !== undefined) s += `,"patchType":"JSONPatch"`
  // base64: nothing to escape
  if (r.patch !== undefined) s += `,"patch":"${r.patch}"`
  if (r.warnings !== undefined) s += `,"warnings":${JSON.stringify(r.warnings)}`
  return s + '}}'
}

const isObj = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x)
const PROBE_KINDS = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const

/** What inject() reads of a pod, checked for its JSON types: null when it may go on, else what is wrong. */
export function podShapeError(obj: Record<string, unknown>): string | null {
  const meta = obj.metadata
  if (meta !== undefined) {
    if (!isObj(meta)) return 'metadata is not an object'
    for (const k of ['name', 'generateName', 'namespace'] as const) if (meta[k] !== undefined && typeof meta[k] !== 'string') return `metadata.${k} is not a string`
    for (const k of ['annotations', 'labels'] as const) {
      const m = meta[k]
      if (m !== undefined && !isStringMap(m)) return `metadata.${k} is not a map of strings`
    }
  }
  const spec = obj.spec
  if (!isObj(spec)) return 'spec is not an object'
  return listShapeError(spec, 'containers', true) ?? listShapeError(spec, 'initContainers', false) ?? listShapeError(spec, 'volumes', false)
}

function isStringMap(m: unknown): boolean {
  if (!isObj(m)) return false
  for (const k in m) if (Object.hasOwn(m, k) && typeof m[k] !== 'string') return false
  return true
}

function listShapeError(spec: Record<string, unknown>, key: string, required: boolean): string | null {
  const l = spec[key]
  if (l === undefined && !required) return null
  if (!Array.isArray(l) || (required && l.length === 0)) return `spec.${key} is not ${required ? 'a non-empty' : 'an'} array`
  for (let i = 0; i < l.length; i++) {
    const c: unknown = l[i]
    if (!isObj(c) || typeof c.name !== 'string') return `spec.${key}[${i}] is not an object with a name`
    if (key === 'volumes') continue
    const ports = c.ports
    if (ports !== undefined) {
      if (!Array.isArray(ports)) return `spec.${key}[${i}].ports is not an array of objects`
      for (let j = 0; j < ports.length; j++) if (!isObj(ports[j])) return `spec.${key}[${i}].ports is not an array of objects`
    }
    for (const p of PROBE_KINDS) {
      const probe = c[p]
      if (probe === undefined) continue
      if (!isObj(probe)) return `spec.${key}[${i}].${p} is not an object`
      const g = probe.httpGet
      if (g !== undefined && (!isObj(g) || (typeof g.port !== 'number' && typeof g.port !== 'string'))) return `spec.${key}[${i}].${p}.httpGet has no port`
    }
  }
  return null
}
