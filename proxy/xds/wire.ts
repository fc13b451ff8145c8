// The proxy's ConfigDiscovery message codec, without @grpc/proto-loader. The control plane and
// the tests use protos/api.ts (proto-loader over config.proto); a sidecar in --control-plane mode
// only needs the two messages of its one stream. Built, it uses the message code the build
// generated from config.proto (./config-codec.ts, written by build/config-codec.ts): plain
// functions over protobufjs' minimal runtime, no reflection and no descriptor at run time.
// proto-loader loads the full protobufjs and its descriptor extension, parses the .proto and
// builds a descriptor of every message: ~15 MB and ~120 ms of a sidecar's start (measured alone,
// README *Footprint*); the reflection alone (Root.fromJSON of a JSON descriptor, resolveAll) was
// still ~12 ms of a --control-plane start before its connect. Messages are (de)serialized exactly
// as proto-loader does with the options of protos/api.ts: fromObject/encode out, decode/toObject
// in, longs and enums as strings, defaults and oneof names set (test/xds-wire.test.ts compares
// both on the same messages). From the sources (no build), the .proto is parsed here with the
// full protobufjs, which generates the same code at run time.
// The sidecar's stream itself is ./grpc-stream.ts (the proxy's own HTTP/2 codec), which takes the
// codec of StreamConfig (streamConfigCodec); configDiscoveryClient, the same codec in a grpc-js
// client class, is for tests and tools and requires grpc-js on first use.
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type protobuf from 'protobufjs'
import { PACKAGE, type ConfigDiscoveryClient } from '../../protos/api.ts'
import { methods as builtMethods, type ServiceMethod } from './config-codec.ts'

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

/** The service's methods from the reflected .proto (protobufjs generates their code on first use). */
function reflectedMethods(): ServiceMethod[] {
  return parsedRoot().lookupService(`${PACKAGE}.ConfigDiscovery`).methodsArray.map((x) => {
    x.resolve()
    return { name: x.name, requestStream: x.requestStream === true, responseStream: x.responseStream === true, request: x.resolvedRequestType!, response: x.resolvedResponseType! }
  })
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
  const m: Record<string, MethodCodec> = {}
  for (const x of builtMethods ?? reflectedMethods()) {
    const { request: req, response: res } = x
    m[x.name] = {
      path: `/${PACKAGE}.ConfigDiscovery/${x.name}`,
      requestStream: x.requestStream,
      responseStream: x.responseStream,
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
