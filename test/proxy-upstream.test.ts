// Upstream failures and flow control: connect failures, resets before and during a response,
// bounded memory for big bodies with slow peers (child-process proxy, RSS sampled from /proc),
// stale keep-alive connections, and pool limits.
import t, { type Test } from 'tap'
import { connect, createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { rawClient, type RawClient } from './helpers/raw.ts'
import { gate } from './helpers/wait.ts'
import {
  cluster,
  endpointView,
  freePort,
  listenerStats,
  makeConfig,
  routeTo,
  rssBytes,
  sleep,
  spawnWeft,
  startTestSidecar,
  tempDir,
  until,
  waitReady,
  writeConfig,
} from './helpers/sidecar.ts'
import { rawResponse, startHttpUpstream, startRawUpstream } from './helpers/upstream.ts'

const MB = 1024 * 1024

t.test('connect failure: 503 UF, client connection still usable', async (t) => {
  const dead = await freePort() // nothing listens there
  const live = await startHttpUpstream(t, { name: 'live' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('dead', { match: { path: { prefix: '/dead' } } }), routeTo('live')],
      clusters: [cluster('dead', [dead]), cluster('live', [live.port])],
    }),
  )
  const c = await rawClient(t, s.port)
  await c.write('GET /dead HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 503)
  t.equal(r.get('x-weft-response-flags'), 'UF')
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_CONNECT')
  t.notOk(r.get('connection') === 'close', 'not closing the client connection')
  await c.write('GET /next HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r2 = await c.response()
  t.equal(r2.status, 200)
  t.equal(r2.body.toString(), 'live GET /next')
  const ep = await endpointView(s, 'dead')
  t.equal(ep.connections.connectFailures, 1, '/clusters counts the connect failure')
  t.equal(ep.requestErrors, 1)
  t.equal(ep.activeRequests, 0)
})

t.test('upstream resets before responding: 502 UC, client connection survives', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    const req = await conn.nextRequest()
    if (conn.index === 0) conn.socket.resetAndDestroy()
    else if (conn.index === 1) conn.socket.end() // a clean close without a response: same outcome
    else conn.write(rawResponse(200, 'fine ' + req.line.split(' ')[1]))
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  for (const what of ['reset', 'closed']) {
    await c.write(`GET /${what} HTTP/1.1\r\nHost: svc\r\n\r\n`)
    const r = await c.response()
    t.equal(r.status, 502, `${what}: 502`)
    t.equal(r.get('x-weft-response-flags'), 'UC')
    t.equal(r.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_RESET')
  }
  t.notOk(c.done, 'client connection open')
  await c.write('GET /after HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200)
  t.equal(r.body.toString(), 'fine /after')
  t.equal((await endpointView(s, 'app')).requestErrors, 2)
  t.equal((await listenerStats(s)).upstreamErrors, 2)
})

t.test('upstream reset mid-body: truncated response, client connection closed', async (t) => {
  // the reset (or FIN) follows bytes the client already has
  let client: RawClient | undefined
  const up = await startRawUpstream(t, async (conn) => {
    await conn.nextRequest()
    conn.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789')
    await until('the client has the first bytes', () => client?.text().includes('0123456789') ?? false)
    conn.socket.resetAndDestroy()
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  client = c
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response({ timeoutMs: 2000 })
  t.equal(r.status, 200)
  t.equal(r.get('content-length'), '100')
  t.equal(r.complete, false, 'response incomplete')
  t.equal(r.body.toString(), '0123456789', 'fewer bytes than Content-Length')
  t.ok(c.done, 'connection closed')
  // chunked variant: no last chunk
  const up2 = await startRawUpstream(t, async (conn) => {
    await conn.nextRequest()
    conn.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n')
    await until('the client has the first chunk', () => client?.text().includes('hello') ?? false)
    conn.socket.end()
  })
  const s2 = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up2.port])] }))
  const c2 = await rawClient(t, s2.port)
  client = c2
  await c2.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r2 = await c2.response({ timeoutMs: 2000 })
  t.equal(r2.complete, false, 'chunked response without its last chunk is incomplete')
  t.equal(r2.body.toString(), 'hello')
  t.ok(c2.done)
})

// ---- bounded memory (child process) ---------------------------------------------------------------

interface Sampler {
  max: number
  sample(): void
}

function sampler(pid: number): Sampler {
  const s: Sampler = {
    max: 0,
    sample() {
      s.max = Math.max(s.max, rssBytes(pid))
    },
  }
  return s
}

