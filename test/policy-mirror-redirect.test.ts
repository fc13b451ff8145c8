// Request mirroring, redirects, rewrites and segment-prefix matching as a client and the upstreams
// see them: the mirror gets a copy (Host "-shadow", same method, path and body) and never slows or
// fails the original; redirects answer with the status and Location built from the request;
// rewrites change what the upstream receives.
import t from 'tap'
import { cluster, endpointView, freePort, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { rawClient } from './helpers/raw.ts'
import { binomialBounds, client, h2client, Held, metrics, parallel, startBlackhole } from './helpers/policy.ts'
import type { Route } from '../api/schema.ts'
import { createServer, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'

interface H2Seen {
  headers: IncomingHttpHeaders
  body: string
}

/** A node:http2 h2c server on 127.0.0.1 that records each request (fields and whole body) and answers 200 "<name> <path>". */
async function startH2Recorder(t: { teardown(f: () => unknown): void }, name: string): Promise<{ port: number; requests: H2Seen[] }> {
  const server = createServer()
  const requests: H2Seen[] = []
  const sessions = new Set<ServerHttp2Session>()
  server.on('session', (s) => {
    sessions.add(s)
    s.on('error', () => {})
    s.on('close', () => sessions.delete(s))
  })
  server.on('stream', (st: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    st.on('error', () => {})
    const parts: Buffer[] = []
    st.on('data', (b: Buffer) => parts.push(b))
    st.on('end', () => {
      requests.push({ headers, body: Buffer.concat(parts).toString() })
      st.respond({ ':status': 200, 'content-type': 'text/plain' })
      st.end(`${name} ${headers[':path']}`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sessions) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { port: (server.address() as AddressInfo).port, requests }
}

/** An app, a mirror cluster "shadow" whose upstream holds every copy until released, a sidecar mirroring route "mirrored" to it. */
async function heldMirror(t: Parameters<typeof startTestSidecar>[0], shadowCluster: Parameters<typeof cluster>[2] = {}) {
  const app = await startHttpUpstream(t, { name: 'app' })
  const held = new Held()
  const shadow = await startHttpUpstream(t, { name: 'shadow', handler: (_rec, res) => held.hold(res) })
  t.teardown(() => held.releaseAll())
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { name: 'mirrored', mirror: { cluster: 'shadow' } })],
      clusters: [cluster('app', [app.port]), cluster('shadow', [shadow.port], shadowCluster)],
    }),
  )
  return { held, shadow, s }
}

// Every mirror test for both codecs: the HTTP/2 exchange mirrors as the HTTP/1 one does.
for (const proto of ['http1', 'http2'] as const) {
  const clientFor = (t: Parameters<typeof client>[0], port: number) => (proto === 'http1' ? client(t, port) : h2client(t, port))

  t.test(`${proto}: mirror: the copy has Host "-shadow", the same method, path and body`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app' })
    const shadow = await startHttpUpstream(t, { name: 'shadow' })
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [shadow.port])],
      }),
    )
    const c = clientFor(t, s.port)
    const r = await c.request('/orders?id=7', { method: 'POST', headers: { host: 'shop.example:8080', 'x-custom': 'yes' }, body: 'a=1&b=2' })
    t.equal(r.status, 200)
    t.equal(r.body, 'app POST /orders?id=7', 'the original is answered by its own cluster')
    const g = await c.request('/plain', { headers: { host: 'shop.example' } })
    t.equal(g.body, 'app GET /plain')
    await until('both copies arrived', () => shadow.requests.length === 2)
    const [post, get] = shadow.requests[0].method === 'POST' ? shadow.requests : [shadow.requests[1], shadow.requests[0]]
    t.equal(post.url, '/orders?id=7')
    t.equal(post.header('host'), 'shop.example:8080-shadow', 'Host gets "-shadow" (as Envoy)')
    t.equal(post.body.toString(), 'a=1&b=2', 'the body is copied')
    t.equal(post.header('x-custom'), 'yes', 'other headers are copied')
    t.equal(post.header('x-request-id'), app.requests[0].header('x-request-id'), 'same request id as the original')
    t.equal(get.method, 'GET')
    t.equal(get.url, '/plain')
    t.equal(get.header('host'), 'shop.example-shadow')
    t.equal(app.requests[0].header('host'), 'shop.example:8080', 'the original keeps its Host')
    const m = await metrics(s)
    t.equal(m.decision('mirror'), 2)
    t.equal(m.decision('mirror_failed'), 0)
  })

  t.test(`${proto}: mirror to an HTTP/2 cluster: the copy goes as an HTTP/2 stream with the same method, path, fields and body`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app' })
    const shadow = await startH2Recorder(t, 'shadow')
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [shadow.port], { protocol: 'http2' })],
      }),
    )
    const c = clientFor(t, s.port)
    const r = await c.request('/orders?id=7', { method: 'POST', headers: { host: 'shop.example:8080', 'x-custom': 'yes' }, body: 'a=1&b=2' })
    t.equal(r.status, 200)
    t.equal(r.body, 'app POST /orders?id=7', 'the original is answered by its own cluster')
    const big = 'x'.repeat(200_000)
    const p = await c.request('/upload', { method: 'PUT', headers: { host: 'shop.example' }, body: big })
    t.equal(p.status, 200)
    const g = await c.request('/plain', { headers: { host: 'shop.example' } })
    t.equal(g.body, 'app GET /plain')
    await until('the three copies arrived', () => shadow.requests.length === 3)
    const by = (m: string) => shadow.requests.find((x) => x.headers[':method'] === m)!
    const post = by('POST')
    t.equal(post.headers[':path'], '/orders?id=7')
    t.equal(post.headers[':authority'], 'shop.example:8080-shadow', ':authority gets "-shadow" (as Envoy)')
    t.equal(post.body, 'a=1&b=2', 'the body is copied')
    t.equal(post.headers['x-custom'], 'yes', 'other fields are copied')
    t.equal(post.headers['x-request-id'], app.requests[0].header('x-request-id'), 'same request id as the original')
    t.equal(by('PUT').body.length, big.length, 'a body larger than one read and the stream window is copied whole')
    t.equal(by('PUT').body, big)
    t.equal(by('GET').headers[':path'], '/plain')
    t.equal(by('GET').body, '')
    const m = await metrics(s)
    t.equal(m.decision('mirror'), 3)
    t.equal(m.decision('mirror_failed'), 0)
    t.equal(m.decision('mirror_abandoned'), 0)
    t.equal(((await endpointView(s, 'shadow')) as unknown as { http2: { sessions: number } }).http2.sessions, 1, 'the copies share one HTTP/2 session')
  })

  t.test(`${proto}: an HTTP/2 cluster mirrored to an HTTP/1 one: each gets the request in its own protocol`, async (t) => {
    const app = await startH2Recorder(t, 'app')
    const shadow = await startHttpUpstream(t, { name: 'shadow' })
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port], { protocol: 'http2' }), cluster('shadow', [shadow.port])],
      }),
    )
    const c = clientFor(t, s.port)
    const r = await c.request('/orders', { method: 'POST', headers: { host: 'shop.example' }, body: 'a=1' })
    t.equal(r.status, 200)
    t.equal(r.body, 'app /orders')
    t.equal(app.requests[0].body, 'a=1')
    await until('the copy arrived', () => shadow.requests.length === 1)
    t.equal(shadow.requests[0].method, 'POST')
    t.equal(shadow.requests[0].url, '/orders')
    t.equal(shadow.requests[0].header('host'), 'shop.example-shadow')
    t.equal(shadow.requests[0].body.toString(), 'a=1')
    t.equal(shadow.requests[0].header('x-request-id'), app.requests[0].headers['x-request-id'], 'same request id as the original')
    const m = await metrics(s)
    t.equal(m.decision('mirror'), 1)
    t.equal(m.decision('mirror_failed'), 0)
  })

  t.test(`${proto}: mirror to an HTTP/2 cluster that is down: the original is answered, mirror_failed counts`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app' })
    const dead = await freePort()
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { name: 'mirrored', mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [dead], { protocol: 'http2' })],
      }),
    )
    const c = clientFor(t, s.port)
    for (let i = 0; i < 3; i++) {
      const r = await c.request(`/r${i}`, { method: 'POST', body: 'payload' })
      t.equal(r.status, 200)
      t.equal(r.get('x-weft-response-flags'), undefined)
    }
    await until('every mirror failure counted', async () => (await metrics(s)).decision('mirror_failed') === 3)
    const m = await metrics(s)
    t.equal(m.decision('mirror'), 3)
    t.equal(m.requests({ route: 'mirrored', response_code: '200', response_flags: '-' }), 3, "the mirror's failure is not the original's")
  })

  t.test(`${proto}: mirror down: the original is answered as usual, mirror_failed counts`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app' })
    const dead = await freePort()
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { name: 'mirrored', mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [dead])],
      }),
    )
    const c = clientFor(t, s.port)
    for (let i = 0; i < 10; i++) {
      const r = await c.request(`/r${i}`, { method: 'POST', body: 'payload' })
      t.equal(r.status, 200)
      t.equal(r.body, `app POST /r${i}`)
      t.equal(r.get('x-weft-response-flags'), undefined)
    }
    t.equal(app.requests.length, 10)
    await until('every mirror failure counted', async () => (await metrics(s)).decision('mirror_failed') === 10)
    const m = await metrics(s)
    t.equal(m.decision('mirror'), 10)
    t.equal(m.requests({ route: 'mirrored', response_code: '200', response_flags: '-' }), 10, "the mirror's failure is not the original's")
  })

  t.test(`${proto}: a mirror whose connects hang: the original is answered at once, the copies fail at the connect timeout`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app' })
    const hole = await startBlackhole(t)
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { name: 'mirrored', mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [hole], { pool: { connectTimeout: '2s' } })],
      }),
    )
    const c = clientFor(t, s.port)
    const t0 = performance.now()
    for (let i = 0; i < 5; i++) {
      const r = await c.request(`/r${i}`, { method: 'POST', body: 'payload' })
      t.equal(r.status, 200)
      t.equal(r.body, `app POST /r${i}`)
      t.equal(r.get('x-weft-response-flags'), undefined)
    }
    const ms = performance.now() - t0
    t.ok(ms < 1500, `five answers in ${ms.toFixed(0)} ms, before the mirror's first connect timed out (2 s)`)
    let m = await metrics(s)
    t.equal(m.decision('mirror'), 5)
    t.equal(m.decision('mirror_failed'), 0, 'the copies are still connecting')
    await until('every copy failed', async () => (await metrics(s)).decision('mirror_failed') === 5, 6000, 50)
    m = await metrics(s)
    t.equal(m.requests({ route: 'mirrored', response_code: '200', response_flags: '-' }), 5, "the mirror's failure is not the original's")
    t.equal((await endpointView(s, 'shadow')).connections.connectTimeouts, 5)
  })

  t.test(`${proto}: a slow mirror does not slow the original`, async (t) => {
    const { held, shadow, s } = await heldMirror(t)
    const c = clientFor(t, s.port)
    for (let i = 0; i < 5; i++) {
      const r = await c.request(`/r${i}`, { method: 'POST', body: 'x'.repeat(1000) })
      t.equal(r.status, 200)
      t.ok(r.ms < 500, `answered in ${r.ms.toFixed(0)} ms while the mirror has not answered`)
    }
    await held.waitFor(5)
    t.equal(shadow.requests.length, 5, 'the mirror got every copy and is still holding them')
    held.releaseAll()
    const m = await metrics(s)
    t.equal(m.decision('mirror'), 5)
  })

  t.test(`${proto}: a mirror that does not read its body is abandoned, the original completes`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app', handler: (rec, res) => res.end(String(rec.body.length)) })
    // reads the head, never the body: its socket fills up
    const shadow = await startHttpUpstream(t, { name: 'shadow', onRequest: (req) => req.pause() })
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [shadow.port])],
      }),
    )
    const size = 16 * 1024 * 1024
    const r = await clientFor(t, s.port).request('/upload', { method: 'POST', body: Buffer.alloc(size, 0x61) })
    t.equal(r.status, 200)
    t.equal(r.body, String(size), 'the original got its whole body')
    const m = await metrics(s)
    t.equal(m.decision('mirror'), 1)
    t.equal(m.decision('mirror_abandoned'), 1, 'the copy that could not keep up was dropped')
    // (the paused upstream itself does not notice: it is not reading)
    await until('the proxy closed its mirror connection', async () => (await endpointView(s, 'shadow')).connections.open === 0)
  })

  t.test(`${proto}: the copy goes through the mirror cluster's limits: over its maxRequests it is refused, the original is answered`, async (t) => {
    const { held, s } = await heldMirror(t, { pool: { maxRequests: 1 } })
    const c = clientFor(t, s.port)
    for (let i = 0; i < 3; i++) t.equal((await c.request(`/r${i}`)).status, 200, `original ${i} answered`)
    await held.waitFor(1)
    let m = await metrics(s)
    t.equal(m.decision('mirror'), 3)
    t.equal(m.decision('mirror_failed'), 2, 'two copies refused while the first is held')
    t.equal(m.clusterDecision('shadow', 'overflow'), 2, "counted as the mirror cluster's overflow")
    t.equal(m.decision('overflow'), 0, "not the original's")
    t.equal(m.requests({ route: 'mirrored', response_code: '200', response_flags: '-' }), 3)
    let v = await endpointView(s, 'shadow')
    t.same([v.requests, v.activeRequests], [1, 1], 'the mirror endpoint counts its copy active')
    held.releaseAll()
    await until('the copy is over', async () => (await endpointView(s, 'shadow')).activeRequests === 0)
    t.equal((await c.request('/after')).status, 200)
    await held.waitFor(2)
    m = await metrics(s)
    t.equal(m.decision('mirror_failed'), 2, 'room again: the next copy goes')
    v = await endpointView(s, 'shadow')
    t.equal(v.requests, 2)
  })

  t.test(`${proto}: the mirror's 5xx answers feed the mirror cluster's outlier detection, never the original`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app' })
    const bad = await startHttpUpstream(t, { name: 'bad', handler: (_rec, res) => res.writeHead(503).end('down') })
    const good = await startHttpUpstream(t, { name: 'good' })
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { name: 'mirrored', mirror: { cluster: 'shadow' } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [bad.port, good.port], { outlierDetection: { consecutive5xx: 3, baseEjectionTime: '30s', maxEjectionPercent: 50 } })],
      }),
    )
    const c = clientFor(t, s.port)
    // round robin: three copies each
    for (let i = 0; i < 6; i++) t.equal((await c.request(`/r${i}`)).status, 200)
    await until('the third 503 ejected the failing mirror endpoint', async () => (await endpointView(s, 'shadow', 0)).health === 'ejected')
    const v = await endpointView(s, 'shadow', 0)
    t.same([v.requests, v.responses5xx, v.activeRequests], [3, 3, 0], '/clusters: its three copies, all 503')
    for (let i = 6; i < 10; i++) t.equal((await c.request(`/r${i}`)).status, 200)
    await until('every copy arrived', () => good.requests.length === 7)
    t.equal(bad.requests.length, 3, 'no copy to the ejected endpoint')
    const m = await metrics(s)
    t.equal(m.clusterDecision('shadow', 'ejection'), 1)
    t.equal(m.clusterDecision('app', 'ejection'), 0)
    t.equal(m.requests({ route: 'mirrored', response_code: '200', response_flags: '-' }), 10, 'every original answered as usual')
  })

  t.test(`${proto}: mirror percent: about that share of requests is copied`, async (t) => {
    const app = await startHttpUpstream(t, { name: 'app' })
    const shadow = await startHttpUpstream(t, { name: 'shadow' })
    const s = await startTestSidecar(
      t,
      makeConfig({
        routes: [routeTo('app', { mirror: { cluster: 'shadow', percent: 25 } })],
        clusters: [cluster('app', [app.port]), cluster('shadow', [shadow.port])],
      }),
    )
    const c = clientFor(t, s.port)
    const N = 300
    await parallel(N, 16, (i) => c.request(`/r${i}`))
    const m = await metrics(s)
    const mirrored = m.decision('mirror')
    const { lo, hi } = binomialBounds(N, 0.25)
    t.ok(mirrored >= lo && mirrored <= hi, `${mirrored} of ${N} mirrored, expected ${lo}..${hi}`)
    await until('every copy arrived', () => shadow.requests.length === mirrored)
    t.equal(app.requests.length, N)
  })
}

