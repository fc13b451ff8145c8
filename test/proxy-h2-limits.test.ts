// Connections and streams a client holds without using them (issue 18): the client's FIN closes an
// HTTP/2 connection (curl sends no GOAWAY), a silent connection is closed after firstByteTimeout,
// streams whose client never opens its window are reset after streamIdleTimeout and release their
// upstream connections (also when the client leaves: FIN, after which it can open no window, or
// a TCP reset), SETTINGS_MAX_CONCURRENT_STREAMS is enforced,
// and a connection that resets (or gets refused) most of its streams gets GOAWAY ENHANCE_YOUR_CALM.
// Short configured timeouts instead of long sleeps; waits are for events or polled state.
import t from 'tap'
import { execFile } from 'node:child_process'
import { createServer as h2createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { promisify } from 'node:util'
import { formatConfigError } from '../api/errors.ts'
import { parseBootstrap } from '../api/load.ts'
import type { Limits } from '../api/schema.ts'
import { continuation, E, errorCode, H2RawClient, headers, hpack, requestFields, rstStream, S, T, h2status } from './helpers/h2frames.ts'
import { RawClient } from './helpers/raw.ts'
import { cluster, listenerStats, makeConfig, routeTo, startTestSidecar, until, type Teardown, type TestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream, type HttpUpstream } from './helpers/upstream.ts'

const run = promisify(execFile)

/** A body larger than any window (stream 64 KiB) so that a client that never reads holds it. */
const BIG = Buffer.alloc(1024 * 1024, 0x61)

async function setup(t: Teardown, limits?: Limits, big = false): Promise<{ s: TestSidecar; up: HttpUpstream }> {
  const up = await startHttpUpstream(t, {
    name: 'app',
    handler: big
      ? (rec, res) => {
          if (rec.url.startsWith('/big')) {
            res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG.length })
            res.end(BIG)
          } else {
            res.writeHead(200, { 'content-length': 2 })
            res.end('ok')
          }
        }
      : undefined,
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])], limits }))
  return { s, up }
}

const h2get = h2status

/** TCP sockets on `port` in `state` (ss -tan), either side. */
async function socketsIn(port: number, state: string): Promise<number> {
  const { stdout } = await run('ss', ['-tanH', 'state', state, `( sport = :${port} )`])
  return stdout.split('\n').filter((l) => l.trim() !== '').length
}

// ---- 3. the client's FIN -----------------------------------------------------------------------

t.test('curl --http2-prior-knowledge closes with FIN and no GOAWAY: no CLOSE-WAIT left, connections back to idle', async (t) => {
  const { s } = await setup(t)
  const N = 60
  for (let i = 0; i < N; i += 10) {
    await Promise.all(Array.from({ length: 10 }, () => run('curl', ['-s', '-o', '/dev/null', '--http2-prior-knowledge', `http://127.0.0.1:${s.port}/ok`])))
  }
  await until('every connection of the proxy closed', async () => (await listenerStats(s)).cxActive === 0, 3000)
  t.equal(await socketsIn(s.port, 'close-wait'), 0, 'no socket in CLOSE-WAIT on the listener port')
  const st = await listenerStats(s)
  t.equal(st.cxTotal, N, `${N} connections accepted`)
  t.ok((st as unknown as { h2: Record<string, number> }).h2.peerClosed > 0, 'counted as closed by the peer')
})

