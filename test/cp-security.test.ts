// Workload security resolved by the control plane (control-plane/translate/security.ts): auto
// mutual TLS with secure naming from Pods, PeerAuthentication modes (mesh, namespace, workload,
// port) and AuthorizationPolicies (Istio's format) on the clusters' `inbound`, what an injected
// pod's sidecar makes of them (proxy/xds/assemble.ts), and the resources' checks.
import t from 'tap'
import { Translator } from '../control-plane/translate/incremental.ts'
import type { Resources } from '../control-plane/translate/translate.ts'
import type { Pod } from '../control-plane/sources/cluster-state.ts'
import type { AuthorizationPolicy, EndpointSlice, PeerAuthentication, Service, TrafficPolicy } from '../control-plane/resources/schema.ts'
import { checkResourceTexts } from '../control-plane/resources/validate.ts'
import { assemble, checkAssembled, NOTHING_ACCEPTED } from '../proxy/xds/assemble.ts'
import { withPodListeners } from '../proxy/xds/sidecar.ts'
import type { ClusterSpec } from '../api/schema.ts'

const svc = (name: string, ns = 'shop'): Service => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports: [{ name: 'http', port: 80, targetPort: 9080 }] } }) as Service
const slice = (svcName: string, ips: string[], ns = 'shop'): EndpointSlice => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${svcName}-1`, namespace: ns, labels: { 'kubernetes.io/service-name': svcName } },
  addressType: 'IPv4', ports: [{ name: 'http', port: 9080 }], endpoints: ips.map((ip) => ({ addresses: [ip] })),
}) as EndpointSlice
const pod = (name: string, ip: string, labels: Record<string, string>, o: { sa?: string; sidecar?: boolean; ns?: string; phase?: string } = {}): Pod => ({
  apiVersion: 'v1', kind: 'Pod',
  metadata: { name, namespace: o.ns ?? 'shop', labels, ...(o.sidecar === false ? {} : { annotations: { 'weft.io/status': '{}' } }) },
  spec: { serviceAccountName: o.sa ?? labels.app },
  status: { phase: o.phase ?? 'Running', podIP: ip, podIPs: [{ ip }] },
})
const pa = (name: string, ns: string, spec: PeerAuthentication['spec']): PeerAuthentication => ({ apiVersion: 'security.weft.io/v1alpha1', kind: 'PeerAuthentication', metadata: { name, namespace: ns }, spec })
const ap = (name: string, ns: string, spec: AuthorizationPolicy['spec']): AuthorizationPolicy => ({ apiVersion: 'security.weft.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec })

const REVIEWS = 'outbound|80||reviews.shop.svc.cluster.local'
const base = (o: Partial<Resources> = {}): Resources => ({
  services: [svc('reviews')],
  endpointSlices: [slice('reviews', ['10.0.0.1', '10.0.0.2'])],
  httpRoutes: [],
  trafficPolicies: [],
  pods: [pod('reviews-v1', '10.0.0.1', { app: 'reviews', version: 'v1' }), pod('reviews-v2', '10.0.0.2', { app: 'reviews', version: 'v2' })],
  ...o,
})
const cluster = (tr: Translator, r: Resources, name = REVIEWS): ClusterSpec => tr.translate(r, ['shop']).clusters.find((c) => c.name === name)!
/** The cluster's inbound policy per port, without the workload-wide parts (tested on their own below). */
const routed = (c: ClusterSpec): unknown => (c.inbound === undefined ? undefined : JSON.parse(JSON.stringify(c.inbound, (k, v: unknown) => (k === 'pod' ? undefined : v))))

t.test('auto mutual TLS: every endpoint a pod with a sidecar gives mutual TLS to their ServiceAccounts', async (t) => {
  const tr = new Translator({ security: { trustDomain: 'example.org' } })
  const r = base({ pods: [pod('reviews-v1', '10.0.0.1', { app: 'reviews' }), pod('reviews-v2', '10.0.0.2', { app: 'reviews' }, { sa: 'reviews-v2' })] })
  t.same(cluster(tr, r).tls, { mode: 'mutual', identities: ['spiffe://example.org/ns/shop/sa/reviews', 'spiffe://example.org/ns/shop/sa/reviews-v2'] })
  t.equal(cluster(tr, r), cluster(tr, r), 'the same object again when nothing moved (the snapshot cache does not hash it again)')
  // a change elsewhere (a new Service) keeps the resolved clusters, and their tls
  const more = { ...r, services: [...r.services, svc('ratings')] }
  t.same(cluster(tr, more).tls, { mode: 'mutual', identities: ['spiffe://example.org/ns/shop/sa/reviews', 'spiffe://example.org/ns/shop/sa/reviews-v2'] }, 'kept when another resource changes')
  t.same(cluster(tr, { ...more, pods: [...more.pods!] }).tls, cluster(tr, more).tls, 'and when the same Pods come in a new list')

  const half = base({ pods: [pod('reviews-v1', '10.0.0.1', { app: 'reviews' }), pod('reviews-v2', '10.0.0.2', { app: 'reviews' }, { sidecar: false })] })
  t.equal(cluster(tr, half).tls, undefined, 'one endpoint without a sidecar: plain text (it could not answer mutual TLS)')
  t.equal(cluster(tr, base({ pods: [] })).tls, undefined, 'no Pods known (local mode): nothing changes')
  const ended = base({ pods: [pod('reviews-v1', '10.0.0.1', { app: 'reviews' }), pod('reviews-v2', '10.0.0.2', { app: 'reviews' }, { phase: 'Succeeded' })] })
  t.equal(cluster(tr, ended).tls, undefined, 'a finished pod does not count for its (reusable) IP')

  const off: TrafficPolicy = { apiVersion: 'policy.weft.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'plain', namespace: 'shop' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'reviews' }], tls: { mode: 'disable' } } } as TrafficPolicy
  t.same(cluster(tr, base({ trafficPolicies: [off] })).tls, { mode: 'disable' }, "a TrafficPolicy's tls block wins")
  const fill: TrafficPolicy = { ...off, spec: { ...off.spec, tls: { mode: 'mutual' } } }
  t.same(cluster(tr, base({ trafficPolicies: [fill] })).tls, { mode: 'mutual', identities: ['spiffe://example.org/ns/shop/sa/reviews'] }, 'one without identities gets them from the Pods')

  const noCa = new Translator({})
  t.equal(cluster(noCa, r).tls, undefined, 'without a CA (no trust domain) there is no mutual TLS to turn on')
})

t.test('PeerAuthentication: workload (port, then its mode) > Service TrafficPolicy > namespace > mesh; UNSET inherits', async (t) => {
  const tr = new Translator({ security: { rootNamespace: 'weft-system' } })
  const mesh = pa('default', 'weft-system', { mtls: { mode: 'STRICT' } })
  t.same(routed(cluster(tr, base({ peerAuthentications: [mesh] }))), { mtls: 'strict' }, 'mesh-wide (root namespace, no selector)')
  const ns = pa('shop', 'shop', { mtls: { mode: 'PERMISSIVE' } })
  t.same(routed(cluster(tr, base({ peerAuthentications: [mesh, ns] }))), { mtls: 'permissive' }, 'the namespace beats the mesh')
  const unset = pa('shop', 'shop', { mtls: { mode: 'UNSET' } })
  t.same(routed(cluster(tr, base({ peerAuthentications: [mesh, unset] }))), { mtls: 'strict' }, 'UNSET: the parent decides')
  const other = pa('other', 'other', { mtls: { mode: 'DISABLE' } })
  t.same(routed(cluster(tr, base({ peerAuthentications: [mesh, other] }))), { mtls: 'strict' }, "another namespace's policy does not apply")

  // a selector: the v2 pod only, so the cluster keeps the common mode and lists v2's IP apart
  const v2 = pa('v2', 'shop', { selector: { matchLabels: { version: 'v2' } }, mtls: { mode: 'DISABLE' } })
  t.same(routed(cluster(tr, base({ peerAuthentications: [ns, v2] }))), { mtls: 'permissive', workloads: [{ addresses: ['10.0.0.2'], mtls: 'disable' }] })
  const port = pa('v2', 'shop', { selector: { matchLabels: { version: 'v2' } }, mtls: { mode: 'DISABLE' }, portLevelMtls: { '9080': { mode: 'STRICT' } } })
  t.same(routed(cluster(tr, base({ peerAuthentications: [ns, port] }))), { mtls: 'permissive', workloads: [{ addresses: ['10.0.0.2'], mtls: 'strict' }] }, 'portLevelMtls at the endpoint port wins')

  const tp: TrafficPolicy = { apiVersion: 'policy.weft.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'in', namespace: 'shop' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'reviews' }], inbound: { mtls: 'strict' } } } as TrafficPolicy
  t.same(routed(cluster(tr, base({ peerAuthentications: [ns, v2], trafficPolicies: [tp] }))), { mtls: 'strict', workloads: [{ addresses: ['10.0.0.2'], mtls: 'disable' }] }, "the Service's TrafficPolicy beats the namespace; a workload selector beats both")
})

t.test("AuthorizationPolicy: mesh-wide, namespace, selector; Istio's shape becomes the proxy's", async (t) => {
  const tr = new Translator({ security: { rootNamespace: 'weft-system' } })
  const deny = ap('no-admin', 'weft-system', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'], ports: ['9080'] } }] }] })
  const allow = ap('frontend', 'shop', {
    selector: { matchLabels: { version: 'v1' } },
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }], to: [{ operation: { methods: ['GET'] } }], when: [{ key: 'request.headers[X-Tenant]', values: ['a'] }] }],
  })
  const all = ap('deny-all', 'other', {})
  const c = cluster(tr, base({ authorizationPolicies: [deny, allow, all] }))
  t.same(routed(c), {
    authorization: [{ name: 'weft-system.no-admin', action: 'DENY', rules: [{ to: [{ paths: ['/admin*'], ports: [9080] }] }] }],
    workloads: [{
      addresses: ['10.0.0.1'],
      authorization: [
        { name: 'weft-system.no-admin', action: 'DENY', rules: [{ to: [{ paths: ['/admin*'], ports: [9080] }] }] },
        { name: 'shop.frontend', action: 'ALLOW', rules: [{ from: [{ principals: ['cluster.local/ns/shop/sa/frontend'] }], to: [{ methods: ['GET'] }], when: [{ header: 'x-tenant', values: ['a'] }] }] },
      ],
    }],
  }, 'root namespace: every pod; the selector: v1 only (listed apart); another namespace: none')
  const rootSel = ap('v2-only', 'weft-system', { selector: { matchLabels: { version: 'v2' } }, action: 'AUDIT', rules: [{}] })
  t.same(routed(cluster(tr, base({ authorizationPolicies: [rootSel] }))), { workloads: [{ addresses: ['10.0.0.2'], authorization: [{ name: 'weft-system.v2-only', action: 'AUDIT', rules: [{}] }] }] }, 'a root-namespace selector matches in every namespace')
})

t.test("an injected pod's sidecar takes its own entry: hop policy by IP, valid config", async (t) => {
  const tr = new Translator({ security: { rootNamespace: 'weft-system' } })
  const strict = pa('v2', 'shop', { selector: { matchLabels: { version: 'v2' } }, mtls: { mode: 'STRICT' } })
  const c = cluster(tr, base({ peerAuthentications: [pa('shop', 'shop', { mtls: { mode: 'PERMISSIVE' } }), strict] }))
  const env = { WEFT_OUTBOUND_PORT: '15001', WEFT_INBOUND_PORT: '15006', WEFT_ADMIN_PORT: '15000', POD_NAMESPACE: 'shop', SERVICE_ACCOUNT: 'reviews', WEFT_CA_ADDRESS: 'ca:15012' }
  const hop = (ip: string) => {
    const b = assemble(withPodListeners(undefined, { ...env, POD_IP: ip })!, {
      ...NOTHING_ACCEPTED,
      clusters: new Map([[c.name, c]]),
      endpoints: new Map([[c.name, [{ address: '10.0.0.1', port: 9080 }, { address: '10.0.0.2', port: 9080 }]]]),
    })
    t.equal(checkAssembled(b).ok, true)
    return b.listeners.find((l) => l.name === 'inbound|9080')?.mtls
  }
  t.equal(hop('10.0.0.1'), 'permissive', 'v1: the namespace mode')
  t.equal(hop('10.0.0.2'), 'strict', 'v2: its own, by its IP')
})

t.test('the resources are checked: file:line:column and field path', async (t) => {
  const r = checkResourceTexts([{ file: 'sec.yaml', text: `apiVersion: security.weft.io/v1alpha1
