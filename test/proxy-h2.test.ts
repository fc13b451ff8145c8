// HTTP/2 (h2c, prior knowledge) through the proxy with node:http2 clients and servers: many
// streams multiplexed on one upstream connection, flow control (a slow reader holds neither the
// other streams nor memory), routing and header mutations on HTTP/2 requests, RST_STREAM and
// GOAWAY both ways, drain sends GOAWAY; and an HTTP/1.1 client (undici) to an HTTP/2 upstream.
import t from 'tap'
import { connect, createServer, type ClientHttp2Session, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { Pool } from 'undici'
import type { Route } from '../api/schema.ts'
import { startGrpcMesh } from './helpers/grpc.ts'
import { metrics } from './helpers/policy.ts'
import { makeConfig, startTestSidecar, until, type Teardown } from './helpers/sidecar.ts'
import { steady } from './helpers/wait.ts'

interface H2App {
  port: number
  server: Http2Server
  sessions: number
  /** request headers seen, in order */
  seen: IncomingHttpHeaders[]
}

/** A node:http2 h2c server; `handle` answers each stream (default: 200 "path"). */
async function startH2App(t: Teardown, handle?: (s: ServerHttp2Stream, h: IncomingHttpHeaders, app: H2App) => void): Promise<H2App> {
  const server = createServer()
  const app: H2App = { port: 0, server, sessions: 0, seen: [] }
  server.on('session', (s) => {
    app.sessions++
    s.on('error', () => {})
  })
  server.on('stream', (s: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    app.seen.push(h)
    s.on('error', () => {})
    if (handle !== undefined) return handle(s, h, app)
    s.respond({ ':status': 200, 'content-type': 'text/plain' })
    s.end('path ' + h[':path'])
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  app.port = (server.address() as AddressInfo).port
  const sessions = new Set<import('node:http2').ServerHttp2Session>()
  server.on('session', (s) => {
    sessions.add(s)
    s.on('close', () => sessions.delete(s))
  })
  t.teardown(() => {
    for (const s of sessions) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return app
}

function h2client(t: Teardown, port: number): ClientHttp2Session {
  const c = connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  t.teardown(() => c.destroy())
  return c
}

interface Got {
  headers: IncomingHttpHeaders
  body: Buffer
  trailers: IncomingHttpHeaders
  rstCode: number
}

function get(c: ClientHttp2Session, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Got> {
  const st = c.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, ':authority': 'app.test', ...headers }, { endStream: body === undefined })
  if (body !== undefined) st.end(body)
  return new Promise((resolve) => {
    let h: IncomingHttpHeaders = {}
    let tr: IncomingHttpHeaders = {}
    const parts: Buffer[] = []
    st.on('response', (x) => {
      h = x
    })
    st.on('trailers', (x) => {
      tr = x
    })
    st.on('data', (b: Buffer) => parts.push(b))
    st.on('error', () => {})
    st.on('close', () => resolve({ headers: h, body: Buffer.concat(parts), trailers: tr, rstCode: st.rstCode ?? 0 }))
  })
}

t.test('100 concurrent streams share one connection on each hop; bodies and trailers both ways', async (t) => {
  const app = await startH2App(t, (s, h) => {
    const parts: Buffer[] = []
    s.on('data', (b: Buffer) => parts.push(b))
    s.on('end', () => {
      s.respond({ ':status': 200, 'x-path': String(h[':path']) }, { waitForTrailers: true })
      s.on('wantTrailers', () => s.sendTrailers({ 'x-sum': String(Buffer.concat(parts).length) }))
      s.end(Buffer.concat(parts))
    })
  })
  const m = await startGrpcMesh(t, app.port)
  const c = h2client(t, m.client.port)
  const all = await Promise.all(Array.from({ length: 100 }, (_, i) => get(c, `/item/${i}`, {}, Buffer.alloc(1000 + i, i))))
  for (let i = 0; i < 100; i++) {
    if (Number(all[i].headers[':status']) !== 200 || all[i].body.length !== 1000 + i || all[i].trailers['x-sum'] !== String(1000 + i) || all[i].headers['x-path'] !== `/item/${i}`) {
      t.fail(`stream ${i}: ${JSON.stringify({ h: all[i].headers, n: all[i].body.length, tr: all[i].trailers })}`)
    }
  }
  t.equal(app.seen.length, 100, 'the app saw every request')
  t.equal(app.sessions, 1, 'the app saw one connection')
  t.equal((await m.server.adminJson('/stats')).listeners[0].cxTotal, 1, 'the server sidecar saw one connection')
  const cl = (await m.client.adminJson('/clusters')).clusters[0]
  t.equal(cl.protocol, 'http2')
  t.match(cl.endpoints[0].http2, { open: 1, sessions: 1, connectFailures: 0, goaways: 0 }, '/clusters shows the shared session')
  t.equal(cl.endpoints[0].requests, 100)
  t.equal(app.seen[0]['x-forwarded-proto'], 'http')
  t.ok(app.seen[0]['x-request-id'], 'x-request-id generated')
  const mc = await metrics(m.client)
  t.equal(mc.requests({ request_protocol: 'http2', response_code: '200' }), 100)
})

t.test('flow control: a stream whose reader stalls holds neither the other streams nor unbounded memory', async (t) => {
  const BIG = 32 * 1024 * 1024
  let bigWritten = 0
  let bigDone = false
  const app = await startH2App(t, (s, h) => {
    if (h[':path'] !== '/big') {
      s.respond({ ':status': 200 })
      s.end('small')
      return
    }
    s.respond({ ':status': 200 })
    const chunk = Buffer.alloc(64 * 1024, 7)
    const pump = (): void => {
      while (bigWritten < BIG) {
        bigWritten += chunk.length
        if (!s.write(chunk)) return void s.once('drain', pump)
      }
      bigDone = true
      s.end()
    }
    pump()
  })
  const m = await startGrpcMesh(t, app.port)
  const c = h2client(t, m.client.port)
  const big = c.request({ ':path': '/big', ':authority': 'app.test' })
  let got = 0
  let stalled = false
  big.on('data', (b: Buffer) => {
    got += b.length
    if (got > 256 * 1024 && !stalled) {
      stalled = true
      big.pause() // the reader stops
    }
  })
  await until('the first bytes', () => got > 256 * 1024)
  // held back: the app has written nothing more for 100 ms (a negative has no event: the quiet
  // time is the window; an app never held back writes all of BIG and fails below)
  const written = await steady('the app held back', () => bigWritten, 100)
  t.ok(written < 8 * 1024 * 1024, `the app is held back while the client does not read (${written} of ${BIG} bytes written)`)
  const small = await Promise.race([get(c, '/small'), new Promise<null>((r) => setTimeout(() => r(null), 3000))])
  t.equal(small?.body.toString(), 'small', 'another stream on the same connections goes through')
  const done = new Promise((resolve) => big.on('end', resolve))
  big.resume()
  await done
  t.equal(got, BIG, 'the slow stream gets every byte once it reads')
  t.ok(bigDone)
})

t.test('routing on HTTP/2 requests: header match, rewrite, header mutations, direct response', async (t) => {
  const app = await startH2App(t)
  const routes = (c: string): Route[] => [
    { match: { path: { prefix: '/direct' } }, directResponse: { status: 418, body: 'teapot' } },
    {
      match: { path: { prefix: '/v1' }, headers: [{ name: 'x-canary', exact: 'yes' }] },
      rewrite: { pathPrefix: '/canary' },
      requestHeaders: { set: { 'x-set': 'on' }, remove: ['x-secret'] },
      responseHeaders: { add: { 'x-from': 'weft' } },
      backends: [{ cluster: c }],
    },
    { backends: [{ cluster: c }] },
  ]
  const m = await startGrpcMesh(t, app.port, { clientRoutes: routes })
  const c = h2client(t, m.client.port)
  const d = await get(c, '/direct')
  t.equal(Number(d.headers[':status']), 418)
  t.equal(d.body.toString(), 'teapot')
  const canary = await get(c, '/v1/x', { 'x-canary': 'yes', 'x-secret': 's' })
  t.equal(canary.body.toString(), 'path /canary/x')
  t.equal(canary.headers['x-from'], 'weft')
  const seen = app.seen[app.seen.length - 1]
  t.equal(seen['x-set'], 'on')
  t.equal(seen['x-secret'], undefined)
  const plain = await get(c, '/v1/x')
  t.equal(plain.body.toString(), 'path /v1/x')
  t.equal(plain.headers['x-from'], undefined)
})

t.test('RST_STREAM both ways and GOAWAY from the upstream', async (t) => {
  let cancelledAtApp = 0
  const app = await startH2App(t, (s, h) => {
    if (h[':path'] === '/reset') return void s.close(0x2 /* INTERNAL_ERROR */)
    if (h[':path'] === '/hang') {
      s.on('close', () => cancelledAtApp++)
      return
    }
    if (h[':path'] === '/goaway') {
      s.respond({ ':status': 200 })
      s.end('bye')
      s.session?.goaway()
      return
    }
    s.respond({ ':status': 200 })
    s.end('ok')
  })
  const m = await startGrpcMesh(t, app.port)
  const c = h2client(t, m.client.port)
  const r = await get(c, '/reset')
  t.equal(Number(r.headers[':status']), 502, 'a reset before the response: 502')
  t.equal(r.headers['x-weft-response-flags'], 'UC')

  const hang = c.request({ ':path': '/hang', ':authority': 'app.test' })
  hang.on('error', () => {})
  await until('the app has the stream', () => app.seen.some((h) => h[':path'] === '/hang'))
  hang.close(0x8 /* CANCEL */)
  await until('the cancel reached the app', () => cancelledAtApp > 0)
  t.equal(cancelledAtApp, 1, 'the client\'s RST_STREAM closed the app\'s stream, once')

  const g = await get(c, '/goaway')
  t.equal(g.body.toString(), 'bye')
  const after = await get(c, '/after')
  t.equal(after.body.toString(), 'ok', 'after the upstream GOAWAY new streams go on a new connection')
  t.equal(app.sessions, 2)
})

t.test('drain sends GOAWAY to HTTP/2 clients; the stream in flight finishes', async (t) => {
  const held: { release: (() => void) | null } = { release: null }
  const app = await startH2App(t, (s) => {
    held.release = () => {
      s.respond({ ':status': 200 })
      s.end('done')
    }
  })
  const config = makeConfig({ routes: [{ backends: [{ cluster: 'app' }] }], clusters: [{ name: 'app', protocol: 'http2', endpoints: [{ address: '127.0.0.1', port: app.port }] }] })
  const s = await startTestSidecar(t, config)
  const c = h2client(t, s.port)
  let goaway = false
  c.on('goaway', () => {
    goaway = true
  })
  const inflight = get(c, '/slow')
  await until('the app has the stream', () => held.release !== null)
  const drained = s.sidecar.drain(5000, 0)
  await until('GOAWAY', () => goaway)
  held.release!()
  t.equal((await inflight).body.toString(), 'done', 'the stream in flight completed')
  t.equal((await drained).timedOut, false)
})

t.test('HTTP/1.1 client to an HTTP/2 upstream', async (t) => {
  const app = await startH2App(t, (s, h) => {
    const parts: Buffer[] = []
    s.on('data', (b: Buffer) => parts.push(b))
    s.on('end', () => {
      const body = Buffer.concat(parts)
      if (h[':path'] === '/trailers') {
        s.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true })
        s.on('wantTrailers', () => s.sendTrailers({ 'x-checksum': 'abc' }))
        s.write('part1-')
        s.end('part2')
        return
      }
      s.respond({ ':status': 201, 'x-method': String(h[':method']), 'x-authority': String(h[':authority']), 'content-length': String(body.length) })
      s.end(body)
    })
  })
  const config = makeConfig({ routes: [{ backends: [{ cluster: 'app' }] }], clusters: [{ name: 'app', protocol: 'http2', endpoints: [{ address: '127.0.0.1', port: app.port }] }] })
  const s = await startTestSidecar(t, config)
  const pool = new Pool(`http://127.0.0.1:${s.port}`)
  t.teardown(() => pool.close())
  const post = await pool.request({ path: '/echo', method: 'POST', headers: { host: 'app.test' }, body: 'hello h2' })
  t.equal(post.statusCode, 201)
  t.equal(await post.body.text(), 'hello h2')
  t.equal(post.headers['x-method'], 'POST')
  t.equal(post.headers['x-authority'], 'app.test', 'Host becomes :authority')
  const chunked = await pool.request({ path: '/echo', method: 'POST', headers: { host: 'app.test' }, body: Readable.from([Buffer.from('a'.repeat(10000)), Buffer.from('b'.repeat(10000))]) })
  t.equal((await chunked.body.text()).length, 20000, 'a chunked request body arrives de-framed')
  const tr = await pool.request({ path: '/trailers', method: 'GET', headers: { host: 'app.test' } })
  t.equal(tr.headers['transfer-encoding'], 'chunked', 'no content-length: chunked to the HTTP/1.1 client')
  t.equal(await tr.body.text(), 'part1-part2')
  t.equal(tr.trailers['x-checksum'], 'abc', 'trailers as chunked trailers')
  for (let i = 0; i < 20; i++) {
    const r = await pool.request({ path: '/echo', method: 'GET', headers: { host: 'app.test' } })
    await r.body.text()
  }
  t.equal(app.sessions, 1, 'every HTTP/1 request went on one HTTP/2 connection')
})

t.test('HTTP/2 client to an HTTP/1.1 upstream', async (t) => {
  const { createServer: createH1 } = await import('node:http')
  const seen: { method?: string; url?: string; host?: string; body: string }[] = []
  const h1 = createH1((req, res) => {
    let body = ''
    req.on('data', (b: Buffer) => (body += b))
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, host: req.headers.host, body })
      res.writeHead(200, { 'content-type': 'text/plain', 'x-h1': 'yes' })
      res.end(`h1 ${req.method} ${req.url} ${body.length}`)
    })
  })
  await new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    h1.closeAllConnections()
    return new Promise<void>((resolve) => h1.close(() => resolve()))
  })
  const port = (h1.address() as AddressInfo).port
  const config = makeConfig({ routes: [{ backends: [{ cluster: 'app' }] }], clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port }] }] })
  const s = await startTestSidecar(t, config)
  const c = h2client(t, s.port)
  const g = await get(c, '/x?y=1')
  t.equal(Number(g.headers[':status']), 200)
  t.equal(g.headers['x-h1'], 'yes')
  t.equal(g.body.toString(), 'h1 GET /x?y=1 0')
  const p = await get(c, '/post', {}, Buffer.alloc(100000, 1))
  t.equal(p.body.toString(), 'h1 POST /post 100000', 'a request body streamed to the HTTP/1 upstream')
  t.equal(seen[0].host, 'app.test', ':authority becomes Host')
})

