// Snapshot resources as the API carries them (protos/weft/config/v1alpha1/config.proto). Each
// resource is encoded once per version and shared by every stream that sends it.
import { TYPE, type ConfigResponse, type Resource } from '../../protos/api.ts'
import type { TypeUpdate } from '../snapshot/delta.ts'
import type { EndpointSpec, VersionedResource } from '../snapshot/types.ts'

const encoded = new WeakMap<VersionedResource, Resource>()

export function encodeResource(type: string, r: VersionedResource): Resource {
  let e = encoded.get(r)
  if (e === undefined) {
    e =
      type === TYPE.endpoints
        ? { name: r.name, version: r.version, endpoints: { clusterName: r.name, endpoints: (r.body as readonly EndpointSpec[]).map(encodeEndpoint) } }
        : { name: r.name, version: r.version, json: JSON.stringify(r.body) }
    encoded.set(r, e)
  }
  return e
}

function encodeEndpoint(e: EndpointSpec) {
  return { address: e.address, port: e.port, weight: e.weight ?? 0, ready: e.ready ?? true, zone: e.zone ?? '', labels: e.labels ?? {} }
}

export function toResponse(u: TypeUpdate, nonce: string, batchRemaining: number): ConfigResponse {
  return {
    typeUrl: u.type,
    versionInfo: u.version,
    nonce,
    resources: u.resources.map((r) => encodeResource(u.type, r)),
    removedResources: [...u.removed],
    incremental: u.incremental,
    batchRemaining,
  }
}
