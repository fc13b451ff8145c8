// Sidecar lifecycle: the admin API, config reloads (good and bad edits, requests in flight),
// start-up with a bad file, graceful drain and drain timeout, SIGTERM to a child-process proxy.
import t from 'tap'
import { connect } from 'node:net'
import { writeFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { rawClient } from './helpers/raw.ts'
import {
  cluster,
  freePort,
  makeConfig,
  routeTo,
  spawnWeft,
  startTestSidecar,
  tempDir,
  until,
  waitExit,
  waitReady,
  writeConfig,
} from './helpers/sidecar.ts'
import { startHttpUpstream, startRawUpstream } from './helpers/upstream.ts'
import { gate } from './helpers/wait.ts'
import type { Bootstrap } from '../api/schema.ts'

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(false)
    })
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
  })
}

/**
 * A node:http upstream whose answers wait for `answer.open()`: the test keeps a request in flight
 * until it has seen what it waits for (the new config served, the drain begun), not for a guess.
 */
async function heldUpstream(t: Parameters<typeof startHttpUpstream>[0], name: string, holds: (url: string) => boolean = () => true) {
  const answer = gate()
  const up = await startHttpUpstream(t, {
    name,
    handler: async (rec, res) => {
      if (holds(rec.url)) await answer.wait()
      res.end(`${name} ${rec.url}`)
    },
  })
  return Object.assign(up, { answer })
}

t.test('admin API: /ready, /live, /config_dump, /clusters, /stats', async (t) => {
  const up = await startHttpUpstream(t)
  const config = makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] })
  const s = await startTestSidecar(t, config)

  const ready = await s.admin('/ready')
  t.equal(ready.status, 200)
  t.equal(ready.body, 'ready\n')
  const live = await s.admin('/live')
  t.equal(live.status, 200)

  const dump = await s.adminJson('/config_dump')
  t.equal(dump.version, 1)
  t.match(dump.hash, /^[0-9a-f]{12}$/)
  t.equal(dump.rejectedConfigs, 0)
  t.equal(dump.lastRejection, null)
  t.same(dump.config, config, 'the config as loaded')

  const c = await rawClient(t, s.port)
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await c.response()).status, 200)

  const cl = await s.adminJson('/clusters')
  t.equal(cl.version, 1)
  t.equal(cl.clusters.length, 1)
  t.equal(cl.clusters[0].name, 'app')
  t.equal(cl.clusters[0].lbPolicy, 'roundRobin')
  const ep = cl.clusters[0].endpoints[0]
  t.equal(ep.address, `127.0.0.1:${up.port}`)
  t.equal(ep.health, 'healthy')
  t.equal(ep.requests, 1)
  t.equal(ep.requestErrors, 0)
  t.equal(ep.activeRequests, 0)
  t.equal(ep.connections.total, 1)
  t.equal(ep.connections.open, 1)
  t.equal(ep.connections.idle, 1)

  const st = await s.adminJson('/stats')
  t.equal(st.draining, false)
  t.equal(st.listeners[0].name, 'out')
  t.equal(st.listeners[0].port, s.port)
  t.equal(st.listeners[0].cxTotal, 1)
  t.equal(st.listeners[0].cxActive, 1)

  t.equal((await s.admin('/nope')).status, 404)
  const post = await fetch(`http://127.0.0.1:${s.adminPort}/ready`, { method: 'POST' })
  await post.text()
  t.equal(post.status, 405)
})

function versioned(v: string, slowCluster: string, ports: Record<string, number>): Bootstrap {
  return makeConfig({
    routes: [
      { match: { path: { exact: '/ver' } }, directResponse: { status: 200, body: v } },
      routeTo(slowCluster, { responseHeaders: { add: { 'x-config': v } } }),
    ],
    clusters: [cluster(slowCluster, [ports[slowCluster]])],
  })
}

