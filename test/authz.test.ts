// Authorization through two sidecars over mutual TLS: a matrix of callers (principals and
// namespaces, and a plain-text caller) x paths x methods against DENY / ALLOW / AUDIT policies
// on the callee's inbound listener; gRPC gets PERMISSION_DENIED; an opaque TCP connection is
// decided by source and port. Plus the compiled decision itself, rule by rule.
import t from 'tap'
import { connect, createServer, type AddressInfo } from 'node:net'
import { request } from 'undici'
import * as grpc from '@grpc/grpc-js'
import { startTestSidecar, until, type Teardown, type TestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { startTestCa, type TestCa } from './helpers/mesh-identity.ts'
import { echoClient, startGrpcServer, unary } from './helpers/grpc.ts'
import { AUTHZ_ALLOW, AUTHZ_DENY, CompiledAuthorization, peerIdentity } from '../proxy/identity/authz.ts'
import type { AuthorizationPolicy, Bootstrap, Listener } from '../api/schema.ts'

const POLICIES: AuthorizationPolicy[] = [
  { name: 'no-intruders', action: 'DENY', rules: [{ from: [{ namespaces: ['other'] }] }] },
  { name: 'frontend-reads', action: 'ALLOW', rules: [{ from: [{ principals: ['cluster.local/ns/shop/sa/frontend'] }], to: [{ methods: ['GET'], paths: ['/reviews/*'] }] }] },
  { name: 'ops-all', action: 'ALLOW', rules: [{ from: [{ namespaces: ['ops'] }], to: [{ notPaths: ['/secret*'] }] }] },
  { name: 'audit-posts', action: 'AUDIT', rules: [{ to: [{ methods: ['POST'] }] }] },
]

async function callee(t: Teardown, ca: TestCa, upstreamPort: number, inbound: Partial<Listener>, protocol: 'http1' | 'http2' = 'http1'): Promise<{ s: TestSidecar; port: number }> {
  const s = await startTestSidecar(t, {
    node: { namespace: 'shop', workload: 'reviews' },
    admin: { address: '127.0.0.1', port: 0 },
    identity: ca.identity('shop', 'reviews'),
    listeners: [{ name: 'in', direction: 'inbound', address: '127.0.0.1', port: 0, routeTable: 'app', ...inbound }],
    routeTables: [{ name: 'app', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', protocol, endpoints: [{ address: '127.0.0.1', port: upstreamPort }] }],
  })
  return { s, port: s.sidecar.port('in') }
}

async function caller(t: Teardown, ca: TestCa, ns: string, sa: string, to: number, protocol: 'http1' | 'http2' = 'http1', extra: Partial<Bootstrap> = {}): Promise<TestSidecar> {
  const s = await startTestSidecar(t, {
    node: { namespace: ns, workload: sa },
    admin: { address: '127.0.0.1', port: 0 },
    identity: ca.identity(ns, sa),
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'reviews', domains: ['*'], routes: [{ backends: [{ cluster: 'reviews' }] }] }] }],
    clusters: [{ name: 'reviews', protocol, tls: {}, endpoints: [{ address: '127.0.0.1', port: to }] }],
    ...extra,
  })
  await until(`${sa} ready`, async () => (await s.admin('/ready')).status === 200, 5000)
  return s
}

async function decisions(s: TestSidecar): Promise<Record<string, number>> {
  const text = (await s.admin('/metrics')).body
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/weft_proxy_decisions_total\{listener="in",decision="([a-z_0-9]+)"\} (\d+)/g)) out[m[1]] = Number(m[2])
  return out
}

