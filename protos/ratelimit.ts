// The Envoy rate limit service protocol (envoy.service.ratelimit.v3, ./envoy/service/ratelimit/v3/
// rls.proto): loaded on use by the proxy's global rate limit filter and by `weft ratelimit-server`.
import { fileURLToPath } from 'node:url'
import { loadSync } from '@grpc/proto-loader'
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js'

export const RLS_PROTO = fileURLToPath(new URL('./envoy/service/ratelimit/v3/rls.proto', import.meta.url))
export const RLS_INCLUDE = fileURLToPath(new URL('./', import.meta.url))
export const RLS_METHOD = '/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit'

export interface RlsEntry { key: string; value: string }
export interface RlsRequest { domain: string; descriptors: { entries: RlsEntry[] }[]; hitsAddend?: number }
export type RlsCode = 'UNKNOWN' | 'OK' | 'OVER_LIMIT'
export type RlsUnit = 'UNKNOWN' | 'SECOND' | 'MINUTE' | 'HOUR' | 'DAY' | 'MONTH' | 'YEAR'
export interface RlsStatus {
  code: RlsCode
  currentLimit?: { requestsPerUnit: number; unit: RlsUnit; name?: string } | null
  limitRemaining: number
  durationUntilReset?: { seconds: string | number; nanos: number } | null
}
export interface RlsResponse {
  overallCode: RlsCode
  statuses: RlsStatus[]
  responseHeadersToAdd?: { key: string; value: string }[]
  requestHeadersToAdd?: { key: string; value: string }[]
}

let loaded: { Client: ServiceClientConstructor; service: ServiceDefinition } | null = null

/** The service definition and client constructor (loaded once per process). */
export function rateLimitService(): { Client: ServiceClientConstructor; service: ServiceDefinition } {
  if (loaded === null) {
    const def = loadSync(RLS_PROTO, { includeDirs: [RLS_INCLUDE], keepCase: false, longs: String, enums: String, defaults: true, oneofs: true })
    const pkg = loadPackageDefinition(def) as GrpcObject
    const Client = ((pkg.envoy as GrpcObject).service as GrpcObject).ratelimit as GrpcObject
    const C = (Client.v3 as GrpcObject).RateLimitService as ServiceClientConstructor
    loaded = { Client: C, service: C.service }
  }
  return loaded
}
