// Errors and start-up lines of the operator CLI as a user meets them (issue 16): every command
// that takes an admin address refuses one without a port, names the cause and the next step when
// the address accepts and closes, and a Kubernetes API that does not answer is named with its
// server, context and cluster; the control plane's start-up log says what it serves.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { KubeApiServer } from './helpers/kube-api-server.ts'
import { freePort, ROOT, tempDir, until, WEFT_BIN } from './helpers/sidecar.ts'
import { weft } from './helpers/cli.ts'

t.test('an admin address without a port ("15000", "localhost"): a usage error naming the form, exit 2, for every command', async (t) => {
  const cmds = [
    ['stat', '--window', '10ms', '--admin', '15000'],
    ['stat', '--window', '10ms', '--control-plane-admin', '15011'],
    ['tap', '--admin', 'localhost'],
    ['proxy-config', 'clusters', '--admin', '15000'],
    ['proxy-status', '--control-plane-admin', '15011'],
    ['explain', '--admin', '15000', 'some-id'],
    ['version', '--admin', '15000'],
  ]
  for (const cmd of cmds) {
    const r = await weft(cmd, { timeoutMs: 10_000 })
    const bad = cmd.at(cmd[0] === 'explain' ? -2 : -1)!
    t.equal(r.code, 2, `${cmd.join(' ')}: exit 2`)
    t.match(r.stderr, `weft ${cmd[0]}: invalid admin address "${bad}": expected HOST:PORT, e.g. 127.0.0.1:15000`, cmd.join(' '))
  }
})

t.test('an admin port that accepts and closes (UND_ERR_SOCKET): the cause and the next step, for every read command', async (t) => {
  const server = createServer((sock) => sock.destroy())
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`
  const proxyNext = `is the proxy running, and is its admin port ${addr.split(':')[1]}? see \`weft proxy --help\``
  for (const cmd of [['tap', '--admin', addr], ['proxy-config', 'clusters', '--admin', addr], ['explain', '--admin', addr, 'some-id']]) {
    const r = await weft(cmd)
    t.equal(r.code, 3, `${cmd[0]}: exit 3`)
    // UND_ERR_SOCKET, or ECONNRESET when the reset comes while the request is being written (a loaded machine)
    const m = /closed the connection without an HTTP answer \((UND_ERR_SOCKET|ECONNRESET)\)/.exec(r.stderr)
    t.ok(m, `${cmd[0]}: ${r.stderr}`)
    t.match(r.stderr, `${addr} closed the connection without an HTTP answer (${m?.[1]}): ${proxyNext}`, cmd[0])
  }
  const st = await weft(['stat', '--admin', addr, '--window', '10ms'])
  t.equal(st.code, 1)
  t.match(st.stderr, new RegExp(`${addr} closed the connection without an HTTP answer \\((UND_ERR_SOCKET|ECONNRESET)\\): is the proxy running`))
  const ps = await weft(['proxy-status', '--control-plane-admin', addr])
  t.equal(ps.code, 3)
  t.match(ps.stderr, /closed the connection without an HTTP answer \((UND_ERR_SOCKET|ECONNRESET)\): is the control plane running, and is its admin port \d+ \(not its gRPC port\)/)
})

t.test('start-up logs say what is served: the folder, or the kubeconfig context, cluster and server', async (t) => {
  const dir = tempDir(t)
  const started = (args: string[], env: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [WEFT_BIN, 'control-plane', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...args], { cwd: ROOT, env: { ...process.env, WEFT_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
    const exited = new Promise<void>((r) => child.once('exit', () => r()))
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    return { out: () => out, stop: async () => { child.kill('SIGTERM'); await exited } }
  }
  const line = (out: string, msg: string) => JSON.parse(out.split('\n').find((l) => l.includes(`"msg":"${msg}"`))!) as Record<string, unknown>
  const res = join(dir, 'resources')
  mkdirSync(res)
  writeFileSync(join(res, 'svc.yaml'), stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'demo' }, spec: { ports: [{ port: 80 }] } }))
  const local = started(['--local', res])
  await until('the folder line', () => local.out().includes('"msg":"serving resources from folder"'), 30_000)
  t.match(line(local.out(), 'serving resources from folder'), { folder: res })
  await local.stop()

  const api = await KubeApiServer.start()
  t.teardown(() => new Promise<void>((r) => { api.server.closeAllConnections(); api.server.close(() => r()) }))
  const kc = join(dir, 'kubeconfig')
  writeFileSync(kc, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'dev',
    clusters: [{ name: 'test-cluster', cluster: { server: api.url, 'insecure-skip-tls-verify': true } }],
    contexts: [{ name: 'dev', context: { cluster: 'test-cluster', user: 'u' } }, { name: 'staging', context: { cluster: 'test-cluster', user: 'u' } }],
    users: [{ name: 'u', user: {} }],
  }))
  const kube = started(['--kubernetes', '--kubeconfig', kc, '--context', 'staging'])
  await until('the kubernetes line', () => kube.out().includes('"msg":"watching Kubernetes"'), 30_000)
  t.match(line(kube.out(), 'watching Kubernetes'), { context: 'staging', cluster: 'test-cluster', server: api.url })
  await kube.stop()
})

t.test('a Kubernetes API that does not answer: analyze and check name the server, context and cluster, and what to do', async (t) => {
  const home = tempDir(t)
  const port = await freePort()
  const kc = join(home, 'kc.yaml')
  writeFileSync(kc, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'dev',
    clusters: [{ name: 'prod-cluster', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
    contexts: [{ name: 'dev', context: { cluster: 'prod-cluster', user: 'u' } }],
    users: [{ name: 'u', user: { token: 'x' } }],
  }))
  const at = `the Kubernetes API at https://127.0.0.1:${port} (context "dev", cluster "prod-cluster") did not answer (ECONNREFUSED)`
  const next = 'is the cluster running and reachable from here, and is "dev" the context you meant? choose another with --context NAME or --kubeconfig FILE'
  const a = await weft(['analyze', '--kubernetes', '--kubeconfig', kc])
  t.equal(a.code, 3)
  t.match(a.stderr, `weft analyze: ${at}: ${next}`)
  t.notMatch(a.stderr, /fetch failed/)
  const c = await weft(['check', '--kubeconfig', kc, '-o', 'json'])
  t.equal(c.code, 1)
  t.match(JSON.parse(c.stdout), { ok: false, checks: [{ section: 'kubernetes-api', ok: false, title: 'can reach the Kubernetes API', detail: at, whatToDo: next }] })
})