/** Wait until `value()` has not changed for `quietMs` (or timeoutMs passed). */
async function settle(value: () => number, quietMs: number, timeoutMs: number, each: () => void): Promise<void> {
  const end = Date.now() + timeoutMs
  let last = value()
  let since = Date.now()
  while (Date.now() < end) {
    await sleep(25) // a poll: "stopped moving" has no event of its own
    each()
    const v = value()
    if (v !== last) {
      last = v
      since = Date.now()
    } else if (Date.now() - since >= quietMs) return
  }
}

t.test('bounded memory with 100 MB bodies and slow peers (child-process proxy)', async (t) => {
  const SIZE = 100 * MB
  const chunk = Buffer.alloc(64 * 1024, 0x61)

  // download source: streams 100 MB with backpressure
  let written = 0
  const source = await startHttpUpstream(t, {
    onRequest: (req, res) => {
      req.resume()
      if (req.url === '/small') {
        res.end('small')
        return
      }
      res.writeHead(200, { 'content-length': SIZE })
      const pump = () => {
        while (written < SIZE) {
          const n = Math.min(chunk.length, SIZE - written)
          written += n
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', pump)
            return
          }
        }
        res.end()
      }
      pump()
    },
  })

  // upload sink: a raw upstream the test pauses and resumes
  let sinkSocket: Socket | null = null
  let sinkBody = 0
  let sinkHead = ''
  let sinkPaused = false
  const sink = createServer((sock) => {
    sinkSocket = sock
    let headDone = false
    sock.on('data', (b: Buffer) => {
      if (!headDone) {
        sinkHead += b.toString('latin1')
        const i = sinkHead.indexOf('\r\n\r\n')
        if (i === -1) return
        headDone = true
        sinkBody += sinkHead.length - (i + 4)
        sinkHead = sinkHead.slice(0, i)
        if (sinkPaused) sock.pause()
      } else {
        sinkBody += b.length
      }
      if (sinkBody >= SIZE) sock.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok')
    })
    sock.on('error', () => {})
  })
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => {
    sinkSocket?.destroy()
    sink.close()
  })
  const sinkPort = (sink.address() as AddressInfo).port

  const listenPort = await freePort()
  const adminPort = await freePort()
  const dir = tempDir(t)
  const file = writeConfig(
    dir,
    makeConfig({
      port: listenPort,
      adminPort,
      routes: [routeTo('sink', { match: { path: { prefix: '/upload' } } }), routeTo('source')],
      clusters: [cluster('source', [source.port]), cluster('sink', [sinkPort])],
    }),
  )
  const child = spawnWeft(t, file)
  await waitReady(adminPort)
  const pid = child.pid

  // warm up, then the baseline
  const warm = await rawClient(t, listenPort)
  for (let i = 0; i < 20; i++) {
    await warm.write('GET /small HTTP/1.1\r\nHost: svc\r\n\r\n')
    await warm.response()
  }
  warm.destroy()
  // the baseline once the proxy has closed the warm-up connection (its /stats say so)
  const cxActive = async () => {
    const v = (await (await fetch(`http://127.0.0.1:${adminPort}/stats`)).json()) as { listeners: { name: string; cxActive: number }[] }
    return v.listeners.find((l) => l.name === 'out')?.cxActive
  }
  await until('the warm-up connection closed', async () => (await cxActive()) === 0)
  const baseline = rssBytes(pid)

  t.test('100 MB response to a slow reader', async (t) => {
    const rss = sampler(pid)
    const sock = connect({ host: '127.0.0.1', port: listenPort })
    t.teardown(() => sock.destroy())
    await new Promise<void>((r) => sock.once('connect', () => r()))
    let received = 0
    let headLen = -1
    let headText = ''
    sock.on('data', (b: Buffer) => {
      received += b.length
      if (headLen === -1) {
        headText += b.toString('latin1', 0, Math.min(b.length, 4096))
        const i = headText.indexOf('\r\n\r\n')
        if (i !== -1) headLen = i + 4
      }
    })
    sock.write('GET /big HTTP/1.1\r\nHost: svc\r\n\r\n')
    await until('first MB', () => received >= MB, 5000, 5)
    sock.pause()
    // stalled: wait for backpressure to reach the upstream, sampling all along
    await settle(() => written, 300, 5000, () => rss.sample())
    const writtenWhenStalled = written
    for (let i = 0; i < 10; i++) {
      rss.sample()
      await sleep(50) // kept: RSS sampled over 0.5 s of a stalled peer (what is measured is time)
    }
    t.ok(writtenWhenStalled < SIZE / 2, `upstream stopped sending while the client is stalled (${(writtenWhenStalled / MB).toFixed(1)} MB written)`)
    // slow reader: small steps
    for (let i = 0; i < 20; i++) {
      // kept: reading 3 ms in every 23 is the slow reader under test
      sock.resume()
      await sleep(3)
      sock.pause()
      await sleep(20)
      rss.sample()
    }
    sock.resume()
    await until('whole body', () => headLen !== -1 && received >= headLen + SIZE, 20_000, 20)
    rss.sample()
    t.match(headText, /^HTTP\/1\.1 200 /)
    t.equal(received - headLen, SIZE, 'all 100 MB delivered')
    const growth = rss.max - baseline
    t.ok(growth < 40 * MB, `proxy RSS growth ${(growth / MB).toFixed(1)} MB (baseline ${(baseline / MB).toFixed(1)} MB)`)
  })

  t.test('100 MB upload to a slow upstream', async (t) => {
    const rss = sampler(pid)
    sinkPaused = true
    const sock = connect({ host: '127.0.0.1', port: listenPort })
    t.teardown(() => sock.destroy())
    await new Promise<void>((r) => sock.once('connect', () => r()))
    let reply = ''
    sock.setEncoding('latin1').on('data', (d: string) => (reply += d))
    sock.on('error', () => {})
    let sent = 0
    let finished = false
    sock.write(`POST /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: ${SIZE}\r\n\r\n`)
    const pump = () => {
      while (sent < SIZE) {
        const n = Math.min(chunk.length, SIZE - sent)
        sent += n
        if (!sock.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          sock.once('drain', pump)
          return
        }
      }
      finished = true
    }
    pump()
    await until('upstream connection', () => sinkSocket !== null && sinkHead !== '', 5000, 5)
    // the sink is paused: backpressure must reach the client
    await settle(() => sent, 300, 5000, () => rss.sample())
    const sentWhenStalled = sent
    for (let i = 0; i < 10; i++) {
      rss.sample()
      await sleep(50) // kept: RSS sampled over 0.5 s of a stalled peer (what is measured is time)
    }
    t.ok(sentWhenStalled < SIZE / 2, `client blocked while the upstream is stalled (${(sentWhenStalled / MB).toFixed(1)} MB accepted)`)
    // slow upstream: small steps, then all
    for (let i = 0; i < 20; i++) {
      // kept: reading 3 ms in every 23 is the slow upstream under test
      sinkSocket!.resume()
      await sleep(3)
      sinkSocket!.pause()
      await sleep(20)
      rss.sample()
    }
    sinkPaused = false
    sinkSocket!.resume()
    await until('upload response', () => /\r\n\r\nok$/.test(reply), 20_000, 20)
    rss.sample()
    t.ok(finished, 'client wrote everything')
    t.equal(sinkBody, SIZE, 'upstream received all 100 MB')
    t.match(sinkHead, /content-length: 104857600/i)
    t.match(reply, /^HTTP\/1\.1 200 /)
    const growth = rss.max - baseline
    t.ok(growth < 40 * MB, `proxy RSS growth ${(growth / MB).toFixed(1)} MB (baseline ${(baseline / MB).toFixed(1)} MB)`)
  })
})

