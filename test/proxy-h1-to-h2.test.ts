// An HTTP/1.1 client to a `protocol: http2` cluster: the HTTP/1 exchange opens the stream on the
// endpoint's session itself (no adapter re-reading its serialized head). What the HTTP/2 app and
// the client see: a chunked request body de-framed into DATA (the HTTP/1 mirror still gets it
// framed, with the same request id), a response without content-length sent chunked with the
// app's trailers as chunked trailers, keep-alive across requests, and a retried request sent again
// whole from the kept body.
import t from 'tap'
import { createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { cluster, makeConfig, routeTo, startTestSidecar, until, type Teardown } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { rawClient } from './helpers/raw.ts'

interface Seen {
  headers: IncomingHttpHeaders
  body: string
}

/** An h2c app that reads each request whole, then answers (status from `statusFor`) with the body echoed and a trailer. */
async function startH2App(t: Teardown, statusFor: (n: number) => number = () => 200): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = []
  const server = createServer()
  server.on('session', (s) => s.on('error', () => {}))
  server.on('stream', (st: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    st.on('error', () => {})
    const parts: Buffer[] = []
    st.on('data', (b: Buffer) => parts.push(b))
    st.on('end', () => {
      const body = Buffer.concat(parts).toString()
      seen.push({ headers: h, body })
      st.respond({ ':status': statusFor(seen.length), 'content-type': 'text/plain' }, { waitForTrailers: true })
      st.on('wantTrailers', () => st.sendTrailers({ 'x-sum': String(body.length) }))
      st.end(`h2 app got ${h[':method']} ${h[':path']} ${body}`)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { port: (server.address() as AddressInfo).port, seen }
}

t.test('a chunked HTTP/1 request to an HTTP/2 cluster: DATA de-framed for the app, the mirror gets it framed, the response chunked with its trailers', async (t) => {
  const app = await startH2App(t)
  const shadow = await startHttpUpstream(t, { name: 'shadow' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { mirror: { cluster: 'shadow' } })],
      clusters: [cluster('app', [app.port], { protocol: 'http2' }), cluster('shadow', [shadow.port])],
    }),
  )
  const c = await rawClient(t, s.port)
  await c.write('POST /up HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n')
  t.equal((await c.response()).status, 100, 'the proxy answers Expect itself')
  await c.write('6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200)
  t.equal(r.body.toString(), 'h2 app got POST /up hello world')
  t.equal(r.get('transfer-encoding'), 'chunked', 'no length from the app: chunked to the HTTP/1 client')
  t.same(r.trailers, [['x-sum', '11']], "the app's trailers as chunked trailers")
  const got = app.seen[0]!
  t.equal(got.body, 'hello world', 'the app reads the body without chunk framing')
  t.equal(got.headers[':authority'], 'svc.test', 'Host becomes :authority')
  t.equal(got.headers['transfer-encoding'], undefined, 'no HTTP/1 framing field on HTTP/2')
  t.equal(got.headers.expect, undefined, 'Expect was answered by the proxy, not sent on')
  await until('the mirror got its copy', () => shadow.requests.length === 1)
  const copy = shadow.requests[0]!
  t.equal(copy.body.toString(), 'hello world', 'the HTTP/1 mirror gets the body whole')
  t.equal(copy.header('transfer-encoding'), 'chunked', 'framed as the original request was')
  t.equal(copy.header('host'), 'svc.test-shadow')
  t.equal(copy.header('x-request-id'), String(got.headers['x-request-id']), 'one request id for the original and its copy')

  // keep-alive: a request with a length on the same client connection
  await c.write('PUT /len HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 3\r\n\r\nabc')
  const r2 = await c.response()
  t.equal(r2.body.toString(), 'h2 app got PUT /len abc')
  t.equal(app.seen[1]!.headers['content-length'], '3', 'the length goes on')
  t.notOk(c.done, 'the client connection stays open')
})

t.test('a retriable status from the HTTP/2 app: the chunked body goes again whole from the kept copy', async (t) => {
  const app = await startH2App(t, (n) => (n === 1 ? 503 : 200))
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { retry: { attempts: 2, on: ['retriable-status-codes'], retriableStatusCodes: [503], backoff: { base: '1ms', max: '2ms' } } })],
      clusters: [cluster('app', [app.port], { protocol: 'http2' })],
    }),
  )
  const c = await rawClient(t, s.port)
  await c.write('POST /again HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nonce\r\n5\r\nagain\r\n0\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200, 'the retry answers')
  t.equal(r.body.toString(), 'h2 app got POST /again onceagain')
  t.same(app.seen.map((x) => x.body), ['onceagain', 'onceagain'], 'both tries carried the whole body')
  t.equal(app.seen[0]!.headers['x-request-id'], app.seen[1]!.headers['x-request-id'], 'one request id for both tries')
})
