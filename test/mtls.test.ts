// Mutual TLS between two sidecars with SVIDs from the mesh CA (real TLS on real sockets), and
// independent clients: curl --cert/--key (HTTP over mesh TLS straight to the inbound listener)
// and openssl s_client (what a wrong, expired, not-yet-valid or foreign certificate gets).
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { request } from 'undici'
import { startTestSidecar, until, type Teardown, type TestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream, type HttpUpstream } from './helpers/upstream.ts'
import { startTestCa, type TestCa } from './helpers/mesh-identity.ts'
import { CertificateAuthority } from '../control-plane/ca/ca.ts'
import type { Bootstrap, Listener } from '../api/schema.ts'

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend'
const REVIEWS = 'spiffe://cluster.local/ns/shop/sa/reviews'

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (b) => (stdout += b))
    p.stderr.on('data', (b) => (stderr += b))
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000)
    p.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? -1, stdout, stderr })
    })
    p.stdin.end(input ?? '')
  })
}
void execFile

/** curl over mesh TLS (HTTP/1.1 inside), presenting cert/key; -k: the server's name is a SPIFFE ID curl cannot check (openssl checks the chain below) */
async function curlTls(port: number, path: string, svid: { cert: string; key: string } | null, extra: string[] = []): Promise<{ status: number; body: string; exit: number }> {
  const r = await run('curl', ['-sk', '--http1.1', '--max-time', '5', ...(svid === null ? [] : ['--cert', svid.cert, '--key', svid.key]), ...extra, '-w', '\n%{http_code}', `https://127.0.0.1:${port}${path}`])
  const i = r.stdout.lastIndexOf('\n')
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i), exit: r.code }
}

/** openssl s_client: the handshake, verified against `bundle`; a GET inside when it succeeds */
async function sClient(port: number, svid: { cert: string; key: string } | null, bundle: string): Promise<{ ok: boolean; out: string }> {
  const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', bundle, '-verify_return_error', '-alpn', 'http/1.1', '-quiet', ...(svid === null ? [] : ['-cert', svid.cert, '-key', svid.key])],
    'GET /x HTTP/1.1\r\nhost: reviews\r\nconnection: close\r\n\r\n')
  return { ok: / 200 OK/.test(r.stdout), out: r.stdout + r.stderr }
}

interface Mesh {
  ca: TestCa
  app: HttpUpstream
  reviews: TestSidecar
  frontend: TestSidecar
  inPort: number
  reviewsConfig(inbound?: Partial<Listener>): Bootstrap
}

async function mesh(t: Teardown, inbound: Partial<Listener> = {}, frontendIdentities?: string[]): Promise<Mesh> {
  const ca = await startTestCa(t)
  const app = await startHttpUpstream(t, { name: 'reviews-app' })
  const reviewsConfig = (inb: Partial<Listener> = inbound): Bootstrap => ({
    node: { namespace: 'shop', workload: 'reviews' },
    admin: { address: '127.0.0.1', port: 0 },
    identity: ca.identity('shop', 'reviews'),
    listeners: [{ name: 'in', direction: 'inbound', address: '127.0.0.1', port: 0, routeTable: 'app', ...inb }],
    routeTables: [{ name: 'app', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: app.port }] }],
  })
  const reviews = await startTestSidecar(t, reviewsConfig())
  const inPort = reviews.sidecar.port('in')
  const frontend = await startTestSidecar(t, {
    node: { namespace: 'shop', workload: 'frontend' },
    admin: { address: '127.0.0.1', port: 0 },
    identity: ca.identity('shop', 'frontend'),
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'reviews', domains: ['*'], routes: [{ backends: [{ cluster: 'reviews' }] }] }] }],
    clusters: [{ name: 'reviews', tls: { identities: frontendIdentities ?? [REVIEWS] }, endpoints: [{ address: '127.0.0.1', port: inPort }] }],
  })
  await until('both sidecars have their certificates', async () => (await reviews.admin('/ready')).status === 200 && (await frontend.admin('/ready')).status === 200, 5000)
  return { ca, app, reviews, frontend, inPort, reviewsConfig }
}

async function get(port: number, path = '/x', headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { headers })
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers }
}

async function decisions(s: TestSidecar): Promise<Record<string, number>> {
  const text = (await s.admin('/metrics')).body
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/weft_proxy_decisions_total\{listener="in",decision="([a-z_0-9]+)"\} (\d+)/g)) out[m[1]] = Number(m[2])
  return out
}

