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
    identity: { serviceAccount: 'reviews', ca: { address: replica.ca!.server.address, tokenFile: token('shop', 'reviews', 'reviews.token') } },
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
      identity: { serviceAccount: 'frontend', ca: { address: cp.ca!.server.address, tokenFile: token('shop', 'frontend', 'frontend.token') } },
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
    identity: { serviceAccount: 'reviews', ca: { address: cp.ca!.server.address, tokenFile: join(dir, 'forged.token') } },
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