// ---- keep-alive and pools ------------------------------------------------------------------------

t.test('stale keep-alive: upstream closed the idle connection, next request still succeeds', async (t) => {
  const up = await startHttpUpstream(t, { keepAliveTimeoutMs: 50 })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  await c.write('GET /1 HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await c.response()).status, 200)
  await until('upstream idle close', () => up.sockets.size === 0, 2000)
  // the proxy has seen the close: its pool holds no connection to hand out
  await until('the pool dropped the closed connection', async () => (await s.adminJson('/clusters')).clusters[0].endpoints[0].connections.open === 0, 2000)
  await c.write('GET /2 HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200)
  t.equal(r.body.toString(), 'upstream GET /2')
  t.equal(up.connections, 2)
})

t.test('stale keep-alive race: the upstream drops a reused connection on the next request; bodyless request retried once', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    const r1 = await conn.nextRequest()
    if (conn.index === 0) {
      conn.write(rawResponse(200, 'first ' + r1.line.split(' ')[1]))
      await conn.nextRequest().catch(() => {})
      conn.socket.resetAndDestroy() // as if the idle close crossed the request on the wire
      return
    }
    conn.write(rawResponse(200, 'fresh ' + r1.line.split(' ')[1]))
    for (;;) {
      const r = await conn.nextRequest(60_000)
      if (conn.index === 1) conn.write(rawResponse(200, 'fresh ' + r.line.split(' ')[1]))
    }
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  await c.write('GET /a HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await c.response()).body.toString(), 'first /a')
  await c.write('GET /b HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200, 'retried on a fresh connection')
  t.equal(r.body.toString(), 'fresh /b')
  t.equal(up.conns.length, 2)
  t.equal((await listenerStats(s)).staleRetries, 1, '/stats staleRetries')
})

t.test('stale keep-alive retry with maxConnections=1, maxPending=0 still succeeds', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    const r1 = await conn.nextRequest()
    if (conn.index === 0) {
      conn.write(rawResponse(200, 'first ' + r1.line.split(' ')[1]))
      await conn.nextRequest().catch(() => {})
      conn.socket.resetAndDestroy()
      return
    }
    conn.write(rawResponse(200, 'fresh ' + r1.line.split(' ')[1]))
  })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port], { pool: { maxConnections: 1, maxPending: 0 } })] }),
  )
  const c = await rawClient(t, s.port)
  await c.write('GET /a HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await c.response()).body.toString(), 'first /a')
  await c.write('GET /b HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 200, 'the retry gets the slot of the dead connection')
  t.equal(r.get('x-weft-response-flags'), undefined)
  t.equal(r.body.toString(), 'fresh /b')
})

