// An HTTP/2 client (node:http2) to an HTTP/1.1 cluster goes through the endpoint's HTTP/1 pool,
// the same pool HTTP/1 clients use (not an adapter with a pool of its own): its connections are
// the pool's (counted in /clusters, reused across streams and with HTTP/1 clients), request
// bodies are framed by their length or chunked, a chunked response's trailers reach the client,
// and an upstream that breaks off answers 502 UC before the head and resets the stream after it.
import t from 'tap'
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2'
import { Pool } from 'undici'
import { cluster, makeConfig, routeTo, startTestSidecar, type Teardown } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

interface Got {
  status: number
  headers: IncomingHttpHeaders
  trailers: IncomingHttpHeaders | null
  body: string
  /** the stream's RST_STREAM code when it was reset, else 0 */
  rst: number
}

function h2client(t: Teardown, port: number): ClientHttp2Session {
  const c = connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  t.teardown(() => c.destroy())
  return c
}

/** One request; `body`: written in the given pieces (none: END_STREAM with the headers). */
function h2req(c: ClientHttp2Session, path: string, method = 'GET', body: string[] | null = null, extra: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve) => {
    const st = c.request({ ':method': method, ':path': path, ':authority': 'app.test', ...extra }, { endStream: body === null })
    const got: Got = { status: 0, headers: {}, trailers: null, body: '', rst: 0 }
    st.on('response', (h) => {
      got.headers = h
      got.status = Number(h[':status'])
    })
    st.on('trailers', (h) => (got.trailers = h))
    st.setEncoding('utf8')
    st.on('data', (d: string) => (got.body += d))
    st.on('error', () => {})
    st.on('close', () => {
      got.rst = st.rstCode ?? 0
      resolve(got)
    })
    if (body !== null) {
      for (const piece of body) st.write(piece)
      st.end()
    }
  })
}

t.test('HTTP/2 streams to an HTTP/1 cluster use the endpoint pool: one connection, reused across streams and shared with HTTP/1 clients', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = h2client(t, s.port)
  for (let i = 0; i < 5; i++) {
    const r = await h2req(c, `/a${i}`)
    t.equal(r.status, 200)
    t.equal(r.body, `app GET /a${i}`)
  }
  t.equal(up.connections, 1, 'five streams, one after the other, on one upstream connection')
  t.same(up.requests.map((r) => r.httpVersion), ['1.1', '1.1', '1.1', '1.1', '1.1'], 'as HTTP/1.1 requests')
  t.equal(up.requests[0]!.header('host'), 'app.test', ':authority becomes Host')
  const h1 = new Pool(`http://127.0.0.1:${s.port}`, { connections: 1 })
  t.teardown(() => h1.close())
  const r = await h1.request({ path: '/h1', method: 'GET', headers: { host: 'app.test' } })
  t.equal(await r.body.text(), 'app GET /h1')
  t.equal(up.connections, 1, 'an HTTP/1 client gets the same warm connection')
  const ep = (await s.adminJson('/clusters')).clusters[0].endpoints[0]
  t.equal(ep.connections.total, 1, '/clusters counts the connection in the endpoint pool')
  t.equal(ep.connections.idle, 1, 'idle in the pool after the responses')
  t.equal(ep.requests, 6, 'every request dispatched to the endpoint')
})

t.test('request bodies framed by their length or chunked; a chunked response with trailers reaches the HTTP/2 client whole', async (t) => {
  const up = await startHttpUpstream(t, {
    name: 'app',
    handler: (rec, res) => {
      if (rec.url === '/trailers') {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' })
        res.write('part1 ')
        res.addTrailers({ 'x-sum': 'abc' })
        res.end('part2')
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`${rec.method} ${rec.url} ${rec.body.toString()}`)
    },
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = h2client(t, s.port)

  const withLength = await h2req(c, '/len', 'POST', ['hel', 'lo'], { 'content-length': '5' })
  t.equal(withLength.body, 'POST /len hello')
  t.equal(up.requests[0]!.header('content-length'), '5', 'the client length goes on')
  t.equal(up.requests[0]!.header('transfer-encoding'), undefined)

  const noLength = await h2req(c, '/chunked', 'POST', ['piece one, ', 'piece two'])
  t.equal(noLength.body, 'POST /chunked piece one, piece two')
  t.equal(up.requests[1]!.header('transfer-encoding'), 'chunked', 'no length: chunked')
  t.equal(up.requests[1]!.header('content-length'), undefined)

  const empty = await h2req(c, '/empty', 'POST')
  t.equal(empty.body, 'POST /empty ')
  t.equal(up.requests[2]!.header('content-length'), '0', 'an empty POST says content-length: 0')

  const tr = await h2req(c, '/trailers')
  t.equal(tr.status, 200)
  t.equal(tr.body, 'part1 part2')
  t.equal(tr.headers['transfer-encoding'], undefined, 'no HTTP/1 framing field on HTTP/2')
  t.equal(tr.trailers?.['x-sum'], 'abc', 'the chunked trailers arrive as HTTP/2 trailers')
  t.equal(up.connections, 1, 'all on one pooled connection')
})

t.test('an HTTP/1 upstream that breaks off: 502 UC before the head, the stream reset after it', async (t) => {
  const up = await startHttpUpstream(t, {
    name: 'app',
    onRequest: (req, res) => {
      if (req.url === '/before') {
        req.socket.destroy()
        return
      }
      res.writeHead(200, { 'content-length': '100' })
      res.write('only part of it')
      setImmediate(() => req.socket.destroy())
    },
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = h2client(t, s.port)
  const before = await h2req(c, '/before')
  t.equal(before.status, 502)
  t.equal(before.headers['x-weft-response-flags'], 'UC')
  t.equal(before.headers['x-weft-error'], 'WEFT_ERR_UPSTREAM_RESET')
  const after = await h2req(c, '/after')
  t.equal(after.status, 200, 'the head was relayed')
  t.not(after.rst, 0, 'then the stream is reset: a cut-off body never looks complete')
  t.ok(after.body.length < 100, 'not the whole body')
  const v = (await s.adminJson('/clusters')).clusters[0].endpoints[0]
  t.equal(v.activeRequests, 0, 'nothing left active')
})
