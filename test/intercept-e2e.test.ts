// Transparent interception end to end, in network namespaces this test creates and removes (root
// only; nothing changes in the host namespace). A "pod" namespace (10.0.0.2) is wired by a veth
// pair to an "ext" namespace (10.0.0.1, the rest of the network). In the pod, as an injected pod
// runs: the control plane (local mode) on loopback, `weft init` (real iptables), the sidecar as
// uid 1337 fed by the control plane with the injected env (WEFT_OUTBOUND_PORT, WEFT_INBOUND_PORT,
// WEFT_ADMIN_PORT, POD_NAMESPACE), and an app. Then, with unmodified clients:
// - a call to the Service's ClusterIP (10.96.0.10:80, routed nowhere but into the pod's own
//   iptables: no kube-proxy) reaches the Service's endpoint through the sidecar (routed by Host);
// - a call to an address outside the mesh is passed through to it (decision `passthrough`);
// - a call from outside to the pod's app port is an HTTP hop of the sidecar (reporter=destination)
//   through a listener that binds nothing; another app port is passed through on loopback;
// - the sidecar's own uid is not redirected (no loop).
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'

const WEFT = fileURLToPath(new URL('../cli/weft.ts', import.meta.url))
const NODE = process.execPath
const isRoot = process.getuid?.() === 0
const has = (cmd: string, arg = '--version') => spawnSync(cmd, [arg]).status === 0
const skip = !isRoot ? 'needs root (ip netns, iptables)'
  : !has('iptables-restore') ? 'iptables not installed (apt-get install -y iptables)'
  : !has('setpriv') ? 'setpriv not installed (util-linux)'
  : !has('curl') ? 'curl not installed'
  : false

/** An HTTP server in a namespace that answers "<name> <method> <url>" and its Host. */
const SERVER = `
const http = require('node:http')
const [name, host, port] = process.argv.slice(1)
http.createServer((req, res) => res.end(name + ' ' + req.method + ' ' + req.url + ' host=' + req.headers.host + '\\n')).listen(Number(port), host, () => console.log('listening'))
`