t.test('a FIN with a stream in flight: the response is still delivered, then the connection closes', async (t) => {
  const up = await startHttpUpstream(t, {
    onRequest: (_req, res) => setTimeout(() => res.end('late'), 100),
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await H2RawClient.connect(s.port)
  await c.waitFrame((f) => f.type === T.SETTINGS)
  await c.send(headers(1, requestFields('GET', '/slow'), { endStream: true }))
  await until('the request is upstream', () => up.requests.length === 1)
  c.end()
  const d = await c.waitFrame((f) => f.type === T.DATA && f.streamId === 1)
  t.ok(d !== null, 'the response came after the FIN')
  t.ok(await c.waitClose(3000), 'then the proxy closed the connection')
  await until('connection gone', async () => (await listenerStats(s)).cxActive === 0)
})

// ---- 6. first byte -----------------------------------------------------------------------------

t.test('a connection that sends nothing is answered 408 and closed after firstByteTimeout', async (t) => {
  const { s } = await setup(t, { firstByteTimeout: '200ms' })
  const t0 = Date.now()
  const c = await RawClient.connect(s.port)
  t.ok(await c.waitClose(3000), 'closed by the proxy')
  const ms = Date.now() - t0
  t.ok(ms >= 150 && ms < 2500, `after about firstByteTimeout (${ms} ms)`)
  t.match(c.text(), /^HTTP\/1\.1 408 /, '408')
  t.match(c.text(), /x-weft-error: WEFT_ERR_FIRST_BYTE_TIMEOUT/)
  await until('connection gone', async () => (await listenerStats(s)).cxActive === 0)
  t.ok((await listenerStats(s)).timeouts >= 1, 'counted as a timeout')
  // a client that talks is not cut by it
  t.equal(await h2get(s.port), 200)
})

t.test('firstByteTimeout on a protocol http listener (408) and a protocol http2 listener (closed)', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  for (const protocol of ['http', 'http2'] as const) {
    const cfg = makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])], limits: { firstByteTimeout: '200ms' } })
    cfg.listeners[0].protocol = protocol
    const s = await startTestSidecar(t, cfg)
    const c = await RawClient.connect(s.port)
    t.ok(await c.waitClose(3000), `${protocol}: closed by the proxy`)
    if (protocol === 'http') t.match(c.text(), /^HTTP\/1\.1 408 [^]*x-weft-error: WEFT_ERR_FIRST_BYTE_TIMEOUT/, 'http: 408 WEFT_ERR_FIRST_BYTE_TIMEOUT')
    await until('connection gone', async () => (await listenerStats(s)).cxActive === 0)
    const st = (await listenerStats(s)) as unknown as { timeouts: number; h2: Record<string, number> }
    t.equal(st.timeouts, 1, `${protocol}: counted as a timeout`)
    if (protocol === 'http2') t.equal(st.h2.firstByteTimeouts, 1, 'http2: h2.firstByteTimeouts')
    // a client that talks within the timeout is served and then kept (idle timeout, not first byte)
    if (protocol === 'http2') {
      const k = await H2RawClient.connect(s.port)
      await k.send(headers(1, requestFields('GET', '/ok'), { endStream: true }))
      t.ok(await k.waitResponse(1), 'http2: served')
      t.notOk(await k.waitClose(600), 'http2: and kept open past firstByteTimeout')
      k.destroy()
    } else {
      const k = await RawClient.connect(s.port)
      await k.write('GET /ok HTTP/1.1\r\nhost: app.test\r\n\r\n')
      t.equal((await k.response()).status, 200, 'http: served')
      t.notOk(await k.waitClose(600), 'http: and kept open past firstByteTimeout')
      k.socket.destroy()
    }
  }
})

t.test('a detect listener with a TCP target: a silent client is tunnelled after detectTimeout, not answered 408', async (t) => {
  const banner = createNetServer((sock) => {
    sock.on('error', () => {})
    sock.end('220 banner\r\n')
  })
  await new Promise<void>((r) => banner.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => banner.close(() => r())))
  const cfg = makeConfig({ routes: [routeTo('db')], clusters: [cluster('db', [(banner.address() as AddressInfo).port])], limits: { firstByteTimeout: '100ms' } })
  cfg.listeners[0].tcp = { cluster: 'db' }
  cfg.listeners[0].detectTimeout = '500ms'
  const s = await startTestSidecar(t, cfg)
  const c = await RawClient.connect(s.port)
  t.ok(await c.waitClose(3000), 'the banner came and the tunnel closed')
  t.equal(c.text(), '220 banner\r\n', 'the server-first banner, no 408')
})

t.test('config: firstByteTimeout and streamIdleTimeout are checked, errors with file:line:column', async (t) => {
  const errors = (limits: string) => {
    const r = parseBootstrap(`limits:\n${limits}\nlisteners: []\nrouteTables: []\nclusters: []\n`, 'b.yaml')
    return r.ok ? [] : r.errors.map(formatConfigError)
  }
  t.same(errors('  firstByteTimeout: 2s\n  streamIdleTimeout: 10s\n  http2MaxConcurrentStreams: 100'), [])
  t.same(errors('  firstByteTimeout: 0s'), ['b.yaml:2:21: limits.firstByteTimeout: must be longer than 0 (found "0s")'])
  t.same(errors('  firstByteTimeout: 10m'), ['b.yaml:2:21: limits.firstByteTimeout: must not be longer than idleTimeout (5m): found "10m"'])
  t.same(errors('  streamIdleTimeout: 0s'), ['b.yaml:2:22: limits.streamIdleTimeout: must be longer than 0 (found "0s")'])
  t.equal(errors('  http2MaxConcurrentStreams: 0').length, 1)
})

// ---- 4. stalled streams ------------------------------------------------------------------------

