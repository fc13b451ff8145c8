// A stream the proxy resets on its shared upstream HTTP/2 session (the client cancelled it) still
// has frames in flight from the app: they are dropped, and the session with its other streams
// goes on. (The proxy's client codec once took them for frames on an idle stream: a connection
// error that reset every other stream of that endpoint.)
import t from 'tap'
import { connect, createServer, type ClientHttp2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { cluster, endpointView, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'

t.test('a client reset mid-response: the app keeps sending on that stream, the session and its other streams go on', async (t) => {
  const sessions = new Set<ServerHttp2Session>()
  let slowClosed = 0
  const app = createServer()
  app.on('session', (s) => {
    sessions.add(s)
    s.on('error', () => {})
    s.on('close', () => sessions.delete(s))
  })
  app.on('stream', (st: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    st.on('error', () => {})
    if (h[':path'] === '/slow') {
      // DATA every 2 ms until the stream is closed: some cross the proxy's RST_STREAM on the wire
      st.respond({ ':status': 200 })
      const chunk = Buffer.alloc(1024, 0x61)
      const timer = setInterval(() => {
        if (!st.closed) st.write(chunk)
      }, 2)
      st.on('close', () => {
        clearInterval(timer)
        slowClosed++
      })
      return
    }
    // the other stream answers a little later, after the reset of the first
    setTimeout(() => {
      if (st.closed) return
      st.respond({ ':status': 200, 'content-type': 'text/plain' })
      st.end('ok')
    }, 100)
  })
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    for (const s of sessions) s.destroy()
    return new Promise<void>((r) => app.close(() => r()))
  })
  const port = (app.address() as AddressInfo).port
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [port], { protocol: 'http2' })] }))
  const c: ClientHttp2Session = connect(`http://127.0.0.1:${s.port}`)
  c.on('error', () => {})
  t.teardown(() => c.destroy())

  for (let round = 0; round < 3; round++) {
    const slow = c.request({ ':path': '/slow', ':authority': 'app.test' })
    slow.on('error', () => {})
    await new Promise<void>((r) => slow.once('data', () => r()))
    const other = c.request({ ':path': '/other', ':authority': 'app.test' })
    const got = new Promise<{ status: number; body: string; rst: number }>((resolve) => {
      let status = 0
      let body = ''
      other.on('response', (h) => {
        status = Number(h[':status'])
      })
      other.setEncoding('utf8')
      other.on('data', (d: string) => {
        body += d
      })
      other.on('error', () => {})
      other.on('close', () => resolve({ status, body, rst: other.rstCode ?? 0 }))
    })
    // the client cancels the first stream while the app is still sending on it
    slow.close()
    const r = await got
    t.same(r, { status: 200, body: 'ok', rst: 0 }, `round ${round + 1}: the other stream is answered whole`)
    await until('the app saw the reset', () => slowClosed === round + 1)
  }
  const ep = (await endpointView(s, 'app')) as unknown as { http2: { sessions: number; goaways: number } }
  t.equal(ep.http2.sessions, 1, 'one upstream session all along')
  t.equal(ep.http2.goaways, 0, 'no GOAWAY on it')
})
