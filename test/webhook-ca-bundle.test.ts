// The control plane keeps the MutatingWebhookConfiguration's caBundle current through the
// Kubernetes API (the test API server, PATCH application/json-patch+json): each replica adds its
// CA, and a client trusting only the bundle read back from the API verifies every replica.
import t from 'tap'
import { KubeConfig } from '@kubernetes/client-node'
import { Agent, request } from 'undici'
import { KubeApiServer } from './helpers/kube-api-server.ts'
import { startControlPlane } from '../cli/control-plane.ts'
import { createLogger } from '../proxy/log.ts'
import { manifests } from '../install/manifests.ts'
import { createServingCert } from '../control-plane/webhook/certs.ts'
import { nextBundle, splitPem, syncCaBundle, MAX_KEPT } from '../control-plane/webhook/ca-bundle.ts'

const api = await KubeApiServer.start()
t.teardown(() => new Promise<void>((r) => { api.server.closeAllConnections(); api.server.close(() => r()) }))
const kc = new KubeConfig()
kc.loadFromOptions({
  clusters: [{ name: 'test', server: api.url, skipTLSVerify: true }],
  users: [{ name: 'nobody' }],
  contexts: [{ name: 'test', cluster: 'test', user: 'nobody' }],
  currentContext: 'test',
})
const mwc = manifests().flatMap(([, o]) => o).find((o) => o.kind === 'MutatingWebhookConfiguration') as any
const bundleInApi = () => Buffer.from((api.cluster.get('MutatingWebhookConfiguration', 'weft-sidecar-injector') as any).webhooks[0].clientConfig.caBundle ?? '', 'base64').toString()

async function replica(t: { teardown(f: () => unknown): void }) {
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', log: createLogger('silent'), webhook: { listen: '127.0.0.1:0', kube: { config: kc } } })
  t.teardown(() => cp.close())
  return cp
}
const healthz = async (port: number, ca: string) => {
  const a = new Agent({ connect: { ca, servername: 'weft-control-plane.weft-system.svc' } })
  try {
    const r = await request(`https://127.0.0.1:${port}/healthz`, { dispatcher: a })
    return `${r.statusCode} ${await r.body.text()}`
  } catch (err) {
    return `error ${(err as { code?: string }).code}`
  } finally {
    await a.close()
  }
}

t.test('without the webhook configuration: the sync fails with what to do', async (t) => {
  const cp = await replica(t)
  t.match(cp.webhook!.caBundle, { ok: false, error: /GET mutatingwebhookconfigurations\/weft-sidecar-injector: 404 .*install\/04-webhook.yaml/ })
})

t.test('two replicas: each adds its CA; the bundle from the API verifies both; a resync changes nothing', async (t) => {
  api.cluster.put('MutatingWebhookConfiguration', mwc)
  const a = await replica(t)
  t.match(a.webhook!.caBundle, { ok: true })
  t.same(splitPem(bundleInApi()), [a.webhook!.cert.caPem.trim()])
  const patch = api.cluster.patches.at(-1)!
  t.match(patch.ops[0], { op: 'test', path: '/metadata/resourceVersion' }, 'optimistic concurrency')
  const b = await replica(t)
  const bundle = bundleInApi()
  t.equal(splitPem(bundle).length, 2)
  t.equal(await healthz(a.webhook!.server.port, bundle), '200 ok\n')
  t.equal(await healthz(b.webhook!.server.port, bundle), '200 ok\n')
  const other = await createServingCert({ dnsNames: ['x'] })
  t.equal(await healthz(a.webhook!.server.port, other.caPem), 'error UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'another CA does not verify it')
  const n = api.cluster.patches.length
  await a.webhook!.syncCaBundle()
  t.equal(api.cluster.patches.length, n, 'nothing to change: no PATCH')
  // someone applies the manifest again (caBundle gone): the next sync puts it back
  api.cluster.put('MutatingWebhookConfiguration', mwc)
  await a.webhook!.syncCaBundle()
  t.equal(await healthz(a.webhook!.server.port, bundleInApi()), '200 ok\n')
})

t.test('the bundle keeps the newest unexpired CAs, at most MAX_KEPT', async (t) => {
  const now = new Date()
  const old = await createServingCert({ dnsNames: ['x'], days: 1, now: new Date(now.getTime() - 3 * 86_400_000) })
  const live = await Promise.all(Array.from({ length: MAX_KEPT + 1 }, (_, i) => createServingCert({ dnsNames: ['x'], now: new Date(now.getTime() - (10 - i) * 60_000) })))
  const mine = await createServingCert({ dnsNames: ['x'] })
  const current = [old, ...live].map((c) => c.caPem).join('\n')
  const next = nextBundle(current, mine.caPem, now)
  t.equal(next.length, MAX_KEPT)
  t.notOk(next.includes(old.caPem.trim()), 'expired CA dropped')
  t.same(next, [...live.slice(-(MAX_KEPT - 1)).map((c) => c.caPem.trim()), mine.caPem.trim()], 'oldest dropped, ours appended')
  const reordered = [mine.caPem.trim(), live[4]!.caPem.trim()]
  t.same(nextBundle(reordered.join('\n'), mine.caPem, now), reordered, 'ours present: the order is kept (replicas do not flip it)')
  t.same(nextBundle(next.join('\n'), mine.caPem, now), next, 'stable')
})

t.test('syncCaBundle against a configuration with no clientConfig: adds it', async (t) => {
  api.cluster.put('MutatingWebhookConfiguration', { metadata: { name: 'bare' }, webhooks: [{ name: 'x.weft.io' }] })
  const c = await createServingCert({ dnsNames: ['x'] })
  t.same(await syncCaBundle(kc, 'bare', c.caPem), { changed: true, cas: 1 })
  t.match(api.cluster.get('MutatingWebhookConfiguration', 'bare')!.webhooks, [{ clientConfig: { caBundle: Buffer.from(c.caPem.trim() + '\n').toString('base64') } }])
})
