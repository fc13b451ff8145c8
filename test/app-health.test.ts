// App probes through the proxy's admin port: the injector rewrites an app's HTTP probe to
// /app-health/<container>/<probe>, the admin server asks the app with the original path, headers
// and scheme, and the kubelet sees the app's answer.
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { inject, DEFAULT_MESH, appProbesOf } from '../control-plane/inject/index.ts'
import { createAdminServer } from '../proxy/admin/server.ts'
import { createAppHealth, parseAppProbes } from '../proxy/admin/app-health.ts'
import { createLogger } from '../proxy/log.ts'
import { Proxy } from '../proxy/proxy.ts'

let healthy = true
const seen: { path?: string; probe?: string }[] = []
const app = createServer((req, res) => {
  seen.push({ path: req.url, probe: req.headers['x-probe'] as string })
  res.writeHead(req.url === '/healthz' && req.headers['x-probe'] === 'kubelet' && healthy ? 200 : 500)
  res.end(healthy ? 'fine' : 'sick')
})
await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
t.teardown(() => app.close())
const appPort = (app.address() as AddressInfo).port

// a port nothing listens on: bind and close
const dead = createServer()
await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r))
const deadPort = (dead.address() as AddressInfo).port
await new Promise<void>((r) => dead.close(() => r()))

const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p' },
  spec: {
    containers: [
      { name: 'app', ports: [{ name: 'http', containerPort: appPort }], livenessProbe: { httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] } } },
      { name: 'gone', readinessProbe: { httpGet: { path: '/r', port: deadPort } } },
    ],
  },
}
const injected = inject(pod, DEFAULT_MESH).workload as any
const env = injected.spec.initContainers[1].env.find((e: any) => e.name === 'WEFT_APP_PROBES').value
t.equal(appProbesOf(injected.spec.initContainers[1]).length, 2)

const admin = createAdminServer(new Proxy(createLogger('silent')), { appHealth: createAppHealth(parseAppProbes(env).table) })
await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r))
t.teardown(() => { admin.closeAllConnections(); admin.close() })
const base = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`
const probe = async (httpGet: { path: string; port: number }) => {
  t.equal(httpGet.port, DEFAULT_MESH.ports.admin, 'the rewritten probe targets the admin port')
  const r = await request(base + httpGet.path)
  return { status: r.statusCode, body: await r.body.text() }
}

t.test('the rewritten liveness probe answers what the app answers, with the original path and headers', async (t) => {
  const live = injected.spec.containers[0].livenessProbe.httpGet
  t.same(await probe(live), { status: 200, body: 'fine' })
  t.same(seen.at(-1), { path: '/healthz', probe: 'kubelet' })
  healthy = false
  t.same(await probe(live), { status: 500, body: 'sick' })
  healthy = true
})

t.test('an app that does not listen: 503 with the reason; an unknown probe path: 404', async (t) => {
  const r = await probe(injected.spec.containers[1].readinessProbe.httpGet)
  t.equal(r.status, 503)
  t.match(r.body, new RegExp(`app probe /app-health/gone/readyz: 127.0.0.1:${deadPort}/r: .*ECONNREFUSED`))
  const nf = await request(`${base}/app-health/app/readyz`)
  t.equal(nf.statusCode, 404)
  t.equal(await nf.body.text(), 'no app probe at /app-health/app/readyz\n')
  const ready = await request(`${base}/live`)
  t.equal(ready.statusCode, 200, 'the other admin routes still answer')
  await ready.body.dump()
})

t.test('WEFT_APP_PROBES that is not JSON: no table and a message', async (t) => {
  const r = parseAppProbes('{oops')
  t.equal(r.table.size, 0)
  t.match(r.error, /WEFT_APP_PROBES is not JSON/)
})

t.test('weft wait-ready (classic postStart): exits 0 once /ready says 200, 1 when it never does', async (t) => {
  const { spawn } = await import('node:child_process')
  const { fileURLToPath } = await import('node:url')
  const weft = fileURLToPath(new URL('../bin/weft.js', import.meta.url))
  let isReady = false
  const proxyAdmin = createServer((req, res) => { res.writeHead(req.url === '/ready' && isReady ? 200 : 503); res.end() })
  await new Promise<void>((r) => proxyAdmin.listen(0, '127.0.0.1', r))
  t.teardown(() => proxyAdmin.close())
  const port = String((proxyAdmin.address() as AddressInfo).port)
  const run = (timeout: string) => new Promise<number | null>((resolve) => spawn(process.execPath, [weft, 'wait-ready', '--port', port, '--timeout', timeout], { stdio: 'ignore' }).on('close', resolve))
  t.equal(await run('1'), 1, 'never ready: 1 after the timeout')
  const waiting = run('60')
  // ready once the waiter has asked at least once
  let asked = 0
  proxyAdmin.on('request', () => { if (++asked === 2) isReady = true })
  t.equal(await waiting, 0)
})
