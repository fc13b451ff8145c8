// The operator CLI as a user runs it: `node bin/weft.js ...` against real sidecars and control
// planes on 127.0.0.1, checking output, JSON and exit codes. Each bug a new user found has a case
// here that fails on the old code.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { startHttpUpstream } from './helpers/upstream.ts'
import { cluster, freePort, getStatus, makeConfig, ROOT, spawnWeft, startTestSidecar, tempDir, until, waitReady, writeConfig } from './helpers/sidecar.ts'
import { weft } from './helpers/cli.ts'

t.test('weft stat --by route: routes of different services that share a name are separate rows', async (t) => {
  const up = await startHttpUpstream(t)
  const config = makeConfig({
    virtualHosts: [
      { name: 'reviews', domains: ['reviews'], routes: [{ name: 'default', backends: [{ cluster: 'reviews' }] }] },
      { name: 'ratings', domains: ['ratings'], routes: [{ name: 'default', backends: [{ cluster: 'ratings' }] }] },
    ],
    clusters: [
      cluster('reviews', [up.port], { destination: { service: 'reviews.demo.svc.cluster.local' } }),
      cluster('ratings', [up.port], { destination: { service: 'ratings.demo.svc.cluster.local' } }),
    ],
  })
  config.telemetry = { metrics: { enabled: true } }
  const s = await startTestSidecar(t, config)
  let stop = false
  const traffic = (async () => {
    let i = 0
    while (!stop) await getStatus(s.port, i++ % 4 === 0 ? 'ratings' : 'reviews', '/')
  })()
  const r = await weft(['stat', '--admin', `127.0.0.1:${s.adminPort}`, '--by', 'route', '--window', '400ms', '-o', 'json'])
  const tbl = await weft(['stat', '--admin', `127.0.0.1:${s.adminPort}`, '--by', 'route', '--window', '100ms'])
  stop = true
  await traffic
  t.equal(r.code, 0, r.stderr)
  const rows = (JSON.parse(r.stdout) as { rows: { name: string; service: string; requests: number }[] }).rows
  t.same(rows.map((x) => [x.name, x.service]), [
    ['default', 'ratings.demo.svc.cluster.local'],
    ['default', 'reviews.demo.svc.cluster.local'],
  ])
  t.ok(rows[1].requests > rows[0].requests, 'reviews had ~3x the requests of ratings, not their sum')
  t.equal(tbl.code, 0, tbl.stderr)
  t.match(tbl.stdout, /^ROUTE +SERVICE +SUCCESS/)
  t.match(tbl.stdout, /\ndefault +ratings\.demo\.svc\.cluster\.local +100\.00%/)
  t.match(tbl.stdout, /\ndefault +reviews\.demo\.svc\.cluster\.local +100\.00%/)

  const y = await weft(['stat', '--admin', `127.0.0.1:${s.adminPort}`, '--window', '10ms', '-o', 'yaml'])
  t.equal(y.code, 0, y.stderr)
  t.match(y.stdout, /^windowSeconds: [\d.]+\nby: service\nrows:\n/)
  const bad = await weft(['stat', '--admin', `127.0.0.1:${s.adminPort}`, '-o', 'xml'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /-o\/--output must be table, json or yaml, got "xml"/)
})

t.test('weft tap --status 6xx: refused at once with exit 2, not a tap that never shows anything', async (t) => {
  const s = await startTestSidecar(t, makeConfig({ routes: [{ backends: [{ cluster: 'c' }] }], clusters: [cluster('c', [1])] }))
  for (const bad of ['6xx', '9xx', '600', '099']) {
    const r = await weft(['tap', '--admin', `127.0.0.1:${s.adminPort}`, '--status', bad], { timeoutMs: 10_000 })
    t.equal(r.code, 2, `--status ${bad}: exit 2`)
    t.match(r.stderr, /invalid status filter .*expected a status 100-599/)
  }
  // the admin API refuses it too
  const a = await s.admin('/tap?status=6xx')
  t.equal(a.status, 400)
})

t.test('unreachable admin API: the error names the cause and the next step', async (t) => {
  const port = await freePort()
  for (const cmd of [['stat', '--window', '10ms'], ['tap']]) {
    const r = await weft([...cmd, '--admin', `127.0.0.1:${port}`])
    t.equal(r.code, cmd[0] === 'tap' ? 3 : 1, `${cmd[0]}: exit code`)
    t.match(r.stderr, `no Weft proxy admin API answers at 127.0.0.1:${port} (connection refused): is the proxy running, and is its admin port ${port}? see \`weft proxy --help\``)
  }
})

t.test('fixing a bad config edit: "config accepted" is logged and the rejection is marked superseded', async (t) => {
  const dir = tempDir(t)
  const adminPort = await freePort()
  const good = makeConfig({ adminPort, routes: [{ backends: [{ cluster: 'c' }] }], clusters: [cluster('c', [1])] })
  const file = writeConfig(dir, good)
  const c = spawnWeft(t, file, { WEFT_LOG_LEVEL: 'info' })
  await waitReady(adminPort)
  const dump = async () => (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { version: number; rejectedConfigs: number; lastRejection: { errors: string[]; supersededBy?: { version: number } } | null }
  writeFileSync(file, 'listeners: [{ name: 1 }]\n')
  await until('the bad edit rejected', async () => (await dump()).rejectedConfigs === 1, 5000, 30)
  t.equal((await dump()).lastRejection?.supersededBy, undefined, 'the rejection describes what is served')
  good.clusters = [cluster('c', [2])]
  writeFileSync(file, stringify(good))
  await until('the fix applied', async () => (await dump()).version === 2, 5000, 30)
  const d = await dump()
  t.equal(d.rejectedConfigs, 1)
  t.match(d.lastRejection, { supersededBy: { version: 2 } })
  await until('the accepted line', () => /"msg":"config accepted"/.test(c.stdout()), 3000)
  const line = c.stdout().split('\n').find((l) => l.includes('"msg":"config accepted"'))!
  t.match(JSON.parse(line), { version: 2, msg: 'config accepted' })
  c.child.kill('SIGTERM')
  await c.exited
})

t.test('weft control-plane --kubernetes without a usable kubeconfig: says what was tried, exits 1', async (t) => {
  const home = tempDir(t)
  const env = { HOME: home, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '', WEFT_LOG_LEVEL: 'info' }
  const ports = ['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0']
  const none = await weft(['control-plane', '--kubernetes', ...ports], { env, timeoutMs: 15_000 })
  t.equal(none.code, 1)
  t.match(none.stderr, `no Kubernetes config: ${join(home, '.kube', 'config')} does not exist and $KUBECONFIG is not set`)
  t.match(none.stderr, /give --kubeconfig FILE/)
  t.notMatch(none.stderr, /skipTLSVerify/)

  // a kubeconfig whose server is plain http without insecure-skip-tls-verify: named, exit 1
  const kc = join(home, 'kc.yaml')
  writeFileSync(kc, stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'dev',
    clusters: [{ name: 'local', cluster: { server: 'http://127.0.0.1:1' } }],
    contexts: [{ name: 'dev', context: { cluster: 'local', user: 'u' } }, { name: 'other', context: { cluster: 'local', user: 'u' } }],
    users: [{ name: 'u', user: {} }],
  }))
  const http = await weft(['control-plane', '--kubernetes', '--kubeconfig', kc, ...ports], { env, timeoutMs: 15_000 })
  t.equal(http.code, 1)
  t.match(http.stderr, `kubeconfig ${kc}: context "dev", cluster "local": server http://127.0.0.1:1 is plain HTTP`)
  const ctx = await weft(['control-plane', '--kubernetes', '--kubeconfig', kc, '--context', 'prod', ...ports], { env, timeoutMs: 15_000 })
  t.equal(ctx.code, 1)
  t.match(ctx.stderr, `kubeconfig ${kc}: no context "prod" (contexts: dev, other)`)
  const missing = await weft(['control-plane', '--kubernetes', '--kubeconfig', join(home, 'nope'), ...ports], { env, timeoutMs: 15_000 })
  t.equal(missing.code, 1)
  t.match(missing.stderr, /nope \(--kubeconfig\): no such file/)
})

