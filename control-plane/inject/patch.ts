// The webhook's injection as a JSON Patch (RFC 6902), written directly: the same decision as
// inject() (planInjection, shared), the same containers (initContainer/sidecarContainer, shared),
// but no copy of the pod, no diff of two trees, and no serialisation of the sidecar per review.
// At compile time (once per MeshConfig) the init container, the volume, the operations around them
// and the proxy container of each layout are serialised (the proxy with holes for what varies per
// pod: log level, WEFT_APP_PROBES) and base64-encoded in pieces that concatenate (see b64()); a
// review encodes only its probe operations and WEFT_APP_PROBES. Pods with their own proxy
// resources or excluded ports/CIDRs serialise those containers per review (still no diff).
//
// The patch applied to the pod gives inject()'s pod, key order included (test/inject-patch.test.ts).
import { A, type PodOptions } from './annotations.ts'
import { initContainer, planInjection, sidecarContainer, statusAnnotation, tmpVolume } from './inject.ts'
import { podTemplate } from './template.ts'
import type { KubeObject, MeshConfig, SkipReason } from './types.ts'

export type PodPatch =
  | {
    injected: true
    /**
     * base64 of the patch's JSON text (what an AdmissionResponse carries). The JSON may hold runs
     * of up to two spaces between tokens: see b64().
     */
    patch: string
    warnings: string[]
  }
  | { injected: false; skipped: SkipReason; warnings: string[] }

/** A Pod in (as the API server sends it; never modified), its injection as a JSON Patch out. */
export type PodPatcher = (pod: KubeObject) => PodPatch

/**
 * base64 of `text` (UTF-8) with spaces added at its end to make a multiple of 3 bytes: base64
 * turns every 3 bytes into 4 characters, so such pieces concatenate into the base64 of the texts
 * concatenated. Each piece of a patch ends between two JSON tokens (where whitespace is allowed),
 * so the constant pieces are encoded once, at compile time, and a review encodes only what it adds.
 */
export function b64(text: string): string {
  const pad = (3 - (Buffer.byteLength(text) % 3)) % 3
  return Buffer.from(pad === 0 ? text : pad === 1 ? text + ' ' : text + '  ').toString('base64')
}

/** A JSON text with holes: text[0] + value of hole[0] + text[1] + ... */
interface Template {
  text: string[]
  holes: number[]
}

const HOLE = (i: number) => `\u0000weft-hole-${i}\u0000`
const HOLE_RE = /"\\u0000weft-hole-(\d+)\\u0000"/g

/** Serialise `value` built with HOLE(i) strings where per-pod values go; the holes become splice points. */
function template(value: unknown): Template {
  const json = JSON.stringify(value)
  const text: string[] = []
  const holes: number[] = []
  let at = 0
  for (const m of json.matchAll(HOLE_RE)) {
    text.push(json.slice(at, m.index))
    holes.push(Number(m[1]))
    at = m.index + m[0].length
  }
  text.push(json.slice(at))
  return { text, holes }
}

const ANNOTATION_PATH = `/metadata/annotations/${A.status.replace(/~/g, '~0').replace(/\//g, '~1')}`

