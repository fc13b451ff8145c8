// The mesh's certificate authority (config path of identity): a root made at first start and
// kept (a directory in local mode; Kubernetes mode keeps the same two PEMs in a Secret), or a
// root/intermediate the operator plugs in (Istio's plug-in CA). It signs X.509 SVIDs for
// `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>` from CSRs whose key never left the
// pod. Keys and signatures are Node's WebCrypto; X.509 and PKCS#10 are @peculiar/x509.
//
// Issuing is a pure decision over the CSR and the authenticated identity; every refusal is a
// value (code and reason) that the gRPC service turns into a status and a counter.
import 'reflect-metadata'
import { webcrypto, X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as x509 from '@peculiar/x509'

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const crypto = webcrypto as unknown as Crypto

/** who a CSR may be for, as the token said */
export interface WorkloadIdentity {
  namespace: string
  serviceAccount: string
}

export type IssueResult =
  | { ok: true; chain: string[]; notAfter: Date; spiffeId: string }
  /** code: a gRPC status name; reason: the counter's label */
  | { ok: false; code: 'INVALID_ARGUMENT' | 'PERMISSION_DENIED'; reason: string; message: string }

export interface CaOptions {
  trustDomain: string
  /** local mode: where the generated root lives (created on first start, reused after) */
  dir?: string
  /** a plugged-in signing certificate (root or intermediate) and its key, PEM */
  plugin?: { certPem: string; keyPem: string; chainPem?: string[]; rootPem?: string }
  /** the root's lifetime when one is made; default 10 years */
  rootDays?: number
  /** default SVID lifetime; default 24 h */
  defaultTtlSeconds?: number
  /** longest SVID lifetime a proxy may ask for; default 7 days */
  maxTtlSeconds?: number
  now?: () => Date
}

export function spiffeId(trustDomain: string, id: WorkloadIdentity): string {
  return `spiffe://${trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`
}

/** A signing key and its certificate: a root, or an intermediate with the chain up to its root. */
interface Signer {
  cert: x509.X509Certificate
  key: CryptoKey
  /** PEMs above the signing certificate, ending with the root (empty for a root) */
  chain: string[]
  /** the root PEM the chain ends in */
  rootPem: string
}

export class CertificateAuthority {
  readonly trustDomain: string
  private signer: Signer
  /** roots trusted besides the signer's: the previous one during a rotation's overlap */
  private previousRoots: string[] = []
  private readonly defaultTtl: number
  private readonly maxTtl: number
  private readonly now: () => Date
  private readonly rootDays: number
  private readonly dir: string | undefined

  private constructor(opts: CaOptions, signer: Signer) {
    this.trustDomain = opts.trustDomain
    this.signer = signer
    this.defaultTtl = opts.defaultTtlSeconds ?? 86_400
    this.maxTtl = opts.maxTtlSeconds ?? 7 * 86_400
    this.now = opts.now ?? (() => new Date())
    this.rootDays = opts.rootDays ?? 3650
    this.dir = opts.dir
  }

  static async create(opts: CaOptions): Promise<CertificateAuthority> {
    x509.cryptoProvider.set(crypto)
    if (!/^[a-z0-9.-]+$/.test(opts.trustDomain)) throw new Error(`trust domain ${JSON.stringify(opts.trustDomain)}: lower-case letters, digits, dots and dashes only (SPIFFE)`)
    let signer: Signer
    if (opts.plugin !== undefined) {
      signer = await importSigner(opts.plugin.certPem, opts.plugin.keyPem, opts.plugin.chainPem ?? [], opts.plugin.rootPem)
    } else if (opts.dir !== undefined && existsSync(join(opts.dir, 'root-cert.pem'))) {
      signer = await importSigner(readFileSync(join(opts.dir, 'root-cert.pem'), 'utf8'), readFileSync(join(opts.dir, 'root-key.pem'), 'utf8'), [])
    } else {
      const made = await makeRoot(opts.trustDomain, opts.now?.() ?? new Date(), opts.rootDays ?? 3650)
      signer = made.signer
      if (opts.dir !== undefined) saveRoot(opts.dir, made.certPem, made.keyPem)
    }
    return new CertificateAuthority(opts, signer)
  }

  /** roots trusted before they sign: a rotation's first step */
  private nextRoots: { signer: Signer; certPem: string; keyPem: string }[] = []

  /** The PEMs of every trusted root: the signing one first, then the next and previous ones of a rotation. */
  trustBundle(): string[] {
    return [this.signer.rootPem, ...this.nextRoots.map((r) => r.certPem), ...this.previousRoots]
  }

  /** the current signing certificate and key, PEM (to keep them in a Secret) */
  async signerPem(): Promise<{ certPem: string; keyPem: string }> {
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', this.signer.key)
    return { certPem: pem(this.signer.cert), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') }
  }

  get rootNotAfter(): Date {
    return new X509Certificate(this.signer.rootPem).validToDate
  }

  /**
   * Root rotation without a failed handshake takes three steps, each followed by every proxy
   * renewing (they learn the bundle with their certificate):
   *   1. prepareRootRotation: a new root is trusted, the old one still signs;
   *   2. activateNextRoot: the new root signs, the old one stays trusted (its SVIDs still work);
   *   3. dropPreviousRoots: the old root is no longer trusted.
   * A proxy that presents a new-root SVID to one that has not renewed since step 1 would be refused.
   */
  async prepareRootRotation(): Promise<void> {
    this.nextRoots.push(await makeRoot(this.trustDomain, this.now(), this.rootDays))
    this.changed()
  }

  activateNextRoot(): void {
    const next = this.nextRoots.shift()
    if (next === undefined) throw new Error('no root prepared (prepareRootRotation first)')
    this.previousRoots = [this.signer.rootPem, ...this.previousRoots]
    this.signer = next.signer
    if (this.dir !== undefined) saveRoot(this.dir, next.certPem, next.keyPem)
    this.changed()
  }

  private readonly listeners: (() => void)[] = []

  /** Called after every change of the signer or the trust bundle (the CA server re-issues its own certificate). */
  onChange(listener: () => void): void {
    this.listeners.push(listener)
  }

  private changed(): void {
    for (const l of this.listeners) l()
  }

  /**
   * A TLS serving certificate for the control plane's own endpoint (the certificate service): DNS
   * and IP SANs, serverAuth, a year at most (never past the signer), signed by the current signer;
   * PEM of the leaf and its intermediates (the root travels apart, as the trust bundle).
   */
  async servingCert(names: { dns: readonly string[]; ips: readonly string[] }, days = 365): Promise<{ certPem: string; keyPem: string }> {
    const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
    const now = this.now()
    let notAfter = new Date(now.getTime() + days * 86_400_000)
    if (notAfter > this.signer.cert.notAfter) notAfter = this.signer.cert.notAfter
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${names.dns[0] ?? names.ips[0] ?? 'weft-ca'}`,
      issuer: this.signer.cert.subject,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter,
      publicKey: keys.publicKey,
      signingKey: this.signer.key,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]),
        await x509.AuthorityKeyIdentifierExtension.create(this.signer.cert),
      ],
    })
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey)
    const chain = [pem(cert)]
    const signerPem = pem(this.signer.cert)
    if (signerPem !== this.signer.rootPem) chain.push(signerPem, ...this.signer.chain.filter((p) => p !== this.signer.rootPem))
    return { certPem: chain.join(''), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') }
  }

  /** Steps 1 and 2 at once (only when no proxy needs to trust the new root before it signs). */
  async rotateRoot(): Promise<void> {
    await this.prepareRootRotation()
    this.activateNextRoot()
  }

  dropPreviousRoots(): void {
    this.previousRoots = []
    this.changed()
  }

  /**
   * Sign `csrPem` for `who`. The CSR must be well formed, signed by its own key, and name exactly
   * the SPIFFE ID of `who` (its only URI SAN): a CSR for another identity is refused. Only the
   * public key is taken from it; the certificate's names and usages are the CA's.
   */
  async issue(csrPem: string, who: WorkloadIdentity, ttlSeconds = 0): Promise<IssueResult> {
    let csr: x509.Pkcs10CertificateRequest
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem)
    } catch (e) {
      return { ok: false, code: 'INVALID_ARGUMENT', reason: 'malformed_csr', message: `the CSR is not a PEM PKCS#10 request: ${(e as Error).message}` }
    }
    let valid = false
    try {
      valid = await csr.verify()
    } catch {
      valid = false
    }
    if (!valid) return { ok: false, code: 'INVALID_ARGUMENT', reason: 'bad_signature', message: 'the CSR is not signed by the key it carries' }
    const want = spiffeId(this.trustDomain, who)
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension) ?? null
    const uris = san === null ? [] : san.names.items.filter((n) => n.type === 'url').map((n) => n.value)
    if (uris.length !== 1 || uris[0] !== want) {
      return {
        ok: false, code: 'PERMISSION_DENIED', reason: 'identity_mismatch',
        message: `the CSR asks for ${uris.length === 0 ? 'no SPIFFE ID' : uris.join(', ')}; the token proves ${want}`,
      }
    }
    let publicKey: CryptoKey
    try {
      publicKey = await csr.publicKey.export(crypto)
    } catch (e) {
      return { ok: false, code: 'INVALID_ARGUMENT', reason: 'unsupported_key', message: `the CSR's key is not usable: ${(e as Error).message}` }
    }
    const ttl = Math.min(ttlSeconds > 0 ? ttlSeconds : this.defaultTtl, this.maxTtl)
    const now = this.now()
    const notBefore = new Date(now.getTime() - 60_000) // a minute of clock skew between nodes
    let notAfter = new Date(now.getTime() + ttl * 1000)
    const signerEnd = this.signer.cert.notAfter
    if (notAfter > signerEnd) notAfter = signerEnd
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: '',
      issuer: this.signer.cert.subject,
      notBefore,
      notAfter,
      publicKey,
      signingKey: this.signer.key,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        // no subject: the SAN carries the name and is critical (RFC 5280 4.2.1.6), as SPIFFE X.509-SVIDs
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: want }], true),
        await x509.AuthorityKeyIdentifierExtension.create(this.signer.cert),
      ],
    })
    // leaf first, then the intermediates; the roots travel apart, as the trust bundle
    const chain = [pem(cert)]
    const signerPem = pem(this.signer.cert)
    if (signerPem !== this.signer.rootPem) chain.push(signerPem, ...this.signer.chain.filter((p) => p !== this.signer.rootPem))
    return { ok: true, chain, notAfter, spiffeId: want }
  }
}