t.test('config reload: new requests see the change, a request in flight completes on the old config', async (t) => {
  const oldUp = await heldUpstream(t, 'old')
  const newUp = await startHttpUpstream(t, { name: 'new' })
  const ports = { old: oldUp.port, new: newUp.port }
  const s = await startTestSidecar(t, versioned('v1', 'old', ports), { watch: true, watchDebounceMs: 20 })
  const ver = async () => (await fetch(`http://127.0.0.1:${s.port}/ver`).then((r) => r.text()))
  t.equal(await ver(), 'v1')

  const inflight = await rawClient(t, s.port)
  await inflight.write('GET /slow HTTP/1.1\r\nHost: svc\r\n\r\n')
  await until('request at the old upstream', () => oldUp.requests.length === 1, 2000, 2)

  // the edit: new body, the slow route now goes to another cluster, the old cluster is gone
  writeFileSync(s.file, stringify(versioned('v2', 'new', ports)))
  await until('v2 served', async () => (await ver()) === 'v2', 3000, 10)
  oldUp.answer.open()

  const r = await inflight.response({ timeoutMs: 2000 })
  t.equal(r.status, 200, 'in-flight request completed')
  t.equal(r.body.toString(), 'old /slow', 'served by the old cluster')
  t.equal(r.get('x-config'), 'v1', 'with the old route')

  await inflight.write('GET /slow HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r2 = await inflight.response()
  t.equal(r2.body.toString(), 'new GET /slow', 'next request on the same connection uses the new config')
  t.equal(r2.get('x-config'), 'v2')

  // re-reading an unchanged file is not a new version
  t.equal(await s.sidecar.reload(), true)
  const dump = await s.adminJson('/config_dump')
  t.equal(dump.version, 2)
  t.same(dump.config.clusters.map((c: { name: string }) => c.name), ['new'])
  const cl = await s.adminJson('/clusters')
  t.same(cl.clusters.map((c: { name: string }) => c.name), ['new'])
})

t.test('a bad edit is rejected: the old config keeps serving, /config_dump says where', async (t) => {
  const up = await startHttpUpstream(t)
  const good = versioned('v1', 'app', { app: up.port })
  const s = await startTestSidecar(t, good, { watch: true, watchDebounceMs: 20 })

  const bad = structuredClone(good) as any
  bad.routeTables[0].virtualHosts[0].routes[0].directResponse.body = 'v2'
  bad.clusters[0].endpoints[0].port = 70000
  const text = stringify(bad)
  const lines = text.split('\n')
  const line = lines.findIndex((l) => /port: 70000/.test(l)) + 1
  const column = lines[line - 1].indexOf('70000') + 1
  writeFileSync(s.file, text)

  const dump = await until(
    'rejection recorded',
    async () => {
      const d = await s.adminJson('/config_dump')
      return d.rejectedConfigs >= 1 ? d : null
    },
    3000,
    10,
  )
  t.equal(dump.version, 1, 'still version 1')
  t.same(dump.config, good, 'config_dump still shows the good config')
  const first: string = dump.lastRejection.errors[0]
  t.equal(first.startsWith(`${s.file}:${line}:${column}: `), true, `file:line:column (${first})`)
  t.match(first, /clusters\[0\]\.endpoints\[0\]\.port: /, 'field path')
  t.match(first, /65535/, 'says what is allowed')
  t.equal(dump.lastRejection.source, s.file)

  const r = await fetch(`http://127.0.0.1:${s.port}/ver`)
  t.equal(await r.text(), 'v1', 'old config keeps serving')
  t.equal((await s.admin('/ready')).status, 200, 'still ready')

  // reload() called directly says no as well
  t.equal(await s.sidecar.reload(), false)

  // fixing the file applies it
  const fixed = structuredClone(good) as any
  fixed.routeTables[0].virtualHosts[0].routes[0].directResponse.body = 'v3'
  writeFileSync(s.file, stringify(fixed))
  await until('v3 served', async () => (await fetch(`http://127.0.0.1:${s.port}/ver`).then((x) => x.text())) === 'v3', 3000, 10)
  t.equal((await s.adminJson('/config_dump')).version, 2)
})

t.test('starting with a bad file: weft proxy exits non-zero with file:line:column: path: message', async (t) => {
  const dir = tempDir(t)
  const cfg = makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [8080])] }) as any
  cfg.listeners[0].direction = 'sideways'
  const text = stringify(cfg)
  const lines = text.split('\n')
  const line = lines.findIndex((l) => /direction: sideways/.test(l)) + 1
  const column = lines[line - 1].indexOf('sideways') + 1
  const file = writeConfig(dir, text, 'bad.yaml')
  const child = spawnWeft(t, file)
  const exit = await waitExit(child, 10_000)
  t.ok(exit !== null, 'exited')
  t.not(exit?.code, 0, 'non-zero exit code')
  t.equal(exit?.code, 1)
  const err = child.stderr()
  t.match(err, `${file}:${line}:${column}: listeners[0].direction: `, `stderr names the place and the field:\n${err}`)
  t.match(err, /inbound/, 'and what is allowed')
})

