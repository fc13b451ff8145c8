// The certificate service on gRPC (protos/istio/v1/auth/ca.proto): a proxy sends a CSR and a
// bearer token; the token says who the caller is (a TokenReview against the Kubernetes API, or a
// per-workload token file in local mode), the CA (./ca.ts) decides. Every refusal is a gRPC status
// with a message and one count in weft_ca_requests_total{result}; nothing is issued on a refusal.
import { readFileSync } from 'node:fs'
import { experimental, Metadata, Server, ServerCredentials, status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js'
import pino, { type Logger } from 'pino'
import { Counter, Registry } from 'prom-client'
import { parse as parseYaml } from 'yaml'
import { certificateService, type CertificateRequest, type CertificateResponse } from '../../protos/ca.ts'
import type { CertificateAuthority, WorkloadIdentity } from './ca.ts'

export type AuthResult = { ok: true; id: WorkloadIdentity } | { ok: false; reason: string; message: string }

/** Says who a bearer token belongs to. */
export interface Authenticator {
  authenticate(token: string): Promise<AuthResult>
}

/**
 * Local mode: a YAML file of `tokens: [{token, namespace, serviceAccount}]`, one per workload (the
 * file a local sidecar's `identity.tokenFile` names holds its token). Read again on each request,
 * so a token added or revoked takes effect at once.
 */
export class FileTokens implements Authenticator {
  readonly path: string
  constructor(path: string) {
    this.path = path
  }

  async authenticate(token: string): Promise<AuthResult> {
    let doc: unknown
    try {
      doc = parseYaml(readFileSync(this.path, 'utf8'))
    } catch (e) {
      return { ok: false, reason: 'token_source_error', message: `${this.path}: ${(e as Error).message}` }
    }
    const list = (doc as { tokens?: unknown })?.tokens
    if (Array.isArray(list)) {
      for (const t of list as { token?: unknown; namespace?: unknown; serviceAccount?: unknown }[]) {
        if (typeof t?.token === 'string' && t.token.length > 0 && timingSafeEqualStr(t.token, token) && typeof t.namespace === 'string' && typeof t.serviceAccount === 'string') {
          return { ok: true, id: { namespace: t.namespace, serviceAccount: t.serviceAccount } }
        }
      }
    }
    return { ok: false, reason: 'invalid_token', message: 'the token is not one of the workload tokens' }
  }
}

/**
 * Kubernetes mode: POST a TokenReview (authentication.k8s.io/v1) with the pod's ServiceAccount
 * token; authenticated `system:serviceaccount:<ns>:<sa>` is the identity. `post` sends the review
 * to the API server with the control plane's own credentials (the Kubernetes source's client).
 */
export class TokenReviewAuthenticator implements Authenticator {
  private readonly post: (body: unknown) => Promise<unknown>
  private readonly audiences: string[] | undefined
  constructor(post: (body: unknown) => Promise<unknown>, audiences?: string[]) {
    this.post = post
    this.audiences = audiences
  }

  async authenticate(token: string): Promise<AuthResult> {
    let res: { status?: { authenticated?: boolean; error?: string; user?: { username?: string } } }
    try {
      res = await this.post({
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(this.audiences === undefined ? {} : { audiences: this.audiences }) },
      }) as typeof res
    } catch (e) {
      return { ok: false, reason: 'token_source_error', message: `TokenReview failed: ${(e as Error).message}` }
    }
    const st = res?.status
    if (st?.authenticated !== true) return { ok: false, reason: 'invalid_token', message: `the token was not authenticated${st?.error ? `: ${st.error}` : ''}` }
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(st.user?.username ?? '')
    if (m === null) return { ok: false, reason: 'not_a_service_account', message: `the token belongs to ${st.user?.username ?? 'nobody'}, not a ServiceAccount` }
    return { ok: true, id: { namespace: m[1], serviceAccount: m[2] } }
  }
}

function timingSafeEqualStr(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let d = 0
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return d === 0
}

export class CaMetrics {
  readonly registry: Registry
  readonly requests: Counter<'result'>
  constructor(registry = new Registry()) {
    this.registry = registry
    this.requests = new Counter({
      name: 'weft_ca_requests_total',
      help: 'Certificate requests, by result: issued, or the reason of the refusal (invalid_token, identity_mismatch, malformed_csr, bad_signature, ...).',
      labelNames: ['result'],
      registers: [registry],
    })
  }
}

export interface CaServerOptions {
  ca: CertificateAuthority
  auth: Authenticator
  /** host:port; default 127.0.0.1:15012 (istiod's CA port) */
  address?: string
  metrics?: CaMetrics
  log?: Logger
  /**
   * Serve TLS with a certificate for these names, signed by the CA itself and made again when its
   * signer or bundle changes (a root rotation); callers check it against the mesh root. Unset:
   * plain text.
   */
  tls?: { dns: readonly string[]; ips: readonly string[] }
}

