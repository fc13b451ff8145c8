// The control plane's Kubernetes mode end to end: the real @kubernetes/client-node informers
// against the list/watch test API server (helpers/kube-api-server.ts) -> admission (the checks of
// `weft validate`, objects that fail them left out) -> translate -> cache -> gRPC -> a proxy
// that routes real requests. Watch events move traffic; a bad object is left out and reported
// while everything else keeps flowing.
import t from 'tap'
import pino from 'pino'
import { KubeConfig } from '@kubernetes/client-node'
import { startControlPlane } from '../cli/control-plane.ts'
import { startXdsSidecar } from '../proxy/xds/sidecar.ts'
import { KubeApiServer, type KubeObject } from './helpers/kube-api-server.ts'
import { getStatus, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

const service = (name: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { ports: [{ name: 'http', port: 80 }], selector: { app: name } },
})
const slice = (svc: string, port: number): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${svc}-abcde`, namespace: 'shop', labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  ports: [{ name: 'http', port, protocol: 'TCP' }],
})
const route = (name: string, backend: string): KubeObject => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: 'shop' },
  spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/v2' } }], backendRefs: [{ name: backend, port: 80 }] }],
  },
})

t.test('Kubernetes source -> control plane -> proxy: events move traffic, a bad object is left out', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const b = await startHttpUpstream(t, { name: 'B' })
  const api = await KubeApiServer.start()
  t.teardown(() => api.stop())
  api.create('Service', service('web'))
  api.create('EndpointSlice', slice('web', a.port))
  // refers to a Service that does not exist: left out, the rest is served
  api.create('HTTPRoute', route('web-v2', 'web-v2'))

  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: api.url, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'nobody' }],
    currentContext: 'test',
  })
  const logs: Record<string, any>[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s)) })
  api.failNext('Service', 'list', 500) // the first LIST fails: the source is not synced for a while
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', kubernetes: kc, log, debounceMs: 5, maxDelayMs: 50, kubeBackoff: { initialMs: 50, maxMs: 100 } })
  t.teardown(() => cp.close())
  const ready = async () => (await fetch(`http://127.0.0.1:${cp.adminPort}/ready`)).status
  t.equal(await ready(), 503, 'not ready before the informers have synced')
  await until('control plane ready', async () => (await ready()) === 200, 10_000)

  const s = await startXdsSidecar({
    controlPlane: cp.server.address,
    bootstrap: {
      node: { id: 'client-1', namespace: 'shop' },
      admin: { address: '127.0.0.1', port: 0 },
      listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'outbound' }],
      routeTables: [],
      clusters: [],
    },
    serveBootstrap: false,
    log: pino({ level: 'silent' }),
    backoff: { baseMs: 10, maxMs: 50 },
  })
  t.teardown(() => s.close())
  await until('ready', () => s.proxy.ready)
  const out = s.port('outbound')
  t.equal(await getStatus(out, 'web', '/'), 200)
  t.equal(await getStatus(out, 'web.shop.svc.cluster.local', '/v2/x'), 200, 'the bad route is not there: /v2 goes to web')
  t.equal(a.requests.length, 2)

  const source = async (): Promise<any> => (await fetch(`http://127.0.0.1:${cp.adminPort}/debug/source`)).json()
  const st = await source()
  t.equal(st.source, 'kubernetes')
  t.equal(st.synced, true)
  t.same(st.excluded, ['k8s:HTTPRoute/shop/web-v2'])
  t.match(st.errors[0], /^k8s:HTTPRoute\/shop\/web-v2:0:0: HTTPRoute shop\/web-v2: spec\.rules\[0\]\.backendRefs\[0\]\.name: .*web-v2/)
  t.ok(logs.some((l) => l.level === 50 && /^left out: k8s:HTTPRoute\/shop\/web-v2/.test(l.msg)), 'logged')

  // The pods moved (a MODIFIED EndpointSlice): traffic follows.
  api.update('EndpointSlice', slice('web', b.port))
  await until('traffic on B', async () => {
    await getStatus(out, 'web', '/')
    return b.requests.length > 0
  })

  // The missing Service appears with its endpoints: the route is admitted and /v2 goes there.
  api.create('Service', service('web-v2'))
  api.create('EndpointSlice', slice('web-v2', a.port))
  const before = a.requests.length
  await until('route admitted', async () => (await source()).excluded.length === 0)
  await until('/v2 on A', async () => {
    await getStatus(out, 'web', '/v2/x')
    return a.requests.length > before
  })
  t.equal(a.requests[a.requests.length - 1].url, '/v2/x')

  // DELETED: the Service goes; its host name no longer routes.
  api.delete('HTTPRoute', { metadata: { name: 'web-v2', namespace: 'shop' } })
  api.delete('Service', { metadata: { name: 'web-v2', namespace: 'shop' } })
  await until('web-v2 gone', async () => (await getStatus(out, 'web-v2', '/')) === 404)
  t.equal(await getStatus(out, 'web', '/'), 200, 'web still served')
})
