// The CA and its gRPC service: SVIDs issued for the identity a token proves, refused otherwise
// (another identity, bad token, malformed CSR) with a gRPC status and a counter; chains that
// openssl verifies against the root; renewal; root rotation keeps old SVIDs trusted until dropped.
import t from 'tap'
import 'reflect-metadata'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js'
import { CertificateAuthority } from '../control-plane/ca/ca.ts'
import { FileTokens, startCaServer } from '../control-plane/ca/server.ts'
import { certificateService, type CertificateResponse } from '../protos/ca.ts'
import { IdentityManager } from '../proxy/identity/identity.ts'

const crypto = webcrypto as unknown as Crypto
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

const dir = mkdtempSync(join(tmpdir(), 'weft-ca-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const tokens = join(dir, 'tokens.yaml')
writeFileSync(tokens, 'tokens:\n  - { token: tok-reviews, namespace: shop, serviceAccount: reviews }\n  - { token: tok-front, namespace: shop, serviceAccount: frontend }\n')
writeFileSync(join(dir, 'reviews.token'), 'tok-reviews\n')

async function csrFor(uri: string | null): Promise<string> {
  x509.cryptoProvider.set(crypto)
  const keys = await crypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys, signingAlgorithm: ALG,
    extensions: uri === null ? [] : [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }])],
  })
  return csr.toString('pem')
}