t.test('two sidecars speak mutual TLS; the app learns the caller from x-forwarded-client-cert', async (t) => {
  const m = await mesh(t)
  const r = await get(m.frontend.port, '/x', { 'x-forwarded-client-cert': 'By=spiffe://evil;URI=spiffe://cluster.local/ns/shop/sa/admin' })
  t.equal(r.status, 200, r.body)
  const seen = m.app.requests.at(-1)!
  const xfcc = String(seen.header('x-forwarded-client-cert'))
  t.match(xfcc, new RegExp(`^By=${REVIEWS};Hash=[0-9a-f]{64};URI=${FRONTEND}$`), 'XFCC set from the verified peer; what the caller sent is dropped')
  const d = await decisions(m.reviews)
  t.equal(d.mtls_accepted, 1, 'one mesh TLS connection')
  const inMetrics = (await m.reviews.admin('/metrics')).body
  t.match(inMetrics, new RegExp(`weft_requests_total\\{reporter="destination"[^}]*source_principal="${FRONTEND}",destination_principal="${REVIEWS}",connection_security_policy="mutual_tls"[^}]*response_code="200"`), 'callee: who called, over mutual TLS')
  const outMetrics = (await m.frontend.admin('/metrics')).body
  t.match(outMetrics, new RegExp(`weft_requests_total\\{reporter="source"[^}]*source_principal="${FRONTEND}",destination_principal="${REVIEWS}",connection_security_policy="unknown"`), 'caller: both principals (Istio leaves the policy unknown on the source side)')
  const id = await m.reviews.adminJson('/identity')
  t.equal(id.spiffeId, REVIEWS)
  t.equal(id.source, 'ca')
  t.ok(Date.parse(id.nextRenewal) > Date.now(), 'a renewal is planned')
  t.equal(id.trustBundle.length, 1)
})

t.test('permissive serves plain text and mesh TLS; independent clients (curl, openssl)', async (t) => {
  const m = await mesh(t)
  const plain = await get(m.inPort)
  t.equal(plain.status, 200, 'plain text in permissive mode')
  t.equal(m.app.requests.at(-1)!.header('x-forwarded-client-cert'), undefined, 'no XFCC without a peer certificate')
  const good = await m.ca.svid('ops', 'admin')
  const c = await curlTls(m.inPort, '/y', good)
  t.equal(c.status, 200, `curl with an SVID: ${c.body}`)
  t.match(String(m.app.requests.at(-1)!.header('x-forwarded-client-cert')), /URI=spiffe:\/\/cluster.local\/ns\/ops\/sa\/admin$/)
  const noCert = await curlTls(m.inPort, '/y', null)
  t.not(noCert.status, 200, 'TLS without a client certificate is refused')

  const bundle = m.ca.bundleFile()
  const s = await sClient(m.inPort, good, bundle)
  t.ok(s.ok, `openssl verifies the sidecar's chain and is served: ${s.out.slice(0, 300)}`)

  // another CA's certificate (same SPIFFE ID): refused
  const foreignCa = await CertificateAuthority.create({ trustDomain: 'cluster.local' })
  const foreign = await m.ca.svid('ops', 'admin', foreignCa)
  t.not((await curlTls(m.inPort, '/y', foreign)).status, 200, 'a certificate of another CA is refused')
  t.notOk((await sClient(m.inPort, foreign, foreign.bundle)).ok, 'and openssl trusting only that CA does not trust the sidecar either')

  // expired and not yet valid, from the same root
  const past = await CertificateAuthority.create({ trustDomain: 'cluster.local', dir: `${m.ca.dir}/root`, now: () => new Date(Date.now() - 3 * 3600_000) })
  const expired = await m.ca.svid('ops', 'admin', past)
  t.not((await curlTls(m.inPort, '/y', expired)).status, 200, 'an expired certificate is refused')
  const future = await CertificateAuthority.create({ trustDomain: 'cluster.local', dir: `${m.ca.dir}/root`, now: () => new Date(Date.now() + 3 * 3600_000) })
  const early = await m.ca.svid('ops', 'admin', future)
  t.not((await curlTls(m.inPort, '/y', early)).status, 200, 'a not-yet-valid certificate is refused')
  const d = await decisions(m.reviews)
  t.ok(d.mtls_handshake_failed >= 4, `refused handshakes counted (${d.mtls_handshake_failed})`)
  t.ok(d.mtls_plaintext >= 1, 'plain text counted')
})

t.test('strict refuses plain text; mesh TLS goes on', async (t) => {
  const m = await mesh(t, { mtls: 'strict' })
  await t.rejects(get(m.inPort), 'plain text refused')
  t.equal((await get(m.frontend.port)).status, 200, 'sidecar to sidecar still served')
  const d = await decisions(m.reviews)
  t.equal(d.mtls_plaintext_refused, 1)
  t.equal(m.app.requests.length, 1, 'nothing of the plain-text request reached the app')
})

t.test('a server whose SPIFFE ID the cluster does not allow is refused (secure naming)', async (t) => {
  const m = await mesh(t, {}, ['spiffe://cluster.local/ns/shop/sa/ratings'])
  const r = await get(m.frontend.port)
  t.equal(r.status, 503)
  t.match(r.headers['x-weft-response-flags'], /UF/)
  t.match(r.body, /WEFT_ERR_UPSTREAM_IDENTITY: spiffe:\/\/cluster.local\/ns\/shop\/sa\/reviews may not serve this cluster/)
  t.equal(m.app.requests.length, 0, 'nothing reached the app')
})