t.test('the compiled policy: deny first, then allow; an ALLOW policy denies what none allows', async (t) => {
  const a = new CompiledAuthorization(POLICIES)
  const peer = (p: string) => peerIdentity(`spiffe://${p}`, 'spiffe://cluster.local/ns/shop/sa/reviews', '00')
  const q = (who: string | null, method: string, path: string, http = true) => a.decide({ peer: who === null ? null : peer(who), port: 8080, http, method, path, header: () => undefined })
  t.equal(q('cluster.local/ns/shop/sa/frontend', 'GET', '/reviews/1').verdict, AUTHZ_ALLOW)
  t.match(q('cluster.local/ns/shop/sa/frontend', 'GET', '/reviews/1'), { policy: 'frontend-reads', rule: 0 })
  t.match(q('cluster.local/ns/other/sa/x', 'GET', '/reviews/1'), { verdict: AUTHZ_DENY, policy: 'no-intruders' })
  t.match(q(null, 'GET', '/reviews/1'), { verdict: AUTHZ_DENY, policy: '', reason: /no ALLOW policy matches/ })
  t.same(q('cluster.local/ns/ops/sa/admin', 'POST', '/x').audited, ['audit-posts'])
  // TCP: an ALLOW rule with HTTP conditions never matches, a DENY rule ignores them
  const tcp = new CompiledAuthorization([
    { name: 'deny-post', action: 'DENY', rules: [{ from: [{ namespaces: ['ops'] }], to: [{ methods: ['POST'] }] }] },
    { name: 'allow-get', action: 'ALLOW', rules: [{ to: [{ methods: ['GET'] }] }] },
    { name: 'allow-port', action: 'ALLOW', rules: [{ from: [{ principals: ['*'] }], to: [{ ports: [8080] }] }] },
  ])
  const tq = (who: string | null) => tcp.decide({ peer: who === null ? null : peer(who), port: 8080, http: false, method: '', path: '', header: () => undefined })
  t.match(tq('cluster.local/ns/ops/sa/admin'), { verdict: AUTHZ_DENY, policy: 'deny-post' })
  t.match(tq('cluster.local/ns/shop/sa/frontend'), { verdict: AUTHZ_ALLOW, policy: 'allow-port' })
  t.match(tq(null), { verdict: AUTHZ_DENY }, 'principals "*" needs an authenticated caller')
  const none = new CompiledAuthorization([{ name: 'nothing', action: 'ALLOW' }])
  t.equal(none.decide({ peer: null, port: 1, http: true, method: 'GET', path: '/', header: () => undefined }).verdict, AUTHZ_DENY, 'an ALLOW policy without rules denies everything')
  const hdr = new CompiledAuthorization([{ name: 'h', action: 'ALLOW', rules: [{ when: [{ header: 'x-tenant', values: ['acme-*'], notValues: ['acme-test'] }] }] }])
  const hq = (v: string | undefined) => hdr.decide({ peer: null, port: 1, http: true, method: 'GET', path: '/', header: (n) => (n === 'x-tenant' ? v : undefined) }).verdict
  t.same([hq('acme-prod'), hq('acme-test'), hq(undefined)], [AUTHZ_ALLOW, AUTHZ_DENY, AUTHZ_DENY])
})

t.test('a matrix of callers, paths and methods through two sidecars over mutual TLS', async (t) => {
  const ca = await startTestCa(t)
  const app = await startHttpUpstream(t, { name: 'reviews-app' })
  const { s: reviews, port } = await callee(t, ca, app.port, { authorization: POLICIES })
  const callers: Record<string, number> = {
    frontend: (await caller(t, ca, 'shop', 'frontend', port)).port,
    ops: (await caller(t, ca, 'ops', 'admin', port)).port,
    intruder: (await caller(t, ca, 'other', 'intruder', port)).port,
    plain: port, // plain text, straight to the inbound listener (permissive): no identity
  }
  const requests: [string, string][] = [['GET', '/reviews/1'], ['POST', '/reviews/1'], ['GET', '/admin'], ['GET', '/secret/x']]
  const want: Record<string, number[]> = {
    frontend: [200, 403, 403, 403],
    ops: [200, 200, 200, 403],
    intruder: [403, 403, 403, 403],
    plain: [403, 403, 403, 403],
  }
  let denied = 0
  for (const [who, p] of Object.entries(callers)) {
    const got: number[] = []
    for (const [method, path] of requests) {
      const r = await request(`http://127.0.0.1:${p}${path}`, { method, body: method === 'POST' ? 'x' : undefined })
      const body = await r.body.text()
      got.push(r.statusCode)
      if (r.statusCode === 403) {
        denied++
        t.equal(r.headers['x-weft-response-flags'], 'RBAC', `${who} ${method} ${path}: flag`)
        t.match(body, /RBAC: access denied/)
      }
    }
    t.same(got, want[who], `${who}: ${requests.map(([m, p]) => `${m} ${p}`).join(', ')}`)
  }
  const d = await decisions(reviews)
  t.equal(d.authz_denied, denied, 'every denial counted')
  t.equal(d.authz_audit, 4, 'POSTs audited')
  t.equal(app.requests.filter((r) => r.url === '/secret/x').length, 0, 'nothing denied reached the app')
})