// ---- redirects ------------------------------------------------------------------------------------

t.test('redirects: status and Location from scheme, host, port, path and prefix', async (t) => {
  const app = await startHttpUpstream(t, { name: 'app' })
  const r = (path: string, redirect: Route['redirect'], kind: 'prefix' | 'segmentPrefix' = 'prefix'): Route => ({
    match: { path: { [kind]: path } },
    redirect,
  })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        r('/secure', { scheme: 'https' }),
        r('/moved', { host: 'new.example', port: 8443, status: 301 }),
        r('/page', { path: '/new-page', status: 308 }),
        r('/old', { pathPrefix: '/new' }, 'segmentPrefix'),
        r('/plain', { scheme: 'http', port: 80, status: 307 }),
        routeTo('app'),
      ],
      clusters: [cluster('app', [app.port])],
    }),
  )
  const c = await rawClient(t, s.port)
  const cases: [string, string, number, string][] = [
    ['/secure/a?x=1', 'svc:8080', 302, 'https://svc/secure/a?x=1'],
    ['/moved/a', 'svc:8080', 301, 'http://new.example:8443/moved/a'],
    ['/page?q=2', 'svc:8080', 308, 'http://svc:8080/new-page?q=2'],
    ['/old/a/b?c', 'svc', 302, 'http://svc/new/a/b?c'],
    ['/old', 'svc', 302, 'http://svc/new'],
    ['/plain', 'svc:9090', 307, 'http://svc/plain'],
  ]
  for (const [path, host, status, location] of cases) {
    await c.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    const res = await c.response()
    t.equal(res.status, status, `${host}${path}: ${status}`)
    t.equal(res.get('location'), location, `${host}${path}: Location ${location}`)
    t.equal(res.get('content-length'), '0')
  }
  t.notOk(c.done, 'redirects keep the connection')
  await c.write('GET /oldish HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await c.response()).status, 200, 'segmentPrefix "/old" does not match "/oldish"')
  t.equal(app.requests.length, 1, 'redirected requests never reach an upstream')
  const m = await metrics(s)
  t.equal(m.requests({ response_flags: 'DR', response_code: '302' }), 3, 'metrics: redirects are direct responses (DR)')
})

