// The config stream's message code made at build time (build/config-codec.ts writes the real
// module over this file's compiled copy, dist/proxy/xds/config-codec.js). From the sources there
// is none: protobufjs generates the code at run time (./wire.ts).
import type protobuf from 'protobufjs/light.js'

export const installCodec: ((root: protobuf.Root, pb: typeof protobuf) => void) | null = null
