// The sidecar's own identity: an X.509 SVID for spiffe://<trust-domain>/ns/<ns>/sa/<sa>, with
// the key made here (it never leaves the process) and the certificate from the mesh's CA
// (protos/istio/v1/auth/ca.proto) in exchange for a CSR and the workload's token; or, without a
// CA, certificate files. Renewed at half its lifetime: the new SecureContexts are used by the
// connections made from then on, and open connections keep theirs (nothing is dropped).
//
// Loaded only when a proxy has an identity (it pulls in @peculiar/x509 and gRPC).
import 'reflect-metadata'
import { createSecureContext, type SecureContext } from 'node:tls'
import { readFileSync } from 'node:fs'
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { credentials, experimental, Metadata, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js'
import { isIP } from 'node:net'
import { checkServerIdentity } from 'node:tls'
import { certificateService, type CertificateResponse } from '../../protos/ca.ts'
import type { Logger } from '../log.ts'
import { peerSpiffeId } from './spiffe.ts'

export { ALPN_H2, ALPN_HTTP1, ALPN_TCP, MESH_ALPN, peerSpiffeId } from './spiffe.ts'

const crypto = webcrypto as unknown as Crypto
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

export interface IdentitySettings {
  trustDomain: string
  namespace: string
  serviceAccount: string
  /** the CA's host:port; unset: the certificate comes from certFile/keyFile */
  caAddress?: string
  /** file holding the bearer token sent to the CA (read at each request: tokens rotate) */
  tokenFile?: string
  /** PEM of the roots that sign the CA's own certificate: the CA is reached over TLS (unset: plain text) */
  caRoot?: string
  /** lifetime asked for, seconds (0: the CA's default, 24 h) */
  ttlSeconds?: number
  certFile?: string
  keyFile?: string
  /** PEM file of the trusted roots (static mode; with a CA, the CA sends them) */
  trustBundleFile?: string
}

/** One SVID and the TLS contexts made from it. */
export interface Svid {
  readonly spiffeId: string
  readonly chainPem: string[]
  readonly trustBundle: string[]
  readonly notBefore: Date
  readonly notAfter: Date
  /** when renewal starts (half the lifetime) */
  readonly renewAt: Date
  readonly serial: string
  /** for accepting mesh TLS: our chain, client certificates required and checked against the bundle */
  readonly server: SecureContext
  /** for originating mesh TLS: our chain as client certificate, peers checked against the bundle */
  readonly client: SecureContext
}

export interface IdentityStatus {
  spiffeId: string
  trustDomain: string
  source: 'ca' | 'files'
  serial: string
  notBefore: string
  notAfter: string
  nextRenewal: string | null
  chain: { subject: string; issuer: string; san: string; notAfter: string }[]
  trustBundle: { subject: string; notAfter: string; fingerprint256: string }[]
  renewals: number
  renewalFailures: number
  lastError: string | null
}

export class IdentityManager {
  readonly settings: IdentitySettings
  readonly spiffeId: string
  private svid: Svid | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  private readonly log: Logger | null
  private stopped = false
  private client: InstanceType<ReturnType<typeof certificateService>['Client']> | null = null
  renewals = 0
  renewalFailures = 0
  lastError: string | null = null
  /** called after each new SVID */
  onRenew: ((s: Svid) => void) | null = null

  constructor(settings: IdentitySettings, log: Logger | null = null) {
    this.settings = settings
    this.spiffeId = `spiffe://${settings.trustDomain}/ns/${settings.namespace}/sa/${settings.serviceAccount}`
    this.log = log
    if (settings.caRoot !== undefined) this.caTrust.set(splitPem(settings.caRoot).join(''))
  }

  get current(): Svid {
    if (this.svid === null) throw new Error('identity not ready')
    return this.svid
  }

  get ready(): boolean {
    return this.svid !== null
  }

  /** Get the first SVID (resolves when it is in hand; rejects with the CA's or the file's error). */
  async start(): Promise<Svid> {
    x509.cryptoProvider.set(crypto)
    const s = await this.obtain()
    this.install(s)
    return s
  }

  stop(): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.client?.close()
    this.client = null
  }

  /**
   * start(), retried until it succeeds (1 s, doubling, at most 30 s), each failure logged: a proxy
   * started before its CA is reachable gets its identity when it is.
   */
  run(): void {
    x509.cryptoProvider.set(crypto)
    const attempt = (failures: number): void => {
      if (this.stopped) return
      this.obtain().then((s) => this.install(s), (e: Error) => {
        this.lastError = e.message
        const wait = Math.min(30_000, 1000 * 2 ** Math.min(5, failures))
        this.log?.warn({ err: e.message, retryInMs: wait }, 'WEFT_ERR_IDENTITY: no certificate yet')
        this.timer = setTimeout(() => attempt(failures + 1), wait)
        this.timer.unref()
      })
    }
    attempt(0)
  }

  /** Renew now (also what the timer does at half the lifetime). */
  async renew(): Promise<Svid> {
    const s = await this.obtain()
    this.renewals++
    this.install(s)
    return s
  }

  /**
   * The roots the CA's serving certificate is checked against: the configured ones and the trust
   * bundle of the last answer (a root rotation's new root, learnt before the CA's certificate
   * moves to it).
   */
  private readonly caTrust = new CaTrust()

  private install(s: Svid): void {
    this.svid = s
    if (this.settings.caRoot !== undefined) this.caTrust.set([...new Set([...splitPem(this.settings.caRoot), ...s.trustBundle])].join(''))
    this.lastError = null
    this.onRenew?.(s)
    if (this.settings.caAddress === undefined || this.stopped) return
    this.schedule(Math.max(0, s.renewAt.getTime() - Date.now()))
  }

  private schedule(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = setTimeout(() => {
      this.timer = null
      this.renew().catch((e: Error) => {
        this.renewalFailures++
        this.lastError = e.message
        // retry while the current certificate lasts: 1 s, doubling, at most 30 s
        const left = (this.svid?.notAfter.getTime() ?? 0) - Date.now()
        const wait = Math.min(30_000, 1000 * 2 ** Math.min(5, this.renewalFailures - 1))
        this.log?.warn({ err: e.message, retryInMs: wait, validForMs: left }, 'WEFT_ERR_IDENTITY_RENEWAL: certificate renewal failed')
        if (!this.stopped) this.schedule(wait)
      })
    }, ms)
    this.timer.unref()
  }

  private async obtain(): Promise<Svid> {
    const st = this.settings
    if (st.caAddress === undefined) {
      if (st.certFile === undefined || st.keyFile === undefined || st.trustBundleFile === undefined) {
        throw new Error('identity: either caAddress, or certFile, keyFile and trustBundleFile')
      }
      const keyPem = readFileSync(st.keyFile, 'utf8')
      const chain = splitPem(readFileSync(st.certFile, 'utf8'))
      const bundle = splitPem(readFileSync(st.trustBundleFile, 'utf8'))
      return makeSvid(keyPem, chain, bundle)
    }
    const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      keys,
      signingAlgorithm: ALG,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: this.spiffeId }])],
    })
    const keyPem = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')
    const token = st.tokenFile === undefined ? '' : readFileSync(st.tokenFile, 'utf8').trim()
    const res = await this.call(csr.toString('pem'), token)
    const nl = (p: string): string => (p.endsWith('\n') ? p : p + '\n')
    res.certChain = res.certChain.map(nl)
    res.trustBundle = res.trustBundle.map(nl)
    // Istio's answer ends with the root; Weft's CA also sends the bundle (two roots while rotating)
    const bundle = res.trustBundle.length > 0 ? res.trustBundle : res.certChain.slice(-1)
    const chain = res.certChain.filter((p) => !bundle.includes(p))
    const s = makeSvid(keyPem, chain, bundle)
    if (s.spiffeId !== this.spiffeId) throw new Error(`the CA issued ${s.spiffeId}, not ${this.spiffeId}`)
    return s
  }

  private call(csr: string, token: string): Promise<CertificateResponse> {
    // a manager stopped meanwhile (its proxy drained, or a new identity replaced it) makes no
    // channel: one made now would never be closed and would keep the process alive
    if (this.stopped) return Promise.reject(new Error('identity manager stopped'))
    const { Client } = certificateService()
    this.client ??= this.settings.caRoot === undefined ? new Client(this.settings.caAddress!, credentials.createInsecure()) : this.tlsClient(Client)
    const md = new Metadata()
    if (token !== '') md.set('authorization', `Bearer ${token}`)
    return new Promise((resolve, reject) => {
      this.client!.CreateCertificate({ csr, validityDuration: String(this.settings.ttlSeconds ?? 0) }, md, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: CertificateResponse) => {
        if (err !== null) reject(new Error(`CA ${this.settings.caAddress}: ${err.details || err.message}`))
        else resolve(res)
      })
    })
  }

  /**
   * A client of the CA over TLS, its certificate checked against caTrust and the address's host
   * name or IP (an IP cannot be the TLS server name: the name is overridden and the IP checked
   * against the certificate's IP SANs).
   */
  private tlsClient<C>(Client: new (address: string, creds: ChannelCredentials, options?: object) => C): C {
    const address = this.settings.caAddress!
    const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '')
    if (isIP(host) === 0) return new Client(address, experimental.createCertificateProviderChannelCredentials(this.caTrust, null))
    const creds = experimental.createCertificateProviderChannelCredentials(this.caTrust, null, { checkServerIdentity: (_name, cert) => checkServerIdentity(host, cert) })
    return new Client(address, creds, { 'grpc.ssl_target_name_override': 'weft-ca.invalid' })
  }

  status(): IdentityStatus | null {
    const s = this.svid
    if (s === null) return null
    return {
      spiffeId: s.spiffeId,
      trustDomain: this.settings.trustDomain,
      source: this.settings.caAddress === undefined ? 'files' : 'ca',
      serial: s.serial,
      notBefore: s.notBefore.toISOString(),
      notAfter: s.notAfter.toISOString(),
      nextRenewal: this.settings.caAddress === undefined ? null : s.renewAt.toISOString(),
      chain: s.chainPem.map((p) => {
        const c = new X509Certificate(p)
        return { subject: c.subject ?? '', issuer: c.issuer ?? '', san: c.subjectAltName ?? '', notAfter: c.validToDate.toISOString() }
      }),
      trustBundle: s.trustBundle.map((p) => {
        const c = new X509Certificate(p)
        return { subject: c.subject, notAfter: c.validToDate.toISOString(), fingerprint256: c.fingerprint256 }
      }),
      renewals: this.renewals,
      renewalFailures: this.renewalFailures,
      lastError: this.lastError,
    }
  }
}