t.test('graceful drain, no drain period', async (t) => {
  const up = await heldUpstream(t, 'slow', (url) => url === '/busy')
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))

  const idle = await rawClient(t, s.port)
  await idle.write('GET /idle HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await idle.response({ timeoutMs: 2000 })).status, 200)

  const busy = await rawClient(t, s.port)
  await busy.write('GET /busy HTTP/1.1\r\nHost: svc\r\n\r\n')
  await until('request upstream', () => up.requests.length === 2, 2000, 2)

  const started = Date.now()
  let resolvedAt = 0
  const drained = s.sidecar.drain(5000, 0).then((r) => {
    resolvedAt = Date.now()
    return r
  })
  t.ok(await idle.waitClose(500), 'an idle keep-alive connection is closed at once')
  t.ok(await refused(s.port), 'new connections are refused')
  const ready = await s.admin('/ready')
  t.equal(ready.status, 503, '/ready fails while draining')
  t.equal(ready.body, 'draining\n')
  t.equal(resolvedAt, 0, 'drain waits for the request in flight')
  up.answer.open()

  const r = await busy.response({ timeoutMs: 2000 })
  t.equal(r.status, 200, 'in-flight request completed')
  t.equal(r.body.toString(), 'slow /busy')
  t.equal(r.get('connection'), 'close', 'with Connection: close')
  t.ok(await busy.waitClose(500), 'then the connection closes')
  const res = await drained
  t.same(res, { timedOut: false })
  t.ok(resolvedAt - started < 1500, `drain resolved once the request finished (${resolvedAt - started} ms)`)
})

t.test('drain timeout cuts off a request that never completes', async (t) => {
  const up = await startRawUpstream(t) // accepts, never answers
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  await c.write('GET /forever HTTP/1.1\r\nHost: svc\r\n\r\n')
  const conn = await up.nextConn()
  await conn.nextRequest()
  const started = Date.now()
  const res = await s.sidecar.drain(300, 0)
  const took = Date.now() - started
  t.same(res, { timedOut: true })
  t.ok(took >= 250 && took < 1500, `after the drain timeout (${took} ms)`)
  t.ok(await c.waitClose(1000), 'client connection cut off')
  t.equal(c.data.length, 0, 'no (partial) response was sent')
  await until('upstream connection closed', () => conn.done, 1000).catch(() => {})
  t.ok(conn.done, 'upstream connection closed too')
})

t.test('SIGTERM to a child-process proxy: in-flight request completes, exit 0', async (t) => {
  const up = await heldUpstream(t, 'slow')
  const listenPort = await freePort()
  const adminPort = await freePort()
  const dir = tempDir(t)
  const file = writeConfig(
    dir,
    makeConfig({ port: listenPort, adminPort, drainTimeout: '5s', drainPeriod: '100ms', routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }),
  )
  const child = spawnWeft(t, file)
  await waitReady(adminPort)
  const c = await rawClient(t, listenPort)
  await c.write('GET /term HTTP/1.1\r\nHost: svc\r\n\r\n')
  await until('request upstream', () => up.requests.length === 1, 3000, 2)
  child.child.kill('SIGTERM')
  // the answer once the proxy is draining (its /ready says so), so the request is in flight through the drain
  await until('/ready 503 (draining)', async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`)).status === 503, 3000, 5)
  up.answer.open()
  const r = await c.response({ timeoutMs: 3000 })
  t.equal(r.status, 200)
  t.equal(r.body.toString(), 'slow /term')
  t.equal(r.get('connection'), 'close')
  const exit = await waitExit(child, 5000)
  t.ok(exit !== null, 'process exited')
  t.equal(exit?.code, 0, `exit code 0 (stderr: ${child.stderr()})`)
})
