// The webhook's serving certificate: a self-signed CA and a leaf for the Service's DNS names,
// made by the control plane at start (ECDSA P-256 keys from Node's WebCrypto, X.509 from
// @peculiar/x509). The CA's PEM is what the MutatingWebhookConfiguration's caBundle must hold.
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill first
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

export interface ServingCert {
  /** PEM of the CA certificate (caBundle, base64 of this) */
  caPem: string
  /** PEM of the leaf certificate */
  certPem: string
  /** PEM (PKCS#8) of the leaf's private key */
  keyPem: string
  notAfter: Date
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const crypto = webcrypto as unknown as Crypto

/** The DNS names kube-apiserver uses to reach a Service: name, name.ns, name.ns.svc, name.ns.svc.cluster.local. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`]
}

export async function createServingCert(opts: { dnsNames: string[]; ips?: string[]; days?: number; now?: Date }): Promise<ServingCert> {
  x509.cryptoProvider.set(crypto)
  const now = opts.now ?? new Date()
  const notBefore = new Date(now.getTime() - 5 * 60_000) // clock skew between nodes
  const notAfter = new Date(now.getTime() + (opts.days ?? 365) * 86_400_000)
  const caKeys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=weft-webhook-ca',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  })
  const leafKeys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${opts.dnsNames[0] ?? 'weft-webhook'}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...opts.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  })
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', leafKeys.privateKey)
  return {
    caPem: ca.toString('pem'),
    certPem: leaf.toString('pem'),
    keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    notAfter,
  }
}

function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16))
  b[0]! &= 0x7f // positive
  return Buffer.from(b).toString('hex')
}
