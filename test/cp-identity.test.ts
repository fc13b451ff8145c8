// Identity through the control plane in Kubernetes mode, against the test API server: the CA's
// root kept in a Secret and shared by two replicas, ServiceAccount tokens checked by TokenReview,
// and a TrafficPolicy `tls` block that makes the callers' clusters mutual TLS with secure naming.
import t from 'tap'
import pino from 'pino'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { KubeConfig } from '@kubernetes/client-node'
import { request } from 'undici'
import { startControlPlane } from '../cli/control-plane.ts'
import { startXdsSidecar } from '../proxy/xds/sidecar.ts'
import { KubeApiServer, type KubeObject } from './helpers/kube-api-server.ts'
import { startTestSidecar, tempDir, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

t.test('Kubernetes mode: a shared root in a Secret, TokenReview, and mTLS set by a TrafficPolicy', async (t) => {
  const api = await KubeApiServer.start()
  t.teardown(() => api.stop())
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: api.url, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'nobody' }],
    currentContext: 'test',
  })
  const log = pino({ level: 'silent' })
  const start = () => startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', kubernetes: kc, log, debounceMs: 5, maxDelayMs: 50, ca: { listen: '127.0.0.1:0', namespace: 'weft-system' } })
  const cp = await start()
  t.teardown(() => cp.close())
  const replica = await start()
  t.teardown(() => replica.close())
  t.equal(api.secrets.size, 1, 'one root Secret')
  t.ok(api.secrets.has('weft-system/weft-ca-root'))
  t.same(replica.ca!.ca.trustBundle(), cp.ca!.ca.trustBundle(), 'the second replica uses the same root')
  // Kubernetes mode: the certificate service speaks TLS; proxies check it against the mesh root
  t.equal(cp.ca!.server.tls, true)
  const root = cp.ca!.ca.trustBundle().join('')

  // the callee: a sidecar whose identity comes from the CA with its ServiceAccount token
  const dir = tempDir(t)
  const token = (ns: string, sa: string, file: string) => {
    writeFileSync(join(dir, file), api.serviceAccountToken(ns, sa))
    return join(dir, file)
  }
  const app = await startHttpUpstream(t, { name: 'reviews-app' })
  const reviews = await startTestSidecar(t, {
    node: { namespace: 'shop', workload: 'reviews' },
    admin: { address: '127.0.0.1', port: 0 },
    identity: { serviceAccount: 'reviews', ca: { address: replica.ca!.server.address, tokenFile: token('shop', 'reviews', 'reviews.token'), root } },
    listeners: [{ name: 'in', direction: 'inbound', address: '127.0.0.1', port: 0, routeTable: 'app', mtls: 'strict' }],
    routeTables: [{ name: 'app', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: app.port }] }],
  })
  await until('reviews has its SVID', async () => (await reviews.admin('/ready')).status === 200, 5000)
  const svc: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 80 }], selector: { app: 'reviews' } } }
  api.create('Service', svc)
  api.create('EndpointSlice', {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'reviews-abcde', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'reviews' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    ports: [{ name: 'http', port: reviews.sidecar.port('in'), protocol: 'TCP' }],
  })
  api.create('TrafficPolicy', {
    apiVersion: 'policy.weft.io/v1alpha1', kind: 'TrafficPolicy',
    metadata: { name: 'reviews-mtls', namespace: 'shop' },
    spec: { targetRefs: [{ group: '', kind: 'Service', name: 'reviews' }], tls: { identities: ['spiffe://cluster.local/ns/shop/sa/reviews'] } },
  })
  await until('control plane ready', async () => (await fetch(`http://127.0.0.1:${cp.adminPort}/ready`)).status === 200, 10_000)

  // the caller: a control-plane-mode sidecar; its identity from the bootstrap, its cluster's tls from the TrafficPolicy
  const front = await startXdsSidecar({
    controlPlane: cp.server.address,
    bootstrap: {
      node: { id: 'frontend-1', namespace: 'shop', workload: 'frontend' },
      admin: { address: '127.0.0.1', port: 0 },
      identity: { serviceAccount: 'frontend', ca: { address: cp.ca!.server.address, tokenFile: token('shop', 'frontend', 'frontend.token'), root } },
      listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'outbound' }],
      routeTables: [],
      clusters: [],
    },
    serveBootstrap: false,
    log,
    backoff: { baseMs: 10, maxMs: 50 },
  })
  t.teardown(() => front.close())
  await until('frontend ready (config and SVID)', () => front.proxy.ready, 10_000)
  const r = await request(`http://127.0.0.1:${front.port('outbound')}/x`, { headers: { host: 'reviews.shop.svc.cluster.local' } })
  t.equal(r.statusCode, 200, await r.body.text())
  t.match(app.requests.at(-1)!.header('x-forwarded-client-cert'), /URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend$/, 'the callee authenticated the caller')
  t.same(front.proxy.current!.source.clusters.find((c) => c.name.includes('reviews'))!.tls, { identities: ['spiffe://cluster.local/ns/shop/sa/reviews'] }, 'tls from the TrafficPolicy')
  t.same(api.tokenReviews.sort(), ['system:serviceaccount:shop:frontend', 'system:serviceaccount:shop:reviews'])

  // a token the API server does not know: nothing issued, the sidecar says why and is not ready
  writeFileSync(join(dir, 'forged.token'), 'sa.shop.reviews.forged')
  const intruder = await startTestSidecar(t, {
    node: { namespace: 'shop', workload: 'x' },
    admin: { address: '127.0.0.1', port: 0 },
    identity: { serviceAccount: 'reviews', ca: { address: cp.ca!.server.address, tokenFile: join(dir, 'forged.token'), root } },
    listeners: [{ name: 'in', direction: 'inbound', address: '127.0.0.1', port: 0, routeTable: 'app' }],
    routeTables: [{ name: 'app', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: app.port }] }],
  })
  const id = await until('the refusal is known', async () => {
    const r = await intruder.admin('/identity')
    return r.status === 503 && /INVALID_TOKEN/.test(r.body) ? JSON.parse(r.body) : undefined
  }, 5000)
  t.match(id, { ready: false, spiffeId: 'spiffe://cluster.local/ns/shop/sa/reviews', lastError: /WEFT_ERR_CA_INVALID_TOKEN: the token was not authenticated/ })
  const ready = await intruder.admin('/ready')
  t.equal(ready.status, 503)
  t.match(ready.body, /no identity certificate yet: .*INVALID_TOKEN/)
  t.match(await (await fetch(`http://127.0.0.1:${cp.adminPort}/metrics`)).text(), /weft_ca_requests_total\{result="invalid_token"\} [1-9]/, 'counted on the control plane')
  t.end()
})

