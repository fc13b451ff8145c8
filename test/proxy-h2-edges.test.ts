// HTTP/2 edge cases found in review: responses node:http2 will not send (they must be a 502, not a
// crash of the proxy), a response that ends before its request (the upstream stream must not stay
// half open on the shared session), and grpc-timeout values over 8 digits.
import t from 'tap'
import { connect, createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { Route } from '../api/schema.ts'
import { grpcTimeoutValue } from '../proxy/h2/exchange.ts'
import { startGrpcMesh } from './helpers/grpc.ts'
import { startRawUpstream } from './helpers/upstream.ts'
import { until, type Teardown } from './helpers/sidecar.ts'

async function h2app(t: Teardown, handle: (s: ServerHttp2Stream, h: IncomingHttpHeaders) => void) {
  const server = createServer()
  const streams: ServerHttp2Stream[] = []
  server.on('session', (s) => s.on('error', () => {}))
  server.on('stream', (s: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    streams.push(s)
    s.on('error', () => {})
    handle(s, h)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { port: (server.address() as AddressInfo).port, streams, server }
}

function request(port: number, t: Teardown, path: string, body?: { write: Buffer; end: boolean }) {
  const c = connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  t.teardown(() => c.destroy())
  const st = c.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, ':authority': 'app.test' }, { endStream: body === undefined })
  if (body !== undefined) {
    st.write(body.write)
    if (body.end) st.end()
  }
  return new Promise<{ status: number; headers: IncomingHttpHeaders; body: string; trailers: IncomingHttpHeaders }>((resolve, reject) => {
    let headers: IncomingHttpHeaders = {}
    let trailers: IncomingHttpHeaders = {}
    let text = ''
    st.on('response', (h) => (headers = h))
    st.on('trailers', (h) => (trailers = h))
    st.on('data', (b: Buffer) => (text += b.toString()))
    st.on('end', () => resolve({ status: Number(headers[':status']), headers, body: text, trailers }))
    st.on('error', reject)
  })
}

t.test('a route adding a single-value field the upstream also sends: replaced, not a crash', async (t) => {
  const app = await h2app(t, (s) => {
    s.respond({ ':status': 200, 'x-content-type-options': 'sniff', 'content-type': 'text/plain' })
    s.end('ok')
  })
  const m = await startGrpcMesh(t, app.port, {
    serverRoutes: (c) => [{ backends: [{ cluster: c }], responseHeaders: { add: { 'x-content-type-options': 'nosniff', 'content-type': 'text/html' } } }],
  })
  for (let i = 0; i < 2; i++) {
    const r = await request(m.client.port, t, '/x')
    t.equal(r.status, 200, 'answered (the proxy is alive)')
    t.equal(r.headers['x-content-type-options'], 'nosniff')
    t.equal(r.headers['content-type'], 'text/html')
    t.equal(r.body, 'ok')
  }
})

t.test('an HTTP/1 upstream answering a status HTTP/2 cannot carry: 502 UPE, and the proxy goes on', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    await until('request', () => conn.text().includes('\r\n\r\n'))
    conn.write(conn.text().startsWith('GET /bad') ? 'HTTP/1.1 600 Weird\r\ncontent-length: 2\r\n\r\nno' : 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
  })
  const m = await startGrpcMesh(t, up.port, { appProtocol: 'http1' })
  const bad = await request(m.client.port, t, '/bad')
  t.equal(bad.status, 502)
  t.equal(bad.headers['x-weft-response-flags'], 'UPE')
  const good = await request(m.client.port, t, '/good')
  t.equal(good.status, 200, 'the proxy is still serving')
  t.equal(good.body, 'ok')
})

t.test('a response that ends before its request: the upstream stream is cancelled, the client gets its answer', async (t) => {
  const app = await h2app(t, (s) => {
    s.once('data', () => {
      // answers after the first bytes and stops reading (as a server rejecting an upload)
      s.respond({ ':status': 413 }, { endStream: true })
    })
  })
  const m = await startGrpcMesh(t, app.port)
  const r = await request(m.client.port, t, '/upload', { write: Buffer.alloc(1024, 1), end: false })
  t.equal(r.status, 413)
  // the server sidecar's upstream stream did not stay half open on the app's session
  await until('app stream closed', () => app.streams.some((s) => s.closed), 3000)
  t.same(app.streams.map((s) => s.closed), [true], 'the app saw its one stream closed')
})

t.test('grpc-timeout values stay within 8 digits', async (t) => {
  t.equal(grpcTimeoutValue(250), '250m')
  t.equal(grpcTimeoutValue(0.2), '1m', 'at least 1')
  t.equal(grpcTimeoutValue(99_999_999), '99999999m')
  t.equal(grpcTimeoutValue(30 * 3600 * 1000), '108000S', '30 h in seconds')
  t.equal(grpcTimeoutValue(2 ** 31), '2147484S')
  t.equal(grpcTimeoutValue(1e12), '277778H')
  t.equal(grpcTimeoutValue(1e15), '99999999H', 'capped')
  for (const ms of [1, 1e3, 1e6, 1e8, 1e9, 1e12, 1e15]) t.match(grpcTimeoutValue(ms), /^\d{1,8}[mSH]$/)
})

t.test('a stream the upstream refuses (REFUSED_STREAM, as in a GOAWAY race) is sent again once, without a retry policy', async (t) => {
  const { constants } = await import('node:http2')
  let n = 0
  const app = await h2app(t, (s) => {
    n++
    if (n === 1) return s.close(constants.NGHTTP2_REFUSED_STREAM)
    s.respond({ ':status': 200 })
    s.end('second time')
  })
  const m = await startGrpcMesh(t, app.port)
  const r = await request(m.client.port, t, '/x')
  t.equal(r.status, 200)
  t.equal(r.body, 'second time')
  t.equal(n, 2, 'the app saw the request twice')
  // refused every time: sent again once, then the 502
  n = -100
  const app2 = await h2app(t, (s) => {
    n++
    s.close(constants.NGHTTP2_REFUSED_STREAM)
  })
  const m2 = await startGrpcMesh(t, app2.port)
  const r2 = await request(m2.client.port, t, '/y')
  t.equal(r2.status, 502)
  t.equal(n, -98, 'two tries, no more')
})

t.test('a redirect or direct response whose route adds a field it already sets: answered, and counted', async (t) => {
  const app = await h2app(t, (s) => {
    s.respond({ ':status': 200 })
    s.end('app')
  })
  const m = await startGrpcMesh(t, app.port, {
    clientRoutes: (): Route[] => [
      { match: { path: { prefix: '/old' } }, redirect: { path: '/new' }, responseHeaders: { add: { location: '/elsewhere' } } },
      { directResponse: { status: 200, body: 'direct' }, responseHeaders: { add: { 'content-type': 'text/html' } } },
    ],
  })
  const r = await request(m.client.port, t, '/old/x')
  t.ok(r.status >= 300 && r.status < 400, `a redirect (${r.status})`)
  t.equal(typeof r.headers.location, 'string')
  const d = await request(m.client.port, t, '/x')
  t.equal(d.status, 200)
  t.equal(d.body, 'direct')
  t.equal(d.headers['content-type'], 'text/html')
})