kind: PeerAuthentication
metadata: { name: ports, namespace: shop }
spec:
  portLevelMtls: { "99999": { mode: STRICT } }
---
apiVersion: security.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: bad, namespace: shop }
spec:
  rules: [{ when: [{ key: "source.ip", values: ["1.2.3.4"] }] }]
` }])
  t.equal(r.ok, false)
  const lines = r.ok ? [] : r.errors.map((e) => `${e.file}:${e.line}:${e.column} ${e.path}: ${e.message}`)
  t.match(lines.join('\n'), /sec\.yaml:11:\d+ .*spec\.rules\[0\]\.when\[0\]\.key/, 'an unsupported condition key is refused where it is')
  const sem = checkResourceTexts([{ file: 'p.yaml', text: `apiVersion: security.weft.io/v1alpha1
kind: PeerAuthentication
metadata: { name: ports, namespace: shop }
spec:
  portLevelMtls: { "99999": { mode: STRICT } }
` }])
  const msgs = sem.ok ? [] : sem.errors.map((e) => `${e.file}:${e.line}:${e.column} ${e.path}: ${e.message}`)
  t.match(msgs.join('\n'), /p\.yaml:5:\d+ .*portLevelMtls: portLevelMtls needs a selector/)
  t.match(msgs.join('\n'), /p\.yaml:5:\d+ .*port 99999 is not 1-65535/)
})

t.test("the workload-wide part reaches the pod's intercepting listener (its ports no Service names)", async (t) => {
  const tr = new Translator({ security: { rootNamespace: 'weft-system' } })
  const ns = pa('shop', 'shop', { mtls: { mode: 'STRICT' } })
  const v1Port = pa('v1', 'shop', { selector: { matchLabels: { version: 'v1' } }, portLevelMtls: { '9080': { mode: 'PERMISSIVE' } } })
  const deny = ap('no-admin', 'shop', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] })
  const c = cluster(tr, base({ peerAuthentications: [ns, v1Port], authorizationPolicies: [deny] }))
  const env = { WEFT_OUTBOUND_PORT: '15001', WEFT_INBOUND_PORT: '15006', WEFT_ADMIN_PORT: '15000', POD_NAMESPACE: 'shop', SERVICE_ACCOUNT: 'reviews', WEFT_CA_ADDRESS: 'ca:15012' }
  const listeners = (ip: string, extra: Record<string, string> = {}) => {
    const b = assemble(withPodListeners(undefined, { ...env, ...extra, POD_IP: ip })!, { ...NOTHING_ACCEPTED, clusters: new Map([[c.name, c]]), endpoints: new Map([[c.name, [{ address: '10.0.0.1', port: 9080 }, { address: '10.0.0.2', port: 9080 }]]]) })
    t.equal(checkAssembled(b).ok, true)
    return { pod: b.listeners.find((l) => l.name === 'inbound')!, hop: b.listeners.find((l) => l.name === 'inbound|9080')! }
  }
  const v1 = listeners('10.0.0.1')
  t.match(v1.hop, { mtls: 'permissive', authorization: [{ name: 'shop.no-admin' }] }, "v1's Service port: its port-level mode")
  t.match(v1.pod, { mtls: 'strict', authorization: [{ name: 'shop.no-admin' }] }, 'v1\'s other ports: the namespace is STRICT')
  t.match(listeners('10.0.0.2').pod, { mtls: 'strict' }, 'v2: STRICT everywhere')
  const unrelated = listeners('10.0.0.9', { WEFT_INBOUND_MTLS: 'disable' })
  t.equal(unrelated.pod.mtls, 'disable', "a pod no cluster lists keeps its own (annotation's) mode")
  t.notOk(unrelated.hop)
})