t.test('weft explain --config: the route, the routes passed over and why, the backends; a real sidecar agrees', async (t) => {
  const a = await startHttpUpstream(t, { name: 'a' })
  const b = await startHttpUpstream(t, { name: 'b' })
  const config = makeConfig({
    routes: [
      { name: 'admin', match: { path: { prefix: '/admin' } }, backends: [{ cluster: 'a' }] },
      { name: 'canary', match: { headers: [{ name: 'x-canary', exact: '1' }] }, backends: [{ cluster: 'b' }], timeout: '3s', retry: { attempts: 2, on: ['5xx'] } },
      { name: 'rest', backends: [{ cluster: 'a', weight: 9 }, { cluster: 'b', weight: 1 }] },
    ],
    clusters: [cluster('a', [a.port]), cluster('b', [b.port], { circuitBreaker: { volumeThreshold: 10 } })],
  })
  const s = await startTestSidecar(t, config)
  const r = await weft(['explain', '--config', s.file, 'GET http://shop.local/api -H x-canary:1', '-o', 'json'])
  t.equal(r.code, 0, r.stderr)
  const e = JSON.parse(r.stdout)
  t.match(e, {
    listener: { name: 'out', routeTable: 'rt' },
    virtualHost: { name: 'all' },
    notMatched: [{ route: 'admin', reason: 'path "/api" is not prefix "/admin"' }],
    route: { name: 'canary', index: 1 },
    localReply: null,
    backends: [{ cluster: 'b', weight: 1, percent: 100, endpoints: [`127.0.0.1:${b.port}`] }],
    policies: { timeout: '3s', retry: { attempts: 2 }, circuitBreaker: { b: { volumeThreshold: 10 } } },
  })
  // the proxy sends that request where explain said
  const got = await fetch(`http://127.0.0.1:${s.port}/api`, { headers: { host: 'shop.local', 'x-canary': '1' } })
  await got.text()
  t.equal(b.requests.length, 1, 'the canary backend got it')
  t.equal(a.requests.length, 0)

  const table = await weft(['explain', '-c', s.file, 'http://shop.local/other'])
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, /\n  not admin: path "\/other" is not prefix "\/admin"\n  not canary: header x-canary is absent \(wanted exact "1"\)\nROUTE +rest \(#2\)\n/)
  t.match(table.stdout, /\n  a  weight 9 \(90%\)/)
  t.match(table.stdout, /\n  b  weight 1 \(10%\)/)

  const usage = await weft(['explain', '-c', s.file, 'GET http://x/ -H nocolon'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /invalid header "nocolon": expected name:value/)
  const neither = await weft(['explain', 'GET http://x/'])
  t.equal(neither.code, 2)
  t.match(neither.stderr, /give --config FILE .*and\/or --resources DIR/)
})

t.test('weft explain --resources: Gateway API resources translated as the control plane does', async (t) => {
  const dir = join(ROOT, 'test', 'fixtures', 'explain')
  const canary = await weft(['explain', '--resources', dir, 'GET http://reviews.demo/api -H x-canary:1', '-o', 'yaml'])
  t.equal(canary.code, 0, canary.stderr)
  t.match(canary.stdout, /\nroute:\n  name: demo\.reviews\.canary\n  index: 0\n/)
  t.match(canary.stdout, /\nbackends:\n  - cluster: outbound\|80\|\|reviews-v2\.demo\.svc\.cluster\.local\n/)
  t.match(canary.stdout, /\npolicies:\n  timeout: 2s\n/)
  const stable = await weft(['explain', '--resources', dir, 'GET http://reviews.demo/api', '-o', 'json'])
  const e = JSON.parse(stable.stdout)
  t.same(e.notMatched, [{ route: 'demo.reviews.canary', reason: 'header x-canary is absent (wanted exact "1")' }])
  t.same(e.backends.map((x: { percent: number }) => x.percent), [75, 25])
  const nohost = await weft(['explain', '--resources', dir, 'GET http://ratings.demo/'])
  t.equal(nohost.code, 0)
  t.match(nohost.stdout, /LOCAL REPLY  404: no virtual host of route table outbound has the domain ratings\.demo/)
})
