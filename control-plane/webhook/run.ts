// The webhook as the control plane runs it: make the serving certificate for the Service's DNS
// names, serve AdmissionReviews over HTTPS, and (with a Kubernetes API) keep the
// MutatingWebhookConfiguration's caBundle equal to this replica's CA (./ca-bundle.ts).
import type { KubeConfig } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { DEFAULT_MESH, type MeshConfig } from '../inject/index.ts'
import { createServingCert, serviceDnsNames, type ServingCert } from './certs.ts'
import { startWebhookServer, type WebhookServer } from './server.ts'
import { syncCaBundle } from './ca-bundle.ts'

export const WEBHOOK_CONFIG_NAME = 'weft-sidecar-injector'

export interface WebhookOptions {
  /** host:port to serve HTTPS on */
  listen: string
  /** the control plane's Service and namespace: the certificate's DNS names, the namespace never injected */
  service?: string
  namespace?: string
  mesh?: Partial<MeshConfig>
  log?: Logger
  /** keep this MutatingWebhookConfiguration's caBundle current through the Kubernetes API */
  kube?: { config: KubeConfig; webhookConfig?: string; resyncMs?: number }
}

export interface RunningWebhook {
  readonly server: WebhookServer
  readonly cert: ServingCert
  readonly mesh: MeshConfig
  /** the last caBundle sync: undefined before the first, or without kube */
  readonly caBundle: { ok: boolean; error?: string; at: Date } | undefined
  /** sync the caBundle now (also done at start and every resyncMs) */
  syncCaBundle(): Promise<void>
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
  let caBundle: RunningWebhook['caBundle']
  const kube = o.kube
  const name = kube?.webhookConfig ?? WEBHOOK_CONFIG_NAME
  const sync = async () => {
    if (kube === undefined) return
    try {
      const r = await syncCaBundle(kube.config, name, cert.caPem)
      if (r.changed) o.log?.info({ webhookConfig: name, cas: r.cas }, 'webhook caBundle updated')
      caBundle = { ok: true, at: new Date() }
    } catch (err) {
      // failurePolicy Ignore: until this works, pods start without a sidecar
      o.log?.error({ code: 'WEFT_ERR_WEBHOOK_CA_BUNDLE', webhookConfig: name }, `webhook caBundle not updated: ${(err as Error).message}`)
      caBundle = { ok: false, error: (err as Error).message, at: new Date() }
    }
  }
  await sync()
  const timer = kube === undefined ? undefined : setInterval(() => void sync(), kube.resyncMs ?? 60_000)
  timer?.unref()
  return {
    server,
    cert,
    mesh,
    get caBundle() { return caBundle },
    syncCaBundle: sync,
    close: async () => { clearInterval(timer); await server.close() },
  }
}
