// The webhook's injection as a JSON Patch (RFC 6902) text, written directly: the same decision as
// inject() (planInjection, shared), the same containers (initContainer/sidecarContainer, shared),
// but no copy of the pod, no diff of two trees, and no serialisation of the sidecar per review.
// At compile time (once per MeshConfig) the init container, the volume and the proxy container of
// each layout are serialised with holes for what varies per pod (log level, WEFT_APP_PROBES); a
// review splices its values into those texts. Pods with per-pod resources or excluded ports/CIDRs
// serialise their own containers (still no diff).
//
// The patch applied to the pod gives inject()'s pod, key order included (test/inject-patch.test.ts).
import { A, type PodOptions } from './annotations.ts'
import { initContainer, planInjection, sidecarContainer, statusAnnotation, tmpVolume } from './inject.ts'
import { podTemplate } from './template.ts'
import type { KubeObject, MeshConfig, SkipReason } from './types.ts'

export type PodPatch =
  | { injected: true; /** JSON text of the patch operations */ patch: string; warnings: string[] }
  | { injected: false; skipped: SkipReason; warnings: string[] }

/** A Pod in (as the API server sends it; never modified), its injection as a JSON Patch out. */
export type PodPatcher = (pod: KubeObject) => PodPatch

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

function fill(t: Template, values: string[]): string {
  let s = t.text[0]!
  for (let i = 0; i < t.holes.length; i++) s += values[t.holes[i]!]! + t.text[i + 1]!
  return s
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

  const proxyJson = (o: PodOptions, probesJson: string | undefined): string => {
    if (o.cpuRequest !== undefined || o.cpuLimit !== undefined || o.memoryRequest !== undefined || o.memoryLimit !== undefined) {
      return JSON.stringify(sidecarContainer(mesh, o, probesJson))
    }
    const values = [JSON.stringify(o.logLevel ?? mesh.logLevel), probesJson === undefined ? '' : JSON.stringify(probesJson)]
    return fill(proxyTemplates[o.mode][probesJson === undefined ? 0 : 1]!, values)
  }
  const initJson = (o: PodOptions): string =>
    o.excludeInboundPorts.length === 0 && o.excludeOutboundPorts.length === 0 && o.excludeOutboundCidrs.length === 0 ? plainInit : JSON.stringify(initContainer(mesh, o))

  return (pod) => {
    const t = podTemplate(pod)
    if (t === undefined || pod.kind !== 'Pod') return { injected: false, skipped: 'not-a-workload', warnings: [] }
    const plan = planInjection(t.holder, pod, mesh)
    if (!plan.ok) return { injected: false, skipped: plan.skipped, warnings: plan.warnings }
    const { opts, rewrites, probes } = plan
    const spec = t.holder.spec!
    const meta = t.holder.metadata
    // probes first: their container indexes are the pod's own (classic inserts the proxy at 0 after)
    let ops = '['
    for (const r of rewrites) ops += `{"op":"replace","path":"/spec/containers/${r.index}/${r.kind}/httpGet","value":${JSON.stringify(r.httpGet)}},`
    const proxy = proxyJson(opts, probes.length > 0 ? JSON.stringify(probes) : undefined)
    const init = initJson(opts)
    const created: string[] = []
    const noInit = spec.initContainers === undefined
    if (noInit) created.push('spec.initContainers')
    if (opts.mode === 'native') {
      ops += noInit
        ? `{"op":"add","path":"/spec/initContainers","value":[${init},${proxy}]},`
        : `{"op":"add","path":"/spec/initContainers/0","value":${init}},{"op":"add","path":"/spec/initContainers/1","value":${proxy}},`
    } else {
      ops += noInit ? `{"op":"add","path":"/spec/initContainers","value":[${init}]},` : `{"op":"add","path":"/spec/initContainers/0","value":${init}},`
      ops += `{"op":"add","path":"/spec/containers/0","value":${proxy}},`
    }
    if (spec.volumes === undefined) {
      created.push('spec.volumes')
      ops += `{"op":"add","path":"/spec/volumes","value":[${volume}]},`
    } else ops += `{"op":"add","path":"/spec/volumes/-","value":${volume}},`
    if (meta === undefined) created.push('metadata')
    if (meta?.annotations === undefined) created.push('metadata.annotations')
    const status = JSON.stringify(statusAnnotation(opts.mode, created))
    if (meta === undefined) ops += `{"op":"add","path":"/metadata","value":{"annotations":{${JSON.stringify(A.status)}:${status}}}}]`
    else if (meta.annotations === undefined) ops += `{"op":"add","path":"/metadata/annotations","value":{${JSON.stringify(A.status)}:${status}}}]`
    else ops += `{"op":"add","path":"${ANNOTATION_PATH}","value":${status}}]`
    return { injected: true, patch: ops, warnings: plan.warnings }
  }
}