t.test('rewrite: path and host as the upstream sees them', async (t) => {
  const app = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        routeTo('app', { match: { path: { exact: '/legacy' } }, rewrite: { path: '/v2/items' } }),
        routeTo('app', { match: { path: { segmentPrefix: '/api/' } }, rewrite: { pathPrefix: '/internal', host: 'backend.internal' } }),
        routeTo('app', { rewrite: { host: 'other.internal' } }),
      ],
      clusters: [cluster('app', [app.port])],
    }),
  )
  const c = client(t, s.port)
  const cases: [string, string, string][] = [
    ['/legacy?page=3', '/v2/items?page=3', 'svc'],
    ['/api', '/internal', 'backend.internal'],
    ['/api/users/7?x=y', '/internal/users/7?x=y', 'backend.internal'],
    ['/apix', '/apix', 'other.internal'],
  ]
  for (const [path, url, host] of cases) {
    const r = await c.request(path)
    t.equal(r.status, 200)
    const rec = app.requests.at(-1)!
    t.equal(rec.url, url, `${path} -> ${url}`)
    t.equal(rec.header('host'), host, `${path}: Host ${host}`)
  }
})

t.test('segmentPrefix matches "/api" and "/api/x" but not "/apix"', async (t) => {
  const api = await startHttpUpstream(t, { name: 'api' })
  const web = await startHttpUpstream(t, { name: 'web' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('api', { match: { path: { segmentPrefix: '/api' } } }), routeTo('web')],
      clusters: [cluster('api', [api.port]), cluster('web', [web.port])],
    }),
  )
  const c = client(t, s.port)
  for (const [path, who] of [
    ['/api', 'api'],
    ['/api/', 'api'],
    ['/api/x', 'api'],
    ['/api?q=1', 'api'],
    ['/apix', 'web'],
    ['/ap', 'web'],
    ['/x/api', 'web'],
  ]) {
    const r = await c.request(path)
    t.equal(r.body, `${who} GET ${path}`, `${path} -> ${who}`)
  }
})
