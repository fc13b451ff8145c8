// Issue 11's acceptance test: a mesh of real pods without a cluster. A "node" network namespace
// holds a bridge (10.0.1.1) and the control plane (local mode); each pod is a namespace of its own
// with an IP on that bridge. Every pod is admitted through the webhook over HTTPS (an
// AdmissionReview, as kube-apiserver sends it; the JSON Patch applied) and the mutated spec is
// executed by a minimal pod runner (test/helpers/pod-runner.ts): `weft init` with real iptables,
// the native sidecar until its startupProbe passes, then the app containers. No kube-proxy: a
// ClusterIP is reachable only through the sidecars. Root only; everything is removed at the end.
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { createServingCert } from '../../control-plane/webhook/certs.ts'
import { startWebhookServer } from '../../control-plane/webhook/server.ts'
import { apply, type PatchOp } from '../../control-plane/webhook/json-patch.ts'
import { DEFAULT_MESH } from '../../control-plane/inject/index.ts'
import { PodRunner, type RunnerPod } from '../helpers/pod-runner.ts'

const WEFT = fileURLToPath(new URL('../../cli/weft.ts', import.meta.url))
const NODE = process.execPath
const has = (cmd: string, arg = '--version') => spawnSync(cmd, [arg]).status === 0
const skip = process.getuid?.() !== 0 ? 'needs root (ip netns, iptables)'
  : !has('iptables-restore') ? 'iptables not installed'
  : !has('setpriv') ? 'setpriv not installed (util-linux)'
  : !has('curl') ? 'curl not installed'
  : false

/** An HTTP app: answers "<name> <path>", and /ready 200. */
const HTTP_APP = `require('node:http').createServer((q, s) => s.end(process.argv[1] + ' ' + q.url + '\\n')).listen(Number(process.argv[2]), '0.0.0.0')`
const SLEEP_APP = `setInterval(() => {}, 1 << 30)`
const JOB_APP = `setTimeout(() => process.exit(0), 300)`

const RESOURCES = `apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec: { clusterIP: 10.96.0.10, ports: [{ name: http, port: 80, targetPort: 9080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: reviews-v1, namespace: shop }
spec: { ports: [{ name: http, port: 80, targetPort: 9080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: reviews-v2, namespace: shop }
spec: { ports: [{ name: http, port: 80, targetPort: 9080 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: reviews-v1-1, namespace: shop, labels: { kubernetes.io/service-name: reviews-v1 } }
addressType: IPv4
ports: [{ name: http, port: 9080 }]
endpoints: [{ addresses: [10.0.1.3] }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: reviews-v2-1, namespace: shop, labels: { kubernetes.io/service-name: reviews-v2 } }
addressType: IPv4
ports: [{ name: http, port: 9080 }]
endpoints: [{ addresses: [10.0.1.4] }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: reviews-1, namespace: shop, labels: { kubernetes.io/service-name: reviews } }
addressType: IPv4
ports: [{ name: http, port: 9080 }]
endpoints: [{ addresses: [10.0.1.3] }, { addresses: [10.0.1.4] }]
`
const split = (v1: number, v2: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 80 }]
  rules:
    - backendRefs:
        - { name: reviews-v1, port: 80, weight: ${v1} }
        - { name: reviews-v2, port: 80, weight: ${v2} }