t.test('stale keep-alive race with a request body: not retried, 502 UC', async (t) => {
  const up = await startRawUpstream(t, async (conn) => {
    const r1 = await conn.nextRequest()
    conn.write(rawResponse(200, 'first ' + r1.line.split(' ')[1]))
    await conn.nextRequest().catch(() => {})
    conn.socket.resetAndDestroy()
  })
  const s = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const c = await rawClient(t, s.port)
  await c.write('GET /a HTTP/1.1\r\nHost: svc\r\n\r\n')
  await c.response()
  await c.write('POST /b HTTP/1.1\r\nHost: svc\r\nContent-Length: 4\r\n\r\nbody')
  const r = await c.response()
  t.equal(r.status, 502)
  t.equal(r.get('x-weft-response-flags'), 'UC')
  t.equal(up.conns.length, 1, 'a request with a body is not sent twice')
})

t.test('pool maxConnections=1: concurrent requests queue and all succeed', async (t) => {
  let inFlight = 0
  let maxInFlight = 0
  // the first answer waits until the other five are queued in the proxy: a second request at the
  // app meanwhile (a second connection) would show in maxInFlight
  const queued = gate()
  const up = await startHttpUpstream(t, {
    handler: async (rec, res) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      await queued.wait()
      inFlight--
      res.end('ok ' + rec.url)
    },
  })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port], { pool: { maxConnections: 1 } })] }),
  )
  const clients = await Promise.all(Array.from({ length: 6 }, () => rawClient(t, s.port)))
  await Promise.all(clients.map((c, i) => c.write(`GET /${i} HTTP/1.1\r\nHost: svc\r\n\r\n`)))
  await until('five requests queued behind the first', async () => (await endpointView(s, 'app')).connections.pendingRequests === 5)
  t.equal(up.requests.length, 1, 'one request at the app while five wait')
  queued.open()
  const rs = await Promise.all(clients.map((c) => c.response({ timeoutMs: 3000 })))
  t.same(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200])
  t.same(rs.map((r) => r.body.toString()), clients.map((_, i) => `ok /${i}`))
  t.equal(up.connections, 1, 'one upstream connection')
  t.equal(maxInFlight, 1, 'never two requests at once upstream')
  const ep = await endpointView(s, 'app')
  t.equal(ep.connections.total, 1)
  t.equal(ep.connections.overflows, 0)
  t.equal(ep.connections.pendingRequests, 0)
})

t.test('pool maxPending=0: a request that would wait gets 503 UO', async (t) => {
  // the first request holds the only connection until the second one was answered
  const secondAnswered = gate()
  const up = await startHttpUpstream(t, {
    handler: async (rec, res) => {
      await secondAnswered.wait()
      res.end('ok ' + rec.url)
    },
  })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port], { pool: { maxConnections: 1, maxPending: 0 } })] }),
  )
  const c1 = await rawClient(t, s.port)
  const c2 = await rawClient(t, s.port)
  await c1.write('GET /first HTTP/1.1\r\nHost: svc\r\n\r\n')
  await until('first request upstream', () => up.requests.length === 1, 2000, 2)
  await c2.write('GET /second HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r2 = await c2.response()
  t.equal(r2.status, 503)
  t.equal(r2.get('x-weft-response-flags'), 'UO')
  t.equal(r2.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_OVERFLOW')
  secondAnswered.open()
  const r1 = await c1.response()
  t.equal(r1.status, 200)
  t.equal(r1.body.toString(), 'ok /first')
  t.equal((await endpointView(s, 'app')).connections.overflows, 1, '/clusters overflows')
  // once the connection is free again, requests pass
  await c2.write('GET /third HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await c2.response()).status, 200)
})