t.test('gRPC over mutual TLS (ALPN h2): a denied call is PERMISSION_DENIED', async (t) => {
  const ca = await startTestCa(t)
  const g = await startGrpcServer(t)
  const { s: reviews, port } = await callee(t, ca, g.port, {
    authorization: [{ name: 'only-unary', action: 'ALLOW', rules: [{ from: [{ principals: ['cluster.local/ns/shop/sa/frontend'] }], to: [{ paths: ['/weft.test.Echo/Unary'] }] }] }],
  }, 'http2')
  const front = await caller(t, ca, 'shop', 'frontend', port, 'http2')
  const intruder = await caller(t, ca, 'other', 'intruder', port, 'http2')
  const ok = await unary(echoClient(t, front.port), { text: 'hi' })
  t.same(ok.res, { text: 'hi' }, 'allowed call served over h2 in mesh TLS')
  const no = await unary(echoClient(t, intruder.port), { text: 'hi' })
  t.equal(no.err?.code, grpc.status.PERMISSION_DENIED, 'denied: PERMISSION_DENIED')
  const d = await decisions(reviews)
  t.equal(d.authz_denied, 1)
  t.equal(d.mtls_accepted, 2, 'one h2 connection per caller')
})

t.test('opaque TCP over mutual TLS (ALPN weft-tcp): allowed by source, a denied connection is closed', async (t) => {
  const ca = await startTestCa(t)
  // an echo server standing for a database
  const echo = await new Promise<{ port: number; close(): void }>((resolve) => {
    const srv = createServer((s) => s.pipe(s))
    srv.listen(0, '127.0.0.1', () => resolve({ port: (srv.address() as AddressInfo).port, close: () => srv.close() }))
  })
  t.teardown(() => echo.close())
  const { s: db, port } = await callee(t, ca, echo.port, {
    protocol: 'tcp', tcp: { cluster: 'app' },
    authorization: [{ name: 'shop-only', action: 'ALLOW', rules: [{ from: [{ namespaces: ['shop'] }] }] }],
  })
  const tcpCaller = (ns: string, sa: string) => caller(t, ca, ns, sa, port, 'http1', {
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'rt', protocol: 'tcp', tcp: { cluster: 'reviews' } }],
  })
  const talk = (p: number) => new Promise<string>((resolve) => {
    const s = connect(p, '127.0.0.1')
    let got = ''
    s.on('data', (b) => {
      got += b
      if (got === 'ping') s.end()
    })
    s.on('error', () => {})
    s.on('close', () => resolve(got))
    s.write('ping')
  })
  t.equal(await talk((await tcpCaller('shop', 'frontend')).port), 'ping', 'shop may connect: bytes go both ways')
  // permissive: plain text straight to the opaque listener is TCP too (not taken for an HTTP method), and has no identity
  const plainDb = await callee(t, ca, echo.port, { protocol: 'tcp', tcp: { cluster: 'app' } })
  t.equal(await talk(plainDb.port), 'ping', 'plain text on a permissive tcp listener is tunnelled as it is')
  t.equal(await talk((await tcpCaller('other', 'intruder')).port), '', 'another namespace: closed, nothing echoed')
  const d = await decisions(db)
  t.equal(d.authz_denied, 1)
  t.equal(d.mtls_accepted, 2)
})
