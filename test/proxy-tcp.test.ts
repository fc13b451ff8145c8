// Opaque TCP through two sidecars (client sidecar outbound → server sidecar inbound → app): echo
// of a large payload byte for byte with half-close, a server-speaks-first service reached without
// detection delay, opaque ports that skip detection, close propagation, connect failure, idle
// timeout, counters and metrics.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { clusterView, metrics, startBlackhole, sum } from './helpers/policy.ts'
import { echo, protocolStats, startMesh, startTcpServer, TcpClient } from './helpers/mesh.ts'
import { freePort, until } from './helpers/sidecar.ts'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Not HTTP: a first byte that is not a token character (0x00). */
function payload(n: number): Buffer {
  const b = randomBytes(n)
  b[0] = 0
  return b
}

t.test('TCP echo of 8 MB through two sidecars, byte for byte, with half-close', async (t) => {
  const app = await startTcpServer(t, echo)
  const m = await startMesh(t, app.port)
  const data = payload(8 * 1024 * 1024)
  const c = await TcpClient.open(t, m.client.port)
  // Written in pieces, then FIN: the echo server answers FIN after its last byte.
  for (let i = 0; i < data.length; i += 100_000) c.socket.write(data.subarray(i, i + 100_000))
  c.socket.end()
  await c.end(20_000)
  t.equal(c.received, data.length, 'every byte came back')
  t.equal(sha(c.data), sha(data), 'the same bytes, in order')
  await c.close()
  for (const [name, s] of [['client', m.client], ['server', m.server]] as const) {
    const st = (await until(`${name} tunnel closed`, async () => {
      const v = await protocolStats(s)
      return v.tunnels.tcp.closed === 1 ? v : null
    }))!
    t.equal(st.detections.tcp, 1, `${name} sidecar: detected as tcp`)
    t.equal(st.detections.http1, 0, `${name} sidecar: not http1`)
    t.equal(st.tunnels.tcp.opened, 1, `${name} sidecar: one tcp tunnel`)
    t.equal(st.tunnels.tcp.bytesUp, data.length, `${name} sidecar: bytes upstream`)
    t.equal(st.tunnels.tcp.bytesDown, data.length, `${name} sidecar: bytes downstream`)
  }
  const mm = await metrics(m.client)
  t.equal(sum(mm.all, 'weft_proxy_protocol_detections_total', { listener: 'out', protocol: 'tcp' }), 1, 'detection counted in /metrics')
  t.equal(sum(mm.all, 'weft_tunnel_bytes_total', { listener: 'out', kind: 'tcp', direction: 'upstream' }), data.length)
  t.equal(sum(mm.all, 'weft_tunnels_closed_total', { listener: 'out', kind: 'tcp' }), 1)
})

t.test('half-close: the client FIN reaches the app, which can still answer', async (t) => {
  let appGotFin = false
  const app = await startTcpServer(t, (s) => {
    const got: Buffer[] = []
    s.on('data', (b: Buffer) => got.push(b))
    s.on('end', () => {
      appGotFin = true
      // Answer after the client's FIN: the other direction is still open. Kept: 20 ms after the
      // app's 'end' is the behaviour under test (a tunnel that tore down just after relaying the
      // FIN would lose this answer)
      setTimeout(() => s.end('after-fin:' + Buffer.concat(got).toString()), 20)
    })
  })
  const m = await startMesh(t, app.port)
  const c = await TcpClient.open(t, m.client.port)
  c.socket.end('\x01question')
  await c.end()
  t.ok(appGotFin, 'the app saw the FIN')
  t.equal(c.data.toString(), 'after-fin:\x01question', 'the answer after the FIN arrived')
})

t.test('server-speaks-first: the banner arrives well within a second through two detecting sidecars', async (t) => {
  const app = await startTcpServer(t, (s) => {
    s.write('220 mail.example ESMTP ready\r\n')
    s.on('data', (b: Buffer) => {
      if (b.toString().startsWith('QUIT')) s.end('221 bye\r\n')
    })
    s.on('end', () => s.end())
  })
  const m = await startMesh(t, app.port)
  const c = await TcpClient.open(t, m.client.port)
  // Detection waits detectTimeout (100 ms) at each sidecar; Linkerd's 10 s would fail this.
  await c.wait('the banner', () => c.data.toString().includes('ready\r\n'), 1000)
  t.equal(c.data.toString(), '220 mail.example ESMTP ready\r\n')
  c.socket.write('QUIT\r\n')
  await c.end()
  t.match(c.data.toString(), /221 bye\r\n$/)
  for (const s of [m.client, m.server]) {
    const st = await protocolStats(s)
    t.equal(st.detections.tcpServerFirst, 1, 'counted as server-speaks-first')
    t.equal(st.detections.tcp, 0)
  }
})