t.test('leaf and root rotation under load: zero failed requests, new handshakes on the new certificates', async (t) => {
  const m = await mesh(t, { })
  // the callee closes idle connections after 250 ms: new mesh TLS connections all along
  await m.reviews.sidecar.proxy.apply({ ...m.reviewsConfig(), limits: { idleTimeout: '250ms', firstByteTimeout: '250ms' } })
  const ida = m.frontend.sidecar.proxy.identity!
  const idb = m.reviews.sidecar.proxy.identity!
  let stop = false
  let ok = 0
  const failures: string[] = []
  const worker = async (): Promise<void> => {
    while (!stop) {
      try {
        const r = await get(m.frontend.port, '/rot')
        if (r.status === 200) ok++
        else failures.push(`${r.status} ${r.body}`)
      } catch (e) {
        failures.push((e as Error).message)
      }
      await new Promise((r) => setTimeout(r, Math.random() * 250)) // kept: load pacing, so connections go idle and close
    }
  }
  const workers = [worker(), worker(), worker(), worker()]
  // after each step the load goes on until the callee has accepted a new mesh TLS connection (one
  // made on the certificates of that step), not for a guessed 400 ms
  const newConnection = async () => {
    const n = (await decisions(m.reviews)).mtls_accepted
    await until('a new mesh TLS connection', async () => (await decisions(m.reviews)).mtls_accepted > n, 5000, 20)
  }
  const serials = new Set<string>([ida.current.serial, idb.current.serial])
  const renewBoth = async () => {
    await ida.renew()
    await idb.renew()
    serials.add(ida.current.serial).add(idb.current.serial)
    await newConnection()
  }
  const accepted0 = (await decisions(m.reviews)).mtls_accepted
  await until('the load runs', () => ok >= 4, 5000, 5)
  await newConnection() // one before the rotation: five in all below
  await renewBoth() // leaf rotation
  await m.ca.ca.prepareRootRotation()
  await renewBoth() // both roots trusted everywhere
  t.equal(ida.current.trustBundle.length, 2)
  const oldRoot = m.ca.ca.trustBundle()[0]
  const oldRootSvid = await m.ca.svid('ops', 'admin') // signed by the root about to go
  t.equal((await curlTls(m.inPort, '/y', oldRootSvid)).status, 200, 'an SVID of the old root is served while it is trusted')
  m.ca.ca.activateNextRoot()
  await renewBoth() // SVIDs of the new root
  t.not(m.ca.ca.trustBundle()[0], oldRoot)
  m.ca.ca.dropPreviousRoots()
  await renewBoth() // the old root gone
  t.equal(ida.current.trustBundle.length, 1)
  t.equal(idb.current.trustBundle[0], m.ca.ca.trustBundle()[0], 'only the new root is trusted')
  t.not((await curlTls(m.inPort, '/y', oldRootSvid)).status, 200, 'revoked by the rotation: an SVID of the dropped root is refused')
  stop = true
  await Promise.all(workers)
  t.same(failures, [], 'no request failed')
  t.ok(ok > 40, `requests served during the rotation (${ok})`)
  t.equal(serials.size, 10, 'five certificates each')
  const accepted = (await decisions(m.reviews)).mtls_accepted - accepted0
  t.ok(accepted >= 5, `new mesh TLS connections were made along the way (${accepted})`)
  t.comment(`sessions resumed during the rotation: ${(await decisions(m.reviews)).mtls_resumed} of ${accepted}`)
})

t.test('a new connection resumes the TLS session of the last one (TLS 1.3 ticket)', async (t) => {
  const m = await mesh(t)
  // the callee closes idle connections after 250 ms: the next request needs a new connection
  await m.reviews.sidecar.proxy.apply({ ...m.reviewsConfig(), limits: { idleTimeout: '250ms', firstByteTimeout: '250ms' } })
  const closedAfter = async (n: number) => until(`connection ${n} closed by the callee`, async () => (await m.reviews.admin('/metrics')).body.match(/weft_tcp_connections_closed_total\{[^}]*listener="in"[^}]*\} (\d+)/)?.[1] === String(n), 3000)
  t.equal((await get(m.frontend.port)).status, 200)
  await closedAfter(1)
  t.equal((await get(m.frontend.port)).status, 200)
  let d = await decisions(m.reviews)
  t.same([d.mtls_accepted, d.mtls_resumed], [2, 1], 'the second connection resumed the first one\'s session')
  // after the callee renewed its certificate
  await closedAfter(2)
  await m.reviews.sidecar.proxy.identity!.renew()
  t.equal((await get(m.frontend.port)).status, 200)
  d = await decisions(m.reviews)
  t.equal(d.mtls_accepted, 3)
  t.equal(d.mtls_resumed, 2, "and after the callee renewed its certificate (its ticket keys stay)")
})
