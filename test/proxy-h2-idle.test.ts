// Issue 18: after hostile HTTP/2 peers leave, the proxy's descriptors and upstream connections are
// back at their idle level within seconds. Clients: malformed heads, content-length against DATA,
// a rapid-reset burst, stalled streams (window 0) left with FIN or with a TCP RST. Upstream: a raw
// HTTP/2 server that sends GOAWAY, then a response HEADERS with a bad block, then FIN
// (found by the h2-client fuzz target: the socket stayed in CLOSE-WAIT until the idle timeout).
import t from 'tap'
import { readdirSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { connect as h2connect } from 'node:http2'
import { data, E, frame, headers, H2RawClient, hpack, parseFrames, requestFields, rstStream, S, settings, T } from './helpers/h2frames.ts'
import { cluster, listenerStats, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { RawClient } from './helpers/raw.ts'

const fds = () => readdirSync('/proc/self/fd').length

async function h2get(port: number): Promise<number> {
  const c = h2connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  try {
    return await new Promise((resolve, reject) => {
      const st = c.request({ ':path': '/ok', ':authority': 'app.test' })
      st.on('response', (h) => resolve(Number(h[':status'])))
      st.on('error', reject)
      st.resume()
    })
  } finally {
    c.destroy()
  }
}

t.test('hostile HTTP/2 clients leave: descriptors, downstream and upstream connections back to their idle level within seconds', async (t) => {
  const BIG = Buffer.alloc(1024 * 1024, 0x61)
  const up = await startHttpUpstream(t, {
    name: 'app',
    handler: (rec, res) => {
      const body = rec.url.startsWith('/big') ? BIG : Buffer.from('ok')
      res.writeHead(200, { 'content-length': body.length })
      res.end(body)
    },
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])], limits: { streamIdleTimeout: '5m' } }))
  const openUp = () => [...(up.sockets as Set<Socket>)].filter((x) => !x.destroyed).length
  t.equal(await h2get(s.port), 200, 'warm: one request served')
  await until('warm-up connection closed', async () => (await listenerStats(s)).cxActive === 0, 3000)
  const fd0 = fds()
  const up0 = openUp()

  for (let round = 0; round < 3; round++) {
    const clients: H2RawClient[] = []
    // malformed heads and content-length against DATA, each on its own connection
    for (const fields of [requestFields('GET', '/a', [['X-Upper', 'v']]), requestFields('GET', '/a', [['connection', 'close']]), requestFields('GET', '/a', [['host', 'other.test']])]) {
      const c = await H2RawClient.connect(s.port)
      await c.send(headers(1, fields, { endStream: true }))
      clients.push(c)
    }
    const cl = await H2RawClient.connect(s.port)
    await cl.send(headers(1, requestFields('POST', '/a', [['content-length', '5']])), data(1, '0123456789', true))
    clients.push(cl)
    // rapid reset: HEADERS + RST_STREAM 300 times
    const rr = await H2RawClient.connect(s.port)
    const burst: Buffer[] = []
    for (let i = 0; i < 300; i++) burst.push(headers(1 + 2 * i, requestFields('GET', `/r/${i}`), { endStream: true }), rstStream(1 + 2 * i, E.CANCEL))
    await rr.send(...burst)
    clients.push(rr)
    // stalled streams: window 0, one client leaves with FIN, the other with a TCP RST
    const stalled: H2RawClient[] = []
    for (let k = 0; k < 2; k++) {
      const c = await H2RawClient.connect(s.port, { settings: [[S.INITIAL_WINDOW_SIZE, 0]] })
      const fr: Buffer[] = []
      for (let i = 0; i < 10; i++) fr.push(headers(1 + 2 * i, requestFields('GET', `/big/${k}/${i}`), { endStream: true }))
      await c.send(...fr)
      stalled.push(c)
    }
    await until('the stalled requests are upstream', () => up.requests.filter((r) => r.url.startsWith('/big')).length >= 20 * (round + 1), 5000)
    t.ok(openUp() >= 20, `round ${round}: upstream connections held meanwhile (${openUp()})`)
    stalled[0]!.end()
    stalled[1]!.socket.resetAndDestroy()
    for (const c of clients) c.end()
    const started = Date.now()
    await until('every downstream connection closed', async () => (await listenerStats(s)).cxActive === 0, 5000)
    await until('upstream connections back to the idle level', () => openUp() <= up0 + 1, 5000)
    await until('descriptors back to their level', () => fds() <= fd0 + 2, 5000)
    const took = Date.now() - started
    t.equal((await listenerStats(s)).cxActive, 0, `round ${round}: no downstream connection left (${took} ms after the clients left)`)
    t.ok(openUp() <= up0 + 1, `round ${round}: upstream connections at the idle level (${openUp()} vs ${up0})`)
    t.ok(fds() <= fd0 + 2, `round ${round}: descriptors at their level (${fds()} vs ${fd0})`)
    for (const c of [...clients, ...stalled]) c.destroy()
  }
  t.equal(await h2get(s.port), 200, 'still serving')
})

