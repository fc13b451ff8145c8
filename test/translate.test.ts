// translate(): Services, EndpointSlices, HTTPRoutes and TrafficPolicies -> the proxy's route table
// and clusters. Fixtures are YAML checked by the validator first (translate assumes valid input);
// results are compared with the proxy config they must produce, and must pass the proxy's checks.
import t, { type Test } from 'tap'
import { stringify } from 'yaml'
import { formatConfigError } from '../api/errors.ts'
import { checkBootstrapConfig, parseBootstrap } from '../api/load.ts'
import type { Bootstrap, Cluster, Route, VirtualHost } from '../api/schema.ts'
import type { ResourceSet } from '../control-plane/resources/load.ts'
import { checkResourceTexts, loadResources } from '../control-plane/resources/validate.ts'
import { resourcesOf, translate } from '../control-plane/translate/translate.ts'
import type { NodeInfo, Translation } from '../control-plane/translate/translate.ts'

function y(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, '')
  const lines = text.split('\n')
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length))
  return lines.map((l) => l.slice(indent)).join('\n').replace(/[ ]+$/, '')
}

/** Validate, then translate; fails the test on a validation error. */
function tr(t: Test, texts: string[], node: NodeInfo = { namespace: 'shop' }): Translation {
  const r = checkResourceTexts(texts.map((text, i) => ({ file: `f${i}.yaml`, text })))
  if (!r.ok) {
    t.fail(r.errors.map(formatConfigError).join('\n'))
    return { routeTables: [], clusters: [] }
  }
  return translate(resourcesOf(r.resources), node)
}

const vhost = (x: Translation, name: string): VirtualHost => {
  const v = x.routeTables[0].virtualHosts.find((h) => h.name === name)
  if (v === undefined) throw new Error(`no virtual host ${name} in ${x.routeTables[0].virtualHosts.map((h) => h.name).join(', ')}`)
  return v
}
const cluster = (x: Translation, name: string): Cluster => {
  const c = x.clusters.find((k) => k.name === name)
  if (c === undefined) throw new Error(`no cluster ${name}`)
  return c
}
const names = (routes: Route[]) => routes.map((r) => r.name)

const SERVICES = y`
  apiVersion: v1
  kind: Service
  metadata: { name: reviews, namespace: shop }
  spec:
    clusterIP: 10.96.0.20
    ports: [{ name: http, port: 9080 }]
  ---
  apiVersion: v1
  kind: Service
  metadata: { name: reviews-v1, namespace: shop }
  spec: { ports: [{ name: http, port: 9080 }] }
  ---
  apiVersion: v1
  kind: Service
  metadata: { name: reviews-v2, namespace: shop }
  spec: { ports: [{ name: http, port: 9080 }] }
  ---
  apiVersion: v1
  kind: Service
  metadata: { name: web, namespace: front }
  spec:
    clusterIP: 10.96.0.30
    ports:
      - { name: http, port: 80 }
      - { name: admin, port: 8080 }
      - { name: dns, port: 53, protocol: UDP }
`

const SLICES = y`
  apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: { name: reviews-a, namespace: shop, labels: { kubernetes.io/service-name: reviews } }
  addressType: IPv4
  ports: [{ name: http, port: 9081 }]
  endpoints:
    - addresses: [10.1.0.1, 10.1.0.2]
    - addresses: [10.1.0.3]
      conditions: { ready: false, terminating: true }
  ---
  apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: { name: reviews-b, namespace: shop, labels: { kubernetes.io/service-name: reviews } }
  addressType: IPv4
  ports: [{ name: http, port: 9082 }]
  endpoints:
    - addresses: [10.1.0.4]
      conditions: { ready: true }
    - addresses: [10.1.0.1]
  ---
  apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: { name: web-a, namespace: front, labels: { kubernetes.io/service-name: web } }
  addressType: IPv4
  ports: [{ name: http, port: 8000 }, { name: admin, port: 9000 }]
  endpoints: [{ addresses: [10.2.0.1] }]
  ---
  # Same Service name, other namespace: not web's endpoints
  apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: { name: web-x, namespace: shop, labels: { kubernetes.io/service-name: web } }
  addressType: IPv4
  ports: [{ name: http, port: 7777 }]
  endpoints: [{ addresses: [10.9.9.9] }]
`

