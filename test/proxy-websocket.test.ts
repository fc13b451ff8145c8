// WebSocket and HTTP/1.1 Upgrade through two sidecars (client sidecar outbound → server sidecar
// inbound → app), with the `ws` client and server: large and fragmented messages, close in both
// directions, counters; and with raw sockets: a non-101 answer is an ordinary response, the
// Upgrade fields reach the upstream, bytes pipelined after the upgrade request, idle timeout.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { protocolStats, startMesh } from './helpers/mesh.ts'
import { rawClient } from './helpers/raw.ts'
import { until, type Teardown } from './helpers/sidecar.ts'
import { startRawUpstream } from './helpers/upstream.ts'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** A ws echo server on a node:http server; also answers plain GETs. */
async function startWsEcho(t: Teardown): Promise<{ port: number; wss: WebSocketServer; server: Server; upgradeHeaders: Record<string, string | string[] | undefined>[] }> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('plain ' + req.url)
  })
  const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 * 1024 })
  const upgradeHeaders: Record<string, string | string[] | undefined>[] = []
  wss.on('connection', (ws, req) => {
    upgradeHeaders.push(req.headers)
    ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data as Buffer, { binary: isBinary }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const c of wss.clients) c.terminate()
    wss.close()
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { port: (server.address() as AddressInfo).port, wss, server, upgradeHeaders }
}

function openWs(t: Teardown, port: number, path = '/echo'): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host: 'echo.svc' }, maxPayload: 64 * 1024 * 1024 })
    t.teardown(() => ws.terminate())
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: RawData, isBinary: boolean) => resolve({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), isBinary }))
    ws.once('close', () => reject(new Error('closed before a message')))
  })
}

t.test('ws echo through two sidecars: small, large (5 MB) and fragmented messages', async (t) => {
  const app = await startWsEcho(t)
  const m = await startMesh(t, app.port)
  const ws = await openWs(t, m.client.port)

  ws.send('hello')
  const small = await nextMessage(ws)
  t.equal(small.data.toString(), 'hello')
  t.equal(small.isBinary, false, 'text stays text')

  const big = randomBytes(5 * 1024 * 1024)
  ws.send(big)
  const echoed = await nextMessage(ws)
  t.equal(echoed.data.length, big.length, '5 MB came back')
  t.equal(sha(echoed.data), sha(big), 'byte for byte')

  // One message in 4 fragments (continuation frames): the app sees one message.
  const parts = [randomBytes(10), randomBytes(70_000), randomBytes(1), randomBytes(300_000)]
  parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }))
  const joined = await nextMessage(ws)
  t.equal(sha(joined.data), sha(Buffer.concat(parts)), 'fragments reassembled in order')

  // Many small messages back to back.
  const got: string[] = []
  const all = new Promise<void>((resolve) => {
    const on = (d: RawData) => {
      got.push(d.toString())
      if (got.length === 200) {
        ws.off('message', on)
        resolve()
      }
    }
    ws.on('message', on)
  })
  for (let i = 0; i < 200; i++) ws.send('m' + i)
  await all
  t.same(got, Array.from({ length: 200 }, (_, i) => 'm' + i), 'in order')

  const h = app.upgradeHeaders[0]
  t.equal(h.upgrade, 'websocket', 'the app saw Upgrade: websocket')
  t.match(String(h.connection), /upgrade/i, 'and Connection: upgrade')
  t.ok(h['x-request-id'], 'routed like any request (x-request-id added)')
  t.ok(h['sec-websocket-key'], 'the handshake fields went through')

  for (const s of [m.client, m.server]) {
    const st = await protocolStats(s)
    t.equal(st.detections.http1, 1, 'detected as HTTP/1')
    t.equal(st.tunnels.upgrade.opened, 1, 'one upgrade tunnel')
    t.ok(st.tunnels.upgrade.bytesUp > big.length, 'bytes counted upstream')
    t.ok(st.tunnels.upgrade.bytesDown > big.length, 'bytes counted downstream')
  }
})