t.test('limits.maxHeaders bounds an HTTP/2 request head too', async (t) => {
  const app = await startH2App(t)
  const config = makeConfig({ limits: { maxHeaders: 10 }, routes: [{ backends: [{ cluster: 'app' }] }], clusters: [{ name: 'app', protocol: 'http2', endpoints: [{ address: '127.0.0.1', port: app.port }] }] })
  const s = await startTestSidecar(t, config)
  const c = h2client(t, s.port)
  const ok = await get(c, '/few', { 'x-a': '1' })
  t.equal(Number(ok.headers[':status']), 200)
  const many: Record<string, string> = {}
  for (let i = 0; i < 30; i++) many[`x-h${i}`] = String(i)
  const r = await get(h2client(t, s.port), '/many', many)
  t.not(Number(r.headers[':status']), 200, `refused (status ${r.headers[':status']}, rst ${r.rstCode})`)
  t.equal(app.seen.filter((h) => h[':path'] === '/many').length, 0, 'never forwarded')
})

t.test('listener protocol: http2 serves HTTP/2 without detection; HTTP/1 bytes get no HTTP answer', async (t) => {
  const app = await startH2App(t)
  const config = makeConfig({ routes: [{ backends: [{ cluster: 'app' }] }], clusters: [{ name: 'app', protocol: 'http2', endpoints: [{ address: '127.0.0.1', port: app.port }] }] })
  config.listeners[0].protocol = 'http2'
  const s = await startTestSidecar(t, config)
  const c = h2client(t, s.port)
  const r = await get(c, '/only-h2')
  t.equal(r.body.toString(), 'path /only-h2')
  const { sendRaw } = await import('./helpers/raw.ts')
  const raw = await sendRaw(s.port, 'GET / HTTP/1.1\r\nhost: a\r\n\r\n')
  t.notMatch(raw.text, /^HTTP\/1\.1/, 'not answered as HTTP/1')
  const st = (await s.adminJson('/stats')).listeners[0]
  t.same(st.detections, { http1: 0, http2: 0, tcp: 0, tcpServerFirst: 0, none: 0 }, 'no detection ran')
})