t.test('clusters: one per TCP Service port, ready endpoints of its slices by port name', async (t) => {
  const x = tr(t, [SERVICES, SLICES])
  t.same(x.clusters.map((c) => c.name), [
    'outbound|80||web.front.svc.cluster.local',
    'outbound|8080||web.front.svc.cluster.local',
    'outbound|9080||reviews.shop.svc.cluster.local',
    'outbound|9080||reviews-v1.shop.svc.cluster.local',
    'outbound|9080||reviews-v2.shop.svc.cluster.local',
  ], 'sorted by namespace/name; the UDP port has none')
  t.same(cluster(x, 'outbound|9080||reviews.shop.svc.cluster.local'), {
    name: 'outbound|9080||reviews.shop.svc.cluster.local',
    destination: { service: 'reviews.shop.svc.cluster.local', namespace: 'shop', workload: 'reviews' },
    endpoints: [
      { address: '10.1.0.1', port: 9081 },
      { address: '10.1.0.2', port: 9081 },
      { address: '10.1.0.4', port: 9082 },
      { address: '10.1.0.1', port: 9082 },
    ],
  }, 'a not-ready endpoint is left out; the same address on another port is another endpoint')
  t.same(cluster(x, 'outbound|80||web.front.svc.cluster.local').endpoints, [{ address: '10.2.0.1', port: 8000 }])
  t.same(cluster(x, 'outbound|8080||web.front.svc.cluster.local').endpoints, [{ address: '10.2.0.1', port: 9000 }])
  t.same(cluster(x, 'outbound|9080||reviews-v1.shop.svc.cluster.local').endpoints, [], 'no slices: no endpoints')

  // A one-port Service takes a one-port slice whatever its port's name.
  const y1 = tr(t, [
    'apiVersion: v1\nkind: Service\nmetadata: { name: a, namespace: shop }\nspec: { ports: [{ port: 80 }] }\n',
    'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: a-1, namespace: shop, labels: { kubernetes.io/service-name: a } }\naddressType: IPv4\nports: [{ name: web, port: 8080 }]\nendpoints: [{ addresses: [10.0.0.1] }]\n',
  ])
  t.same(y1.clusters[0].endpoints, [{ address: '10.0.0.1', port: 8080 }])
})

t.test('virtual hosts: one per Service port, with the host names Kubernetes DNS gives', async (t) => {
  const x = tr(t, [SERVICES])
  t.same(x.routeTables.map((r) => r.name), ['outbound'])
  const own = vhost(x, 'reviews.shop.svc.cluster.local|9080')
  t.same({ service: own.service, domains: own.domains }, {
    service: { name: 'reviews', namespace: 'shop', port: 9080 },
    domains: ['10.96.0.20', '10.96.0.20:9080'],
  }, 'in the proxy\'s namespace: the service expansion (with the short name) and the cluster IP')
  t.same(vhost(x, 'web.front.svc.cluster.local|80').domains, [
    'web.front.svc.cluster.local', 'web.front.svc.cluster.local:80',
    'web.front.svc', 'web.front.svc:80',
    'web.front', 'web.front:80',
    '10.96.0.30', '10.96.0.30:80',
  ], 'another namespace: no short name; port 80 also answers without a port')
  t.same(vhost(x, 'web.front.svc.cluster.local|8080').domains, [
    'web.front.svc.cluster.local:8080', 'web.front.svc:8080', 'web.front:8080', '10.96.0.30:8080',
  ], 'the other ports only with their port')
  t.notOk('service' in vhost(x, 'web.front.svc.cluster.local|80'))

  const fromFront = tr(t, [SERVICES], { namespace: 'front', clusterDomain: 'corp.local' })
  t.same(vhost(fromFront, 'web.front.svc.corp.local|80').service, { name: 'web', namespace: 'front', port: 80, clusterDomain: 'corp.local' })
  t.same(vhost(fromFront, 'reviews.shop.svc.corp.local|9080').domains?.slice(0, 2), ['reviews.shop.svc.corp.local', 'reviews.shop.svc.corp.local:9080'])
  t.same(cluster(fromFront, 'outbound|9080||reviews.shop.svc.corp.local').destination?.service, 'reviews.shop.svc.corp.local')
})

