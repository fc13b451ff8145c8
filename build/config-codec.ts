// The --control-plane sidecar's message code, generated at build time: `configCodecSource(root)`
// is written by build/bundle.ts over dist/proxy/xds/config-codec.js (the sources' stub,
// proxy/xds/config-codec.ts, exports null) and bundled into the sidecar files.
//
// Why: protobufjs makes each message type's constructor, encode, decode, fromObject and toObject
// on first use by generating their source and compiling it with Function(), after its reflection
// has built the types (Root.fromJSON of a descriptor, resolveAll): ~10-15 ms of a --control-plane
// sidecar's start for the code, compiled again at every start (code made by Function() is in no
// code cache), and ~12 ms more for the reflection, all before the connect to the control plane.
// Here protobufjs' own generators (Type.generateConstructor, encoder, decoder, converter) run at
// build time, over the reflected .proto, and their output becomes ordinary functions in the
// bundle, held by the sidecar file's code cache like the rest. Each message type is a plain
// object { ctor, encode, decode, fromObject, toObject } (what the generated functions call on
// `this` and on their field types), an enum { values, valuesById }; the functions run with the
// names protobufjs gives them (util, Reader, Writer from protobufjs/minimal, `types` the fields'
// types). No reflection, no descriptor and no protobufjs beyond its minimal runtime (Reader,
// Writer, util) are loaded by the sidecar. test/xds-codec-build.test.ts compares this codec with
// the one protobufjs makes at run time; test/xds-wire.test.ts checks that it was built from the
// current config.proto (DESCRIPTOR_HASH).
import { createHash } from 'node:crypto'
import protobuf from 'protobufjs/light.js'

/** Message types reachable from `service`'s methods (and the enums their fields use). */
function reachableTypes(root: protobuf.Root, service: string): (protobuf.Type | protobuf.Enum)[] {
  const seen = new Map<string, protobuf.Type | protobuf.Enum>()
  const visit = (t: protobuf.Type | protobuf.Enum): void => {
    if (seen.has(t.fullName)) return
    seen.set(t.fullName, t)
    if (t instanceof protobuf.Enum) return
    for (const f of t.fieldsArray) {
      f.resolve()
      if (f.resolvedType !== null) visit(f.resolvedType)
    }
  }
  for (const m of root.lookupService(service).methodsArray) {
    m.resolve()
    visit(m.resolvedRequestType!)
    visit(m.resolvedResponseType!)
  }
  return [...seen.values()].sort((a, b) => (a.fullName < b.fullName ? -1 : 1))
}

/** The hash of a root's descriptor (what DESCRIPTOR_HASH records of the root the code was made from). */
export function descriptorHash(root: protobuf.Root): string {
  return createHash('sha256').update(JSON.stringify(root.toJSON())).digest('hex').slice(0, 16)
}

/**
 * The ES module dist/proxy/xds/config-codec.js for `service` (full name, no leading dot): its
 * methods (name, path, streaming, request and response codecs) and DESCRIPTOR_HASH.
 */
export function configCodecSource(root: protobuf.Root, service: string): string {
  const pb = protobuf as unknown as {
    encoder(t: protobuf.Type): { toString(): string }
    decoder(t: protobuf.Type): { toString(): string }
    converter: { fromObject(t: protobuf.Type): { toString(): string }; toObject(t: protobuf.Type): { toString(): string } }
    wrappers: Record<string, unknown>
  }
  const gen = (protobuf.Type as unknown as { generateConstructor(t: protobuf.Type): { toString(): string } }).generateConstructor
  const all = reachableTypes(root, service)
  const id = new Map(all.map((t, i) => [t.fullName, `T${i}`]))
  const ref = (t: protobuf.Type | protobuf.Enum | null): string => (t === null ? 'null' : id.get(t.fullName)!)
  const decls: string[] = []
  const blocks: string[] = []
  for (const t of all) {
    const name = id.get(t.fullName)!
    if (t instanceof protobuf.Enum) {
      decls.push(`const ${name} = { values: ${JSON.stringify(t.values)}, valuesById: ${JSON.stringify(t.valuesById)} } // ${t.fullName}`)
      continue
    }
    // protobufjs' wrappers (google.protobuf.Any, ...) need its reflection: not in this codec
    if (pb.wrappers[t.fullName] !== undefined) throw new Error(`config-codec: ${t.fullName} has a protobufjs wrapper, which the static codec does not support`)
    decls.push(`const ${name} = {} // ${t.fullName}`)
    blocks.push([
      '{',
      `  const types = [${t.fieldsArray.map((f) => ref(f.resolvedType)).join(', ')}]`,
      `  ${name}.ctor = ${gen(t).toString()}`,
      `  ${name}.encode = ${pb.encoder(t).toString()}`,
      `  ${name}.decode = ${pb.decoder(t).toString()}`,
      `  ${name}.fromObject = ${pb.converter.fromObject(t).toString()}`,
      `  ${name}.toObject = ${pb.converter.toObject(t).toString()}`,
      '}',
    ].join('\n'))
  }
  const methods = root.lookupService(service).methodsArray.map((m) => {
    m.resolve()
    return `  { name: ${JSON.stringify(m.name)}, requestStream: ${m.requestStream === true}, responseStream: ${m.responseStream === true}, request: ${ref(m.resolvedRequestType)}, response: ${ref(m.resolvedResponseType)} },`
  })
  return [
    '// Generated by build/config-codec.ts (npm run build) from config.proto: see that file.',
    '/* eslint-disable */',
    "import $protobuf from 'protobufjs/minimal.js'",
    'const util = $protobuf.util, Reader = $protobuf.Reader, Writer = $protobuf.Writer',
    ...decls,
    ...blocks,
    `/** ${service}'s methods */`,
    'export const methods = [',
    ...methods,
    ']',
    `export const DESCRIPTOR_HASH = ${JSON.stringify(descriptorHash(root))}`,
    '',
  ].join('\n')
}
