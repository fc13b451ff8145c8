// The webhook as the control plane runs it: make the serving certificate for the Service's DNS
// names, serve AdmissionReviews over HTTPS, and (with a Kubernetes API) keep the
// MutatingWebhookConfiguration's caBundle equal to this replica's CA (./ca-bundle.ts).
import type { Logger } from 'pino'
import { DEFAULT_MESH, type MeshConfig } from '../inject/index.ts'
import { createServingCert, serviceDnsNames, type ServingCert } from './certs.ts'
import { startWebhookServer, type WebhookServer } from './server.ts'

export interface WebhookOptions {
  /** host:port to serve HTTPS on */
  listen: string
  /** the control plane's Service and namespace: the certificate's DNS names, the namespace never injected */
  service?: string
  namespace?: string
  mesh?: Partial<MeshConfig>
  log?: Logger
}

export interface RunningWebhook {
  readonly server: WebhookServer
  readonly cert: ServingCert
  readonly mesh: MeshConfig
  close(): Promise<void>
}

export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':')
  const host = i <= 0 ? '0.0.0.0' : addr.slice(0, i).replace(/^\[(.*)\]$/, '$1')
  const port = Number(addr.slice(i + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--webhook-listen: "${addr}" is not host:port`)
  return { host, port }
}

export async function startWebhook(o: WebhookOptions): Promise<RunningWebhook> {
  const { host, port } = splitHostPort(o.listen)
  const namespace = o.namespace ?? DEFAULT_MESH.controlPlaneNamespace
  const service = o.service ?? 'weft-control-plane'
  const mesh: MeshConfig = {
    ...DEFAULT_MESH,
    controlPlaneNamespace: namespace,
    controlPlaneAddress: `${service}.${namespace}.svc:15010`,
    ...o.mesh,
  }
  const cert = await createServingCert({ dnsNames: [...serviceDnsNames(service, namespace), 'localhost'], ips: ['127.0.0.1', '::1'] })
  const server = await startWebhookServer({
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    host,
    port,
    mesh,
    onDecision: (decision, uid) => o.log?.debug({ decision, uid }, 'admission'),
  })
  o.log?.info({ port: server.port, dnsNames: serviceDnsNames(service, namespace) }, 'webhook serving')
  return { server, cert, mesh, close: () => server.close() }
}
