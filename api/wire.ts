// Resource bodies between the API's messages (protos/weft/config/v1alpha1/config.proto) and the
// config model (./schema.ts). The messages use the model's field names (camelCase once loaded),
// so an object of the model is a message as it is; back from the wire, protobuf's defaults (an
// empty list or map, null for an absent message) are dropped where the model says "optional", and
// only the model's fields are kept, in the model's order. Driven by the schema, so a field added
// to both needs no code here (test/api-wire.test.ts checks that the two agree).

/** The parts of a JSON Schema (TypeBox) this walks. */
interface SchemaNode {
  readonly type?: string
  readonly properties?: Readonly<Record<string, SchemaNode>>
  readonly required?: readonly string[]
  readonly items?: SchemaNode
  readonly patternProperties?: Readonly<Record<string, SchemaNode>>
}

/** A decoded message (protobufjs toObject with defaults) -> the object of the model `schema` describes. */
export function fromMessage(schema: object, value: unknown): unknown {
  return decoderOf(schema as SchemaNode)(value)
}

type Decoder = (v: unknown) => unknown

/** One decoder per schema node, built on first use: the schema is read once, not per message
 * (a route table of thousands of routes is walked on every config update). */
const decoders = new WeakMap<SchemaNode, Decoder>()

function decoderOf(s: SchemaNode): Decoder {
  let d = decoders.get(s)
  if (d === undefined) {
    d = build(s)
    decoders.set(s, d)
  }
  return d
}

function build(s: SchemaNode): Decoder {
  if (s.properties === undefined) {
    const items = s.items
    const copyMap = s.patternProperties !== undefined
    return (v) => {
      if (v === null || typeof v !== 'object') return v
      if (Array.isArray(v)) return items === undefined ? v : v.map(decoderOf(items))
      return copyMap ? { ...(v as object) } : v
    }
  }
  const required = new Set(s.required ?? [])
  const fields = Object.entries(s.properties).map(([key, p]) => ({ key, p, optional: !required.has(key) }))
  const items = s.items
  return (v) => {
    if (v === null || typeof v !== 'object') return v
    if (Array.isArray(v)) return items === undefined ? v : v.map(decoderOf(items))
    const src = v as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const f of fields) {
      const x = src[f.key]
      if (x === undefined || x === null) continue
      if (f.optional && isEmptyCollection(f.p, x)) continue
      out[f.key] = decoderOf(f.p)(x)
    }
    return out
  }
}

/** A list or a map with nothing in it: proto3 does not tell it from an absent one. (An empty
 * message is kept: the wire does tell it from an absent one.) */
function isEmptyCollection(s: SchemaNode, x: unknown): boolean {
  if (Array.isArray(x)) return x.length === 0
  if (s.patternProperties === undefined) return false
  for (const _ in x as object) return false
  return true
}
