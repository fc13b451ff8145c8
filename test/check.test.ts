// `weft check` as a user runs it (the real CLI, a kubeconfig file) against the test API server and
// a real control plane on 127.0.0.1 serving the webhook.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KubeConfig } from '@kubernetes/client-node'
import { KubeApiServer } from './helpers/kube-api-server.ts'
import { startControlPlane } from '../cli/control-plane.ts'
import { createLogger } from '../proxy/log.ts'
import { manifests } from '../install/manifests.ts'

const weft = fileURLToPath(new URL('../bin/weft.js', import.meta.url))
const api = await KubeApiServer.start()
t.teardown(() => new Promise<void>((r) => { api.server.closeAllConnections(); api.server.close(() => r()) }))
const dir = mkdtempSync(join(tmpdir(), 'weft-check-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const kubeconfig = join(dir, 'config')
writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "${api.url}", insecure-skip-tls-verify: true}}]
users: [{name: nobody, user: {}}]
contexts: [{name: test, context: {cluster: test, user: nobody}}]
current-context: test
`)
const kc = new KubeConfig()
kc.loadFromFile(kubeconfig)

function check(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [weft, 'check', ...args], { env: { ...process.env, KUBECONFIG: kubeconfig } })
    let out = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    p.stderr.setEncoding('utf8').on('data', (d: string) => { out += d })
    p.on('close', (code) => resolve({ code, out }))
  })
}
const all = manifests().flatMap(([, o]) => o) as any[]
const crds = all.filter((o) => o.kind === 'CustomResourceDefinition')
const crd = crds.find((o) => o.metadata.name === 'trafficpolicies.policy.weft.io')
const mwc = all.find((o) => o.kind === 'MutatingWebhookConfiguration')

t.test('before install: --pre passes; the full check fails and says to install', async (t) => {
  const pre = await check(['--pre'])
  t.equal(pre.code, 0, pre.out)
  t.match(pre.out, /√ can reach the Kubernetes API/)
  t.match(pre.out, /√ CRD trafficpolicies.policy.weft.io is not installed yet/)
  const full = await check(['--webhook-url', 'https://127.0.0.1:1', '--control-plane-admin', 'http://127.0.0.1:1'])
  t.equal(full.code, 1)
  t.match(full.out, /× CRD trafficpolicies.policy.weft.io is installed \(not found\)\n    what to do: install Weft: weft install \| kubectl apply -f -/)
  t.match(full.out, /× webhook configuration weft-sidecar-injector exists/)
  t.match(full.out, /× the control plane's admin is reachable .*\n    what to do: reach it first: kubectl -n weft-system port-forward deploy\/weft-control-plane 8443 15011/)
})

t.test('installed, control plane running: every check passes; a stale CRD and a wrong caBundle are caught', async (t) => {
  for (const c of crds) api.cluster.put('CustomResourceDefinition', c)
  api.cluster.put('MutatingWebhookConfiguration', mwc)
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', log: createLogger('silent'), webhook: { listen: '127.0.0.1:0', kube: { config: kc } } })
  t.teardown(() => cp.close())
  const args = ['--webhook-url', `https://127.0.0.1:${cp.webhook!.server.port}`, '--control-plane-admin', `http://127.0.0.1:${cp.adminPort}`]
  const ok = await check(args)
  t.equal(ok.code, 0, ok.out)
  t.match(ok.out, /√ CRD trafficpolicies.policy.weft.io is current/)
  t.match(ok.out, /√ CRD peerauthentications.security.weft.io is current/)
  t.match(ok.out, /√ CRD authorizationpolicies.security.weft.io is current/)
  t.match(ok.out, /√ webhook configuration weft-sidecar-injector has a caBundle \(1 CA\)/)
  t.match(ok.out, /√ the webhook answers over HTTPS with a certificate the caBundle verifies, and injects a test pod/)
  t.match(ok.out, /√ the control plane is ready/)
  t.match(ok.out, /√ 0 proxies connected/)
  t.match(ok.out, /Status check results are √/)
  // the same as data, with the kubeconfig given by flag instead of $KUBECONFIG
  const j = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const env = { ...process.env }
    delete env.KUBECONFIG
    const p = spawn(process.execPath, [weft, 'check', ...args, '-o', 'json', '--kubeconfig', kubeconfig, '--context', kc.getCurrentContext()], { env })
    let out = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    p.on('close', (code) => resolve({ code, out }))
  })
  t.equal(j.code, 0, j.out)
  const doc = JSON.parse(j.out)
  t.equal(doc.ok, true)
  t.equal(doc.failed, 0)
  t.ok(doc.checks.some((c: any) => c.section === 'kubernetes-api' && c.title === 'can reach the Kubernetes API' && c.ok === true))

  // --control-plane-admin as HOST:PORT, as every other command takes it (it used to need http://)
  const hp = await check(['--webhook-url', `https://127.0.0.1:${cp.webhook!.server.port}`, '--control-plane-admin', `127.0.0.1:${cp.adminPort}`])
  t.equal(hp.code, 0, hp.out)
  t.match(hp.out, /√ the control plane is ready/)
  // its gRPC address given instead: the cause and the next step
  const grpc = await check(['--webhook-url', `https://127.0.0.1:${cp.webhook!.server.port}`, '--control-plane-admin', `127.0.0.1:${cp.server.port}`])
  t.equal(grpc.code, 1)
  t.match(grpc.out, new RegExp(`× the control plane's admin is reachable \\(127\\.0\\.0\\.1:${cp.server.port} .*is its admin port ${cp.server.port} \\(not its gRPC port\\)`))

  const pre = await check(['--pre'])
  t.match(pre.out, /√ CRD trafficpolicies.policy.weft.io is already installed and current/)

  const stale = structuredClone(crd)
  stale.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties = {}
  api.cluster.put('CustomResourceDefinition', stale)
  const old = { ...mwc, webhooks: [{ ...mwc.webhooks[0], clientConfig: { ...mwc.webhooks[0].clientConfig, caBundle: Buffer.from((await import('../control-plane/webhook/certs.ts').then((m) => m.createServingCert({ dnsNames: ['x'] }))).caPem).toString('base64') } }] }
  api.cluster.put('MutatingWebhookConfiguration', old)
  const bad = await check(args)
  t.equal(bad.code, 1)
  t.match(bad.out, /× CRD trafficpolicies.policy.weft.io is current \(its schema differs from this weft's\)\n    what to do: upgrade it: weft install \| kubectl apply -f -/)
  t.match(bad.out, /× the webhook is reachable with a valid certificate .*\n    what to do: the caBundle does not verify the webhook's certificate/)
  t.match(bad.out, /2 checks failed/)
})