t.test('HTTP/1.1 client, HTTP/2 cluster that refuses connections: 503 UF, retried on connect-failure', async (t) => {
  const { freePort } = await import('./helpers/sidecar.ts')
  const dead = await freePort()
  const app = await startH2App(t)
  const config = makeConfig({
    routes: [{ backends: [{ cluster: 'app' }], retry: { attempts: 1, on: ['connect-failure'], backoff: { base: '1ms' } } }],
    clusters: [{ name: 'app', protocol: 'http2', endpoints: [{ address: '127.0.0.1', port: dead }, { address: '127.0.0.1', port: app.port }] }],
  })
  const s = await startTestSidecar(t, config)
  const pool = new Pool(`http://127.0.0.1:${s.port}`)
  t.teardown(() => pool.close())
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) {
    const r = await pool.request({ path: '/r', method: 'GET', headers: { host: 'app.test' } })
    await r.body.text()
    statuses.push(r.statusCode)
  }
  t.same(statuses, [200, 200, 200, 200], 'the try on the dead endpoint is retried on the live one')
  const mc = await metrics(s)
  t.ok(mc.decision('retry') >= 1, `retries counted (${mc.decision('retry')})`)

  const only = makeConfig({ routes: [{ backends: [{ cluster: 'app' }] }], clusters: [{ name: 'app', protocol: 'http2', endpoints: [{ address: '127.0.0.1', port: dead }] }] })
  const s2 = await startTestSidecar(t, only)
  const p2 = new Pool(`http://127.0.0.1:${s2.port}`)
  t.teardown(() => p2.close())
  const r = await p2.request({ path: '/r', method: 'GET', headers: { host: 'app.test' } })
  t.equal(r.statusCode, 503)
  t.equal(r.headers['x-weft-response-flags'], 'UF')
  t.match(await r.body.text(), /WEFT_ERR_UPSTREAM_CONNECT/)
})
