// Routing through the sidecar: virtual hosts by Host, route matching (path, method, headers,
// query), weighted splits, header mutations, prefix rewrites, direct responses, and the load
// balancing policies as seen from the upstreams.
import t, { type Test } from 'tap'
import { Pool } from 'undici'
import { rawClient } from './helpers/raw.ts'
import { cluster, listenerStats, makeConfig, routeTo, sleep, startTestSidecar, until, type TestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream, startRawUpstream, type HttpUpstream } from './helpers/upstream.ts'
import type { Cluster, Route } from '../api/schema.ts'

function pool(t: Test, port: number, connections = 4): Pool {
  const p = new Pool(`http://127.0.0.1:${port}`, { connections })
  t.teardown(() => p.destroy())
  return p
}

/** GET through `p` with headers; status, body, headers. */
async function get(p: Pool, path: string, headers: Record<string, string> = {}, method = 'GET') {
  const r = await p.request({ method: method as 'GET', path, headers })
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers }
}

/** A direct-response route answering its own name. */
function named(name: string, match?: Route['match']): Route {
  const r: Route = { name, directResponse: { status: 200, body: name } }
  if (match !== undefined) r.match = match
  return r
}

t.test('virtual hosts by Host', async (t) => {
  const a = await startHttpUpstream(t, { name: 'reviews' })
  const b = await startHttpUpstream(t, { name: 'api' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      virtualHosts: [
        { name: 'reviews', service: { name: 'reviews', namespace: 'shop', port: 9080 }, routes: [routeTo('reviews')] },
        { name: 'api', domains: ['api.example.com', '*.wild.example.com'], routes: [routeTo('api')] },
      ],
      clusters: [cluster('reviews', [a.port]), cluster('api', [b.port])],
    }),
  )
  const c = await rawClient(t, s.port)
  const ask = async (host: string) => {
    await c.write(`GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    return c.response()
  }
  for (const host of [
    'reviews',
    'reviews:9080',
    'reviews.shop',
    'reviews.shop:9080',
    'reviews.shop.svc',
    'reviews.shop.svc:9080',
    'reviews.shop.svc.cluster.local',
    'reviews.shop.svc.cluster.local:9080',
    'Reviews.SHOP',
  ]) {
    const r = await ask(host)
    t.equal(r.body.toString(), 'reviews GET /x', `Host ${host} -> reviews`)
  }
  for (const host of ['api.example.com', 'api.example.com:80', 'x.wild.example.com', 'a.b.wild.example.com']) {
    const r = await ask(host)
    t.equal(r.body.toString(), 'api GET /x', `Host ${host} -> api`)
  }
  t.equal(a.requests.at(-1)!.header('host'), 'Reviews.SHOP', 'Host forwarded as sent')

  const before = (await listenerStats(s)).noRoute
  for (const host of ['unknown', 'reviews.other', 'wild.example.com', 'example.com']) {
    const r = await ask(host)
    t.equal(r.status, 404, `Host ${host} -> 404`)
    t.equal(r.get('x-weft-response-flags'), 'NR')
    t.equal(r.get('x-weft-error'), 'WEFT_ERR_NO_ROUTE')
  }
  t.notOk(c.done, 'a 404 keeps the connection')
  t.equal((await listenerStats(s)).noRoute - before, 4, '/stats noRoute counted')
  t.equal(a.requests.length + b.requests.length, 13)
})

t.test('route matching: path, method, headers, query, first match wins', async (t) => {
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        named('exact', { path: { exact: '/a/exact' } }),
        named('regex', { path: { regex: '/r/[0-9]+' } }),
        named('post-only', { path: { prefix: '/m' }, method: 'POST' }),
        named('hdr-exact', { path: { prefix: '/h' }, headers: [{ name: 'x-env', exact: 'prod' }] }),
        named('hdr-prefix', { path: { prefix: '/h' }, headers: [{ name: 'X-Env', prefix: 'stag' }] }),
        named('hdr-regex', { path: { prefix: '/h' }, headers: [{ name: 'x-env', regex: 'dev-[a-z]+' }] }),
        named('hdr-present', { path: { prefix: '/h' }, headers: [{ name: 'x-debug', present: true }] }),
        named('hdr-absent', { path: { prefix: '/h' }, headers: [{ name: 'x-user', present: false }] }),
        named('two-headers', { path: { prefix: '/both' }, headers: [{ name: 'x-a', exact: '1' }, { name: 'x-b', exact: '2' }] }),
        named('q-exact', { path: { prefix: '/q' }, queryParams: [{ name: 'v', exact: '2' }] }),
        named('q-prefix', { path: { prefix: '/q' }, queryParams: [{ name: 'name', prefix: 'jo' }] }),
        named('q-regex', { path: { prefix: '/q' }, queryParams: [{ name: 'id', regex: '[0-9]+' }] }),
        named('q-present', { path: { prefix: '/q' }, queryParams: [{ name: 'flag', present: true }] }),
        named('prefix-a', { path: { prefix: '/a' } }),
        named('first', { path: { prefix: '/fw' } }),
        named('second', { path: { exact: '/fw/x' } }),
        named('default'),
      ],
    }),
  )
  const p = pool(t, s.port, 1)
  const cases: [string, string, Record<string, string>, string][] = [
    ['GET', '/a/exact', {}, 'exact'],
    ['GET', '/a/exact?x=1', {}, 'exact'],
    ['GET', '/a/exact/', {}, 'prefix-a'],
    ['GET', '/a/exactly', {}, 'prefix-a'],
    ['GET', '/a', {}, 'prefix-a'],
    ['GET', '/r/123', {}, 'regex'],
    ['GET', '/r/123/x', {}, 'default'],
    ['GET', '/r/abc', {}, 'default'],
    ['GET', '/x/r/1', {}, 'default'],
    ['POST', '/m', {}, 'post-only'],
    ['GET', '/m', {}, 'default'],
    ['PUT', '/m/1', {}, 'default'],
    ['GET', '/h', { 'x-env': 'prod', 'x-user': 'u' }, 'hdr-exact'],
    ['GET', '/h', { 'x-env': 'production', 'x-user': 'u' }, 'default'],
    ['GET', '/h', { 'x-env': 'staging', 'x-user': 'u' }, 'hdr-prefix'],
    ['GET', '/h', { 'x-env': 'dev-abc', 'x-user': 'u' }, 'hdr-regex'],
    ['GET', '/h', { 'x-env': 'dev-abc1', 'x-user': 'u' }, 'default'],
    ['GET', '/h', { 'x-debug': '', 'x-user': 'u' }, 'hdr-present'],
    ['GET', '/h', {}, 'hdr-absent'],
    ['GET', '/h', { 'x-user': 'u' }, 'default'],
    ['GET', '/both', { 'x-a': '1', 'x-b': '2' }, 'two-headers'],
    ['GET', '/both', { 'x-a': '1' }, 'default'],
    ['GET', '/q?v=2', {}, 'q-exact'],
    ['GET', '/q?a=1&v=2', {}, 'q-exact'],
    ['GET', '/q?v=20', {}, 'default'],
    ['GET', '/q?name=john', {}, 'q-prefix'],
    ['GET', '/q?name=jo%20hn', {}, 'q-prefix'],
    ['GET', '/q?name=bob', {}, 'default'],
    ['GET', '/q?id=42', {}, 'q-regex'],
    ['GET', '/q?id=42a', {}, 'default'],
    ['GET', '/q?flag', {}, 'q-present'],
    ['GET', '/q?flag=', {}, 'q-present'],
    ['GET', '/q', {}, 'default'],
    ['GET', '/fw/x', {}, 'first'],
    ['GET', '/other', {}, 'default'],
  ]
  for (const [method, path, headers, want] of cases) {
    const r = await get(p, path, headers, method)
    t.equal(r.body, want, `${method} ${path} ${JSON.stringify(headers)} -> ${want}`)
  }
})

t.test('weighted split 80/20 across two clusters', async (t) => {
  const a = await startHttpUpstream(t, { name: 'a' })
  const b = await startHttpUpstream(t, { name: 'b' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [{ backends: [{ cluster: 'a', weight: 80 }, { cluster: 'b', weight: 20 }] }],
      clusters: [cluster('a', [a.port]), cluster('b', [b.port])],
    }),
  )
  const p = pool(t, s.port, 8)
  const N = 2000
  const counts = { a: 0, b: 0 }
  let next = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < N) {
        next++
        const r = await get(p, '/split')
        counts[r.body.split(' ')[0] as 'a' | 'b']++
      }
    }),
  )
  t.equal(counts.a + counts.b, N)
  // binomial(2000, 0.8): sd ~17.9; allow 5 sd
  t.ok(counts.a >= 1510 && counts.a <= 1690, `a got ${counts.a} of ${N} (expected ~1600)`)
  t.equal(a.requests.length, counts.a)
  t.equal(b.requests.length, counts.b)
})

t.test('request and response header mutations', async (t) => {
  const up = await startHttpUpstream(t, {
    handler: (_rec, res) => {
      res.setHeader('x-resp-set', 'orig')
      res.setHeader('x-resp-added', 'orig')
      res.setHeader('x-resp-remove', 'bye')
      res.setHeader('x-resp-keep', 'k')
      res.end('ok')
    },
  })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        routeTo('app', {
          requestHeaders: { add: { 'x-added': 'a' }, set: { 'X-Set': 's' }, remove: ['X-Remove'] },
          responseHeaders: { add: { 'x-resp-added': 'ra' }, set: { 'x-resp-set': 'rs' }, remove: ['x-resp-remove'] },
        }),
      ],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = await rawClient(t, s.port)
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\nX-Added: orig\r\nX-Set: orig\r\nx-set: orig2\r\nX-Remove: bye\r\nX-Keep: k\r\n\r\n')
  const r = await c.response()
  const rec = up.requests[0]
  t.same(rec.headerAll('x-added'), ['orig', 'a'], 'add appends')
  t.same(rec.headerAll('x-set'), ['s'], 'set replaces every value')
  t.same(rec.headerAll('x-remove'), [], 'remove drops')
  t.same(rec.headerAll('x-keep'), ['k'])
  t.same(r.all('x-resp-added'), ['orig', 'ra'])
  t.same(r.all('x-resp-set'), ['rs'])
  t.same(r.all('x-resp-remove'), [])
  t.same(r.all('x-resp-keep'), ['k'])
  t.equal(r.body.toString(), 'ok')
})

t.test('absolute-form request target: routed by its authority, Host replaced', async (t) => {
  const a = await startHttpUpstream(t, { name: 'a' })
  const b = await startHttpUpstream(t, { name: 'b' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      virtualHosts: [
        { name: 'a', domains: ['a.example'], routes: [routeTo('a')] },
        { name: 'b', domains: ['b.example'], routes: [routeTo('b')] },
      ],
      clusters: [cluster('a', [a.port]), cluster('b', [b.port])],
    }),
  )
  const c = await rawClient(t, s.port)
  await c.write('GET http://a.example/p?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n')
  const r = await c.response()
  t.equal(r.body.toString(), 'a GET /p?q=1', 'the target authority wins over Host')
  t.same(a.requests[0].headerAll('host'), ['a.example'], 'one Host: the target authority')
})

t.test('requestHeaders.set of Host replaces it (one Host upstream)', async (t) => {
  const up = await startHttpUpstream(t)
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { requestHeaders: { set: { host: 'rewritten.internal' } } })], clusters: [cluster('app', [up.port])] }),
  )
  const c = await rawClient(t, s.port)
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200)
  t.same(up.requests[0]?.headerAll('host'), ['rewritten.internal'])
})

t.test('header mutations cannot change message framing', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    // answer once the body is in too, whatever framing carried it (it may be unusable to parse)
    await until('the request and its body', () => /\r\n\r\n[\s\S]*hello/.test(conn.text()) || conn.done, 2000).catch(() => {})
    conn.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  })
  const config = makeConfig({
    routes: [
      routeTo('app', {
        requestHeaders: { set: { 'content-length': '0' }, add: { 'transfer-encoding': 'chunked' } },
        responseHeaders: { set: { 'content-length': '100' } },
      }),
    ],
    clusters: [cluster('app', [up.port])],
  })
  let s: TestSidecar
  try {
    s = await startTestSidecar(t, config)
  } catch (err) {
    t.match((err as Error).message, /content-length|transfer-encoding/i, 'rejected by the config loader')
    return
  }
  // accepted: the framing the proxy sends must still be unambiguous
  const c = await rawClient(t, s.port)
  await c.write('POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello')
  const framingOf = (text: string) =>
    text
      .split('\r\n\r\n')[0]
      .split('\r\n')
      .filter((l) => /^(content-length|transfer-encoding):/i.test(l))
      .map((l) => l.toLowerCase())
  await until('response head', () => c.text().includes('\r\n\r\n') || c.done, 1000).catch(() => {})
  t.same(framingOf(up.conns[0]?.text() ?? ''), ['content-length: 5'], 'upstream sees exactly the real framing')
  t.same(framingOf(c.text()), ['content-length: 2'], 'client sees exactly the real framing')
})

t.test('path prefix rewrite', async (t) => {
  const up = await startHttpUpstream(t)
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        routeTo('app', { match: { path: { prefix: '/api/v1' } }, rewrite: { pathPrefix: '/v2' } }),
        routeTo('app', { match: { path: { prefix: '/strip/' } }, rewrite: { pathPrefix: '/' } }),
        routeTo('app', { match: { path: { prefix: '/root' } }, rewrite: { pathPrefix: '/' } }),
        routeTo('app'),
      ],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const p = pool(t, s.port, 1)
  const cases: [string, string][] = [
    ['/api/v1/users?x=1', '/v2/users?x=1'],
    ['/api/v1', '/v2'],
    ['/api/v1/', '/v2/'],
    ['/api/v1?q=1', '/v2?q=1'],
    ['/strip/foo/bar', '/foo/bar'],
    ['/root/a', '/a'],
    ['/root', '/'],
    ['/untouched/x', '/untouched/x'],
  ]
  for (const [from, to] of cases) {
    const r = await get(p, from, { host: 'svc.local' })
    t.equal(r.body, `upstream GET ${to}`, `${from} -> ${to}`)
  }
  t.equal(up.requests[0].header('host'), 'svc.local', 'Host unchanged by a rewrite')
})

t.test('direct response', async (t) => {
  const up = await startHttpUpstream(t)
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        {
          match: { path: { prefix: '/maint' } },
          directResponse: { status: 503, body: 'down for maintenance\n', headers: { 'content-type': 'text/html', 'x-reason': 'maint' } },
        },
        { match: { path: { exact: '/empty' } }, directResponse: { status: 204 } },
        { match: { path: { exact: '/nobody' } }, directResponse: { status: 200 } },
        routeTo('app'),
      ],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = await rawClient(t, s.port)
  await c.write('GET /maint HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 503)
  t.equal(r.body.toString(), 'down for maintenance\n')
  t.equal(r.get('content-type'), 'text/html')
  t.equal(r.get('x-reason'), 'maint')
  t.equal(r.get('content-length'), '21')
  t.equal(r.get('x-weft-response-flags'), undefined, 'a configured reply is not flagged as an error')

  await c.write('HEAD /maint HTTP/1.1\r\nHost: svc\r\n\r\n')
  const h = await c.response({ head: true })
  t.equal(h.status, 503)
  t.equal(h.get('content-length'), '21')
  await c.write('GET /nobody HTTP/1.1\r\nHost: svc\r\n\r\n')
  const nb = await c.response()
  t.equal(nb.status, 200)
  t.equal(nb.get('content-length'), '0')
  t.equal(c.unread.length, 0, 'no body after HEAD')

  // a request body sent to a direct response is read and discarded; the next request is intact
  await c.write('POST /maint HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: svc\r\n\r\n')
  const [p1, p2] = await c.responses(2)
  t.equal(p1.status, 503)
  t.equal(p2.status, 200)
  t.equal(p2.body.toString(), 'upstream GET /after')
  t.same(up.requests.map((x) => x.url), ['/after'], 'only the routed request reached the upstream')

  await c.write('GET /empty HTTP/1.1\r\nHost: svc\r\n\r\n')
  const e = await c.response()
  t.equal(e.status, 204)
  t.notOk(c.done)
})

// ---- load balancing through the proxy ------------------------------------------------------------

async function lbSetup(t: Test, lb: Cluster['lb'], ups: HttpUpstream[]): Promise<TestSidecar> {
  return startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', ups.map((u) => u.port), { lb })] }))
}

t.test('roundRobin alternates evenly across 2 endpoints', async (t) => {
  const ups = [await startHttpUpstream(t, { name: 'e0' }), await startHttpUpstream(t, { name: 'e1' })]
  const s = await lbSetup(t, { policy: 'roundRobin' }, ups)
  const p = pool(t, s.port, 1)
  const seq: string[] = []
  for (let i = 0; i < 100; i++) seq.push((await get(p, '/rr')).body.split(' ')[0])
  t.equal(seq.filter((x) => x === 'e0').length, 50)
  t.equal(seq.filter((x) => x === 'e1').length, 50)
  t.ok(seq.every((x, i) => i === 0 || x !== seq[i - 1]), 'strictly alternating')
  const v = await s.adminJson('/clusters')
  t.same(v.clusters[0].endpoints.map((e: { requests: number }) => e.requests), [50, 50], '/clusters counts 50/50')
})

for (const policy of ['ringHash', 'maglev'] as const) {
  t.test(`${policy} with hashHeader: same key, same endpoint`, async (t) => {
    const ups = [
      await startHttpUpstream(t, { name: 'e0' }),
      await startHttpUpstream(t, { name: 'e1' }),
      await startHttpUpstream(t, { name: 'e2' }),
    ]
    const s = await lbSetup(t, { policy, hashHeader: 'X-User' }, ups)
    const p = pool(t, s.port, 4)
    const where = new Map<string, Set<string>>()
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const user = `user-${i}`
          const r = await get(p, '/h', { 'x-user': user })
          const e = r.body.split(' ')[0]
          if (!where.has(user)) where.set(user, new Set())
          where.get(user)!.add(e)
        }),
      )
    }
    const sticky = [...where.values()].every((set) => set.size === 1)
    t.ok(sticky, 'every user always went to one endpoint')
    const used = new Set([...where.values()].flatMap((set) => [...set]))
    t.ok(used.size >= 2, `keys spread over endpoints (${[...used].join(',')})`)
    // the header name is matched case-insensitively; a request without it still gets an answer
    const r = await get(p, '/nokey')
    t.equal(r.status, 200)
  })
}

/** A fast and a slow (50 ms) endpoint; 4 concurrent workers, 200 requests. */
async function fastSlow(t: Test, policy: 'leastRequest' | 'peakEwma') {
  const fast = await startHttpUpstream(t, { name: 'fast' })
  const slow = await startHttpUpstream(t, {
    name: 'slow',
    handler: async (rec, res) => {
      await sleep(50) // kept: the slow endpoint's latency is what the balancer must notice
      res.end(`slow ${rec.method} ${rec.url}`)
    },
  })
  const s = await lbSetup(t, { policy }, [fast, slow])
  const p = pool(t, s.port, 4)
  const counts = { fast: 0, slow: 0 }
  let n = 0
  const start = Date.now()
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (n < 200 && Date.now() - start < 8000) {
        n++
        const r = await get(p, '/lb')
        counts[r.body.split(' ')[0] as 'fast' | 'slow']++
      }
    }),
  )
  return counts
}

for (const policy of ['leastRequest', 'peakEwma'] as const) {
  t.test(`${policy} spreads traffic and avoids a slow endpoint`, async (t) => {
    const counts = await fastSlow(t, policy)
    const total = counts.fast + counts.slow
    t.ok(counts.slow >= 1, `slow endpoint tried (${counts.slow})`)
    t.ok(counts.fast >= 0.75 * total, `most requests went to the fast endpoint (${counts.fast}/${total})`)
  })
}