t.test('opaque ports (protocol: tcp) skip detection: an HTTP request goes through as bytes', async (t) => {
  let seen = ''
  const app = await startTcpServer(t, (s) => {
    s.write('banner\n')
    s.on('data', (b: Buffer) => {
      seen += b.toString('latin1')
      if (seen.endsWith('\r\n\r\n')) s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok')
    })
  })
  const m = await startMesh(t, app.port, { client: { protocol: 'tcp' }, server: { protocol: 'tcp' } })
  const c = await TcpClient.open(t, m.client.port)
  await c.wait('the banner without delay', () => c.data.toString().startsWith('banner\n'), 1000)
  const req = 'GET /x HTTP/1.1\r\nHost: svc\r\n\r\n'
  c.socket.write(req)
  await c.end()
  t.equal(seen, req, 'the request arrived unchanged: no x-forwarded-for, no x-request-id')
  t.match(c.data.toString(), /ok$/)
  for (const s of [m.client, m.server]) {
    const st = await protocolStats(s)
    t.same(st.detections, { http1: 0, http2: 0, tcp: 0, tcpServerFirst: 0, none: 0 }, 'nothing detected')
    t.equal(st.tunnels.tcp.opened, 1)
  }
})

t.test('closing either side closes the other', async (t) => {
  const appSockets: import('node:net').Socket[] = []
  const app = await startTcpServer(t, (s) => {
    appSockets.push(s)
    s.write('hi')
  })
  const m = await startMesh(t, app.port, { client: { protocol: 'tcp' }, server: { protocol: 'tcp' } })

  // The app closes: the client's connection goes.
  const a = await TcpClient.open(t, m.client.port)
  await a.bytes(2)
  appSockets[0].destroy()
  await a.end()
  t.ok(a.ended && !a.hadError, 'app closed → the client\'s connection ended cleanly (FIN, no reset)')
  a.socket.end() // the client, half-open, closes its side too

  // The app resets: the client's connection is reset too (a cut-off stream must not look complete).
  const r = await TcpClient.open(t, m.client.port)
  await r.bytes(2)
  appSockets[1].resetAndDestroy()
  await r.close()
  t.ok(r.hadError && !r.ended, 'app reset → client reset')

  // The client resets: the app's connection goes.
  const b = await TcpClient.open(t, m.client.port)
  await b.bytes(2)
  const appSide = appSockets[2]
  const gone = new Promise<string>((resolve) => {
    appSide.once('end', () => resolve('end'))
    appSide.once('close', () => resolve('close'))
  })
  b.socket.resetAndDestroy()
  t.match(await gone, /^(end|close)$/, 'client reset → the app\'s connection ended')
  await until('the tunnels closed', async () => (await protocolStats(m.client)).tunnels.tcp.closed === 3 && (await protocolStats(m.server)).tunnels.tcp.closed === 3)
})

t.test('connect failure closes the client and is counted', async (t) => {
  const dead = await freePort()
  const m = await startMesh(t, dead, { client: { protocol: 'tcp' }, server: { protocol: 'tcp' } })
  const c = await TcpClient.open(t, m.client.port)
  await c.end()
  const st = (await until('connect failure counted', async () => {
    const v = await protocolStats(m.server)
    return v.tcpConnectFailures === 1 ? v : null
  }))!
  t.equal(st.tunnels.tcp.opened, 1)
  const mm = await metrics(m.server)
  t.equal(mm.decision('tcp_connect_failure'), 1, 'weft_proxy_decisions_total tcp_connect_failure')
})

t.test('connect timeout (the cluster\'s pool.connectTimeout) to an endpoint that never answers', async (t) => {
  const hole = await startBlackhole(t)
  const m = await startMesh(t, hole, { client: { protocol: 'tcp' }, server: { protocol: 'tcp' }, app: { pool: { connectTimeout: '100ms' } } })
  const c = await TcpClient.open(t, m.client.port)
  await c.end(3000)
  const ep = (await clusterView(m.server, 'app')).endpoints[0]
  t.equal(ep.connections.connectTimeouts, 1, '/clusters: one connect timeout')
  t.equal((await protocolStats(m.server)).tcpConnectFailures, 1)
})

t.test('round robin over the cluster endpoints, one connection per tunnel', async (t) => {
  const names: string[] = []
  const a = await startTcpServer(t, (s) => s.end('A'))
  const b = await startTcpServer(t, (s) => s.end('B'))
  const { startTestSidecar, LISTENER } = await import('./helpers/sidecar.ts')
  const s = await startTestSidecar(t, {
    admin: { address: '127.0.0.1', port: 0 },
    listeners: [{ name: LISTENER, direction: 'inbound', port: 0, routeTable: 'rt', protocol: 'tcp', tcp: { cluster: 'app' } }],
    routeTables: [{ name: 'rt', virtualHosts: [] }],
    clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: a.port }, { address: '127.0.0.1', port: b.port }] }],
  })
  for (let i = 0; i < 4; i++) {
    const c = await TcpClient.open(t, s.port)
    await c.end()
    names.push(c.data.toString())
  }
  t.same(names.sort(), ['A', 'A', 'B', 'B'])
})

t.test('idle timeout closes a quiet tunnel (tcp.idleTimeout)', async (t) => {
  const app = await startTcpServer(t, echo)
  const m = await startMesh(t, app.port, { client: { protocol: 'tcp', tcp: { cluster: 'mesh', idleTimeout: '150ms' } }, server: { protocol: 'tcp' } })
  const c = await TcpClient.open(t, m.client.port)
  c.socket.write('\x00ping')
  await c.bytes(5)
  await c.end(3000)
  const st = await protocolStats(m.client)
  t.equal(st.tunnels.tcp.idleTimeouts, 1, 'closed by the idle timeout')
})