t.test('an injected pod in a network namespace: ClusterIP routed by the sidecar, passthrough, inbound, no loop', { skip, timeout: 120_000 }, async (t) => {
  const id = randomBytes(3).toString('hex')
  const pod = `weft-pod-${id}`
  const ext = `weft-ext-${id}`
  const dir = mkdtempSync(join(tmpdir(), 'weft-e2e-'))
  chmodSync(dir, 0o755)
  const children: ChildProcess[] = []
  t.teardown(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    spawnSync('ip', ['netns', 'del', pod])
    spawnSync('ip', ['netns', 'del', ext])
    rmSync(dir, { recursive: true, force: true })
  })
  const ip = (...a: string[]) => {
    const r = spawnSync('ip', a, { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${r.stderr}`)
  }
  ip('netns', 'add', pod)
  ip('netns', 'add', ext)
  ip('-n', pod, 'link', 'set', 'lo', 'up')
  ip('-n', ext, 'link', 'set', 'lo', 'up')
  ip('-n', pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ext)
  ip('-n', pod, 'addr', 'add', '10.0.0.2/24', 'dev', 'eth0')
  ip('-n', ext, 'addr', 'add', '10.0.0.1/24', 'dev', 'eth0')
  ip('-n', pod, 'link', 'set', 'eth0', 'up')
  ip('-n', ext, 'link', 'set', 'eth0', 'up')
  ip('-n', pod, 'route', 'add', 'default', 'via', '10.0.0.1')

  const inNs = (ns: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const c = spawn('ip', ['netns', 'exec', ns, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(c)
    let out = ''
    c.stdout!.on('data', (b: Buffer) => { out += b })
    c.stderr!.on('data', (b: Buffer) => { out += b })
    return { c, out: () => out }
  }
  // a deadline, not a sleep: under a loaded CI machine a control plane's start took over 10 s once
  const started = async (p: { out: () => string }, what: RegExp, name: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs
    while (!what.test(p.out()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
    if (!what.test(p.out())) throw new Error(`${name} did not start: ${p.out().slice(-500)}`)
  }
  const curl = (ns: string, url: string, ...extra: string[]) =>
    spawnSync('ip', ['netns', 'exec', ns, ...extra, 'curl', '-sS', '--max-time', '5', url], { encoding: 'utf8' })

  // outside the pod: the Service's endpoint and a server outside the mesh
  const endpoint = inNs(ext, [NODE, '-e', SERVER, 'reviews-1', '10.0.0.1', '9081'])
  const outside = inNs(ext, [NODE, '-e', SERVER, 'outside', '10.0.0.1', '8080'])
  // in the pod: its app, on its own port
  const app = inNs(pod, [NODE, '-e', SERVER, 'app', '0.0.0.0', '7070'])
  await started(endpoint, /listening/, 'endpoint')
  await started(outside, /listening/, 'outside server')
  await started(app, /listening/, 'app')

  // the control plane, local mode: Service reviews (ClusterIP 10.96.0.10, port 80 -> 9081)
  const res = join(dir, 'resources')
  spawnSync('mkdir', ['-p', res])
  writeFileSync(join(res, 'reviews.yaml'), `apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  clusterIP: 10.96.0.10
  ports: [{ name: http, port: 80, targetPort: 9081 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-1
  namespace: shop
  labels: { kubernetes.io/service-name: reviews }
addressType: IPv4
ports: [{ name: http, port: 9081 }]
endpoints:
  - addresses: [10.0.0.1]
---
apiVersion: v1
kind: Service
metadata: { name: cache, namespace: shop }
spec:
  clusterIP: 10.0.0.1
  ports: [{ name: redis, port: 6379 }, { name: banner, port: 2525 }]
---
apiVersion: v1
kind: Service
metadata: { name: productpage, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  ports: [{ name: http, port: 80, targetPort: 7072 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: productpage-1
  namespace: shop
  labels: { kubernetes.io/service-name: productpage }
addressType: IPv4
ports: [{ name: http, port: 7072 }]
endpoints:
  - addresses: [10.0.0.2]
`)
  const cp = inNs(pod, [NODE, WEFT, 'control-plane', '--local', res, '--listen', '127.0.0.1:15010', '--admin', '127.0.0.1:15011'], { WEFT_LOG_LEVEL: 'info' })
  await started(cp, /listening|serving/i, 'control plane')

  // weft init, as the injected init container runs it
  const init = spawnSync('ip', ['netns', 'exec', pod, NODE, WEFT, 'init', '--proxy-uid', '1337', '--outbound-port', '15001', '--inbound-port', '15006', '--exclude-inbound-ports', '15000', '--json'], { encoding: 'utf8' })
  t.equal(init.status, 0, init.stderr)
  t.match(JSON.parse(init.stdout), { ok: true })

  // the sidecar, as uid 1337 with the injected env, and a bootstrap with its own inbound hop for
  // app port 7070: a listener that binds nothing and takes the connections redirected to that port
  const boot = join(dir, 'sidecar.yaml')
  writeFileSync(boot, `listeners:
  - { name: inbound-7070, direction: inbound, address: 0.0.0.0, port: 7070, bindToPort: false, routeTable: in-7070 }
routeTables:
  - name: in-7070
    virtualHosts: [{ name: app, domains: ["*"], routes: [{ backends: [{ cluster: "inbound|7070" }] }] }]
clusters:
  - { name: "inbound|7070", endpoints: [{ address: 127.0.0.1, port: 7070 }] }
`)
  const sidecar = inNs(pod, ['setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', NODE, WEFT, 'proxy', '--control-plane', '127.0.0.1:15010', '--config', boot], {
    WEFT_OUTBOUND_PORT: '15001', WEFT_INBOUND_PORT: '15006', WEFT_ADMIN_PORT: '15000', POD_NAMESPACE: 'shop', POD_NAME: 'productpage-1', POD_IP: '10.0.0.2', WEFT_LOG_LEVEL: 'info',
  })
  let ready = false
  for (let i = 0; i < 400 && !ready; i++) {
    ready = curl(pod, 'http://127.0.0.1:15000/ready').stdout.startsWith('ready')
    if (!ready) await new Promise((r) => setTimeout(r, 25))
  }
  t.ok(ready, `sidecar ready (${sidecar.out().slice(-300)})`)
  // the control plane's config has arrived when the outbound listener routes the ClusterIP
  let body = ''
  for (let i = 0; i < 200; i++) {
    body = curl(pod, 'http://10.96.0.10/api').stdout
    if (body.startsWith('reviews-1')) break
    await new Promise((r) => setTimeout(r, 25))
  }
  t.equal(body, 'reviews-1 GET /api host=10.96.0.10\n', 'the ClusterIP reaches the endpoint through the sidecar')

  const metrics = () => curl(pod, 'http://127.0.0.1:15000/metrics').stdout
  // the sum of weft_requests_total over the series the inbound side reported
  const destinationRequests = () => metrics().split('\n')
    .filter((l) => l.startsWith('weft_requests_total{') && l.includes('reporter="destination"'))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
  const decision = (name: string, listener = 'outbound') => {
    const m = new RegExp(`weft_proxy_decisions_total\\{listener="${listener}",decision="${name}"\\} (\\d+)`).exec(metrics())
    return m === null ? -1 : Number(m[1])
  }
  t.match(metrics(), /weft_requests_total\{[^}]*\} [1-9]/, 'the request was counted by the sidecar')

  // opaque TCP to a Service address (no TCP route): after detection, on to the original
  // destination; a server-speaks-first one after detectTimeout (the "ClusterIP" here is the ext
  // namespace's address: there is no kube-proxy)
  const tcpServers = inNs(ext, [NODE, '-e', `const net = require('node:net')
net.createServer((s) => s.on('data', (b) => s.write(b))).listen(6379, '10.0.0.1')
net.createServer((s) => s.end('220 banner\\n')).listen(2525, '10.0.0.1', () => console.log('listening'))`])
  await started(tcpServers, /listening/, 'tcp servers')
  const tcpClient = (port: number, send: string) => spawnSync('ip', ['netns', 'exec', pod, NODE, '-e', `const s = require('node:net').connect(${port}, '10.0.0.1', () => { if (${JSON.stringify(send)}) s.write(${JSON.stringify(send)}) })
let got = ''; s.on('data', (b) => { got += b; if (got.endsWith('\\n')) { process.stdout.write(got); s.destroy() } }); s.on('error', (e) => console.log('error ' + e.code)); setTimeout(() => { console.log('timeout ' + JSON.stringify(got)); process.exit(1) }, 4000).unref()`], { encoding: 'utf8' })
  const passBefore = decision('passthrough')
  t.equal(tcpClient(6379, '*1\r\n$4\r\nPING\r\n').stdout, '*1\r\n$4\r\nPING\r\n', 'a client-first TCP protocol reaches the Service address')
  t.equal(tcpClient(2525, '').stdout, '220 banner\n', 'a server-speaks-first one too, after detectTimeout')
  t.equal(decision('passthrough'), passBefore + 2, 'both passed through after detection')

  // outside the mesh: passed through to the original destination
  t.equal(curl(pod, 'http://10.0.0.1:8080/x').stdout, 'outside GET /x host=10.0.0.1:8080\n')
  t.equal(decision('passthrough'), passBefore + 3, 'one more passthrough')

  // inbound: from outside to the pod's app port 7070: handed to the inbound-7070 listener, an HTTP
  // hop with its own route table and reporter=destination telemetry
  t.equal(curl(ext, 'http://10.0.0.2:7070/in').stdout, 'app GET /in host=10.0.0.2:7070\n')
  t.equal(destinationRequests(), 1, 'counted as reporter=destination')
  t.ok(decision('passthrough', 'inbound') <= 0, 'not passed through')
  // another port of the app, with no listener of its own: passed through to it on loopback
  const app2 = inNs(pod, [NODE, '-e', SERVER, 'app2', '0.0.0.0', '7071'])
  await started(app2, /listening/, 'app2')
  t.equal(curl(ext, 'http://10.0.0.2:7071/in').stdout, 'app2 GET /in host=10.0.0.2:7071\n')
  t.equal(decision('passthrough', 'inbound'), 1, 'through the inbound listener, to the app on loopback')
  // the port at which the control plane's endpoints (Service productpage) place this pod gets its
  // inbound hop without any bootstrap: derived from the config at assembly (POD_IP)
  const app3 = inNs(pod, [NODE, '-e', SERVER, 'productpage', '0.0.0.0', '7072'])
  await started(app3, /listening/, 'app3')
  t.equal(curl(ext, 'http://10.0.0.2:7072/p').stdout, 'productpage GET /p host=10.0.0.2:7072\n')
  t.equal(destinationRequests(), 2, 'a second reporter=destination request')
  t.equal(decision('passthrough', 'inbound'), 1, 'not passed through')

  // the proxy's uid is not redirected: its own call to the outside server goes straight there
  const before = decision('passthrough')
  const own = curl(pod, 'http://10.0.0.1:8080/own', 'setpriv', '--reuid=1337', '--regid=1337', '--clear-groups')
  t.equal(own.stdout, 'outside GET /own host=10.0.0.1:8080\n')
  t.equal(decision('passthrough'), before, 'not through the sidecar')

  // cleanup leaves no rule of ours
  const clean = spawnSync('ip', ['netns', 'exec', pod, NODE, WEFT, 'init', '--cleanup', '--json'], { encoding: 'utf8' })
  t.equal(clean.status, 0, clean.stderr)
  t.notMatch(spawnSync('ip', ['netns', 'exec', pod, 'iptables-save', '-t', 'nat'], { encoding: 'utf8' }).stdout, /WEFT_/)
})
