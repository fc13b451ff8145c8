// Drain without loss: SIGTERM while many keep-alive clients send continuously. Every request a
// client wrote gets a complete response; a client only stops using a connection after a response
// with Connection: close (the proxy's word that nothing more is read from it). HTTP/2 clients get
// GOAWAY in two steps (the largest stream id, then the real last one). The drain period keeps the
// listener accepting; `/ready` is 503 from the start.
import t from 'tap'
import { connect as h2connect, constants as h2c, type ClientHttp2Session } from 'node:http2'
import { connect, type Socket } from 'node:net'
import { frame as h2frame } from './helpers/h2raw.ts'
import {
  cluster, freePort, makeConfig, routeTo, sleep, spawnWeft, startTestSidecar, tempDir, until, waitExit, waitReady, writeConfig,
} from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { gate } from './helpers/wait.ts'

/** One HTTP/1.1 response off a socket: status, whether it says Connection: close; null when the socket ended first. */
function readResponse(s: Socket, buffered: { b: Buffer }): Promise<{ status: number; close: boolean } | null> {
  return new Promise((resolve) => {
    const tryParse = (): boolean => {
      const b = buffered.b
      const end = b.indexOf('\r\n\r\n')
      if (end === -1) return false
      const head = b.subarray(0, end).toString('latin1')
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
      if (b.length < end + 4 + len) return false
      buffered.b = b.subarray(end + 4 + len)
      done({ status: Number(head.slice(9, 12)), close: /\r\nconnection: *close/i.test(head) })
      return true
    }
    const onData = (d: Buffer) => {
      buffered.b = Buffer.concat([buffered.b, d])
      tryParse()
    }
    const onEnd = () => done(null)
    const done = (v: { status: number; close: boolean } | null) => {
      s.off('data', onData)
      s.off('end', onEnd)
      s.off('close', onEnd)
      s.off('error', onEnd)
      resolve(v)
    }
    s.on('data', onData)
    s.once('end', onEnd)
    s.once('close', onEnd)
    s.once('error', onEnd)
    tryParse()
  })
}

function open(port: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => resolve(s))
    s.once('error', () => resolve(null))
  })
}

interface LoadResult {
  written: number
  answered: number
  /** written, then the connection ended without a (complete) response */
  lost: number
  closeResponses: number
  answeredAfterSigterm: number
  connectionsAfterSigterm: number
  refused: number
}

/**
 * `clients` loops, each on one keep-alive connection at a time, sending requests back to back. A
 * connection is left after a response with Connection: close; then a new one is opened, until
 * `noNewAfter()` (the moment callers learn the endpoint is gone). Stops when `stop()` is true.
 */
async function load(port: number, clients: number, sigtermAt: () => number, noNewAfter: () => boolean, stop: () => boolean): Promise<LoadResult> {
  const r: LoadResult = { written: 0, answered: 0, lost: 0, closeResponses: 0, answeredAfterSigterm: 0, connectionsAfterSigterm: 0, refused: 0 }
  const worker = async (id: number) => {
    let n = 0
    while (!stop() && !noNewAfter()) {
      const s = await open(port)
      if (s === null) {
        r.refused++
        await sleep(5) // load generator: a refused connect is tried again a little later
        continue
      }
      if (sigtermAt() !== 0) r.connectionsAfterSigterm++
      const buffered = { b: Buffer.alloc(0) }
      for (;;) {
        if (stop()) break
        s.write(`GET /c${id}/${n++} HTTP/1.1\r\nHost: svc\r\n\r\n`)
        r.written++
        const res = await readResponse(s, buffered)
        if (res === null) {
          r.lost++
          break
        }
        r.answered++
        if (sigtermAt() !== 0) r.answeredAfterSigterm++
        if (res.close) {
          r.closeResponses++
          break
        }
      }
      s.destroy()
    }
  }
  await Promise.all(Array.from({ length: clients }, (_, i) => worker(i)))
  return r
}

