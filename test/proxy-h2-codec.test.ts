// The proxy's own HTTP/2 codec (proxy/h2/codec/) where it decides more than node:http2 did:
// floods of CONTINUATION, PING and SETTINGS frames on the server side (GOAWAY ENHANCE_YOUR_CALM,
// other clients served), and on the client side an upstream whose response is malformed (DATA
// before its head, CR/LF in a field value, an uppercase name): 502 to the client, none of its
// bytes relayed. Real sockets: raw HTTP/2 clients and raw upstreams on 127.0.0.1.
import t from 'tap'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { continuation, data, E, errorCode, H2RawClient, headers, hpack, parseFrames, ping, PREFACE, requestFields, settings, statusOf, T, h2status } from './helpers/h2frames.ts'
import { RawClient } from './helpers/raw.ts'
import { cluster, makeConfig, routeTo, startTestSidecar, type Teardown, type TestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

// the client side of the codec is opt-in (proxy/h2/upstream.ts): these tests are about it
process.env.WEFT_H2_UPSTREAM_CODEC = 'own'

async function sidecar(t: Teardown): Promise<TestSidecar> {
  const up = await startHttpUpstream(t, { name: 'app' })
  return startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
}

const h2get = h2status

t.test('CONTINUATION flood (CVE-2024-27316): GOAWAY ENHANCE_YOUR_CALM, closed, others served', async (t) => {
  const s = await sidecar(t)
  const c = await H2RawClient.connect(s.port)
  await c.waitFrame((f) => f.type === T.SETTINGS)
  const frames = [headers(1, hpack(requestFields('GET', '/x')), { endHeaders: false })]
  const filler = hpack([['x-f', 'a'.repeat(1000)]])
  for (let i = 0; i < 200 && !c.done; i++) frames.push(continuation(1, filler, false))
  await c.send(...frames)
  const g = await c.waitFrame((f) => f.type === T.GOAWAY)
  t.ok(g !== null && errorCode(g) === E.ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM')
  t.equal(g?.payload.subarray(8).toString(), 'WEFT_ERR_H2_CONTINUATION_FLOOD')
  t.ok(await c.waitClose(3000), 'the connection is closed')
  t.equal(await h2get(s.port), 200, 'other clients served')
})

t.test('PING flood and SETTINGS flood: GOAWAY ENHANCE_YOUR_CALM, closed, others served', async (t) => {
  const s = await sidecar(t)
  for (const [name, f] of [['PING', ping()], ['SETTINGS', settings([])]] as const) {
    const c = await H2RawClient.connect(s.port)
    await c.waitFrame((x) => x.type === T.SETTINGS)
    const burst = Buffer.concat(Array.from({ length: 1000 }, () => f))
    for (let i = 0; i < 12 && !c.done; i++) await c.send(burst)
    const g = await c.waitFrame((x) => x.type === T.GOAWAY)
    t.ok(g !== null && errorCode(g) === E.ENHANCE_YOUR_CALM, `${name}: GOAWAY ENHANCE_YOUR_CALM`)
    t.equal(g?.payload.subarray(8).toString(), 'WEFT_ERR_H2_CONTROL_FLOOD', `${name}: its debug data names the code`)
    t.ok(await c.waitClose(3000), `${name}: the connection is closed`)
    c.destroy()
  }
  t.equal(await h2get(s.port), 200, 'other clients served')
})

/** A raw HTTP/2 upstream: SETTINGS, then `answer(streamId)` once the proxy's request HEADERS is in. */
async function rawUpstream(t: Teardown, answer: (id: number) => Buffer): Promise<number> {
  const sockets = new Set<Socket>()
  const srv = createServer((sock) => {
    sockets.add(sock)
    sock.on('error', () => {})
    sock.on('close', () => sockets.delete(sock))
    sock.write(settings())
    let got = Buffer.alloc(0)
    sock.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b])
      if (got.length < 24) return
      const { frames, rest } = parseFrames(got.subarray(24))
      got = Buffer.concat([got.subarray(0, 24), rest])
      for (const f of frames) if (f.type === T.HEADERS) sock.write(answer(f.streamId))
    })
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => {
    for (const x of sockets) x.destroy()
    srv.close(() => r())
  }))
  return (srv.address() as AddressInfo).port
}

const BAD_RESPONSES: Record<string, (id: number) => Buffer> = {
  'DATA before the response head': (id) => Buffer.concat([data(id, 'SMUGGLED'), headers(id, [[':status', '200']], { endStream: true })]),
  'CR LF in a field value': (id) => headers(id, [[':status', '200'], ['x-bad', 'a\r\nset-cookie: injected=1']], { endStream: true }),
  'an uppercase field name': (id) => headers(id, [[':status', '200'], ['X-Upper', 'v']], { endStream: true }),
  'a connection-specific field': (id) => headers(id, [[':status', '200'], ['transfer-encoding', 'chunked']], { endStream: true }),
  'a :status of four digits': (id) => headers(id, [[':status', '2000']], { endStream: true }),
}

t.test('a malformed response from an HTTP/2 upstream: 502 to the client, none of its bytes relayed', async (t) => {
  for (const [name, answer] of Object.entries(BAD_RESPONSES)) {
    const port = await rawUpstream(t, answer)
    const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('bad')], clusters: [cluster('bad', [port], { protocol: 'http2' })] }))
    const c = await RawClient.connect(s.port)
    c.socket.write('GET /x HTTP/1.1\r\nHost: app.test\r\nconnection: close\r\n\r\n')
    await c.waitClose(3000)
    c.destroy()
    t.match(c.text(), /^HTTP\/1\.1 502 /, `${name}: 502, first byte of the answer`)
    t.notMatch(c.text(), /SMUGGLED|injected|X-Upper|x-bad/i, `${name}: nothing of the response relayed`)
    t.equal(await h2get(s.port), 502, `${name}: an HTTP/2 client gets 502 too`)
  }
})

t.test('a request and the client FIN in one burst, before the proxy SETTINGS: answered, then closed', async (t) => {
  const s = await sidecar(t)
  const sock = connect(s.port, '127.0.0.1')
  sock.on('error', () => {})
  const chunks: Buffer[] = []
  sock.on('data', (b: Buffer) => chunks.push(b))
  const closed = new Promise<void>((r) => sock.on('close', () => r()))
  sock.end(Buffer.concat([PREFACE, settings(), headers(1, requestFields('GET', '/burst'), { endStream: true })]))
  await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))])
  sock.destroy()
  const { frames } = parseFrames(Buffer.concat(chunks).subarray(0))
  const h = frames.find((f) => f.type === T.HEADERS && f.streamId === 1)
  t.ok(h !== undefined, 'a response HEADERS on stream 1')
  if (h !== undefined) t.equal(statusOf(h.payload), 200, ':status 200')
  t.ok(sock.destroyed, 'the connection is closed')
})
