// The control plane's certificate service, as `weft control-plane --ca-listen` runs it:
//   local mode:      the root in --ca-dir (made at first start), workloads proven by --ca-tokens
//                    (a YAML file of tokens, namespaces and service accounts);
//   Kubernetes mode: the root in the Secret weft-ca-root of the control plane's namespace (the
//                    first replica makes it; the others, and restarts, read it: one root for all),
//                    workloads proven by their ServiceAccount token (a TokenReview);
//   either:          a plugged-in signing certificate and key (--ca-cert, --ca-key) instead.
import { readFileSync } from 'node:fs'
import type { KubeConfig } from '@kubernetes/client-node'
import type { Logger } from 'pino'
import { CertificateAuthority } from './ca.ts'
import type { Registry } from 'prom-client'
import { CaMetrics, FileTokens, startCaServer, TokenReviewAuthenticator, type Authenticator, type CaServer } from './server.ts'

export const ROOT_SECRET = 'weft-ca-root'

export interface CaRunOptions {
  listen: string
  trustDomain: string
  log: Logger
  /** local mode */
  dir?: string
  tokensFile?: string
  /** Kubernetes mode */
  kube?: { config: KubeConfig; namespace: string }
  /** where weft_ca_requests_total goes (the control plane's registry: its /metrics) */
  registry?: Registry
  /** serve TLS with a certificate for these names (./server.ts) */
  tls?: { dns: readonly string[]; ips: readonly string[] }
  /** plugged-in signing certificate (PEM files; chain: intermediates up to the root) */
  plugin?: { certFile: string; keyFile: string; chainFile?: string }
}

export interface RunningCa {
  readonly ca: CertificateAuthority
  readonly server: CaServer
  close(): Promise<void>
}

async function kubeJson(kc: KubeConfig, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const [{ HttpMethod }, { kubeCall }] = await Promise.all([import('@kubernetes/client-node'), import('../webhook/ca-bundle.ts')])
  return kubeCall(kc, method === 'GET' ? HttpMethod.GET : HttpMethod.POST, path, body, 'application/json')
}

/** The mesh root shared by every replica: read from its Secret, or made and stored (a lost race reads the winner's). */
async function rootFromSecret(o: CaRunOptions, kc: KubeConfig, namespace: string): Promise<CertificateAuthority> {
  const path = `/api/v1/namespaces/${namespace}/secrets/${ROOT_SECRET}`
  for (let attempt = 0; attempt < 3; attempt++) {
    const got = await kubeJson(kc, 'GET', path)
    if (got.status === 200) {
      const d = got.body?.data ?? {}
      const certPem = Buffer.from(String(d['root-cert.pem'] ?? ''), 'base64').toString('utf8')
      const keyPem = Buffer.from(String(d['root-key.pem'] ?? ''), 'base64').toString('utf8')
      o.log.info({ secret: `${namespace}/${ROOT_SECRET}` }, 'mesh root read from its Secret')
      return CertificateAuthority.create({ trustDomain: o.trustDomain, plugin: { certPem, keyPem } })
    }
    if (got.status !== 404) throw new Error(`GET secrets/${ROOT_SECRET}: ${got.status} ${got.body?.message ?? ''} (may the control plane's ServiceAccount get secrets in ${namespace}?)`)
    const ca = await CertificateAuthority.create({ trustDomain: o.trustDomain })
    const { certPem, keyPem } = await ca.signerPem()
    const made = await kubeJson(kc, 'POST', `/api/v1/namespaces/${namespace}/secrets`, {
      apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
      metadata: { name: ROOT_SECRET, namespace, labels: { 'app.kubernetes.io/part-of': 'weft' } },
      data: { 'root-cert.pem': Buffer.from(certPem).toString('base64'), 'root-key.pem': Buffer.from(keyPem).toString('base64') },
    })
    if (made.status === 201 || made.status === 200) {
      o.log.info({ secret: `${namespace}/${ROOT_SECRET}` }, 'mesh root made and stored in its Secret')
      return ca
    }
    if (made.status !== 409) throw new Error(`POST secrets: ${made.status} ${made.body?.message ?? ''} (may the control plane's ServiceAccount create secrets in ${namespace}?)`)
    // another replica stored its root first: use that one
  }
  throw new Error(`secrets/${ROOT_SECRET}: neither read nor made after 3 attempts`)
}

export async function startCa(o: CaRunOptions): Promise<RunningCa> {
  let ca: CertificateAuthority
  if (o.plugin !== undefined) {
    const chain = o.plugin.chainFile === undefined ? [] : (readFileSync(o.plugin.chainFile, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [])
    ca = await CertificateAuthority.create({ trustDomain: o.trustDomain, plugin: { certPem: readFileSync(o.plugin.certFile, 'utf8'), keyPem: readFileSync(o.plugin.keyFile, 'utf8'), chainPem: chain } })
  } else if (o.kube !== undefined) {
    ca = await rootFromSecret(o, o.kube.config, o.kube.namespace)
  } else {
    if (o.dir === undefined) throw new Error('--ca-listen in local mode needs --ca-dir (where the mesh root is kept)')
    ca = await CertificateAuthority.create({ trustDomain: o.trustDomain, dir: o.dir })
  }
  let auth: Authenticator
  if (o.kube !== undefined) {
    const kc = o.kube.config
    auth = new TokenReviewAuthenticator(async (review) => {
      const r = await kubeJson(kc, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', review)
      if (r.status !== 201 && r.status !== 200) throw new Error(`${r.status} ${r.body?.message ?? ''} (may the control plane create tokenreviews? install/ grants it)`)
      return r.body
    })
  } else {
    if (o.tokensFile === undefined) throw new Error('--ca-listen in local mode needs --ca-tokens (the workloads\' tokens file)')
    auth = new FileTokens(o.tokensFile)
  }
  const server = await startCaServer({ ca, auth, address: o.listen, log: o.log, metrics: new CaMetrics(o.registry), tls: o.tls })
  return { ca, server, close: () => server.stop() }
}