t.test('SIGTERM under keep-alive load: no request lost, /ready 503, exit 0 after the period', async (t) => {
  const up = await startHttpUpstream(t, {
    name: 'app',
    handler: async (rec, res) => {
      await sleep(2) // requests in flight at any moment
      res.end(`app ${rec.url}`)
    },
  })
  const [port, adminPort] = [await freePort(), await freePort()]
  const period = 600
  const file = writeConfig(tempDir(t), makeConfig({ port, adminPort, drainTimeout: '5s', drainPeriod: `${period}ms`, routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const child = spawnWeft(t, file, { WEFT_LOG_LEVEL: 'info' })
  await waitReady(adminPort)

  let sigtermAt = 0
  let exited = false
  const running = load(port, 40, () => sigtermAt, () => sigtermAt !== 0 && performance.now() - sigtermAt > period / 2, () => exited)
  await until('load running', () => up.requests.length > 200, 10_000)
  sigtermAt = performance.now()
  child.child.kill('SIGTERM')
  const readyAt = async () => fetch(`http://127.0.0.1:${adminPort}/ready`).then(async (r) => ({ status: r.status, body: await r.text() }))
  // well inside the period (the signal reaches the process a moment after kill())
  const ready = await until('/ready 503', async () => ((await readyAt()).status === 503 ? readyAt() : null), period / 2, 5).catch(() => readyAt())
  const exit = await waitExit(child, 8000)
  const exitAfter = performance.now() - sigtermAt
  exited = true
  const r = await running

  t.same(ready, { status: 503, body: 'draining\n' }, '/ready turns 503 at once')
  t.same(exit, { code: 0, signal: null }, 'exit code 0')
  t.ok(exitAfter >= period && exitAfter < period + 2000, `exited ${Math.round(exitAfter)} ms after SIGTERM (period ${period} ms)`)
  t.equal(r.lost, 0, `no request lost: ${JSON.stringify(r)}`)
  t.equal(r.written, r.answered, 'every request written was answered')
  t.ok(r.connectionsAfterSigterm > 0 && r.answeredAfterSigterm > r.connectionsAfterSigterm, 'the listener kept accepting and answering during the period')
  t.ok(r.closeResponses >= 40, 'each keep-alive connection was told Connection: close')
  const logs = child.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown })
  t.match(logs.find((l) => l.msg === 'draining'), { signal: 'SIGTERM', drainPeriodMs: period, drainTimeoutMs: 5000 }, 'the drain is logged with its settings')
  t.match(logs.find((l) => l.msg === 'drained, exiting'), { timedOut: false })
})

t.test('an idle keep-alive connection stays open through the period; a request on it is answered with Connection: close', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(t, makeConfig({ drainPeriod: '300ms', routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await open(s.port)
  t.ok(c !== null)
  const buffered = { b: Buffer.alloc(0) }
  c!.write('GET /before HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.match(await readResponse(c!, buffered), { status: 200, close: false })
  const started = performance.now()
  const drained = s.sidecar.drain(5000)
  // inside the period (the drain has begun: /ready says so): the connection is idle, the client may send at any time
  await until('/ready 503 (draining)', async () => (await s.admin('/ready')).status === 503, 1000, 2)
  t.equal(c!.destroyed || c!.readableEnded, false, 'idle connection still open inside the period')
  c!.write('GET /during HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.match(await readResponse(c!, buffered), { status: 200, close: true }, 'answered, with Connection: close')
  const other = await open(s.port)
  t.ok(other !== null, 'new connections accepted during the period')
  const ob = { b: Buffer.alloc(0) }
  other!.write('GET /new HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.match(await readResponse(other!, ob), { status: 200, close: true })
  other!.destroy()
  c!.destroy()
  t.same(await drained, { timedOut: false })
  t.ok(performance.now() - started >= 290, 'the drain lasted the period')
  t.equal(await open(s.port).then((x) => (x?.destroy(), x === null)), true, 'after the period: refused')
})

t.test('HTTP/2: GOAWAY in two steps (2^31-1, then the last stream id); the stream in flight completes', async (t) => {
  const slowAnswer = gate() // /slow is answered once the client has both GOAWAYs
  const up = await startHttpUpstream(t, {
    name: 'app',
    handler: async (rec, res) => {
      if (rec.url === '/slow') await slowAnswer.wait()
      res.end(`app ${rec.url}`)
    },
  })
  const s = await startTestSidecar(t, makeConfig({ drainPeriod: '200ms', routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c: ClientHttp2Session = h2connect(`http://127.0.0.1:${s.port}`)
  t.teardown(() => c.destroy())
  const goaways: { code: number; last: number }[] = []
  c.on('goaway', (code: number, last: number) => goaways.push({ code, last }))
  c.on('error', () => {})
  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const st = c.request({ ':path': path, ':authority': 'svc' })
      let status = 0
      let body = ''
      st.on('response', (h) => (status = Number(h[':status'])))
      st.setEncoding('utf8').on('data', (d: string) => (body += d))
      st.on('end', () => resolve({ status, body }))
      st.on('error', reject)
    })
  t.same(await get('/first'), { status: 200, body: 'app /first' })
  const slow = get('/slow')
  await until('upstream has /slow', () => up.requests.some((r) => r.url === '/slow'), 2000, 2)
  const drained = s.sidecar.drain(5000)
  await until('two GOAWAYs', () => goaways.length >= 2, 2000, 2)
  t.same(goaways, [
    { code: h2c.NGHTTP2_NO_ERROR, last: 2 ** 31 - 1 },
    { code: h2c.NGHTTP2_NO_ERROR, last: 3 },
  ], 'first the largest stream id, then the last one processed (stream 3, /slow)')
  slowAnswer.open()
  t.same(await slow, { status: 200, body: 'app /slow' }, 'the stream in flight completed')
  t.same(await drained, { timedOut: false })
})

t.test('HTTP/2: a stream the client starts between the two GOAWAYs is served, and the second GOAWAY counts it (never lost silently)', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(t, makeConfig({ drainPeriod: '200ms', routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const lit = (n: string, v: string) => Buffer.concat([Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)])
  const req = (id: number, path: string) => h2frame(1, 5, id, Buffer.concat([lit(':method', 'GET'), lit(':scheme', 'http'), lit(':path', path), lit(':authority', 'svc')]))
  const sock = connect(s.port, '127.0.0.1')
  t.teardown(() => sock.destroy())
  const seen: string[] = []
  let buf = Buffer.alloc(0)
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3)
      const [type, flags, id, p] = [buf[3], buf[4], buf.readUInt32BE(5) & 0x7fffffff, buf.subarray(9, 9 + len)]
      buf = buf.subarray(9 + len)
      if (type === 1) seen.push(`HEADERS ${id}`)
      if (type === 7) {
        seen.push(`GOAWAY ${p.readUInt32BE(0) & 0x7fffffff}`)
        if (seen.filter((x) => x.startsWith('GOAWAY')).length === 1) sock.write(req(3, '/late')) // a client that had not seen it yet
      }
      if (type === 6 && (flags & 1) === 0) {
        seen.push('PING')
        sock.write(h2frame(6, 1, 0, p)) // the PING ack, after /late
      }
    }
  })
  sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), h2frame(4, 0, 0, Buffer.alloc(0)), req(1, '/first')]))
  await until('the first response', () => seen.includes('HEADERS 1'), 2000, 2)
  const drained = s.sidecar.drain(3000)
  await until('two GOAWAYs', () => seen.filter((x) => x.startsWith('GOAWAY')).length >= 2, 2000, 2)
  await until('the answer to /late', () => seen.includes('HEADERS 3'), 2000, 2)
  // RFC 9113 §6.8: the first GOAWAY (2^31-1) stops new streams, the PING is the round trip after
  // which the second GOAWAY carries the last stream processed: /late came within it and is
  // served (with WEFT_H2_CODEC=node, nghttp2 ignores it and the second GOAWAY says 1)
  t.same(seen.slice(0, 3), ['HEADERS 1', 'GOAWAY 2147483647', 'PING'], 'GOAWAY first, then the PING')
  t.ok(seen.includes('GOAWAY 3'), `the second GOAWAY says stream 3 was processed (${seen.join(', ')})`)
  t.same(up.requests.map((r) => r.url), ['/first', '/late'], '/late went upstream once')
  sock.destroy()
  t.same(await drained, { timedOut: false })
})