export function compilePodPatcher(mesh: MeshConfig): PodPatcher {
  const plain = (mode: PodOptions['mode'], logLevel?: string): PodOptions =>
    ({ mode, excludeInboundPorts: [], excludeOutboundPorts: [], excludeOutboundCidrs: [], rewriteProbes: true, logLevel })
  // hole 0: the log level (a JSON string), hole 1: WEFT_APP_PROBES's value (a JSON string of JSON)
  const proxyTemplates = {
    native: [template(sidecarContainer(mesh, plain('native', HOLE(0)), undefined)), template(sidecarContainer(mesh, plain('native', HOLE(0)), HOLE(1)))],
    classic: [template(sidecarContainer(mesh, plain('classic', HOLE(0)), undefined)), template(sidecarContainer(mesh, plain('classic', HOLE(0)), HOLE(1)))],
  }
  for (const [mode, ts] of Object.entries(proxyTemplates)) {
    if (ts[0]!.holes.length !== 1 || ts[1]!.holes.length !== 2) throw new Error(`weft: the ${mode} proxy container template has ${ts[0]!.holes.length}/${ts[1]!.holes.length} holes, expected 1/2`)
  }
  const plainInit = JSON.stringify(initContainer(mesh, plain('native')))
  const volume = JSON.stringify(tmpVolume())

  // the proxy container, as base64 pieces: from its template (log level and WEFT_APP_PROBES spliced
  // in), or serialised for this pod when the pod sets its own proxy resources or inbound mTLS mode
  const proxyB64 = {
    native: proxyTemplates.native.map((t) => t.text.map(b64)),
    classic: proxyTemplates.classic.map((t) => t.text.map(b64)),
  }
  // podOptions admits a fixed set of log levels: a small memo
  const logLevels = new Map<string, string>()
  const logLevelB64 = (level: string): string => {
    let v = logLevels.get(level)
    if (v === undefined) logLevels.set(level, v = b64(JSON.stringify(level)))
    return v
  }
  const proxy = (o: PodOptions, probesJson: string | undefined): string => {
    if (o.cpuRequest !== undefined || o.cpuLimit !== undefined || o.memoryRequest !== undefined || o.memoryLimit !== undefined || o.inboundMtls !== undefined) {
      return b64(JSON.stringify(sidecarContainer(mesh, o, probesJson)))
    }
    // the holes come in order: the log level (hole 0), then the probes (hole 1)
    const p = proxyB64[o.mode][probesJson === undefined ? 0 : 1]!
    const level = logLevelB64(o.logLevel ?? mesh.logLevel)
    return probesJson === undefined ? p[0]! + level + p[1]! : p[0]! + level + p[1]! + b64(JSON.stringify(probesJson)) + p[2]!
  }
  const plainInitB64 = b64(plainInit)
  const init = (o: PodOptions): string =>
    o.excludeInboundPorts.length === 0 && o.excludeOutboundPorts.length === 0 && o.excludeOutboundCidrs.length === 0 ? plainInitB64 : b64(JSON.stringify(initContainer(mesh, o)))

  // the operations around the two containers: [open, between, close] per layout and whether the pod has init containers
  const around = {
    native: [
      ['{"op":"add","path":"/spec/initContainers/0","value":', '},{"op":"add","path":"/spec/initContainers/1","value":', '},'],
      ['{"op":"add","path":"/spec/initContainers","value":[', ',', ']},'],
    ].map((a) => a.map(b64)),
    classic: [
      ['{"op":"add","path":"/spec/initContainers/0","value":', '},{"op":"add","path":"/spec/containers/0","value":', '},'],
      ['{"op":"add","path":"/spec/initContainers","value":[', ']},{"op":"add","path":"/spec/containers/0","value":', '},'],
    ].map((a) => a.map(b64)),
  }
  // the volume and the status annotation, and the closing bracket: one text per layout and per
  // what the pod lacks (init containers, volumes, metadata, annotations)
  const tails = new Map<number, string>()
  const tail = (mode: PodOptions['mode'], noInit: boolean, noVolumes: boolean, noMeta: boolean, noAnnotations: boolean): string => {
    const key = (mode === 'native' ? 1 : 0) | (noInit ? 2 : 0) | (noVolumes ? 4 : 0) | (noMeta ? 8 : 0) | (noAnnotations ? 16 : 0)
    let v = tails.get(key)
    if (v !== undefined) return v
    const created: string[] = []
    if (noInit) created.push('spec.initContainers')
    if (noVolumes) created.push('spec.volumes')
    if (noMeta) created.push('metadata')
    if (noAnnotations) created.push('metadata.annotations')
    const status = JSON.stringify(statusAnnotation(mode, created))
    let ops = noVolumes ? `{"op":"add","path":"/spec/volumes","value":[${volume}]},` : `{"op":"add","path":"/spec/volumes/-","value":${volume}},`
    if (noMeta) ops += `{"op":"add","path":"/metadata","value":{"annotations":{${JSON.stringify(A.status)}:${status}}}}]`
    else if (noAnnotations) ops += `{"op":"add","path":"/metadata/annotations","value":{${JSON.stringify(A.status)}:${status}}}]`
    else ops += `{"op":"add","path":"${ANNOTATION_PATH}","value":${status}}]`
    tails.set(key, v = b64(ops))
    return v
  }
  const OPEN = b64('[')

  return (pod) => {
    const t = podTemplate(pod)
    if (t === undefined || pod.kind !== 'Pod') return { injected: false, skipped: 'not-a-workload', warnings: [] }
    const plan = planInjection(t.holder, pod, mesh)
    if (!plan.ok) return { injected: false, skipped: plan.skipped, warnings: plan.warnings }
    const { opts, rewrites, probes } = plan
    const spec = t.holder.spec!
    const meta = t.holder.metadata
    // probes first: their container indexes are the pod's own (classic inserts the proxy at 0 after)
    let patch = OPEN
    if (rewrites.length > 0) {
      let ops = '['
      for (const r of rewrites) ops += `{"op":"replace","path":"/spec/containers/${r.index}/${r.kind}/httpGet","value":${JSON.stringify(r.httpGet)}},`
      patch = b64(ops)
    }
    const noInit = spec.initContainers === undefined
    const a = around[opts.mode][noInit ? 1 : 0]!
    patch += a[0]! + init(opts) + a[1]! + proxy(opts, probes.length > 0 ? JSON.stringify(probes) : undefined) + a[2]!
    patch += tail(opts.mode, noInit, spec.volumes === undefined, meta === undefined, meta?.annotations === undefined)
    return { injected: true, patch, warnings: plan.warnings }
  }
}
