// The kinds the Kubernetes source watches, and what becomes of an object between the API server
// and the cluster state:
//
//   trim (when it arrives, before the informer caches it): fill in apiVersion/kind (a typed list's
//   items have none), drop what Weft never reads (managedFields, the last-applied annotation, every
//   field the schema does not know), cut a Pod down to identity, labels and address, and an
//   EndpointSlice's endpoints down to their addresses and readiness (compactEndpoints);
//   check (when a state is assembled, once per object version): the kind's TypeBox schema from
//   ../resources/schema.ts, the same as for files. A valid object becomes a Located<T> like one from
//   a file (file "k8s:Kind/namespace/name", no line or column); an invalid one is a Rejected entry.
//
// Unknown fields are dropped rather than rejected: files are strict because an unknown field there
// is a typo, but the API server has already checked these objects, and the fields Weft does not
// know are API features it does not use (a LoadBalancer Service's externalTrafficPolicy, the
// deletionTimestamp of an object being deleted, newer Gateway API fields). Rejecting the whole
// Service for them would take it out of the mesh.
import { Ajv } from 'ajv'
import type { ValidateFunction } from 'ajv'
import type { TSchema } from 'typebox'
import { formatPath } from '../../api/errors.ts'
import { isObject, schemaProblems } from '../../api/yaml-errors.ts'
import type { Seg } from '../../api/yaml-errors.ts'
import { RESOURCE_MESSAGES } from '../resources/load.ts'
import type { Located } from '../resources/load.ts'
import { KINDS, SECURITY_API } from '../resources/schema.ts'
import { SIDECAR_STATUS } from '../translate/security.ts'
import type { Kind } from '../resources/schema.ts'
import { Pod } from './cluster-state.ts'
import type { Rejected, SourceKind } from './cluster-state.ts'

// ---- the kinds ---------------------------------------------------------------------------------

export interface WatchedKind {
  kind: SourceKind
  apiVersion: string
  /** the collection across all namespaces, e.g. /apis/discovery.k8s.io/v1/endpointslices */
  path: string
  /** a custom resource: its API is missing (404) when the CRD is not installed */
  custom: boolean
  schema: TSchema
}

const PLURALS: Record<SourceKind, string> = {
  Service: 'services',
  Pod: 'pods',
  EndpointSlice: 'endpointslices',
  HTTPRoute: 'httproutes',
  TrafficPolicy: 'trafficpolicies',
  PeerAuthentication: 'peerauthentications',
  AuthorizationPolicy: 'authorizationpolicies',
}

