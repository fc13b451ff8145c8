// The proxy's ConfigDiscovery message codec, without @grpc/proto-loader. The control plane and
// the tests use protos/api.ts (proto-loader over config.proto); a sidecar in --control-plane mode
// only needs the two messages of its one stream, so it reads a JSON descriptor of config.proto
// that the build writes next to this module's compiled file (dist/proxy/xds/config-descriptor.json,
// by build/bundle.ts) with protobufjs' light build (no .proto
// parser). proto-loader loads the full protobufjs and its descriptor extension, parses the .proto
// and builds a descriptor of every message: ~15 MB and ~120 ms of a sidecar's start (measured
// alone, README *Footprint*). Messages are (de)serialized exactly as proto-loader does with the
// options of protos/api.ts: fromObject/encode out, decode/toObject in, longs and enums as strings,
// defaults and oneof names set (test/xds-wire.test.ts compares both on the same messages).
// From the sources (no build), the .proto is parsed here with the full protobufjs.
// The sidecar's stream itself is ./grpc-stream.ts (the proxy's own HTTP/2 codec), which takes the
// codec of StreamConfig (streamConfigCodec); configDiscoveryClient, the same codec in a grpc-js
// client class, is for tests and tools and requires grpc-js on first use.
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs/light.js'
import { PACKAGE, type ConfigDiscoveryClient } from '../../protos/api.ts'
import { installCodec } from './config-codec.ts'

export const DESCRIPTOR_FILE = 'config-descriptor.json'
const PROTO = fileURLToPath(new URL('../../protos/weft/config/v1alpha1/config.proto', import.meta.url))

/** protos/api.ts's loader options after parsing (keepCase: false is applied by the parser) */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true }

/** config.proto, parsed with the full protobufjs (the build's step, and the sources' fallback). */
export function parsedRoot(): protobuf.Root {
  const full = createRequire(import.meta.url)('protobufjs') as typeof protobuf
  const root = new full.Root()
  root.loadSync(PROTO, { keepCase: false })
  root.resolveAll()
  return root
}

function root(): protobuf.Root {
  const file = new URL(`./${DESCRIPTOR_FILE}`, import.meta.url)
  if (!existsSync(file)) return parsedRoot()
  const r = protobuf.Root.fromJSON(JSON.parse(readFileSync(file, 'utf8')) as protobuf.INamespace)
  // the build's message code for this descriptor (./config-codec.ts), when built
  installCodec?.(r, protobuf)
  return r
}

type Constructor = new (address: string, credentials: ChannelCredentials, options?: Partial<ChannelOptions>) => ConfigDiscoveryClient

/** One method's path and (de)serializers, as grpc-js's service definitions hold them. */
export interface MethodCodec {
  path: string
  requestStream: boolean
  responseStream: boolean
  requestSerialize(o: object): Buffer
  requestDeserialize(b: Buffer): object
  responseSerialize(o: object): Buffer
  responseDeserialize(b: Buffer): object
  originalName: string
}

let methods: Record<string, MethodCodec> | null = null

/** ConfigDiscovery's methods (made once per process). */
function serviceMethods(): Record<string, MethodCodec> {
  if (methods !== null) return methods
  const service = root().lookupService(`${PACKAGE}.ConfigDiscovery`)
  const m: Record<string, MethodCodec> = {}
  for (const x of service.methodsArray) {
    x.resolve()
    const req = x.resolvedRequestType!
    const res = x.resolvedResponseType!
    m[x.name] = {
      path: `/${PACKAGE}.ConfigDiscovery/${x.name}`,
      requestStream: x.requestStream === true,
      responseStream: x.responseStream === true,
      requestSerialize: (o: object) => Buffer.from(req.encode(req.fromObject(o)).finish()),
      requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), TO_OBJECT),
      responseSerialize: (o: object) => Buffer.from(res.encode(res.fromObject(o)).finish()),
      responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), TO_OBJECT),
      originalName: x.name.charAt(0).toLowerCase() + x.name.slice(1),
    }
  }
  methods = m
  return m
}

/** StreamConfig's path and codec (the sidecar's config stream, ./grpc-stream.ts). */
export function streamConfigCodec(): MethodCodec {
  return serviceMethods().StreamConfig
}

let client: Constructor | null = null

/** The ConfigDiscovery client class of grpc-js (made once per process; grpc-js required here). */
export function configDiscoveryClient(): Constructor {
  if (client !== null) return client
  const { makeGenericClientConstructor } = createRequire(import.meta.url)('@grpc/grpc-js') as typeof import('@grpc/grpc-js')
  client = makeGenericClientConstructor(serviceMethods() as unknown as Parameters<typeof makeGenericClientConstructor>[0], 'ConfigDiscovery') as unknown as Constructor
  return client
}
