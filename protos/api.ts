// The config API at run time: the service definition loaded from the .proto (the source of
// truth) and the generated types for it. Both the control plane and the proxy import this file,
// so the loader options live in one place and must match the generator's (./generate.ts).
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { ProtoGrpcType } from './generated/config.ts'
import type { ConfigDiscoveryClient, ConfigDiscoveryDefinition } from './generated/weft/config/v1alpha1/ConfigDiscovery.ts'

export type { ConfigDiscoveryClient, ConfigDiscoveryDefinition, ConfigDiscoveryHandlers } from './generated/weft/config/v1alpha1/ConfigDiscovery.ts'
export type { ConfigRequest, ConfigRequest__Output } from './generated/weft/config/v1alpha1/ConfigRequest.ts'
export type { ConfigResponse, ConfigResponse__Output } from './generated/weft/config/v1alpha1/ConfigResponse.ts'
export type { Resource, Resource__Output } from './generated/weft/config/v1alpha1/Resource.ts'
export type { Node, Node__Output } from './generated/weft/config/v1alpha1/Node.ts'
export type { Status, Status__Output } from './generated/weft/config/v1alpha1/Status.ts'
export type { Endpoint as WireEndpoint, Endpoint__Output as WireEndpoint__Output } from './generated/weft/config/v1alpha1/Endpoint.ts'
export type { ClusterEndpoints, ClusterEndpoints__Output } from './generated/weft/config/v1alpha1/ClusterEndpoints.ts'

export const PACKAGE = 'weft.config.v1alpha1'

/** Resource type URLs, in the order a batch carries them (what is referenced comes first). */
export const TYPE = {
  cluster: 'weft.config.v1alpha1.Cluster',
  endpoints: 'weft.config.v1alpha1.ClusterEndpoints',
  routeTable: 'weft.config.v1alpha1.RouteTable',
  listener: 'weft.config.v1alpha1.Listener',
} as const
export type TypeUrl = (typeof TYPE)[keyof typeof TYPE]
export const TYPE_URLS: readonly TypeUrl[] = [TYPE.cluster, TYPE.endpoints, TYPE.routeTable, TYPE.listener]

/** Short names for metric labels, logs and the admin views: cluster, endpoints, routeTable, listener. */
export function typeName(url: string): string {
  switch (url) {
    case TYPE.cluster: return 'cluster'
    case TYPE.endpoints: return 'endpoints'
    case TYPE.routeTable: return 'routeTable'
    case TYPE.listener: return 'listener'
    default: return 'unknown'
  }
}

export function isTypeUrl(url: string): url is TypeUrl {
  return (TYPE_URLS as readonly string[]).includes(url)
}

const PROTO = fileURLToPath(new URL('./weft/config/v1alpha1/config.proto', import.meta.url))

let loaded: ProtoGrpcType | null = null

/** The loaded package (once per process). */
export function configApi(): ProtoGrpcType {
  if (loaded === null) {
    // required here, not imported: a sidecar imports this module's names (TYPE, typeName) but
    // makes its client without proto-loader (proxy/xds/wire.ts)
    const require = createRequire(import.meta.url)
    const { loadSync } = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader')
    const { loadPackageDefinition } = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js')
    const def = loadSync(PROTO, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true })
    loaded = loadPackageDefinition(def) as unknown as ProtoGrpcType
  }
  return loaded
}

export function configDiscoveryService(): ConfigDiscoveryDefinition {
  return configApi().weft.config.v1alpha1.ConfigDiscovery.service
}

/** A client constructor for ConfigDiscovery. */
export function configDiscoveryClient(): ProtoGrpcType['weft']['config']['v1alpha1']['ConfigDiscovery'] {
  return configApi().weft.config.v1alpha1.ConfigDiscovery
}
