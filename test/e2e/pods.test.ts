// Issue 11's acceptance test: a mesh of real pods without a cluster. A "node" network namespace
// holds a bridge (10.0.1.1) and the control plane in Kubernetes mode (watching the test API server,
// serving the injection webhook, keeping its caBundle); each pod is a namespace of its own with an
// IP on that bridge and the control plane's Service name in its hosts file. Every pod is created
// through the test API server, which calls the webhook of the install manifests'
// MutatingWebhookConfiguration over HTTPS at its Service name (an AdmissionReview, the JSON Patch
// applied, as kube-apiserver does), and the stored (mutated) spec is
// executed by a minimal pod runner (test/helpers/pod-runner.ts): `weft init` with real iptables,
// the native sidecar until its startupProbe passes, then the app containers. No kube-proxy: a
// ClusterIP is reachable only through the sidecars. Root only; everything is removed at the end.
// With mutual TLS (issue 13): the control plane also runs the mesh CA (--ca-listen), the injector
// points every sidecar at it, each pod's ServiceAccount token is "projected" by the runner (a file
// per pod, as kubelet mounts one) and checked by the API server's TokenReview. No policy turns
// mutual TLS on: the control plane sees (Pods) that every reviews endpoint has a sidecar and gives
// the callers mutual TLS to them, served only by the reviews ServiceAccount (secure naming). A
// PeerAuthentication makes reviews v2 STRICT (v1 stays PERMISSIVE) and an AuthorizationPolicy
// (Istio's format) keeps /private of the reviews pods for the frontend's ServiceAccount.
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { parse, parseAllDocuments } from 'yaml'
import { PodRunner, type RunnerPod } from '../helpers/pod-runner.ts'
import { KubeApiServer } from '../helpers/kube-api-server.ts'
import { manifests } from '../../install/manifests.ts'

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
---
apiVersion: security.weft.io/v1alpha1
kind: PeerAuthentication
metadata: { name: v2-strict, namespace: shop }
spec:
  selector: { matchLabels: { app: reviews, version: v2 } }
  mtls: { mode: STRICT }
---
apiVersion: security.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: private-for-frontend, namespace: shop }
spec:
  selector: { matchLabels: { app: reviews } }
  action: DENY
  rules: [{ from: [{ source: { notPrincipals: ["cluster.local/ns/shop/sa/frontend"] } }], to: [{ operation: { paths: ["/private*"] } }] }]