export interface CaServer {
  readonly address: string
  readonly port: number
  readonly metrics: CaMetrics
  /** serving TLS */
  readonly tls: boolean
  stop(): Promise<void>
}

/** The certificate service's own certificate and key for grpc-js, replaced in place. */
class ServingIdentity implements experimental.CertificateProvider {
  private latest: experimental.IdentityCertificateUpdate | null = null
  private readonly ls = new Set<experimental.IdentityCertificateUpdateListener>()
  set(u: experimental.IdentityCertificateUpdate): void {
    this.latest = u
    for (const l of this.ls) l(u)
  }
  addIdentityCertificateListener(l: experimental.IdentityCertificateUpdateListener): void {
    this.ls.add(l)
    // later, not now: grpc-js adds its own watcher only after this call returns
    queueMicrotask(() => {
      if (this.latest !== null && this.ls.has(l)) l(this.latest)
    })
  }
  removeIdentityCertificateListener(l: experimental.IdentityCertificateUpdateListener): void {
    this.ls.delete(l)
  }
  addCaCertificateListener(): void {}
  removeCaCertificateListener(): void {}
}

export const DEFAULT_CA_ADDRESS = '127.0.0.1:15012'

/** The handler, apart from the server, so the control plane can add it to a server it already runs. */
export function certificateHandler(opts: { ca: CertificateAuthority; auth: Authenticator; metrics: CaMetrics; log: Logger }) {
  const { ca, auth, metrics, log } = opts
  const refuse = (cb: sendUnaryData<CertificateResponse>, code: number, reason: string, message: string): void => {
    metrics.requests.inc({ result: reason })
    log.warn({ reason }, `certificate refused: ${message}`)
    cb({ code, details: `WEFT_ERR_CA_${reason.toUpperCase()}: ${message}` }, null)
  }
  return (call: ServerUnaryCall<CertificateRequest, CertificateResponse>, cb: sendUnaryData<CertificateResponse>): void => {
    const header = call.metadata.get('authorization')[0]
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)$/.exec(header) : null
    if (m === null) return refuse(cb, status.UNAUTHENTICATED, 'no_token', 'no "authorization: Bearer <token>" metadata')
    void auth.authenticate(m[1]).then(async (who) => {
      if (!who.ok) return refuse(cb, who.reason === 'token_source_error' ? status.UNAVAILABLE : status.UNAUTHENTICATED, who.reason, who.message)
      const ttl = Number(call.request.validityDuration ?? 0)
      const r = await ca.issue(call.request.csr ?? '', who.id, Number.isFinite(ttl) && ttl > 0 ? ttl : 0)
      if (!r.ok) return refuse(cb, r.code === 'PERMISSION_DENIED' ? status.PERMISSION_DENIED : status.INVALID_ARGUMENT, r.reason, r.message)
      metrics.requests.inc({ result: 'issued' })
      log.info({ spiffeId: r.spiffeId, notAfter: r.notAfter.toISOString() }, 'certificate issued')
      const bundle = ca.trustBundle()
      cb(null, { certChain: [...r.chain, bundle[0]], trustBundle: bundle })
    }).catch((e: Error) => refuse(cb, status.INTERNAL, 'internal', e.message))
  }
}

export async function startCaServer(opts: CaServerOptions): Promise<CaServer> {
  const log = opts.log ?? pino({ level: 'silent' })
  const metrics = opts.metrics ?? new CaMetrics()
  const server = new Server()
  server.addService(certificateService().service, { CreateCertificate: certificateHandler({ ca: opts.ca, auth: opts.auth, metrics, log }) })
  const address = opts.address ?? DEFAULT_CA_ADDRESS
  let creds = ServerCredentials.createInsecure()
  const tls = opts.tls
  if (tls !== undefined) {
    const serving = new ServingIdentity()
    const issue = async () => {
      const c = await opts.ca.servingCert(tls)
      serving.set({ certificate: Buffer.from(c.certPem), privateKey: Buffer.from(c.keyPem) })
    }
    await issue()
    opts.ca.onChange(() => void issue().catch((e: Error) => log.error({ err: e.message }, 'WEFT_ERR_CA_SERVING_CERT: could not re-issue the certificate service\'s own certificate')))
    // grpc-js 1.14 passes this function's arguments to the constructor as (identity, ca): the
    // serving identity first, no client certificates (null)
    creds = experimental.createCertificateProviderServerCredentials(serving, null, false)
  }
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, creds, (err, p) => (err ? reject(err) : resolve(p))))
  const bound = `${address.slice(0, address.lastIndexOf(':'))}:${port}`
  log.info({ address: bound, trustDomain: opts.ca.trustDomain }, 'certificate service listening')
  return {
    address: bound,
    port,
    metrics,
    tls: tls !== undefined,
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  }
}