async function makeRoot(trustDomain: string, now: Date, days: number): Promise<{ signer: Signer; certPem: string; keyPem: string }> {
  const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=${trustDomain}, CN=weft-root-${now.toISOString().slice(0, 19)}`,
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter: new Date(now.getTime() + days * 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  })
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey)
  const certPem = pem(cert)
  return { signer: { cert, key: keys.privateKey, chain: [], rootPem: certPem }, certPem, keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') }
}

async function importSigner(certPem: string, keyPem: string, chainPem: string[], rootPem?: string): Promise<Signer> {
  const cert = new x509.X509Certificate(certPem)
  const ca = cert.getExtension(x509.BasicConstraintsExtension)
  if (ca === null || !ca.ca) throw new Error('the plugged-in certificate is not a CA certificate (basicConstraints CA:TRUE)')
  const der = x509.PemConverter.decodeFirst(keyPem)
  const key = await crypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']).catch(() => {
    throw new Error('the plugged-in key must be a PKCS#8 ECDSA P-256 key ("BEGIN PRIVATE KEY")')
  })
  const root = rootPem ?? (chainPem.length > 0 ? chainPem[chainPem.length - 1] : pem(cert))
  return { cert, key, chain: chainPem, rootPem: root }
}

function saveRoot(dir: string, certPem: string, keyPem: string): void {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'root-cert.pem'), certPem)
  writeFileSync(join(dir, 'root-key.pem'), keyPem, { mode: 0o600 })
  chmodSync(join(dir, 'root-key.pem'), 0o600)
}

function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16))
  b[0]! &= 0x7f
  return Buffer.from(b).toString('hex')
}

/** PEM with a final newline, so that PEMs can be concatenated into one bundle file */
function pem(c: { toString(format: 'pem'): string }): string {
  const p = c.toString('pem')
  return p.endsWith('\n') ? p : p + '\n'
}