`
const KUBECONFIG = `apiVersion: v1
kind: Config
clusters: [{ name: test, cluster: { server: "http://10.0.1.1:6443", insecure-skip-tls-verify: true } }]
users: [{ name: nobody, user: {} }]
contexts: [{ name: test, context: { cluster: test, user: nobody } }]
current-context: test
`
/** In the node namespace: 10.0.1.1:6443 -> the API server's Unix socket; the webhook's Unix socket -> 10.0.1.1:15017. */
const FORWARDER = `const net = require('node:net'); const [api, wh] = process.argv.slice(1)
const pipe = (a, b) => { a.pipe(b).pipe(a); a.on('error', () => b.destroy()); b.on('error', () => a.destroy()) }
let n = 0; const up = () => { if (++n === 2) console.log('ready') }
net.createServer((c) => pipe(c, net.connect(api))).listen(6443, '10.0.1.1', up)
require('node:fs').rmSync(wh, { force: true })
net.createServer((c) => pipe(c, net.connect(15017, '10.0.1.1'))).listen(wh, up)`

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

t.test('a mesh of injected pods in network namespaces', { skip, timeout: 180_000 }, async (t) => {
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
    for (const ns of [...namespaces, node]) {
      spawnSync('ip', ['netns', 'del', ns])
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true })
    }
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
    // the cluster's DNS for the pod: `ip netns exec` mounts /etc/netns/<ns>/hosts over /etc/hosts
    mkdirSync(`/etc/netns/${ns}`, { recursive: true })
    writeFileSync(`/etc/netns/${ns}/hosts`, '127.0.0.1 localhost\n10.0.1.1 weft-control-plane.weft-system.svc weft-control-plane.weft-system.svc.cluster.local\n')
    return ns
  }
  const curl = (ns: string, url: string) => spawnSync('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', '5', url], { encoding: 'utf8' })

  // the test API server: in this process, and on a Unix socket so that the node namespace reaches
  // it through a forwarder (10.0.1.1:6443); it calls the webhook of the MutatingWebhookConfiguration
  // at its Service name through another forwarder into the node namespace, verifying that name in
  // the certificate against the caBundle, as kube-apiserver does
  const apiSock = join(dir, 'api.sock')
  const whSock = join(dir, 'webhook.sock')
  const api = await KubeApiServer.start({ unixSocket: apiSock, resolveService: (ns, name, port) => ({ url: `https://${name}.${ns}.svc:${port}`, socketPath: whSock }) })
  t.teardown(() => api.stop())
  const fwd = spawn('ip', ['netns', 'exec', node, NODE, '-e', FORWARDER, apiSock, whSock], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(fwd)
  await new Promise<void>((resolve) => fwd.stdout!.once('data', () => resolve()))
  for (const doc of parseAllDocuments(RESOURCES)) {
    const o = doc.toJS() as { kind: 'Service' | 'EndpointSlice' | 'PeerAuthentication' | 'AuthorizationPolicy' } & Parameters<typeof api.create>[1]
    api.create(o.kind, o)
  }
  api.create('HTTPRoute', parse(split(100, 0)))
  api.namespaceLabels.set('shop', { 'weft.io/inject': 'enabled' })
  const mwc = manifests().flatMap(([, objs]) => objs).find((o) => o.kind === 'MutatingWebhookConfiguration')! as { metadata: { name: string }; webhooks: { clientConfig: Record<string, unknown> }[] }
  api.cluster.put('MutatingWebhookConfiguration', mwc as never) // as `kubectl apply -f install/`: no caBundle yet
  writeFileSync(join(dir, 'kubeconfig'), KUBECONFIG)

  // the control plane in the node namespace, in Kubernetes mode, serving the webhook (it makes its
  // serving certificate and writes its CA into the webhook configuration's caBundle)
  const cp = spawn('ip', ['netns', 'exec', node, NODE, WEFT, 'control-plane', '--kubernetes', '--kubeconfig', join(dir, 'kubeconfig'),
    '--listen', '10.0.1.1:15010', '--admin', '10.0.1.1:15011', '--webhook-listen', '10.0.1.1:15017', '--proxy-image', 'weft:test',
    '--ca-listen', '10.0.1.1:15012'],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
  children.push(cp)
  let cpErr = ''
  cp.stderr!.on('data', (d: Buffer) => { cpErr = (cpErr + d.toString()).slice(-2000) })
  const caBundle = () => (api.cluster.get('MutatingWebhookConfiguration', mwc.metadata.name) as { webhooks: { clientConfig: { caBundle?: string } }[] } | undefined)?.webhooks[0]?.clientConfig.caBundle
  // a 30 s deadline, not a sleep: on a loaded machine (load ~10) the start took over 10 s once
  for (const deadline = Date.now() + 30_000; caBundle() === undefined && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 25))
  t.ok(caBundle(), `the control plane wrote its CA into the webhook configuration (${cpErr.trim()})`)

  // a server outside the mesh
  const outside = spawn('ip', ['netns', 'exec', node, NODE, '-e', HTTP_APP + `.on('listening', () => console.log('listening'))`, 'outside', '8080'], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(outside)
  await new Promise<void>((resolve) => outside.stdout!.once('data', () => resolve()))

  const admit = async (pod: RunnerPod & { metadata: { annotations?: Record<string, string> } }): Promise<RunnerPod> => {
    const r = await request(`${api.url}/api/v1/namespaces/shop/pods`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', ...pod }) })
    const stored = await r.body.json() as RunnerPod
    if (r.statusCode !== 201) throw new Error(`pod ${pod.metadata.name} not created: ${r.statusCode} ${JSON.stringify(stored)}`)
    return stored
  }
  const commands = {
    weft: [NODE, WEFT],
    'test/http': [NODE, '-e', HTTP_APP],
    'test/sleep': [NODE, '-e', SLEEP_APP],
    'test/job': [NODE, '-e', JOB_APP],
  }
  const runPod = async (name: string, addr: string, spec: Record<string, unknown>, annotations: Record<string, string> = {}, labels: Record<string, string> = {}) => {
    const ns = podNetns(name, addr)
    const pod = await admit({ metadata: { name, namespace: 'shop', annotations, labels }, spec } as unknown as RunnerPod)
    // what kubelet reports once the sandbox exists: the pod's IP (the control plane maps endpoints to pods by it)
    api.update('Pod', { ...(pod as unknown as Parameters<typeof api.update>[1]), status: { phase: 'Running', podIP: addr, podIPs: [{ ip: addr }] } })
    // the pod's ServiceAccount token, where kubelet would mount it (WEFT_TOKEN_FILE stands for the mount)
    const token = join(dir, `${name}.token`)
    writeFileSync(token, api.serviceAccountToken('shop', (spec.serviceAccountName as string | undefined) ?? 'default'))
    const runner = new PodRunner(pod, { netns: ns, podIp: addr, commands, env: { WEFT_TOKEN_FILE: token } })
    runners.push(runner)
    await runner.start()
    return { ns, runner, pod }
  }
  const reviewsSpec = (version: string) => ({
    serviceAccountName: 'reviews',
    containers: [{ name: 'app', image: 'test/http', args: [`reviews-${version}`, '9080'], ports: [{ name: 'http', containerPort: 9080 }], readinessProbe: { httpGet: { path: '/ready', port: 'http' } } }],
  })
  const v1 = await runPod('reviews-v1', '10.0.1.3', reviewsSpec('v1'), {}, { app: 'reviews', version: 'v1' })
  await runPod('reviews-v2', '10.0.1.4', reviewsSpec('v2'), {}, { app: 'reviews', version: 'v2' })
  const fe = await runPod('frontend', '10.0.1.2', { serviceAccountName: 'frontend', containers: [{ name: 'app', image: 'test/sleep' }] })

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
  api.update('HTTPRoute', parse(split(0, 100)))
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

  // mutual TLS between the sidecars: the callee knows the caller, and each has its SVID
  const mtlsLines = curl(v1.ns, 'http://127.0.0.1:15000/metrics').stdout.split('\n').filter((l) => l.startsWith('weft_requests_total{') && l.includes('reporter="destination"'))
  t.ok(mtlsLines.some((l) => l.includes('source_principal="spiffe://cluster.local/ns/shop/sa/frontend"') && l.includes('destination_principal="spiffe://cluster.local/ns/shop/sa/reviews"') && l.includes('connection_security_policy="mutual_tls"')), `reviews v1 served the frontend over mutual TLS (${mtlsLines.join(' | ').slice(0, 600)})`)
  const feId = JSON.parse(curl(fe.ns, 'http://127.0.0.1:15000/identity').stdout || '{}')
  t.match(feId, { ready: true, spiffeId: 'spiffe://cluster.local/ns/shop/sa/frontend', source: 'ca' }, "the frontend's SVID, from the control plane's CA")
  t.ok(api.tokenReviews.includes('system:serviceaccount:shop:frontend') && api.tokenReviews.includes('system:serviceaccount:shop:reviews'), 'proven by their ServiceAccount tokens (TokenReview)')
  t.equal(curl(fe.ns, 'http://10.96.0.10/private/x').stdout, 'reviews-v2 /private/x\n', 'the AuthorizationPolicy lets the frontend in')
  // what the control plane sent: mutual TLS to the reviews Service, its identities from its Pods
  const dumped = curl(fe.ns, 'http://127.0.0.1:15000/config_dump')
  const dump = JSON.parse(dumped.stdout || '{}') as { config?: { clusters?: { name: string; tls?: unknown }[] } }
  const reviews = dump.config?.clusters?.find((c) => c.name === 'outbound|80||reviews.shop.svc.cluster.local')
  t.same(reviews?.tls, { mode: 'mutual', identities: ['spiffe://cluster.local/ns/shop/sa/reviews'] }, `auto mutual TLS with secure naming, from the Pods (${JSON.stringify(reviews ?? dump.config?.clusters?.map((c) => c.name) ?? dumped.stderr).slice(0, 600)})`)

  // a pod that opted out reaches the service's pods in plain text (no kube-proxy here: by pod IP)
  const plain = await runPod('plain', '10.0.1.5', { containers: [{ name: 'app', image: 'test/sleep' }] }, { 'weft.io/inject': 'false' })
  t.equal(plain.pod.spec.initContainers, undefined, 'not injected')
  t.same(api.admissions.map((a) => a.outcome), ['patched', 'patched', 'patched', 'allowed'], 'each pod went through the webhook')
  t.equal(curl(plain.ns, 'http://10.0.1.3:9080/plain').stdout, 'reviews-v1 /plain\n', 'plain text to a meshed pod (permissive)')
  const denied = spawnSync('ip', ['netns', 'exec', plain.ns, 'curl', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', 'http://10.0.1.3:9080/private/x'], { encoding: 'utf8' }).stdout
  t.equal(denied, '403', 'and the AuthorizationPolicy keeps an unauthenticated caller out of /private')
  const strict = spawnSync('ip', ['netns', 'exec', plain.ns, 'curl', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', 'http://10.0.1.4:9080/plain'], { encoding: 'utf8' })
  t.equal(strict.stdout, '000', `reviews v2 (PeerAuthentication STRICT by its labels) refuses plain text (curl: ${strict.stderr.trim()})`)

  // outside the mesh: passed through
  // (tried again, up to 9 times, while the machine is too loaded to answer within curl's 5 s: a
  // broken pass-through fails every attempt; one CI run saw 4 attempts in a row time out, cause
  // not found yet: the message then carries the listener's counters)
  let out = curl(fe.ns, 'http://10.0.1.1:8080/out')
  for (let i = 0; i < 8 && out.stdout !== 'outside /out\n'; i++) out = curl(fe.ns, 'http://10.0.1.1:8080/out')
  // on a failure: the outbound listener's counters (passthrough, TCP connect failures) and whether the outside server answers from the node
  const why = () => out.stdout === 'outside /out\n' ? '' : `; stats: ${curl(fe.ns, 'http://127.0.0.1:15000/stats').stdout.slice(0, 800)}; from the node: ${curl(node, 'http://10.0.1.1:8080/direct').stdout.trim()}`
  t.equal(out.stdout, 'outside /out\n', `passed through (curl: ${out.stderr.trim()}; sidecar: ${fe.runner.containers.get('weft-proxy')!.output.slice(-300)}${why()})`)

  // kill -9 of the frontend's sidecar: restarted, traffic resumes, the app container is untouched
  const proxy = fe.runner.containers.get('weft-proxy')!
  proxy.proc.kill('SIGKILL')
  let back = false
  for (let i = 0; i < 200 && !back; i++) {
    await new Promise((r) => setTimeout(r, 50))
    back = fe.runner.containers.get('weft-proxy')!.restarts === 1 && curl(fe.ns, 'http://10.96.0.10/r').stdout.startsWith('reviews-v2')
  }
  t.ok(back, `the sidecar was restarted and traffic resumed (restarts ${fe.runner.containers.get('weft-proxy')!.restarts}; ${fe.runner.containers.get('weft-proxy')!.output.slice(-400)})`)
  t.equal(fe.runner.containers.get('app')!.restarts, 0, 'the app was not restarted')

  // a Job-like pod: its app exits 0, the pod completes and its sidecar exits
  const job = await runPod('job', '10.0.1.6', { restartPolicy: 'Never', containers: [{ name: 'app', image: 'test/job' }] })
  t.equal(await job.runner.completion(5000), 'Succeeded')
  const sidecar = job.runner.containers.get('weft-proxy')!
  for (let i = 0; i < 400 && sidecar.proc.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25))
  t.equal(sidecar.proc.exitCode, 0, `the sidecar drained and exited 0 after the app (exit ${sidecar.proc.exitCode} ${sidecar.proc.signalCode}; ${sidecar.output.slice(-3000)})`)
})