t.test('closing either side closes the other', async (t) => {
  const app = await startWsEcho(t)
  const m = await startMesh(t, app.port)

  // The client closes: the app's side closes (a clean close handshake, code kept).
  const a = await openWs(t, m.client.port)
  const serverSide = await until('server connection', () => [...app.wss.clients][0])
  const serverClosed = new Promise<number>((resolve) => serverSide.once('close', (code: number) => resolve(code)))
  a.close(4001, 'bye')
  t.equal(await serverClosed, 4001, 'the app saw the client close, with its code')

  // The app goes away without a close frame: the client's connection closes (1006: abnormal).
  const b = await openWs(t, m.client.port)
  const serverSide2 = (await until('second server connection', () => [...app.wss.clients].find((c) => c !== serverSide)))!
  const clientClosed = new Promise<number>((resolve) => b.once('close', (code: number) => resolve(code)))
  serverSide2.terminate()
  t.equal(await clientClosed, 1006, 'the client saw the connection go')

  // The app closes cleanly: the client gets the close frame and its code.
  const c = await openWs(t, m.client.port)
  const serverSide3 = (await until('third server connection', () => [...app.wss.clients].find((x) => x !== serverSide && x !== serverSide2)))!
  const clientClosed3 = new Promise<number>((resolve) => c.once('close', (code: number) => resolve(code)))
  serverSide3.close(4002, 'done')
  t.equal(await clientClosed3, 4002, 'the client saw the app close, with its code')

  const closed: number[] = []
  for (const s of [m.client, m.server]) {
    closed.push(await until('tunnels closed', async () => {
      const n = (await protocolStats(s)).tunnels.upgrade.closed
      return n >= 3 ? n : 0
    }))
  }
  t.same(closed, [3, 3], 'all three tunnels closed on both sidecars (weft_proxy_tunnels closed)')
})

t.test('a non-101 answer to an upgrade request is an ordinary response; the connection stays usable', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    const r1 = await conn.nextRequest()
    conn.write(`HTTP/1.1 426 Upgrade Required\r\ncontent-length: 4\r\nx-saw-upgrade: ${r1.headers.get('upgrade')?.[0] === 'foo/1' && /upgrade/i.test(r1.headers.get('connection')?.[0] ?? '') ? 'yes' : 'no'}\r\n\r\nnope`)
    const r2 = await conn.nextRequest()
    conn.write(`HTTP/1.1 200 OK\r\ncontent-length: ${r2.line.length}\r\n\r\n${r2.line}`)
  })
  const m = await startMesh(t, up.port)
  const c = await rawClient(t, m.client.port)
  await c.write('GET /up HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 426)
  t.equal(r.body.toString(), 'nope')
  t.equal(r.get('x-saw-upgrade'), 'yes', 'the upgrade request reached the app with Upgrade')
  await c.write('GET /next HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r2 = await c.response()
  t.equal(r2.status, 200)
  t.equal(r2.body.toString(), 'GET /next HTTP/1.1', 'the next request on the same connection is HTTP')
  t.equal((await protocolStats(m.client)).tunnels.upgrade.opened, 0, 'no tunnel')
})

t.test('101 from the app to a request that did not ask to upgrade is a protocol error (502)', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    await conn.nextRequest()
    conn.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\n')
  })
  const m = await startMesh(t, up.port)
  const c = await rawClient(t, m.client.port)
  // Upgrade without "upgrade" in Connection is not a request to switch (and is not forwarded).
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\nUpgrade: foo\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 502)
})

t.test('bytes pipelined after the upgrade request go to the new protocol; bytes after the 101 head reach the client', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    await conn.nextRequest()
    // The 101 and the new protocol's first bytes in one write.
    conn.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\nserver-first|')
    conn.socket.on('data', (b: Buffer) => conn.socket.write(b))
  })
  const m = await startMesh(t, up.port)
  const c = await rawClient(t, m.client.port)
  // The request and raw bytes in one write, before the 101 arrives.
  await c.write('GET /tunnel HTTP/1.1\r\nHost: svc\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nearly-bytes|')
  await until('101 and both byte runs', () => c.data.toString('latin1').includes('early-bytes|'))
  const text = c.data.toString('latin1')
  t.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/)
  t.match(text, /\r\nupgrade: echo\r\n/i)
  t.match(text, /\r\nconnection: upgrade\r\n/i)
  t.match(text, /\r\n\r\nserver-first\|early-bytes\|$/, 'server bytes, then the echoed pipelined bytes')
  await c.write('later')
  await until('echo of later bytes', () => c.data.toString('latin1').endsWith('later'))
  t.match(c.data.toString('latin1'), /\r\n\r\nserver-first\|early-bytes\|later$/, 'the tunnel carries bytes both ways: later bytes echoed after the first')
})

t.test('an upgraded connection has the idle timeout (limits.idleTimeout)', async (t) => {
  const app = await startWsEcho(t)
  const m = await startMesh(t, app.port, { limits: { idleTimeout: '300ms' } })
  const ws = await openWs(t, m.client.port)
  ws.send('x')
  await nextMessage(ws)
  const code = await new Promise<number>((resolve) => ws.once('close', (c: number) => resolve(c)))
  t.equal(code, 1006, 'closed by the proxy')
  // Both sidecars have the timeout; whichever sweeps first closes the tunnel (and so the other).
  const n = (await protocolStats(m.client)).tunnels.upgrade.idleTimeouts + (await protocolStats(m.server)).tunnels.upgrade.idleTimeouts
  t.ok(n >= 1, 'counted as an idle timeout')
})