/** An attacker: window 0 (SETTINGS_INITIAL_WINDOW_SIZE 0), n streams each asking for a big body. */
async function stall(port: number, n: number): Promise<H2RawClient> {
  const c = await H2RawClient.connect(port, { settings: [[S.INITIAL_WINDOW_SIZE, 0]] })
  const fr: Buffer[] = []
  for (let i = 0; i < n; i++) fr.push(headers(1 + 2 * i, requestFields('GET', `/big/${i}`), { endStream: true }))
  await c.send(...fr)
  return c
}

function openSockets(up: HttpUpstream): number {
  let n = 0
  for (const s of up.sockets as Set<Socket>) if (!s.destroyed) n++
  return n
}

t.test('stalled streams: reset after streamIdleTimeout, their upstream connections released, others served meanwhile', async (t) => {
  const { s, up } = await setup(t, { streamIdleTimeout: '400ms' }, true)
  const a = await stall(s.port, 20)
  const b = await stall(s.port, 20)
  await until('the upstream holds the stalled requests', () => up.requests.filter((r) => r.url.startsWith('/big')).length === 40, 3000)
  t.ok(openSockets(up) >= 20, `upstream connections held (${openSockets(up)})`)
  t.equal(await h2get(s.port), 200, 'another client is served meanwhile')
  const ra = await a.waitReset(39, 4000)
  t.ok(ra !== null && ra.type === T.RST_STREAM && errorCode(ra) === E.CANCEL, 'the stalled streams are reset (RST_STREAM CANCEL)')
  await until('upstream connections released', () => openSockets(up) <= 1, 4000)
  t.ok(openSockets(up) <= 1, `upstream connections back to idle (${openSockets(up)} open)`)
  t.equal(up.requests.filter((r) => r.url.startsWith('/big')).length, 40, 'no stalled request was sent upstream twice')
  const st = (await listenerStats(s)) as unknown as { h2: Record<string, number> }
  t.equal(st.h2.streamIdleTimeouts, 40, 'h2.streamIdleTimeouts counts each')
  const m = await s.admin('/metrics')
  t.match(m.body, /weft_proxy_decisions_total\{[^}]*decision="h2_stream_idle_timeout"[^}]*\} 40/)
  a.destroy()
  b.destroy()
  t.equal(await h2get(s.port), 200, 'still serving')
})

t.test('stalled streams: the attacker leaving releases every upstream connection it held', async (t) => {
  const { s, up } = await setup(t, { streamIdleTimeout: '5m' }, true)
  const a = await stall(s.port, 30)
  await until('the upstream holds the stalled requests', () => up.requests.filter((r) => r.url.startsWith('/big')).length === 30, 3000)
  t.ok(openSockets(up) >= 30, `upstream connections held (${openSockets(up)})`)
  a.destroy()
  await until('upstream connections released', () => openSockets(up) === 0, 3000).catch((e) => { t.comment('open ' + openSockets(up)); throw e })
  t.equal(openSockets(up), 0, 'all released after the client left')
  t.equal(up.requests.filter((r) => r.url.startsWith('/big')).length, 30, 'and none sent again')
  await until('downstream connection gone', async () => (await listenerStats(s)).cxActive === 0)
  t.equal(await h2get(s.port), 200)
})

t.test('stalled streams: a client whose connection is reset (TCP RST) releases every upstream connection it held', async (t) => {
  const { s, up } = await setup(t, { streamIdleTimeout: '5m' }, true)
  const a = await stall(s.port, 30)
  await until('the upstream holds the stalled requests', () => up.requests.filter((r) => r.url.startsWith('/big')).length === 30, 3000)
  a.socket.resetAndDestroy()
  await until('upstream connections released', () => openSockets(up) === 0, 3000)
  t.equal(openSockets(up), 0, 'all released after the reset')
  t.equal(up.requests.filter((r) => r.url.startsWith('/big')).length, 30, 'and none sent again')
  await until('downstream connection gone', async () => (await listenerStats(s)).cxActive === 0)
})

