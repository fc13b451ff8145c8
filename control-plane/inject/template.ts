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
