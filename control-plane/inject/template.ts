// Where a workload keeps its pod: the pod itself, spec.template, or a CronJob's
// spec.jobTemplate.spec.template.
import type { KubeObject, ObjectMeta, PodSpec } from './types.ts'

export const WORKLOAD_KINDS = new Set(['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob'])

export interface PodTemplate {
  /** object holding `metadata` and `spec` (the Pod itself, or its template); mutable: callers own a copy */
  holder: { metadata?: ObjectMeta; spec?: PodSpec }
}

/** The pod (template) of a workload, or undefined when the object is not one of WORKLOAD_KINDS or has no pod spec. */
export function podTemplate(obj: KubeObject): PodTemplate | undefined {
  if (obj === null || typeof obj !== 'object' || typeof obj.kind !== 'string' || !WORKLOAD_KINDS.has(obj.kind)) return undefined
  let holder: unknown
  if (obj.kind === 'Pod') holder = obj
  else if (obj.kind === 'CronJob') holder = field(field(field(obj.spec, 'jobTemplate'), 'spec'), 'template')
  else holder = field(obj.spec, 'template')
  const spec = field(holder, 'spec') as PodSpec | undefined
  if (spec === undefined || !Array.isArray(spec.containers)) return undefined
  return { holder: holder as PodTemplate['holder'] }
}

function field(o: unknown, k: string): unknown {
  return o !== null && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>)[k] : undefined
}

/**
 * A shallow copy of a workload along the path to its pod template, with the template's own
 * `metadata` and `spec` copied one level: a caller may replace any field of those two (and any
 * field of the objects above them) without touching `obj`, and everything it leaves alone is
 * shared with `obj` (so a JSON diff of the two stops at the first identical reference). Undefined
 * when `obj` has no pod template (see podTemplate).
 */
export function copyToTemplate(obj: KubeObject): { out: KubeObject; holder: PodTemplate['holder'] } | undefined {
  if (podTemplate(obj) === undefined) return undefined
  const copy = <T>(o: T): T => ({ ...(o as object) }) as T
  const out = copy(obj) as KubeObject & { spec?: Record<string, unknown> }
  let holder: { metadata?: ObjectMeta; spec?: PodSpec }
  if (out.kind === 'Pod') holder = out as typeof holder
  else if (out.kind === 'CronJob') {
    const spec = out.spec = copy(out.spec!)
    const jt = spec.jobTemplate = copy(spec.jobTemplate as Record<string, unknown>)
    const jspec = jt.spec = copy(jt.spec as Record<string, unknown>)
    holder = jspec.template = copy(jspec.template as typeof holder)
  } else {
    const spec = out.spec = copy(out.spec!)
    holder = spec.template = copy(spec.template as typeof holder)
  }
  if (holder.metadata !== undefined) holder.metadata = copy(holder.metadata)
  holder.spec = copy(holder.spec!)
  return { out, holder }
}