t.test('one connection holds at most http2MaxActiveStreams upstream connections; the rest wait, then run', async (t) => {
  const { s, up } = await setup(t, { http2MaxActiveStreams: 5, streamIdleTimeout: '5m' }, true)
  const big = () => up.requests.filter((r) => r.url.startsWith('/big')).map((r) => r.url)
  const a = await stall(s.port, 20)
  await until('five stalled requests upstream', () => big().length === 5)
  t.equal(await h2get(s.port), 200, 'another client is served meanwhile')
  t.equal(big().length, 5, 'the upstream saw 5 of the 20 requests')
  t.ok(openSockets(up) <= 6, `at most 5 upstream connections held for it (${openSockets(up)} open)`)
  const st = (await listenerStats(s)) as unknown as { h2: Record<string, number> }
  t.equal(st.h2.queuedStreams, 15, 'h2.queuedStreams')
  // the client resets the 5 stalled ones: the next 5 run, in order
  await a.send(...[1, 3, 5, 7, 9].map((id) => rstStream(id, E.CANCEL)))
  await until('the next five went upstream', () => big().length === 10)
  t.same(big().slice(5), ['/big/5', '/big/6', '/big/7', '/big/8', '/big/9'], 'in order')
  a.socket.resetAndDestroy()
  await until('upstream connections released', () => openSockets(up) <= 1, 3000)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(big().length, 10, 'the queued streams of a client that left never went upstream')
})

t.test('an HTTP/2 cluster whose session is filled by stalled streams serves other clients again after streamIdleTimeout', async (t) => {
  // the app takes 10 streams at once: 10 stalled streams of one client fill the shared session
  const app = h2createServer({ settings: { maxConcurrentStreams: 10 } })
  app.on('session', (x) => x.on('error', () => {}))
  app.on('stream', (st: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    st.on('error', () => {})
    const big = String(h[':path']).startsWith('/big')
    st.respond({ ':status': 200 })
    st.end(big ? BIG : 'ok')
  })
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => app.close(() => r())))
  const port = (app.address() as AddressInfo).port
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [port], { protocol: 'http2' })], limits: { streamIdleTimeout: '500ms' } }))
  const a = await stall(s.port, 10)
  await until('the stalled streams are upstream', async () => (await s.adminJson('/clusters')).clusters[0].activeRequests === 10)
  // another client, meanwhile: it waits behind the stalled streams (the app takes no 11th), then is
  // served once they are reset (a node:http2 app may refuse the first stream after the resets with
  // ENHANCE_YOUR_CALM while it cleans up: the client tries again, as a client would on a 502)
  const t0 = Date.now()
  let status = 0
  while (status !== 200 && Date.now() - t0 < 4000) status = await h2get(s.port).catch(() => 0)
  const waited = Date.now() - t0
  t.equal(status, 200, 'another client is served')
  t.comment(`served ${waited} ms after it first asked (the stalled streams are reset after 500 ms)`)
  // the ten resets fire about together; the first ones free slots of the app, so the other
  // client may be served before the last ones are counted: wait for them
  const idleTimeouts = async () => ((await listenerStats(s)) as unknown as { h2: Record<string, number> }).h2.streamIdleTimeouts
  await until('the ten stalled streams are reset', async () => (await idleTimeouts()) >= 10, 3000)
  const n = await idleTimeouts()
  t.ok(n >= 10, `the stalled streams reset (h2.streamIdleTimeouts ${n}: a request queued behind them as long is idle too)`)
  a.destroy()
})

t.test('an attacker with waiting streams leaving with FIN: they never go upstream, all upstream connections released', async (t) => {
  const { s, up } = await setup(t, { http2MaxActiveStreams: 5 }, true)
  const big = () => up.requests.filter((r) => r.url.startsWith('/big')).length
  const a = await stall(s.port, 50)
  await until('five stalled requests upstream', () => big() === 5)
  a.destroy()
  await until('upstream connections released', () => openSockets(up) === 0, 4000)
  t.equal(big(), 5, 'the 45 waiting streams never went upstream')
  await until('downstream connection gone', async () => (await listenerStats(s)).cxActive === 0)
})

