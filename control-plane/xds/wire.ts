// Snapshot resources as the API carries them (protos/weft/config/v1alpha1/config.proto). Each
// resource is encoded once per version and shared by every stream that sends it: as the protobuf
// bytes of its `resources` entry, which serializeResponse splices into each stream's response.
// Without that, every proxy's response is encoded from objects again: 1,000 proxies connecting
// to a 10,000-Service mesh would cost the control plane 1,000 x 0.3 s of protobuf encoding.
import { configDiscoveryService, TYPE, type ConfigResponse, type Resource } from '../../protos/api.ts'
import type { TypeUpdate } from '../snapshot/delta.ts'
import type { EndpointSpec, VersionedResource } from '../snapshot/types.ts'
import { resourceJson } from '../snapshot/version.ts'

const chunks = new WeakMap<VersionedResource, Buffer>()

/** The protobuf bytes of each resource of a response (field 4, tag and length included). */
export const RESOURCE_BYTES: unique symbol = Symbol('weft.resourceBytes')

export interface EncodedResponse extends ConfigResponse {
  readonly [RESOURCE_BYTES]: readonly Buffer[]
}

/**
 * A resource as a message object. Not kept: its bytes are (resourceBytes), and the objects of a
 * large mesh would be most of the heap (50 namespaces' 5 MB route tables as JSON strings), which
 * every major collection then walks.
 */
export function encodeResource(type: string, r: VersionedResource): Resource {
  return type === TYPE.endpoints
    ? { name: r.name, version: r.version, endpoints: { clusterName: r.name, endpoints: (r.body as readonly EndpointSpec[]).map(encodeEndpoint) } }
    : { name: r.name, version: r.version, json: resourceJson(r.body) }
}

function encodeEndpoint(e: EndpointSpec) {
  return { address: e.address, port: e.port, weight: e.weight ?? 0, ready: e.ready ?? true, zone: e.zone ?? '', labels: e.labels ?? {} }
}

let protobuf: ((r: ConfigResponse) => Buffer) | null = null

/** The generated (protobufjs) serializer of ConfigResponse. */
function generated(r: ConfigResponse): Buffer {
  protobuf ??= configDiscoveryService().StreamConfig.responseSerialize
  return protobuf(r)
}

function resourceBytes(type: string, r: VersionedResource): Buffer {
  let b = chunks.get(r)
  if (b === undefined) {
    // a message with only field 4 set is exactly that field's entry
    b = generated({ resources: [encodeResource(type, r)] })
    chunks.set(r, b)
  }
  return b
}

// a resource list (of an update shared by many proxies) -> its resources' bytes, concatenated
const blocks = new WeakMap<readonly VersionedResource[], Buffer>()

/** One response of an update. Its resources are encoded once per update, whatever the number of proxies. */
export function toResponse(u: TypeUpdate, nonce: string, batchRemaining: number): EncodedResponse {
  let block = blocks.get(u.resources)
  if (block === undefined) {
    block = Buffer.concat(u.resources.map((r) => resourceBytes(u.type, r)))
    blocks.set(u.resources, block)
  }
  return new WireResponse(u, nonce, batchRemaining, block)
}

class WireResponse implements EncodedResponse {
  readonly typeUrl: string
  readonly versionInfo: string
  readonly nonce: string
  readonly removedResources: string[]
  readonly incremental: boolean
  readonly batchRemaining: number
  readonly [RESOURCE_BYTES]: readonly Buffer[]
  private readonly update: TypeUpdate

  constructor(u: TypeUpdate, nonce: string, batchRemaining: number, block: Buffer) {
    this.update = u
    this.typeUrl = u.type
    this.versionInfo = u.version
    this.nonce = nonce
    this.removedResources = [...u.removed]
    this.incremental = u.incremental
    this.batchRemaining = batchRemaining
    this[RESOURCE_BYTES] = [block]
  }

  /** The resources as objects (the spliced bytes are what is sent). */
  get resources(): Resource[] {
    return this.update.resources.map((r) => encodeResource(this.update.type, r))
  }
}

/**
 * ConfigResponse to protobuf: the same bytes as the generated serializer (fields in number
 * order, a field written when it is set, as protobufjs does), with the resources spliced in
 * from their encodings when the response carries them.
 */
export function serializeResponse(r: ConfigResponse): Buffer {
  const parts = (r as Partial<EncodedResponse>)[RESOURCE_BYTES]
  if (parts === undefined) return generated(r)
  const w = new Writer()
  w.string(1, r.typeUrl)
  w.string(2, r.versionInfo)
  w.string(3, r.nonce)
  for (const p of parts) w.raw(p)
  for (const name of r.removedResources ?? []) w.string(5, name)
  if (r.incremental != null) w.varint(6, r.incremental ? 1 : 0)
  if (r.batchRemaining != null) w.varint(7, r.batchRemaining)
  return w.finish()
}

/** Just enough of the protobuf wire format for ConfigResponse's own fields. */
class Writer {
  private readonly parts: (Buffer | string | number)[] = []
  private size = 0

  string(field: number, s: string | undefined | null): void {
    if (s == null) return
    const n = Buffer.byteLength(s)
    this.tag(field, 2)
    this.uint(n)
    this.parts.push(s)
    this.size += n
  }

  varint(field: number, v: number): void {
    this.tag(field, 0)
    this.uint(v)
  }

  raw(b: Buffer): void {
    this.parts.push(b)
    this.size += b.length
  }

  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.size)
    let at = 0
    for (const p of this.parts) {
      if (typeof p === 'number') out[at++] = p
      else if (typeof p === 'string') at += out.write(p, at, 'utf8')
      else at += p.copy(out, at)
    }
    return out
  }

  private tag(field: number, wireType: number): void {
    this.uint((field << 3) | wireType)
  }

  private uint(v: number): void {
    let x = v >>> 0
    while (x > 127) {
      this.parts.push((x & 127) | 128)
      this.size++
      x >>>= 7
    }
    this.parts.push(x)
    this.size++
  }
}
