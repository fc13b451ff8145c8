// Request trailers across HTTP versions, as the app receives them: from an HTTP/2 client
// (node:http2, HEADERS after the DATA) and from an HTTP/1.1 client (a raw socket, a chunked body's
// trailer section) to an HTTP/1.1 app (node:http, req.trailers: sent as a chunked trailer section)
// and to an HTTP/2 app (node:http2, the stream's 'trailers': sent as HEADERS with END_STREAM).
// What HTTP/2 refuses in a message (connection-specific fields, RFC 9113 8.2.2) and what an
// HTTP/1 receiver refuses in a trailer section (content-length, host: RFC 9110 6.5.1) is left
// out; the rest goes on with lower-case names.
import t from 'tap'
import { createServer as createH1Server, type IncomingHttpHeaders as H1Headers } from 'node:http'
import { connect, createServer as createH2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { cluster, makeConfig, routeTo, startTestSidecar, type Teardown } from './helpers/sidecar.ts'
import { rawClient } from './helpers/raw.ts'

interface Received {
  path: string
  /** the request head's fields as the app saw them */
  headers: Record<string, unknown>
  body: string
  trailers: Record<string, unknown>
}

interface App {
  port: number
  got: Map<string, Received>
}

/** A node:http app: records each request's body and trailers (req.trailers), answers "ok". */
async function startH1App(t: Teardown): Promise<App> {
  const got = new Map<string, Received>()
  const server = createH1Server((req, res) => {
    let body = ''
    req.setEncoding('latin1')
    req.on('data', (b: string) => (body += b))
    req.on('end', () => {
      const path = req.url ?? ''
      got.set(path, { path, headers: { ...(req.headers as H1Headers) }, body, trailers: { ...req.trailers } })
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 })
      res.end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { port: (server.address() as AddressInfo).port, got }
}

/** A node:http2 (h2c) app: records each stream's body and trailers, answers "ok". */
async function startH2App(t: Teardown): Promise<App> {
  const got = new Map<string, Received>()
  const server = createH2Server()
  const sessions = new Set<ServerHttp2Session>()
  server.on('session', (s) => {
    sessions.add(s)
    s.on('error', () => {})
    s.on('close', () => sessions.delete(s))
  })
  server.on('stream', (st: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    const path = String(h[':path'])
    let body = ''
    let trailers: Record<string, unknown> = {}
    st.on('error', () => {})
    st.on('data', (b: Buffer) => (body += b.toString('latin1')))
    st.on('trailers', (tr: IncomingHttpHeaders) => (trailers = Object.fromEntries(Object.entries(tr))))
    st.on('end', () => {
      got.set(path, { path, headers: { ...h }, body, trailers })
      if (st.closed) return
      st.respond({ ':status': 200, 'content-type': 'text/plain' })
      st.end('ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    for (const s of sessions) s.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { port: (server.address() as AddressInfo).port, got }
}

/** An HTTP/2 POST with `body` (two DATA frames, or none) then `trailers`; the response status and body. */
function h2Post(t: Teardown, port: number, path: string, body: string, trailers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const client = connect(`http://127.0.0.1:${port}`)
    t.teardown(() => client.destroy())
    client.on('error', reject)
    const st = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream' }, { waitForTrailers: true })
    let status = 0
    let text = ''
    st.on('wantTrailers', () => st.sendTrailers(trailers))
    st.on('response', (h) => (status = Number(h[':status'])))
    st.setEncoding('latin1')
    st.on('data', (b: string) => (text += b))
    st.on('error', reject)
    st.on('close', () => {
      client.close()
      resolve({ status, body: text })
    })
    if (body === '') st.end()
    else st.write(body.slice(0, 3), () => st.end(body.slice(3)))
  })
}

/** An HTTP/1.1 chunked POST with `body` (one chunk per half, or none) and a raw trailer section. */
async function h1Post(t: Teardown, port: number, path: string, body: string, trailerSection: string): Promise<{ status: number; body: string }> {
  const c = await rawClient(t, port)
  let chunks = ''
  for (const part of body === '' ? [] : [body.slice(0, 3), body.slice(3)]) chunks += part.length.toString(16) + '\r\n' + part + '\r\n'
  await c.write(`POST ${path} HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n${trailerSection}\r\n`)
  const r = await c.response()
  return { status: r.status, body: r.body.toString() }
}

for (const client of ['http2', 'http1'] as const) {
  for (const upstream of ['http1', 'http2'] as const) {
    t.test(`request trailers from an ${client} client to an ${upstream} app`, async (t) => {
      const app = upstream === 'http1' ? await startH1App(t) : await startH2App(t)
      const s = await startTestSidecar(t, makeConfig({ clusters: [cluster('app', [app.port], upstream === 'http2' ? { protocol: 'http2' } : {})], routes: [routeTo('app')] }))
      const send = (path: string, body: string): Promise<{ status: number; body: string }> =>
        client === 'http2'
          ? h2Post(t, s.port, path, body, { 'x-checksum': 'c-' + path.slice(1), 'x-trace-end': '1700000000' })
          : h1Post(t, s.port, path, body, `X-Checksum: c-${path.slice(1)}\r\nx-trace-end:  1700000000 \r\n`)

      const r = await send('/body', 'hello world')
      t.same(r, { status: 200, body: 'ok' })
      const got = app.got.get('/body')!
      t.equal(got.body, 'hello world', 'the body arrives whole, without chunk framing')
      t.match(got.trailers, { 'x-checksum': 'c-body', 'x-trace-end': '1700000000' }, 'the app got the trailers (names lower-cased, values trimmed)')
      if (upstream === 'http1') t.equal(got.headers['transfer-encoding'], 'chunked', 'the trailers ride on a chunked body')

      const e = await send('/empty', '')
      t.same(e, { status: 200, body: 'ok' })
      const empty = app.got.get('/empty')!
      t.equal(empty.body, '', 'no body')
      t.match(empty.trailers, { 'x-checksum': 'c-empty' }, 'trailers of a request without a body')
    })
  }
}

t.test('an HTTP/1 trailer section to an HTTP/2 app: connection-specific fields are left out (the stream would be malformed), the rest goes on', async (t) => {
  const app = await startH2App(t)
  const s = await startTestSidecar(t, makeConfig({ clusters: [cluster('app', [app.port], { protocol: 'http2' })], routes: [routeTo('app')] }))
  const r = await h1Post(t, s.port, '/conn', 'abcdef', 'Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nTE: trailers\r\nX-Checksum: ok\r\n')
  t.same(r, { status: 200, body: 'ok' }, 'the app answered: the stream was not refused')
  const got = app.got.get('/conn')!
  t.equal(got.body, 'abcdef')
  t.same(got.trailers, { 'x-checksum': 'ok' }, 'keep-alive, upgrade and te are not sent on')
})

t.test('HTTP/2 request trailers to an HTTP/1 app: framing and routing fields are left out of the trailer section', async (t) => {
  const app = await startH1App(t)
  const s = await startTestSidecar(t, makeConfig({ clusters: [cluster('app', [app.port])], routes: [routeTo('app')] }))
  const r = await h2Post(t, s.port, '/framing', 'abcdef', { 'content-length': '999', host: 'evil.test', 'x-checksum': 'ok' })
  t.same(r, { status: 200, body: 'ok' }, 'node:http took the request (it refuses nothing here, but another app would)')
  const got = app.got.get('/framing')!
  t.equal(got.body, 'abcdef')
  t.same(got.trailers, { 'x-checksum': 'ok' }, 'content-length and host are not sent on as trailers')
})

// ---- the same conversion for response trailers ----------------------------------------------------

t.test("response trailers the other version refuses are left out: an HTTP/1 app's keep-alive trailer to an HTTP/2 client, an HTTP/2 app's content-length trailer to an HTTP/1 client", async (t) => {
  const h1app = createH1Server((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' })
    res.write('abc')
    res.addTrailers({ 'X-Sum': '3', 'Keep-Alive': 'timeout=5' })
    res.end()
  })
  await new Promise<void>((r) => h1app.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    h1app.closeAllConnections()
    return new Promise<void>((r) => h1app.close(() => r()))
  })
  const h2app = createH2Server()
  h2app.on('session', (s) => s.on('error', () => {}))
  h2app.on('stream', (st: ServerHttp2Stream) => {
    st.on('error', () => {})
    st.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true })
    st.on('wantTrailers', () => st.sendTrailers({ 'x-sum': '3', 'content-length': '99' }))
    st.end('abc')
  })
  await new Promise<void>((r) => h2app.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => h2app.close(() => r())))
  const s = await startTestSidecar(
    t,
    makeConfig({
      clusters: [cluster('h1app', [(h1app.address() as AddressInfo).port]), cluster('h2app', [(h2app.address() as AddressInfo).port], { protocol: 'http2' })],
      routes: [routeTo('h1app', { match: { path: { prefix: '/h1' } } }), routeTo('h2app')],
    }),
  )

  // an HTTP/2 client of the HTTP/1 app
  const got = await new Promise<{ status: number; body: string; trailers: Record<string, unknown>; rst: number }>((resolve, reject) => {
    const client = connect(`http://127.0.0.1:${s.port}`)
    client.on('error', reject)
    const st = client.request({ ':path': '/h1' })
    let status = 0
    let body = ''
    let trailers: Record<string, unknown> = {}
    st.on('response', (h) => (status = Number(h[':status'])))
    st.setEncoding('latin1')
    st.on('data', (b: string) => (body += b))
    st.on('trailers', (h) => (trailers = Object.fromEntries(Object.entries(h))))
    st.on('error', () => {})
    st.on('close', () => {
      client.close()
      resolve({ status, body, trailers, rst: st.rstCode ?? 0 })
    })
  })
  t.same(got, { status: 200, body: 'abc', trailers: { 'x-sum': '3' }, rst: 0 }, 'the response ends cleanly with its trailers, without keep-alive')

  // an HTTP/1 client of the HTTP/2 app
  const c = await rawClient(t, s.port)
  await c.write('GET /h2 HTTP/1.1\r\nHost: svc.test\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200)
  t.equal(r.body.toString(), 'abc')
  t.same(r.trailers, [['x-sum', '3']], 'no content-length in the chunked trailer section')
})