export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((p) => (p.endsWith('\n') ? p : p + '\n')) ?? []
}

/**
 * Session ticket keys of the proxy's server contexts: one set per process, the same across
 * renewals, so a session resumes after the certificate changed. Set on the context as tls.Server
 * does (a TLSSocket made around an accepted socket has no server to set them).
 */
const TICKET_KEYS = randomBytes(48)

function makeSvid(keyPem: string, chainPem: string[], trustBundle: string[]): Svid {
  if (chainPem.length === 0) throw new Error('identity: no certificate')
  if (trustBundle.length === 0) throw new Error('identity: no trusted root')
  const leaf = new X509Certificate(chainPem[0])
  const id = peerSpiffeId(leaf.subjectAltName)
  if (id === null) throw new Error('identity: the certificate has no spiffe:// URI SAN')
  const notBefore = leaf.validFromDate
  const notAfter = leaf.validToDate
  const cert = chainPem.join('')
  const ca = trustBundle.join('')
  // TLS 1.3 only between sidecars: one round trip, and every suite has forward secrecy
  const common = { key: keyPem, cert, ca, minVersion: 'TLSv1.3' as const }
  // sessionIdContext: OpenSSL resumes a session only within the context it was made in, and
  // refuses (internal_error) when a server that verifies clients has none (tls.Server sets one)
  const server = createSecureContext({ ...common, sessionIdContext: 'weft-mesh' })
  ;(server as unknown as { context: { setTicketKeys(k: Buffer): void } }).context.setTicketKeys(TICKET_KEYS)
  return {
    spiffeId: id,
    chainPem,
    trustBundle,
    notBefore,
    notAfter,
    // half of what is left when it arrives (the CA backdates notBefore for clock skew)
    renewAt: new Date(Date.now() + Math.max(1000, (notAfter.getTime() - Date.now()) / 2)),
    serial: leaf.serialNumber,
    server,
    client: createSecureContext(common),
  }
}

/** A grpc-js certificate provider of CA certificates only, replaced in place. */
class CaTrust implements experimental.CertificateProvider {
  private latest: experimental.CaCertificateUpdate | null = null
  private readonly ls = new Set<experimental.CaCertificateUpdateListener>()
  set(pem: string): void {
    if (this.latest !== null && this.latest.caCertificate.toString() === pem) return
    this.latest = { caCertificate: Buffer.from(pem) }
    for (const l of this.ls) l(this.latest)
  }
  addCaCertificateListener(l: experimental.CaCertificateUpdateListener): void {
    this.ls.add(l)
    // later, not now: grpc-js registers its own watcher only after this call returns
    queueMicrotask(() => {
      if (this.latest !== null && this.ls.has(l)) l(this.latest)
    })
  }
  removeCaCertificateListener(l: experimental.CaCertificateUpdateListener): void {
    this.ls.delete(l)
  }
  addIdentityCertificateListener(): void {}
  removeIdentityCertificateListener(): void {}
}