t.test('the certificate service over TLS: its certificate from the mesh root, checked by the proxy, made again when the root rotates', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'tokens.yaml'), 'tokens:\n  - { token: t-reviews, namespace: shop, serviceAccount: reviews }\n')
  writeFileSync(join(dir, 'reviews.token'), 't-reviews')
  const log = pino({ level: 'silent' })
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', log, ca: { listen: '127.0.0.1:0', dir: join(dir, 'ca'), tokensFile: join(dir, 'tokens.yaml'), tls: true } })
  t.teardown(() => cp.close())
  t.equal(cp.ca!.server.tls, true)
  const root = cp.ca!.ca.trustBundle().join('')
  const app = await startHttpUpstream(t, { name: 'app' })
  const sidecar = (ca: Record<string, unknown>) => startTestSidecar(t, {
    node: { namespace: 'shop', workload: 'reviews' },
    admin: { address: '127.0.0.1', port: 0 },
    identity: { serviceAccount: 'reviews', ca: { address: cp.ca!.server.address, tokenFile: join(dir, 'reviews.token'), ...ca } },
    listeners: [{ name: 'in', direction: 'inbound', address: '127.0.0.1', port: 0, routeTable: 'app' }],
    routeTables: [{ name: 'app', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: app.port }] }],
  } as never)
  const good = await sidecar({ root, ttl: '2s' })
  await until('an SVID over TLS', async () => (await good.admin('/ready')).status === 200, 5000)

  // the CA's certificate is checked: another root, or plain text, gets nothing
  const { CertificateAuthority } = await import('../control-plane/ca/ca.ts')
  const other = (await CertificateAuthority.create({ trustDomain: 'cluster.local' })).trustBundle().join('')
  const wrong = await sidecar({ root: other })
  const plain = await sidecar({})
  for (const [name, s] of [['another root', wrong], ['plain text', plain]] as const) {
    const id = await until(`${name}: the failure is known`, async () => {
      const r = await s.admin('/identity')
      return r.status === 503 && /lastError/.test(r.body) && JSON.parse(r.body).lastError !== null ? JSON.parse(r.body) : undefined
    }, 10_000)
    t.match(id, { ready: false, lastError: /CA 127\.0\.0\.1:\d+: / }, `${name}: no certificate (${id.lastError})`)
  }

  // a root rotation: the service's own certificate moves to the new root; a proxy that learnt the
  // new root from its last answer (step 1) keeps renewing (its SVID lives 2 s: it renews every second)
  await cp.ca!.ca.prepareRootRotation()
  const renewed = async (after: string) => until('renewed', async () => {
    const r = JSON.parse((await good.admin('/identity')).body)
    return r.serial !== after && r.trustBundle.length >= 1 ? r : undefined
  }, 10_000)
  let now = JSON.parse((await good.admin('/identity')).body)
  now = await renewed(now.serial)
  now = await renewed(now.serial)
  t.equal(now.trustBundle.length, 2, 'both roots trusted (learnt with the renewal)')
  cp.ca!.ca.activateNextRoot()
  now = await renewed(now.serial)
  now = await renewed(now.serial)
  cp.ca!.ca.dropPreviousRoots()
  now = await renewed(now.serial)
  now = await renewed(now.serial)
  t.equal(now.trustBundle.length, 1, 'the old root dropped')
  t.not(now.trustBundle[0].fingerprint256, undefined)
  const fresh = await sidecar({ root: cp.ca!.ca.trustBundle().join('') })
  await until('a new proxy with only the new root gets an SVID: the service\'s own certificate moved to it', async () => (await fresh.admin('/ready')).status === 200, 5000)
  const oldOnly = await sidecar({ root })
  const id = await until('one with only the dropped root is refused', async () => {
    const r = JSON.parse((await oldOnly.admin('/identity')).body)
    return r.lastError ? r : undefined
  }, 10_000)
  t.match(id.lastError, /CA 127\.0\.0\.1:\d+: /)
})
