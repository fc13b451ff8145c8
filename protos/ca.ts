// The certificate service (./istio/v1/auth/ca.proto, wire-compatible with Istio's): loaded on use
// by the control plane's CA server and by a proxy's identity client, never by a proxy without one.
import { fileURLToPath } from 'node:url'
import { loadSync } from '@grpc/proto-loader'
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js'

export const CA_PROTO = fileURLToPath(new URL('./istio/v1/auth/ca.proto', import.meta.url))
export const CA_METHOD = '/istio.v1.auth.IstioCertificateService/CreateCertificate'

export interface CertificateRequest { csr: string; validityDuration?: string | number }
export interface CertificateResponse { certChain: string[]; trustBundle: string[] }

let loaded: { Client: ServiceClientConstructor; service: ServiceDefinition } | null = null

export function certificateService(): { Client: ServiceClientConstructor; service: ServiceDefinition } {
  if (loaded === null) {
    const def = loadSync(CA_PROTO, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true })
    const pkg = loadPackageDefinition(def) as GrpcObject
    const C = (((pkg.istio as GrpcObject).v1 as GrpcObject).auth as GrpcObject).IstioCertificateService as ServiceClientConstructor
    loaded = { Client: C, service: C.service }
  }
  return loaded
}
