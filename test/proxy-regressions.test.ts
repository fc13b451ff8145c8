// Regressions found in review: each test is a scenario that used to hang, leak or lie.
import t from 'tap'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { writeFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { rawClient } from './helpers/raw.ts'
import { cluster, getStatus, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream, startRawUpstream } from './helpers/upstream.ts'
import { gate } from './helpers/wait.ts'

t.test('a local reply to a request whose body came in the same read closes as asked', async (t) => {
  const s = await startTestSidecar(t, makeConfig({ routes: [{ match: { path: { exact: '/only' } }, directResponse: { status: 200 } }], limits: { idleTimeout: '300ms' } }))
  const c = await rawClient(t, s.port)
  await c.write('POST /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello')
  const r = await c.response()
  t.equal(r.status, 404)
  t.ok(await c.waitClose(2000), 'closed after the 404 with Connection: close')

  const k = await rawClient(t, s.port)
  await k.write('POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello')
  t.equal((await k.response()).status, 404)
  await k.write('GET /only HTTP/1.1\r\nHost: h\r\n\r\n')
  t.equal((await k.response()).status, 200, 'the keep-alive connection serves the next request')
  t.ok(await k.waitClose(2000), 'the idle timeout closes it')
})

t.test('a client that leaves while queued frees its place in the pending queue', async (t) => {
  let received = 0
  // the app holds every answer until the test has seen the queue fill and empty again
  const answer = gate()
  const up = createHttpServer((_req, res) => {
    received++
    void answer.wait().then(() => res.end('ok'))
  })
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    up.closeAllConnections()
    up.close()
  })
  const port = (up.address() as AddressInfo).port
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('c')], clusters: [cluster('c', [port], { pool: { maxConnections: 1, maxPending: 1 } })] }))
  const a = await rawClient(t, s.port)
  const pending = async (): Promise<number> => (await s.adminJson('/clusters')).clusters[0].endpoints[0].connections.pendingRequests
  await a.write('GET /1 HTTP/1.1\r\nHost: h\r\n\r\n') // takes the only connection
  await until('the app has /1', () => received === 1)
  const b = await rawClient(t, s.port)
  await b.write('GET /2 HTTP/1.1\r\nHost: h\r\n\r\n') // queued: pending 1/1
  await until('/2 queued', async () => (await pending()) === 1)
  b.socket.resetAndDestroy() // gives up (RST; a FIN alone is a half-close that still wants the answer)
  await until('the queue freed', async () => (await pending()) === 0)
  const c = await rawClient(t, s.port)
  await c.write('GET /3 HTTP/1.1\r\nHost: h\r\n\r\n')
  await until('/3 queued behind /1 (the place /2 left)', async () => (await pending()) === 1)
  answer.open()
  const r = await c.response({ timeoutMs: 3000 })
  t.equal(r.status, 200, 'queued, not 503 UO')
  t.equal((await a.response({ timeoutMs: 3000 })).status, 200)
})

t.test('a reload whose new listener cannot bind keeps the old config serving', async (t) => {
  const blocker = createNetServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
  t.teardown(() => blocker.close())
  const busy = (blocker.address() as AddressInfo).port
  const b = makeConfig({ routes: [{ directResponse: { status: 200, body: 'v1' } }] })
  const s = await startTestSidecar(t, b)
  b.listeners[0].port = busy
  b.routeTables[0].virtualHosts[0].routes[0].directResponse!.body = 'v2'
  writeFileSync(s.file, stringify(b))
  t.equal(await s.sidecar.reload(), false, 'reload refused')
  const dump = await s.adminJson('/config_dump')
  t.match(dump.lastRejection.errors[0], /EADDRINUSE/)
  t.equal(dump.version, 1, 'still the first config')
  const c = await rawClient(t, s.port)
  await c.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n')
  const r = await c.response()
  t.equal(r.body.toString(), 'v1', 'the old listener still answers with the old config')
})

t.test('a reset in a close-delimited response body reaches the client as a reset', async (t) => {
  let client: Awaited<ReturnType<typeof rawClient>> | undefined
  const up = await startRawUpstream(t, async (conn) => {
    await until('request', () => conn.text().includes('\r\n\r\n'))
    conn.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\npart-of-the-bo')
    // the reset follows the bytes the client already has
    await until('the client has the first bytes', () => client?.text().includes('part-of-the-bo') ?? false)
    conn.socket.resetAndDestroy()
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('c')], clusters: [cluster('c', [up.port])] }))
  const c = await rawClient(t, s.port)
  client = c
  await c.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n')
  t.ok(await c.waitClose(2000), 'client connection closed')
  t.notOk(c.text().includes('0\r\n\r\n'), 'no last-chunk: the truncated body is not presented as complete')
})

t.test('an early upstream answer to an unfinished upload says connection: close', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    await until('head', () => conn.text().includes('\r\n\r\n'))
    conn.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n')
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('c')], clusters: [cluster('c', [up.port])] }))
  const c = await rawClient(t, s.port)
  await c.write('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nabc')
  const r = await c.response()
  t.equal(r.status, 413)
  t.equal(r.get('connection'), 'close')
})

t.test('a refused reload that changed a breaker and pool settings leaves the running ones as they were', async (t) => {
  const blocker = createNetServer()
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
  t.teardown(() => blocker.close())
  const busy = (blocker.address() as AddressInfo).port
  const up = await startHttpUpstream(t, { name: 'app' })
  const b = makeConfig({
    routes: [{ backends: [{ cluster: 'app' }] }],
    clusters: [cluster('app', [up.port], { circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20 }, pool: { maxConnections: 8 } })],
  })
  const s = await startTestSidecar(t, b)
  const before = await getStatus(s.port, 'h', '/')
  t.equal(before, 200)
  // the new config changes the breaker and the pool, and adds a listener that cannot bind
  b.clusters[0].circuitBreaker = { errorThresholdPercentage: 90, volumeThreshold: 5 }
  b.clusters[0].pool = { maxConnections: 1 }
  b.listeners.push({ ...b.listeners[0], name: 'second', port: busy })
  writeFileSync(s.file, stringify(b))
  t.equal(await s.sidecar.reload(), false, 'reload refused')
  for (let i = 0; i < 5; i++) t.equal(await getStatus(s.port, 'h', '/'), 200, 'the running breaker still admits (it was not shut down)')
  const view = await s.adminJson('/clusters')
  const app = view.clusters.find((c: { name: string }) => c.name === 'app')
  t.equal(app.circuitBreaker.state, 'closed')
  t.equal(app.circuitBreaker.rejected, 0)
  // and a good reload afterwards takes the new breaker
  b.listeners.pop()
  writeFileSync(s.file, stringify(b))
  t.equal(await s.sidecar.reload(), true)
  t.equal(await getStatus(s.port, 'h', '/'), 200)
})
