// Test helpers for identity: a CA with its gRPC service and a tokens file, SVIDs for curl and
// openssl, and a bootstrap `identity` block for a sidecar of the mesh.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { CertificateAuthority } from '../../control-plane/ca/ca.ts'
import { FileTokens, startCaServer, type CaServer } from '../../control-plane/ca/server.ts'
import type { Bootstrap } from '../../api/schema.ts'
import type { Teardown } from './sidecar.ts'

const crypto = webcrypto as unknown as Crypto
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

export interface TestCa {
  ca: CertificateAuthority
  server: CaServer
  dir: string
  /** identity block for a sidecar of namespace/serviceAccount (its token is in the CA's tokens file) */
  identity(namespace: string, serviceAccount: string, extra?: Partial<NonNullable<Bootstrap['identity']>>): NonNullable<Bootstrap['identity']>
  /** an SVID for curl/openssl: files cert.pem, key.pem and the CA bundle file */
  svid(namespace: string, serviceAccount: string, ca?: CertificateAuthority): Promise<{ cert: string; key: string; bundle: string }>
  bundleFile(): string
}

const WORKLOADS: [string, string][] = [['shop', 'frontend'], ['shop', 'reviews'], ['shop', 'ratings'], ['ops', 'admin'], ['other', 'intruder']]

export async function startTestCa(t: Teardown, opts: { now?: () => Date } = {}): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const tokens = join(dir, 'tokens.yaml')
  writeFileSync(tokens, 'tokens:\n' + WORKLOADS.map(([ns, sa]) => `  - { token: tok-${ns}-${sa}, namespace: ${ns}, serviceAccount: ${sa} }\n`).join(''))
  for (const [ns, sa] of WORKLOADS) writeFileSync(join(dir, `${ns}-${sa}.token`), `tok-${ns}-${sa}\n`)
  const ca = await CertificateAuthority.create({ trustDomain: 'cluster.local', dir: join(dir, 'root'), now: opts.now })
  const server = await startCaServer({ ca, auth: new FileTokens(tokens), address: '127.0.0.1:0' })
  t.teardown(() => server.stop())
  let n = 0
  return {
    ca,
    server,
    dir,
    identity: (namespace, serviceAccount, extra = {}) => ({
      serviceAccount,
      ca: { address: server.address, tokenFile: join(dir, `${namespace}-${serviceAccount}.token`) },
      ...extra,
    }),
    async svid(namespace, serviceAccount, other) {
      x509.cryptoProvider.set(crypto)
      const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        keys, signingAlgorithm: ALG,
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://cluster.local/ns/${namespace}/sa/${serviceAccount}` }])],
      })
      const r = await (other ?? ca).issue(csr.toString('pem'), { namespace, serviceAccount }, 3600)
      if (!r.ok) throw new Error(r.message)
      const i = n++
      const cert = join(dir, `svid-${i}.pem`)
      const key = join(dir, `svid-${i}-key.pem`)
      const bundle = join(dir, `svid-${i}-bundle.pem`)
      writeFileSync(cert, r.chain.join(''))
      writeFileSync(key, x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'))
      writeFileSync(bundle, (other ?? ca).trustBundle().join(''))
      return { cert, key, bundle }
    },
    bundleFile() {
      const f = join(dir, `bundle-${n++}.pem`)
      writeFileSync(f, ca.trustBundle().join(''))
      return f
    },
  }
}