t.test('routes: Gateway API precedence across HTTPRoutes, then the default route', async (t) => {
  const routes = y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: b-newer, namespace: shop, creationTimestamp: "2025-03-01T00:00:00Z" }
    spec:
      parentRefs: [{ kind: Service, name: reviews, port: 9080 }]
      rules:
        - name: by-user
          matches:
            - path: { type: PathPrefix, value: /api/ }
              headers: [{ name: End-User, value: jason }]
              queryParams: [{ type: RegularExpression, name: v, value: "[0-9]+" }]
          backendRefs: [{ name: reviews-v2, port: 9080 }]
        - name: regex
          matches: [{ path: { type: RegularExpression, value: "/r/[a-z]+" } }]
          backendRefs: [{ name: reviews-v2, port: 9080 }]
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: a-older, namespace: shop, creationTimestamp: "2025-01-01T00:00:00Z" }
    spec:
      parentRefs: [{ kind: Service, name: reviews }]
      rules:
        - matches:
            - path: { type: PathPrefix, value: /api }
            - path: { type: Exact, value: /health }
              method: GET
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: split
          matches: [{ path: { type: PathPrefix, value: /api }, method: POST }]
          backendRefs:
            - { name: reviews-v1, port: 9080, weight: 3 }
            - { name: reviews-v2, port: 9080, weight: 1 }
  `
  const x = tr(t, [SERVICES, routes])
  const r = vhost(x, 'reviews.shop.svc.cluster.local|9080').routes
  t.same(names(r), ['shop.a-older.0', 'shop.a-older.split', 'shop.b-newer.by-user', 'shop.a-older.0', 'shop.b-newer.regex', 'default'])
  t.same(r.map((x) => x.match), [
    { path: { exact: '/health' }, method: 'GET' },
    { path: { segmentPrefix: '/api' }, method: 'POST' },
    { path: { segmentPrefix: '/api' }, headers: [{ name: 'end-user', exact: 'jason' }], queryParams: [{ name: 'v', regex: '[0-9]+' }] },
    { path: { segmentPrefix: '/api' } },
    { path: { regex: '/r/[a-z]+' } },
    { path: { prefix: '/' } },
  ], 'exact, then prefixes (method, then headers first), then regular expressions; "/api/" is "/api"')
  t.same(r[1].backends, [
    { cluster: 'outbound|9080||reviews-v1.shop.svc.cluster.local', weight: 3 },
    { cluster: 'outbound|9080||reviews-v2.shop.svc.cluster.local', weight: 1 },
  ])
  t.same(r[5], { name: 'default', match: { path: { prefix: '/' } }, backends: [{ cluster: 'outbound|9080||reviews.shop.svc.cluster.local', weight: 1 }] })
  t.same(names(vhost(x, 'reviews-v1.shop.svc.cluster.local|9080').routes), ['default'], 'other Services: only their default route')

  // A rule that takes everything replaces the default route.
  const all = tr(t, [SERVICES, y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: all, namespace: shop }
    spec:
      parentRefs: [{ kind: Service, name: reviews }]
      rules: [{ backendRefs: [{ name: reviews-v1, port: 9080 }] }]
  `])
  t.same(vhost(all, 'reviews.shop.svc.cluster.local|9080').routes, [
    { name: 'shop.all.0', match: { path: { prefix: '/' } }, backends: [{ cluster: 'outbound|9080||reviews-v1.shop.svc.cluster.local', weight: 1 }] },
  ])
})