function watched(kind: SourceKind, apiVersion: string, schema: TSchema, custom: boolean): WatchedKind {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`
  return { kind, apiVersion, path: `${base}/${PLURALS[kind]}`, custom, schema }
}

const schemaOf = (kind: Kind): TSchema => KINDS.find((k) => k.kind === kind)!.schema

/** Every kind the source watches, in the order their state is listed. */
export const WATCHED_KINDS: readonly WatchedKind[] = [
  watched('Service', 'v1', schemaOf('Service'), false),
  watched('EndpointSlice', 'discovery.k8s.io/v1', schemaOf('EndpointSlice'), false),
  watched('Pod', 'v1', Pod, false),
  watched('HTTPRoute', 'gateway.networking.k8s.io/v1', schemaOf('HTTPRoute'), true),
  watched('TrafficPolicy', 'policy.weft.io/v1alpha1', schemaOf('TrafficPolicy'), true),
  watched('PeerAuthentication', SECURITY_API, schemaOf('PeerAuthentication'), true),
  watched('AuthorizationPolicy', SECURITY_API, schemaOf('AuthorizationPolicy'), true),
]

// ---- trim ----------------------------------------------------------------------------------------

export interface RawObject {
  apiVersion?: string
  kind?: string
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; [field: string]: unknown }
  [field: string]: unknown
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'

/**
 * The object as the source keeps it (a new object for a Pod, the same one trimmed in place
 * otherwise: it is fresh from the wire). `dropped` receives the paths of removed unknown fields.
 */
export function trimObject(k: WatchedKind, raw: RawObject, dropped: string[] = []): RawObject {
  if (!isObject(raw)) return raw
  if (k.kind === 'Pod') return trimPod(raw)
  raw.apiVersion ??= k.apiVersion
  raw.kind ??= k.kind
  const meta = raw.metadata
  if (isObject(meta)) {
    delete meta.managedFields
    if (isObject(meta.annotations)) delete meta.annotations[LAST_APPLIED]
  }
  pruneUnknown(k.schema, raw, [], dropped)
  if (k.kind === 'EndpointSlice' && Array.isArray(raw.endpoints)) raw.endpoints = raw.endpoints.map(compactEndpoint)
  return raw
}

const NOT_READY = Object.freeze({ ready: false })

/**
 * An endpoint as the source keeps it: its addresses, and `conditions: { ready: false }` when it
 * is not ready (unset readiness counts as ready, as in Kubernetes). Translation reads nothing else
 * (translate.ts endpointsOf); targetRef, nodeName, zone, hints, serving and terminating were a
 * third of the control plane's heap at 100,000 endpoints (bench:cp). A new object: one built by
 * deleting fields would become a slower, larger dictionary-mode object.
 */
function compactEndpoint(e: unknown): unknown {
  if (!isObject(e)) return e
  const out: Record<string, unknown> = {}
  if (e.addresses !== undefined) out.addresses = e.addresses
  if (isObject(e.conditions) && e.conditions.ready === false) out.conditions = NOT_READY
  return out
}

function trimPod(raw: RawObject): RawObject {
  const meta = isObject(raw.metadata) ? raw.metadata : {}
  const spec = isObject(raw.spec) ? raw.spec : {}
  const st = isObject(raw.status) ? raw.status : {}
  const metadata: Record<string, unknown> = { name: meta.name, namespace: meta.namespace }
  for (const f of ['uid', 'resourceVersion', 'labels'] as const) if (meta[f] !== undefined) metadata[f] = meta[f]
  const status_ = isObject(meta.annotations) ? meta.annotations[SIDECAR_STATUS] : undefined
  if (typeof status_ === 'string') metadata.annotations = { [SIDECAR_STATUS]: status_ }
  const status: Record<string, unknown> = {}
  for (const f of ['podIP', 'podIPs', 'phase'] as const) if (st[f] !== undefined) status[f] = st[f]
  if (Array.isArray(status.podIPs)) status.podIPs = status.podIPs.map((p) => (isObject(p) ? { ip: p.ip } : p))
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: metadata as RawObject['metadata'],
    spec: spec.serviceAccountName === undefined ? {} : { serviceAccountName: spec.serviceAccountName },
    status,
  }
}

/** Remove, in place, the fields of `value` that a closed object schema does not list. */
function pruneUnknown(schema: unknown, value: unknown, segs: Seg[], dropped: string[]): void {
  if (!isObject(schema)) return
  if (Array.isArray(value)) {
    if (isObject(schema.items)) value.forEach((v, i) => pruneUnknown(schema.items, v, [...segs, i], dropped))
    return
  }
  // unions (anyOf) are left alone: none of Weft's schemas has one with object branches
  if (!isObject(value) || schema.type !== 'object') return
  const props = isObject(schema.properties) ? schema.properties : {}
  for (const key of Object.keys(value)) {
    if (Object.hasOwn(props, key)) {
      pruneUnknown(props[key], value[key], [...segs, key], dropped)
    } else if (schema.additionalProperties === false) {
      delete value[key]
      dropped.push(formatPath([...segs, key]))
    } else {
      pruneUnknown(schema.additionalProperties, value[key], [...segs, key], dropped)
    }
  }
}

// ---- check ---------------------------------------------------------------------------------------

export type Checked =
  | { ok: true; kind: Kind; located: Located<unknown> }
  | { ok: true; kind: 'Pod'; pod: Pod }
  | { ok: false; rejected: Rejected }

const ajv = new Ajv({ allErrors: true, strict: false, verbose: true })
const validators = new Map<SourceKind, ValidateFunction>(WATCHED_KINDS.map((k) => [k.kind, ajv.compile(k.schema)]))
// An object from the informer's cache is never changed once stored (an update replaces it), so
// its verdict can be kept as long as the object lives.
const verdicts = new WeakMap<object, Checked>()

/** Check a trimmed object against its kind's schema (cached per object). */
export function checkObject(kind: SourceKind, obj: RawObject): Checked {
  const cached = verdicts.get(obj)
  if (cached !== undefined) return cached
  const result = check(kind, obj)
  verdicts.set(obj, result)
  return result
}

function check(kind: SourceKind, obj: RawObject): Checked {
  const namespace = obj.metadata?.namespace ?? 'default'
  const name = obj.metadata?.name ?? ''
  const validate = validators.get(kind)!
  // (called through a plain signature: ajv's type guard would narrow obj to never below)
  const valid: boolean = (validate as (data: unknown) => boolean)(obj)
  if (!valid) {
    const problems = schemaProblems(validate.errors ?? [], obj, RESOURCE_MESSAGES)
    const message = problems.map((p) => (p.segs.length === 0 ? p.message : `${formatPath(p.segs)}: ${p.message}`)).join('; ')
    return { ok: false, rejected: { kind, id: `${namespace}/${name}`, resourceVersion: obj.metadata?.resourceVersion ?? '', message } }
  }
  if (kind === 'Pod') return { ok: true, kind, pod: obj as unknown as Pod }
  const located: Located<unknown> = {
    kind,
    obj,
    namespace,
    name,
    id: `${namespace}/${name}`,
    file: `k8s:${kind}/${namespace}/${name}`,
    locate: () => ({ line: 0, column: 0 }),
  }
  return { ok: true, kind, located }
}
