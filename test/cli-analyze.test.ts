// `weft analyze DIR`, the real CLI on a folder with problems across resources and a Deployment.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { ROOT, tempDir } from './helpers/sidecar.ts'
import { weft } from './helpers/cli.ts'

const REVIEWS = readFileSync(join(ROOT, 'test', 'fixtures', 'explain', 'reviews.yaml'), 'utf8')

t.test('weft analyze: missing Services, shadowed rules, policies selecting nothing; a Deployment is a note', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'reviews.yaml'), REVIEWS)
  writeFileSync(join(dir, 'deploy.yaml'), 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: reviews-v1, namespace: demo }\nspec: { replicas: 1 }\n')
  const clean = await weft(['analyze', dir, '-o', 'json'])
  const c = JSON.parse(clean.stdout)
  t.equal(clean.code, 0, 'a Deployment beside the resources does not fail the run')
  t.same(c.findings.filter((f: { level: string }) => f.level !== 'warning').map((f: { level: string; message: string }) => [f.level, f.message]), [
    ['note', 'Deployment ignored: Weft reads Service, EndpointSlice, HTTPRoute, TrafficPolicy, PeerAuthentication and AuthorizationPolicy'],
  ])
  t.match(c.resources, { services: 3, httpRoutes: 1, trafficPolicies: 1, ignored: 1 })
  t.match(c.findings.find((f: { level: string }) => f.level === 'warning'), { code: 'WEFT_ANALYZE_NO_ENDPOINTS', message: /^Service demo\/reviews-v1 has no EndpointSlice/ })

  writeFileSync(join(dir, 'bad.yaml'), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ratings, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 80 }]
  rules:
    - backendRefs: [{ name: ratings-v1, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      backendRefs: [{ name: reviews-v1, port: 80 }]
---
apiVersion: policy.weft.io/v1alpha1
kind: TrafficPolicy
metadata: { name: details, namespace: demo }
spec:
  targetRefs: [{ group: "", kind: Service, name: details }]
  timeout: 1s
`)
  const bad = await weft(['analyze', dir])
  t.equal(bad.code, 1, 'errors found: exit 1')
  t.match(bad.stdout, /^3 Services, 0 EndpointSlices, 2 HTTPRoutes, 2 TrafficPolicies, 1 ignored\nLEVEL +WHERE +PROBLEM\n/)
  t.match(bad.stdout, /\nERROR +\S+bad\.yaml:7:\d+ +HTTPRoute demo\/ratings: spec\.rules\[0\]\.backendRefs\[0\]\.name: unknown Service "demo\/ratings-v1"/)
  t.match(bad.stdout, /\nERROR +\S+\.yaml:\d+:\d+ +HTTPRoute demo\/\S+: .*unreachable: shadowed by/)
  t.match(bad.stdout, /\nERROR +\S+bad\.yaml:15:\d+ +TrafficPolicy demo\/details: spec\.targetRefs\[0\]\.name: unknown Service "demo\/details"/)
  t.match(bad.stdout, /\nNOTE +\S+deploy\.yaml:2:\d+ +Deployment ignored/)
  const y = await weft(['analyze', dir, '-o', 'yaml'])
  t.equal(y.code, 1)
  t.match(y.stdout, /\nfindings:\n  - level: /)
  const usage = await weft(['analyze', dir, '-o', 'csv'])
  t.equal(usage.code, 2)
})

t.test('weft analyze --kubernetes --kubeconfig --context: the cluster\'s objects, analyzed as files are', async (t) => {
  const { KubeApiServer } = await import('./helpers/kube-api-server.ts')
  const { parseAllDocuments, stringify } = await import('yaml')
  const api = await KubeApiServer.start({ token: 'tok' })
  t.teardown(() => api.stop())
  for (const d of parseAllDocuments(REVIEWS)) {
    const o = d.toJSON()
    api.create(o.kind, o)
  }
  api.create('TrafficPolicy', { apiVersion: 'policy.weft.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'details', namespace: 'demo' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'details' }], timeout: '1s' } })
  const dir = tempDir(t)
  const kc = join(dir, 'kubeconfig')
  writeFileSync(kc, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'elsewhere',
    clusters: [{ name: 'test', cluster: { server: api.url, 'insecure-skip-tls-verify': true } }, { name: 'dead', cluster: { server: 'https://127.0.0.1:1' } }],
    users: [{ name: 'u', user: { token: 'tok' } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'u' } }, { name: 'elsewhere', context: { cluster: 'dead', user: 'u' } }],
  }))
  const r = await weft(['analyze', '--kubernetes', '--kubeconfig', kc, '--context', 'test', '-o', 'json'])
  t.equal(r.code, 1, r.stderr)
  const a = JSON.parse(r.stdout)
  t.match(a.resources, { services: 3, httpRoutes: 1, trafficPolicies: 2 })
  t.match(a.findings.filter((f: { level: string }) => f.level === 'error'), [{ file: 'kubernetes:test/TrafficPolicy', message: /TrafficPolicy demo\/details: spec\.targetRefs\[0\]\.name: unknown Service "demo\/details"/ }])
  const usage = await weft(['analyze', dir, '--kubernetes'])
  t.equal(usage.code, 2)
  const nokube = await weft(['analyze', '--kubernetes', '--kubeconfig', join(dir, 'nope')])
  t.equal(nokube.code, 3)
  t.match(nokube.stderr, /nope \(--kubeconfig\): no such file/)
})