t.test('the CA keeps its root in its directory and signs what a token proves', async (t) => {
  const caDir = join(dir, 'ca')
  const ca = await CertificateAuthority.create({ trustDomain: 'cluster.local', dir: caDir })
  t.ok(existsSync(join(caDir, 'root-key.pem')), 'root key saved')
  const again = await CertificateAuthority.create({ trustDomain: 'cluster.local', dir: caDir })
  t.equal(again.trustBundle()[0], ca.trustBundle()[0], 'the same root after a restart')
  const srv = await startCaServer({ ca, auth: new FileTokens(tokens), address: '127.0.0.1:0' })
  t.teardown(() => srv.stop())
  const { Client } = certificateService()
  const client = new Client(srv.address, credentials.createInsecure())
  t.teardown(() => client.close())
  const ask = (csr: string, token: string | null): Promise<{ err: ServiceError | null; res: CertificateResponse | null }> => new Promise((resolve) => {
    const md = new Metadata()
    if (token !== null) md.set('authorization', `Bearer ${token}`)
    client.CreateCertificate({ csr, validityDuration: '3600' }, md, (err: ServiceError | null, res: CertificateResponse) => resolve({ err, res: res ?? null }))
  })

  const ok = await ask(await csrFor('spiffe://cluster.local/ns/shop/sa/reviews'), 'tok-reviews')
  t.equal(ok.err, null)
  const leaf = new X509Certificate(ok.res!.certChain[0])
  t.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/reviews')
  const hours = (leaf.validToDate.getTime() - Date.now()) / 3_600_000
  t.ok(hours > 0.98 && hours <= 1.0, `lifetime as asked (${hours.toFixed(3)} h)`)
  t.equal(ok.res!.certChain.at(-1), ca.trustBundle()[0], 'Istio shape: the root last')
  t.same(ok.res!.trustBundle, ca.trustBundle())
  // an independent verifier: openssl
  writeFileSync(join(dir, 'leaf.pem'), ok.res!.certChain[0])
  writeFileSync(join(dir, 'root.pem'), ca.trustBundle()[0])
  const out = execFileSync('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'root.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' })
  t.match(out, /leaf.pem: OK/)

  const refusals: [string, Promise<{ err: ServiceError | null }>, number, RegExp][] = [
    ['no token', ask(await csrFor('spiffe://cluster.local/ns/shop/sa/reviews'), null), status.UNAUTHENTICATED, /no_token|Bearer/],
    ['an unknown token', ask(await csrFor('spiffe://cluster.local/ns/shop/sa/reviews'), 'nope'), status.UNAUTHENTICATED, /INVALID_TOKEN/],
    ['another identity', ask(await csrFor('spiffe://cluster.local/ns/shop/sa/reviews'), 'tok-front'), status.PERMISSION_DENIED, /IDENTITY_MISMATCH.*sa\/frontend/],
    ['no SPIFFE ID', ask(await csrFor(null), 'tok-reviews'), status.PERMISSION_DENIED, /IDENTITY_MISMATCH/],
    ['a malformed CSR', ask('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', 'tok-reviews'), status.INVALID_ARGUMENT, /MALFORMED_CSR/],
    ['not PEM at all', ask('hello', 'tok-reviews'), status.INVALID_ARGUMENT, /MALFORMED_CSR/],
  ]
  for (const [what, p, code, msg] of refusals) {
    const { err } = await p
    t.equal(err?.code, code, `${what}: status ${code}`)
    t.match(err?.details ?? '', msg, `${what}: says why`)
  }
  const metrics = await srv.metrics.registry.metrics()
  t.match(metrics, /weft_ca_requests_total\{result="issued"\} 1\n/)
  t.match(metrics, /weft_ca_requests_total\{result="identity_mismatch"\} 2\n/)
  t.match(metrics, /weft_ca_requests_total\{result="invalid_token"\} 1\n/)
  t.match(metrics, /weft_ca_requests_total\{result="malformed_csr"\} 2\n/)
})

t.test('a CSR whose signature does not match its key is refused', async (t) => {
  const ca = await CertificateAuthority.create({ trustDomain: 'cluster.local' })
  const pem = await csrFor('spiffe://cluster.local/ns/shop/sa/reviews')
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
  der[der.length - 5] ^= 0xff // inside the signature
  const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`
  const r = await ca.issue(bad, { namespace: 'shop', serviceAccount: 'reviews' })
  t.equal(r.ok, false)
  t.match(r.ok ? '' : r.reason, /bad_signature|malformed_csr/)
})

t.test('the sidecar side: key made locally, SVID from the CA, renewed, roots rotated', async (t) => {
  const ca = await CertificateAuthority.create({ trustDomain: 'cluster.local' })
  const srv = await startCaServer({ ca, auth: new FileTokens(tokens), address: '127.0.0.1:0' })
  t.teardown(() => srv.stop())
  const id = new IdentityManager({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'reviews', caAddress: srv.address, tokenFile: join(dir, 'reviews.token'), ttlSeconds: 3600 })
  t.teardown(() => id.stop())
  const first = await id.start()
  t.equal(first.spiffeId, 'spiffe://cluster.local/ns/shop/sa/reviews')
  const st = id.status()!
  t.equal(st.source, 'ca')
  t.ok(new Date(st.nextRenewal!).getTime() > Date.now() + 1700_000, 'renewal planned at about half the lifetime')
  const second = await id.renew()
  t.not(second.serial, first.serial, 'a new certificate')
  t.equal(id.renewals, 1)

  await ca.rotateRoot()
  const third = await id.renew()
  t.equal(third.trustBundle.length, 2, 'both roots trusted during the overlap')
  writeFileSync(join(dir, 'old-leaf.pem'), second.chainPem[0])
  writeFileSync(join(dir, 'bundle.pem'), third.trustBundle.join(''))
  t.match(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'bundle.pem'), join(dir, 'old-leaf.pem')], { encoding: 'utf8' }), /OK/, 'an SVID of the old root still verifies')
  ca.dropPreviousRoots()
  const fourth = await id.renew()
  t.equal(fourth.trustBundle.length, 1, 'the old root dropped')
  writeFileSync(join(dir, 'bundle.pem'), fourth.trustBundle.join(''))
  t.throws(() => execFileSync('openssl', ['verify', '-CAfile', join(dir, 'bundle.pem'), join(dir, 'old-leaf.pem')], { stdio: 'pipe' }), 'and its SVIDs with it')

  const wrong = new IdentityManager({ trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'frontend', caAddress: srv.address, tokenFile: join(dir, 'reviews.token') })
  await t.rejects(wrong.start(), /IDENTITY_MISMATCH/, 'a sidecar cannot get another workload\'s identity')
  wrong.stop()
  void readFileSync
})