t.test('filters, timeouts and retry become the route\'s fields', async (t) => {
  const x = tr(t, [SERVICES, y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: r, namespace: shop }
    spec:
      parentRefs: [{ kind: Service, name: reviews }]
      rules:
        - name: headers
          matches: [{ path: { value: /h } }]
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier:
                set: [{ name: x-a, value: "1" }, { name: host, value: example.com }]
                add: [{ name: x-b, value: "2" }]
                remove: [x-c]
            - type: ResponseHeaderModifier
              responseHeaderModifier: { remove: [server] }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: rewrite
          matches: [{ path: { value: /old } }]
          filters:
            - type: URLRewrite
              urlRewrite: { hostname: v1.example.com, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: full
          matches: [{ path: { type: Exact, value: /one } }]
          filters:
            - type: URLRewrite
              urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /two } }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: moved
          matches: [{ path: { value: /moved } }]
          filters:
            - type: RequestRedirect
              requestRedirect: { scheme: https, hostname: new.example.com, port: 8443, path: { type: ReplaceFullPath, replaceFullPath: /x }, statusCode: 308 }
        - name: mirror
          matches: [{ path: { value: /m } }]
          filters:
            - type: RequestMirror
              requestMirror: { backendRef: { name: reviews-v2, port: 9080 }, fraction: { numerator: 1, denominator: 4 } }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: nowhere
          matches: [{ path: { value: /nowhere } }]
        - name: timeouts
          matches: [{ path: { value: /t } }]
          timeouts: { request: 10s, backendRequest: 2s }
          retry: { codes: [502, 503], attempts: 3, backoff: 100ms }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: try-timeout
          matches: [{ path: { value: /tt } }]
          timeouts: { backendRequest: 500ms }
          retry: { attempts: 2 }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: per-try-only
          matches: [{ path: { value: /p } }]
          timeouts: { request: 0s, backendRequest: 1s }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
  `])
  const byName = new Map(vhost(x, 'reviews.shop.svc.cluster.local|9080').routes.map((r) => [r.name, r]))
  const v1 = [{ cluster: 'outbound|9080||reviews-v1.shop.svc.cluster.local', weight: 1 }]
  t.same(byName.get('shop.r.headers'), {
    name: 'shop.r.headers',
    match: { path: { segmentPrefix: '/h' } },
    requestHeaders: { set: { 'x-a': '1', host: 'example.com' }, add: { 'x-b': '2' }, remove: ['x-c'] },
    responseHeaders: { remove: ['server'] },
    backends: v1,
  })
  t.same(byName.get('shop.r.rewrite')?.rewrite, { pathPrefix: '/new', host: 'v1.example.com' })
  t.same(byName.get('shop.r.full')?.rewrite, { path: '/two' })
  t.same(byName.get('shop.r.moved'), {
    name: 'shop.r.moved',
    match: { path: { segmentPrefix: '/moved' } },
    redirect: { scheme: 'https', host: 'new.example.com', port: 8443, path: '/x', status: 308 },
  }, 'a redirect has no backends')
  t.same(byName.get('shop.r.mirror')?.mirror, { cluster: 'outbound|9080||reviews-v2.shop.svc.cluster.local', percent: 25 })
  t.same(byName.get('shop.r.nowhere')?.directResponse, { status: 500, body: 'WEFT_ERR_NO_BACKEND: HTTPRoute shop/r rule nowhere has no backendRefs\n' },
    'a rule without backendRefs answers 500 (Gateway API)')
  t.same(byName.get('shop.r.timeouts'), {
    name: 'shop.r.timeouts',
    match: { path: { segmentPrefix: '/t' } },
    backends: v1,
    timeout: '10s',
    retry: { attempts: 3, on: ['retriable-status-codes', 'connect-failure', 'reset'], retriableStatusCodes: [502, 503], backoff: { base: '100ms' }, perTryTimeout: '2s' },
  })
  t.same(byName.get('shop.r.try-timeout')?.retry, { attempts: 2, on: ['connect-failure', 'reset'], perTryTimeout: '500ms' })
  const p = byName.get('shop.r.per-try-only')!
  t.same([p.timeout, p.retry], [undefined, { attempts: 0, perTryTimeout: '1s' }], 'request "0s": no timeout; backendRequest alone: one try with its timeout')
})

t.test('TrafficPolicy: cluster blocks from Service targets; route blocks, most specific wins', async (t) => {
  const routes = y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: r, namespace: shop }
    spec:
      parentRefs: [{ kind: Service, name: reviews }]
      rules:
        - name: named
          matches: [{ path: { value: /named } }]
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - name: own
          matches: [{ path: { value: /own } }]
          timeouts: { request: 30s }
          retry: { attempts: 1 }
          backendRefs: [{ name: reviews-v1, port: 9080 }]
        - matches: [{ path: { value: /plain } }]
          backendRefs: [{ name: reviews-v1, port: 9080 }]
  `
  const policies = y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: service, namespace: shop }
    spec:
      targetRefs: [{ group: "", kind: Service, name: reviews }]
      loadBalancer: { policy: ringHash, hashHeader: x-user }
      connectionPool: { maxConnections: 10, maxPendingRequests: 5, maxRequests: 100, connectTimeout: 1s, idleTimeout: 30s }
      circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 10 }
      outlierDetection: { consecutive5xx: 3 }
      timeout: 5s
      retry: { attempts: 2, budget: { percent: 20 } }
      rateLimit: { requests: 10, interval: 1s }
      fault: { abort: { percent: 1, status: 503 } }
    ---
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: route, namespace: shop }
    spec:
      targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: r }]
      timeout: 7s
      rateLimit: { requests: 20, interval: 1s }
    ---
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: rule, namespace: shop }
    spec:
      targetRefs: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: r, sectionName: named }]
      timeout: 9s
  `
  const x = tr(t, [SERVICES, routes, policies])
  const c = cluster(x, 'outbound|9080||reviews.shop.svc.cluster.local')
  t.same({ lb: c.lb, pool: c.pool, circuitBreaker: c.circuitBreaker, outlierDetection: c.outlierDetection }, {
    lb: { policy: 'ringHash', hashHeader: 'x-user' },
    pool: { maxConnections: 10, maxPending: 5, maxRequests: 100, connectTimeout: '1s', idleTimeout: '30s' },
    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 10 },
    outlierDetection: { consecutive5xx: 3 },
  }, 'maxPendingRequests is the proxy\'s pool.maxPending')
  t.notOk('lb' in cluster(x, 'outbound|9080||reviews-v1.shop.svc.cluster.local'), 'only the targeted Service')

  const byName = new Map(vhost(x, 'reviews.shop.svc.cluster.local|9080').routes.map((r) => [r.name, r]))
  const blocks = (n: string) => {
    const r = byName.get(n)!
    return { timeout: r.timeout, retry: r.retry, rateLimit: r.rateLimit, fault: r.fault }
  }
  const service = { retry: { attempts: 2, budget: { percent: 20 } }, fault: { abort: { percent: 1, status: 503 } } }
  t.same(blocks('shop.r.named'), { ...service, timeout: '9s', rateLimit: { requests: 20, interval: '1s' } }, 'rule > HTTPRoute > Service, block by block')
  t.same(blocks('shop.r.2'), { ...service, timeout: '7s', rateLimit: { requests: 20, interval: '1s' } }, 'an unnamed rule gets the HTTPRoute\'s')
  t.same(blocks('shop.r.own'), {
    ...service, timeout: '30s', retry: { attempts: 1, on: ['connect-failure', 'reset'] }, rateLimit: { requests: 20, interval: '1s' },
  }, 'the rule\'s own timeouts and retry beat every policy')
  t.same(blocks('default'), { ...service, timeout: '5s', rateLimit: { requests: 10, interval: '1s' } }, 'the default route: the Service\'s')
  t.same(byName.get('shop.r.named')?.retry === byName.get('shop.r.2')?.retry, false, 'each route has its own copy')
})

t.test('consumer routes (another namespace) apply only to proxies of that namespace', async (t) => {
  const consumer = y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: to-v2, namespace: front }
    spec:
      parentRefs: [{ kind: Service, name: reviews, namespace: shop }]
      rules:
        - matches: [{ path: { value: /beta } }]
          backendRefs: [{ name: reviews-v2, namespace: shop, port: 9080 }]
  `
  const fromFront = tr(t, [SERVICES, consumer], { namespace: 'front' })
  t.same(names(vhost(fromFront, 'reviews.shop.svc.cluster.local|9080').routes), ['front.to-v2.0', 'default'])
  t.same(vhost(fromFront, 'reviews.shop.svc.cluster.local|9080').routes[0].backends, [{ cluster: 'outbound|9080||reviews-v2.shop.svc.cluster.local', weight: 1 }])
  const fromShop = tr(t, [SERVICES, consumer], { namespace: 'shop' })
  t.same(names(vhost(fromShop, 'reviews.shop.svc.cluster.local|9080').routes), ['default'])
})