t.test('a hostile HTTP/2 upstream (GOAWAY, a response HEADERS with a bad block, FIN): the client is answered and the upstream connection is closed within seconds', async (t) => {
  const sockets = new Set<Socket>()
  const hostile = createServer((sock) => {
    sockets.add(sock)
    sock.on('error', () => {})
    sock.on('close', () => sockets.delete(sock))
    sock.write(settings())
    let got = Buffer.alloc(0)
    let sent = false
    sock.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b])
      if (sent || got.length < 24 || !parseFrames(got.subarray(24)).frames.some((f) => f.type === T.HEADERS)) return
      sent = true
      // the bytes of fuzz case h2-client-1c7357bb913c: an empty frame of unknown type 0x5e, GOAWAY
      // (last stream 1, NO_ERROR), a response HEADERS with :status, :path and a truncated field:
      // nghttp2 stops reading, the stream stays open, the upstream's FIN is never read
      const goaway = frame(T.GOAWAY, 0, 0, Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]))
      sock.write(Buffer.concat([frame(0x5e, 0, 0), goaway, frame(T.HEADERS, 0x4, 1, Buffer.concat([hpack([[':status', '200'], [':path', '/x']]), Buffer.from([0])]))]))
      setTimeout(() => sock.end(), 20) // kept: the fuzz case's FIN comes after nghttp2 stopped reading
    })
  })
  await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => { for (const x of sockets) x.destroy(); hostile.close(() => r()) }))
  const port = (hostile.address() as AddressInfo).port
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('h2up', { timeout: '500ms' })], clusters: [cluster('h2up', [port], { protocol: 'http2' })] }))
  for (let i = 0; i < 3; i++) {
    const c = await RawClient.connect(s.port)
    c.socket.write('GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n')
    c.socket.end()
    await c.waitClose(3000)
    c.destroy()
    // the proxy's codec sees the bad block (COMPRESSION_ERROR: 502 at once); node:http2 stopped
    // reading (WEFT_H2_UPSTREAM_CODEC=node: 504 at the route timeout)
    t.match(c.text(), /^HTTP\/1\.1 50[24] /, `request ${i}: 502 or 504 at the route timeout`)
    const answered = Date.now()
    await until('the upstream connection closed', () => sockets.size === 0, 3000)
    t.ok(Date.now() - answered <= 2000, `request ${i}: upstream connection closed ${Date.now() - answered} ms after the answer (<= 2000)`)
  }
  // the same through an HTTP/2 client (the exchange's cancel path)
  for (let i = 0; i < 2; i++) {
    const st = await h2get(s.port)
    t.ok(st === 502 || st === 504, `HTTP/2 request ${i}: 502, or 504 at the route timeout (${st})`)
    const answered = Date.now()
    await until('the upstream connection closed', () => sockets.size === 0, 3000)
    t.ok(Date.now() - answered <= 2000, `HTTP/2 request ${i}: upstream connection closed ${Date.now() - answered} ms after the answer (<= 2000)`)
  }
})
