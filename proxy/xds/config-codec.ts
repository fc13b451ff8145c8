// The config stream's message code made at build time (build/config-codec.ts writes the real
// module over this file's compiled copy, dist/proxy/xds/config-codec.js). From the sources there
// is none: ./wire.ts reflects config.proto with protobufjs, which generates the code at run time.

/** What the generated functions of one message type are called as (protobufjs' names). */
export interface MessageType {
  encode(m: object): { finish(): Uint8Array }
  decode(b: Uint8Array): object
  fromObject(o: object): object
  toObject(m: object, o: object): object
}

/** One method of the service, with its message types. */
export interface ServiceMethod {
  name: string
  requestStream: boolean
  responseStream: boolean
  request: MessageType
  response: MessageType
}

/** ConfigDiscovery's methods with the build's message code; null from the sources. */
export const methods: readonly ServiceMethod[] | null = null

/** The hash of config.proto's descriptor the code was made from (build/config-codec.ts, descriptorHash). */
export const DESCRIPTOR_HASH: string | null = null