t.test('the output does not depend on file order', async (t) => {
  const parts = SERVICES.split('---\n')
  const a = tr(t, [parts.join('---\n'), SLICES])
  const b = tr(t, [SLICES, [...parts].reverse().join('---\n')])
  t.same(JSON.stringify(b), JSON.stringify(a))
})

/** The translation merged into a minimal bootstrap, as static mode does. */
function merged(x: Translation): Bootstrap {
  return {
    node: { namespace: 'shop' },
    listeners: [{ name: 'out', direction: 'outbound', port: 0, routeTable: 'outbound' }],
    routeTables: x.routeTables,
    clusters: x.clusters,
  }
}

t.test('translations pass the proxy\'s own checks (as YAML and as objects)', async (t) => {
  const check = (what: string, set: ResourceSet) => {
    const x = translate(resourcesOf(set), { namespace: 'shop' })
    const asYaml = parseBootstrap(stringify(merged(x)), `${what}.yaml`)
    t.same(asYaml.ok ? [] : asYaml.errors.map(formatConfigError), [], `${what}: parseBootstrap`)
    const asObject = checkBootstrapConfig(merged(x), what)
    t.same(asObject.ok ? [] : asObject.errors.map(formatConfigError), [], `${what}: checkBootstrapConfig`)
  }
  const example = await loadResources(['examples/mesh/resources'])
  t.ok(example.ok)
  check('examples/mesh/resources', example.resources)
  const fixtures = checkResourceTexts([{ file: 's.yaml', text: SERVICES }, { file: 'e.yaml', text: SLICES }])
  t.ok(fixtures.ok)
  check('fixtures', fixtures.resources)
})