t.test('SETTINGS_MAX_CONCURRENT_STREAMS is advertised and enforced', async (t) => {
  const { s, up } = await setup(t, { http2MaxConcurrentStreams: 5 }, true)
  const c = await H2RawClient.connect(s.port, { settings: [[S.INITIAL_WINDOW_SIZE, 0]] })
  const sf = await c.waitFrame((f) => f.type === T.SETTINGS && (f.flags & 1) === 0)
  let advertised = -1
  for (let o = 0; sf !== null && o + 6 <= sf.payload.length; o += 6) if (sf.payload.readUInt16BE(o) === S.MAX_CONCURRENT_STREAMS) advertised = sf.payload.readUInt32BE(o + 2)
  t.equal(advertised, 5, 'SETTINGS_MAX_CONCURRENT_STREAMS 5')
  await c.waitFrame((f) => f.type === T.SETTINGS && (f.flags & 1) === 1) // our SETTINGS acknowledged, and the client acked the proxy's (autoAck)
  await new Promise((r) => setTimeout(r, 50))
  const fr: Buffer[] = []
  for (let i = 0; i < 8; i++) fr.push(headers(1 + 2 * i, requestFields('GET', `/big/${i}`), { endStream: true }))
  await c.send(...fr)
  // nghttp2 treats a stream over the acknowledged limit as a connection error (RFC 9113 §5.1.2
  // allows a stream error too): GOAWAY PROTOCOL_ERROR, its last stream the 5th
  const g = await c.waitFrame((f) => f.type === T.GOAWAY)
  t.ok(g !== null && errorCode(g) === E.PROTOCOL_ERROR, 'GOAWAY PROTOCOL_ERROR')
  t.ok(g !== null && g.payload.readUInt32BE(0) <= 9, `last stream id ${g?.payload.readUInt32BE(0)}: none past the 5th processed`)
  await new Promise((r) => setTimeout(r, 50))
  t.ok(up.requests.length <= 5, `at most five reached the upstream (${up.requests.length})`)
  c.destroy()

  // A client that opens streams before acknowledging the SETTINGS: those over the limit are refused.
  const d = await H2RawClient.connect(s.port, { settings: [[S.INITIAL_WINDOW_SIZE, 0]] })
  d.autoAck = false
  await d.waitFrame((f) => f.type === T.SETTINGS)
  const fr2: Buffer[] = []
  for (let i = 0; i < 8; i++) fr2.push(headers(1 + 2 * i, requestFields('GET', `/big/${i}`), { endStream: true }))
  await d.send(...fr2)
  const refused = await until('streams over the limit refused', () => {
    const r = d.frames.filter((f) => f.type === T.RST_STREAM && errorCode(f) === E.REFUSED_STREAM)
    return r.length >= 3 ? r : null
  })
  t.same(refused!.map((f) => f.streamId), [11, 13, 15], 'before the ACK: the 6th to 8th streams get REFUSED_STREAM')
  d.destroy()
  t.equal(await h2get(s.port), 200, 'still serving')
})

// ---- 7. reset floods -----------------------------------------------------------------------------

t.test('rapid reset (HEADERS + RST_STREAM, 600 times): GOAWAY ENHANCE_YOUR_CALM and close', async (t) => {
  const { s, up } = await setup(t)
  const c = await H2RawClient.connect(s.port)
  await c.waitFrame((f) => f.type === T.SETTINGS)
  const fr: Buffer[] = []
  for (let i = 0; i < 600; i++) fr.push(headers(1 + 2 * i, requestFields('GET', '/x')), rstStream(1 + 2 * i, E.CANCEL))
  await c.send(...fr)
  const g = await c.waitFrame((f) => f.type === T.GOAWAY, 3000)
  t.ok(g !== null && errorCode(g) === E.ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM')
  t.equal(g?.payload.subarray(8).toString(), 'WEFT_ERR_H2_RESET_FLOOD', 'its debug data names the code')
  t.ok(await c.waitClose(3000), 'the connection is closed')
  const st = (await listenerStats(s)) as unknown as { h2: Record<string, number> }
  t.equal(st.h2.resetFloods, 1, 'h2.resetFloods')
  const m = await s.admin('/metrics')
  t.match(m.body, /weft_proxy_decisions_total\{[^}]*decision="h2_reset_flood"[^}]*\} 1/)
  t.ok(up.requests.length < 600, `not every reset stream went upstream (${up.requests.length})`)
  t.equal(await h2get(s.port), 200, 'other clients served')
})

t.test('HPACK bomb (every header block over the limit, refused by the codec): GOAWAY ENHANCE_YOUR_CALM', async (t) => {
  const { s, up } = await setup(t, { maxHeaderBytes: 4096 })
  const c = await H2RawClient.connect(s.port)
  await c.waitFrame((f) => f.type === T.SETTINGS)
  const block = hpack([...requestFields('GET', '/x'), ['x-big', 'a'.repeat(10_000)]])
  for (let i = 0; i < 600 && !c.done; i++) {
    const id = 1 + 2 * i
    await c.send(headers(id, block.subarray(0, 8000), { endHeaders: false, endStream: true }), continuation(id, block.subarray(8000)))
  }
  const g = await c.waitFrame((f) => f.type === T.GOAWAY, 4000)
  t.ok(g !== null && errorCode(g) === E.ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM')
  t.ok(await c.waitClose(3000), 'the connection is closed')
  t.equal(up.requests.length, 0, 'nothing upstream')
  const st = (await listenerStats(s)) as unknown as { h2: Record<string, number> }
  t.equal(st.h2.resetFloods, 1)
  t.equal(await h2get(s.port), 200, 'other clients served')
})