`

t.test('a mesh of injected pods in network namespaces', { skip, timeout: 120_000 }, async (t) => {
  const id = randomBytes(2).toString('hex')
  const node = `weft-node-${id}`
  const dir = mkdtempSync(join(tmpdir(), 'weft-pods-'))
  chmodSync(dir, 0o755)
  const namespaces: string[] = []
  const runners: PodRunner[] = []
  const children: ChildProcess[] = []
  t.teardown(async () => {
    for (const r of runners) await r.stop()
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    for (const ns of [...namespaces, node]) spawnSync('ip', ['netns', 'del', ns])
    rmSync(dir, { recursive: true, force: true })
  })
  const ip = (...a: string[]) => {
    const r = spawnSync('ip', a, { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${r.stderr}`)
  }
  ip('netns', 'add', node)
  ip('-n', node, 'link', 'set', 'lo', 'up')
  ip('-n', node, 'link', 'add', 'br0', 'type', 'bridge')
  ip('-n', node, 'addr', 'add', '10.0.1.1/24', 'dev', 'br0')
  ip('-n', node, 'link', 'set', 'br0', 'up')
  const podNetns = (name: string, addr: string): string => {
    const ns = `weft-${name}-${id}`
    ip('netns', 'add', ns)
    namespaces.push(ns)
    const peer = `v${namespaces.length}`
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', peer, 'netns', node)
    ip('-n', node, 'link', 'set', peer, 'master', 'br0')
    ip('-n', node, 'link', 'set', peer, 'up')
    ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0')
    ip('-n', ns, 'link', 'set', 'eth0', 'up')
    ip('-n', ns, 'route', 'add', 'default', 'via', '10.0.1.1')
    return ns
  }
  const curl = (ns: string, url: string) => spawnSync('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', '5', url], { encoding: 'utf8' })

  // the control plane in the node namespace, and a server outside the mesh
  const res = join(dir, 'resources')
  mkdirSync(res)
  writeFileSync(join(res, 'services.yaml'), RESOURCES)
  writeFileSync(join(res, 'route.yaml'), split(100, 0))
  const cp = spawn('ip', ['netns', 'exec', node, NODE, WEFT, 'control-plane', '--local', res, '--listen', '10.0.1.1:15010', '--admin', '10.0.1.1:15011'], { stdio: 'ignore', env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
  children.push(cp)
  children.push(spawn('ip', ['netns', 'exec', node, NODE, '-e', HTTP_APP, 'outside', '8080'], { stdio: 'ignore' }))

  // the webhook (in this process: the test plays kube-apiserver), and admission over HTTPS
  const cert = await createServingCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] })
  const mesh = { ...DEFAULT_MESH, image: 'weft:test', controlPlaneAddress: '10.0.1.1:15010' }
  const wh = await startWebhookServer({ certPem: cert.certPem, keyPem: cert.keyPem, mesh })
  t.teardown(() => wh.close())
  const agent = new Agent({ connect: { ca: cert.caPem } })
  t.teardown(() => agent.close())
  const admit = async (pod: RunnerPod & { metadata: { annotations?: Record<string, string> } }): Promise<RunnerPod> => {
    const r = await request(`https://127.0.0.1:${wh.port}/inject`, {
      method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: `u-${pod.metadata.name}`, kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'shop', operation: 'CREATE', object: { apiVersion: 'v1', kind: 'Pod', ...pod } } }),
    })
    const review = await r.body.json() as { response: { patch?: string } }
    if (review.response.patch === undefined) return pod
    return apply(pod, JSON.parse(Buffer.from(review.response.patch, 'base64').toString()) as PatchOp[]) as RunnerPod
  }
  const commands = {
    weft: [NODE, WEFT],
    'test/http': [NODE, '-e', HTTP_APP],
    'test/sleep': [NODE, '-e', SLEEP_APP],
    'test/job': [NODE, '-e', JOB_APP],
  }
  const runPod = async (name: string, addr: string, spec: Record<string, unknown>, annotations: Record<string, string> = {}) => {
    const ns = podNetns(name, addr)
    const pod = await admit({ metadata: { name, namespace: 'shop', annotations }, spec } as unknown as RunnerPod)
    const runner = new PodRunner(pod, { netns: ns, podIp: addr, commands })
    runners.push(runner)
    await runner.start()
    return { ns, runner, pod }
  }
  const reviewsSpec = (version: string) => ({
    containers: [{ name: 'app', image: 'test/http', args: [`reviews-${version}`, '9080'], ports: [{ name: 'http', containerPort: 9080 }], readinessProbe: { httpGet: { path: '/ready', port: 'http' } } }],
  })
  const v1 = await runPod('reviews-v1', '10.0.1.3', reviewsSpec('v1'))
  await runPod('reviews-v2', '10.0.1.4', reviewsSpec('v2'))
  const fe = await runPod('frontend', '10.0.1.2', { containers: [{ name: 'app', image: 'test/sleep' }] })

  // the injected spec is what ran: a native sidecar and the init step
  t.same((fe.pod.spec.initContainers ?? []).map((c) => [c.name, c.restartPolicy ?? null]), [['weft-init', null], ['weft-proxy', 'Always']])
  t.match(v1.pod.spec.containers[0]!.readinessProbe?.httpGet, { port: 15000, path: '/app-health/app/readyz' }, 'the app probe is rewritten')
  t.equal(await v1.runner.probe('app', 'readinessProbe'), true, 'and passes under interception')

  // the unmodified frontend calls the ClusterIP; the route sends everything to v1
  let body = ''
  for (let i = 0; i < 200 && !body.startsWith('reviews-v1'); i++) {
    body = curl(fe.ns, 'http://10.96.0.10/r').stdout
    if (!body.startsWith('reviews-v1')) await new Promise((r) => setTimeout(r, 50))
  }
  t.equal(body, 'reviews-v1 /r\n', 'the ClusterIP reaches reviews v1 through both sidecars')
  const counts = (n: number) => {
    const c: Record<string, number> = {}
    for (let i = 0; i < n; i++) {
      const b = curl(fe.ns, 'http://10.96.0.10/r').stdout.split(' ')[0] ?? ''
      c[b] = (c[b] ?? 0) + 1
    }
    return c
  }
  t.same(counts(10), { 'reviews-v1': 10 })

  // editing the route moves the traffic
  writeFileSync(join(res, 'route.yaml'), split(0, 100))
  let moved = false
  for (let i = 0; i < 100 && !moved; i++) {
    moved = curl(fe.ns, 'http://10.96.0.10/r').stdout.startsWith('reviews-v2')
    if (!moved) await new Promise((r) => setTimeout(r, 50))
  }
  t.ok(moved, 'the new split reached the frontend sidecar')
  t.same(counts(10), { 'reviews-v2': 10 })

  // metrics: the same calls seen by the source and the destination sidecars
  const requests = (ns: string, reporter: string) => curl(ns, 'http://127.0.0.1:15000/metrics').stdout.split('\n')
    .filter((l) => l.startsWith('weft_requests_total{') && l.includes(`reporter="${reporter}"`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
  t.ok(requests(fe.ns, 'source') >= 21, 'reporter=source on the frontend')
  t.ok(requests(v1.ns, 'destination') >= 11, 'reporter=destination on reviews v1')

  // a pod that opted out reaches the service's pods in plain text (no kube-proxy here: by pod IP)
  const plain = await runPod('plain', '10.0.1.5', { containers: [{ name: 'app', image: 'test/sleep' }] }, { 'weft.io/inject': 'false' })
  t.equal(plain.pod.spec.initContainers, undefined, 'not injected')
  t.equal(curl(plain.ns, 'http://10.0.1.3:9080/plain').stdout, 'reviews-v1 /plain\n')

  // outside the mesh: passed through
  const out = curl(fe.ns, 'http://10.0.1.1:8080/out')
  t.equal(out.stdout, 'outside /out\n', `passed through (curl: ${out.stderr.trim()}; sidecar: ${fe.runner.containers.get('weft-proxy')!.output.slice(-300)})`)

  // kill -9 of the frontend's sidecar: restarted, traffic resumes, the app container is untouched
  const proxy = fe.runner.containers.get('weft-proxy')!
  proxy.proc.kill('SIGKILL')
  let back = false
  for (let i = 0; i < 200 && !back; i++) {
    await new Promise((r) => setTimeout(r, 50))
    back = fe.runner.containers.get('weft-proxy')!.restarts === 1 && curl(fe.ns, 'http://10.96.0.10/r').stdout.startsWith('reviews-v2')
  }
  t.ok(back, 'the sidecar was restarted and traffic resumed')
  t.equal(fe.runner.containers.get('app')!.restarts, 0, 'the app was not restarted')

  // a Job-like pod: its app exits 0, the pod completes and its sidecar exits
  const job = await runPod('job', '10.0.1.6', { restartPolicy: 'Never', containers: [{ name: 'app', image: 'test/job' }] })
  t.equal(await job.runner.completion(5000), 'Succeeded')
  const sidecar = job.runner.containers.get('weft-proxy')!
  for (let i = 0; i < 400 && sidecar.proc.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25))
  t.equal(sidecar.proc.exitCode, 0, 'the sidecar drained and exited 0 after the app')
})
