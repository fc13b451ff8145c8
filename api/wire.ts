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
  return decode(schema as SchemaNode, value)
}

function decode(s: SchemaNode, v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v
  if (Array.isArray(v)) return s.items === undefined ? v : v.map((x) => decode(s.items!, x))
  if (s.properties === undefined) return s.patternProperties === undefined ? v : { ...(v as object) }
  const src = v as Record<string, unknown>
  const out: Record<string, unknown> = {}
  const required = s.required ?? []
  for (const key in s.properties) {
    const x = src[key]
    if (x === undefined || x === null) continue
    const p = s.properties[key]
    if (!required.includes(key) && isEmptyCollection(p, x)) continue
    out[key] = decode(p, x)
  }
  return out
}

/** A list or a map with nothing in it: proto3 does not tell it from an absent one. (An empty
 * message is kept: the wire does tell it from an absent one.) */
function isEmptyCollection(s: SchemaNode, x: unknown): boolean {
  if (Array.isArray(x)) return x.length === 0
  if (s.patternProperties === undefined) return false
  for (const _ in x as object) return false
  return true
}
