// Static mode: a real sidecar configured by a bootstrap plus resource files (Services,
// EndpointSlices, an HTTPRoute), real upstreams on 127.0.0.1. Requests find the endpoints of the
// EndpointSlices through the Services' host names, weighted splits and header matches route as the
// HTTPRoute says, and a bad change of a resource file keeps the last good config serving.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { Pool } from 'undici'
import { startStaticSidecar } from '../cli/proxy-static.ts'
import { freePort, spawnWeft, tempDir, until, waitExit, waitReady } from './helpers/sidecar.ts'
import type { Teardown } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

async function get(port: number, host: string, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const p = new Pool(`http://127.0.0.1:${port}`)
  try {
    const r = await p.request({ path, method: 'GET', headers: { host, ...headers } })
    return { status: r.statusCode, body: await r.body.text() }
  } finally {
    await p.close()
  }
}

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop }
spec:
  ports: [{ name: http, port: 9080 }]
`
const slice = (svc: string, port: number) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${svc}-1, namespace: shop, labels: { kubernetes.io/service-name: ${svc} } }
addressType: IPv4
ports: [{ name: http, port: ${port} }]
endpoints: [{ addresses: [127.0.0.1], conditions: { ready: true } }]
`
const route = (v1Weight: number, v2Weight: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - name: testers
      matches: [{ headers: [{ name: end-user, value: jason }] }]
      backendRefs: [{ name: reviews-v2, port: 9080 }]
    - name: split
      backendRefs:
        - { name: reviews-v1, port: 9080, weight: ${v1Weight} }
        - { name: reviews-v2, port: 9080, weight: ${v2Weight} }
`
const bootstrap = (port = 0, adminPort = 0) => `node: { workload: productpage, namespace: shop }
admin: { address: 127.0.0.1, port: ${adminPort} }
listeners:
  - { name: out, direction: outbound, address: 127.0.0.1, port: ${port}, routeTable: outbound }
routeTables: []
clusters: []
drainPeriod: 100ms
`

/** Upstreams for reviews (its own pods), reviews-v1 and reviews-v2, and a resources dir for them. */
async function setup(t: Teardown) {
  const own = await startHttpUpstream(t, { name: 'reviews' })
  const v1 = await startHttpUpstream(t, { name: 'v1' })
  const v2 = await startHttpUpstream(t, { name: 'v2' })
  const dir = tempDir(t)
  const resources = join(dir, 'resources')
  mkdirSync(resources)
  writeFileSync(join(resources, 'services.yaml'), [service('reviews'), service('reviews-v1'), service('reviews-v2')].join('---\n'))
  writeFileSync(join(resources, 'slices.yaml'), [slice('reviews', own.port), slice('reviews-v1', v1.port), slice('reviews-v2', v2.port)].join('---\n'))
  writeFileSync(join(resources, 'route.yaml'), route(1, 0))
  const configFile = join(dir, 'bootstrap.yaml')
  writeFileSync(configFile, bootstrap())
  return { own, v1, v2, dir, resources, configFile }
}

t.test('static mode: Services, EndpointSlices and an HTTPRoute route real requests', async (t) => {
  const { own, v1, v2, resources, configFile } = await setup(t)
  const sidecar = await startStaticSidecar({ configFile, resources: [resources], log: pino({ level: 'silent' }), watch: true, watchDebounceMs: 20 })
  t.teardown(() => sidecar.close())
  const port = sidecar.port('out')

  // The Service's FQDN with its port reaches the HTTPRoute's backends: weights 1:0 -> only v1.
  for (let i = 0; i < 20; i++) {
    const r = await get(port, 'reviews.shop.svc.cluster.local:9080', `/r/${i}`)
    t.equal(r.body, `v1 GET /r/${i}`, `request ${i}`)
  }
  t.equal(v2.requests.length, 0, 'weight 0: v2 got nothing')
  t.equal(own.requests.length, 0, 'the rule takes everything: no default route to the Service itself')

  // The header match goes to v2, under any of the Service's names.
  for (const host of ['reviews:9080', 'reviews', 'reviews.shop', 'reviews.shop.svc:9080']) {
    const r = await get(port, host, '/h', { 'end-user': 'jason' })
    t.equal(r.body, 'v2 GET /h', `end-user: jason via ${host}`)
  }
  // Other Services answer through their own default route: their EndpointSlice's endpoint.
  t.equal((await get(port, 'reviews-v2.shop.svc.cluster.local:9080', '/direct')).body, 'v2 GET /direct')
  t.equal((await get(port, 'reviews-v1.shop:9080', '/direct')).body, 'v1 GET /direct')
  t.equal((await get(port, 'ratings.shop:9080', '/')).status, 404, 'no such Service: no route')

  // A good change is applied: the split turns around.
  writeFileSync(join(resources, 'route.yaml'), route(0, 1))
  await until('the new split', async () => (await get(port, 'reviews.shop.svc.cluster.local:9080', '/x')).body === 'v2 GET /x')
  t.equal(sidecar.proxy.rejectedCount, 0)

  // A bad change (a backendRef to a Service that does not exist) is rejected with the error in
  // file:line:column form; the last good config keeps serving.
  writeFileSync(join(resources, 'route.yaml'), route(0, 1).replace('name: reviews-v2, port: 9080, weight: 1', 'name: reviews-v3, port: 9080, weight: 1'))
  await until('the rejection', () => sidecar.proxy.rejectedCount > 0)
  t.same(sidecar.proxy.lastRejection?.errors, [
    `${join(resources, 'route.yaml')}:13:19: HTTPRoute shop/reviews: spec.rules[1].backendRefs[1].name: unknown Service "shop/reviews-v3" (did you mean "shop/reviews-v1"?)`,
  ])
  t.equal(sidecar.proxy.lastRejection?.source, `${configFile} + ${resources}`)
  t.equal((await get(port, 'reviews.shop.svc.cluster.local:9080', '/still')).body, 'v2 GET /still', 'the last good config serves')
  t.equal((await get(port, 'reviews', '/still', { 'end-user': 'jason' })).body, 'v2 GET /still')

  // A new file in the directory is read too: an EndpointSlice moving reviews-v2 to the v1 upstream.
  writeFileSync(join(resources, 'route.yaml'), route(0, 1))
  writeFileSync(join(resources, 'slices.yaml'), [slice('reviews', own.port), slice('reviews-v1', v1.port)].join('---\n'))
  writeFileSync(join(resources, 'z-slice.yaml'), slice('reviews-v2', v1.port))
  await until('the moved endpoint', async () => (await get(port, 'reviews', '/moved')).body === 'v1 GET /moved')
})

t.test('static mode: a bootstrap that defines the route table the resources make is rejected', async (t) => {
  const { resources, configFile } = await setup(t)
  writeFileSync(configFile, bootstrap().replace('routeTables: []', 'routeTables:\n  - { name: outbound, virtualHosts: [] }'))
  const err = await startStaticSidecar({ configFile, resources: [resources], log: pino({ level: 'silent' }), watch: false }).catch((e: Error) => e)
  t.ok(err instanceof Error)
  t.same((err as { errors?: string[] }).errors, [
    `${configFile}:6:13: routeTables[0].name: route table "outbound" is also made from the resources (--resources): rename or remove this one`,
  ])
})

t.test('weft proxy --config FILE --resources DIR: the real command', async (t) => {
  const { v1, resources, configFile } = await setup(t)
  const [port, adminPort] = [await freePort(), await freePort()]
  writeFileSync(configFile, bootstrap(port, adminPort))
  const c = spawnWeft(t, configFile, {}, ['--resources', resources])
  await waitReady(adminPort)
  t.equal((await get(port, 'reviews.shop.svc.cluster.local:9080', '/cli')).body, 'v1 GET /cli')
  t.equal(v1.requests.length, 1)
  c.child.kill('SIGTERM')
  t.same(await waitExit(c, 5000), { code: 0, signal: null })

  // Invalid resources: every error on stderr, exit 1, nothing started.
  writeFileSync(join(resources, 'route.yaml'), route(0, 0))
  const bad = spawnWeft(t, configFile, {}, ['--resources', resources])
  t.same(await waitExit(bad, 10_000), { code: 1, signal: null })
  t.equal(bad.stderr(), [
    `${join(resources, 'route.yaml')}:12:9: HTTPRoute shop/reviews: spec.rules[1].backendRefs: all backendRef weights are 0: at least one backend needs a positive weight`,
    `weft: ${configFile} + ${resources}: invalid config, not started`,
    '',
  ].join('\n'))
})
