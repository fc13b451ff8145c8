// gRPC through two sidecars (client sidecar outbound → server sidecar inbound → app), with a real
// @grpc/grpc-js server and client: the four call kinds, status, message and trailing metadata,
// deadlines (the client's and the proxy's grpc-timeout), cancellation, a retry on UNAVAILABLE,
// gRPC-shaped local replies, and the request_protocol / grpc_response_status metric labels.
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { connect, type IncomingHttpHeaders } from 'node:http2'
import { echoClient, startGrpcMesh, startGrpcServer, unary, type Msg } from './helpers/grpc.ts'
import { metrics } from './helpers/policy.ts'
import { until, type Teardown } from './helpers/sidecar.ts'

function collect(call: grpc.ClientReadableStream<Msg> | grpc.ClientDuplexStream<Msg, Msg>): Promise<{ msgs: Msg[]; err?: grpc.ServiceError; status?: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const msgs: Msg[] = []
    let err: grpc.ServiceError | undefined
    call.on('data', (m: Msg) => msgs.push(m))
    call.on('error', (e: grpc.ServiceError) => {
      err = e
    })
    call.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ msgs, err, status })))
  })
}

t.test('unary, server streaming, client streaming and bidi calls through two sidecars', async (t) => {
  const app = await startGrpcServer(t)
  const m = await startGrpcMesh(t, app.port)
  const c = echoClient(t, m.client.port)

  const u = await unary(c, { text: 'hello' })
  t.same(u.res, { text: 'hello' }, 'unary answer')

  const ss = await collect((c.serverStream as (r: Msg) => grpc.ClientReadableStream<Msg>)({ text: 's', n: 5 }))
  t.same(ss.msgs.map((x) => x.text), ['s-0', 's-1', 's-2', 's-3', 's-4'], 'server streaming: every message in order')
  t.equal(ss.status?.code, grpc.status.OK)

  const cs = await new Promise<Msg | undefined>((resolve, reject) => {
    const call = (c.clientStream as (cb: (e: grpc.ServiceError | null, r?: Msg) => void) => grpc.ClientWritableStream<Msg>)((e, r) => (e ? reject(e) : resolve(r)))
    for (const x of ['a', 'b', 'c']) call.write({ text: x })
    call.end()
  })
  t.same(cs, { text: 'a+b+c', n: 3 }, 'client streaming: the server saw every message')

  const bidi = (c.bidi as () => grpc.ClientDuplexStream<Msg, Msg>)()
  const got: string[] = []
  for (const x of ['1', '2', '3']) {
    const next = new Promise<Msg>((resolve) => bidi.once('data', resolve))
    bidi.write({ text: x })
    got.push((await next).text) // each answer arrives before the next message is sent: no buffering in the proxies
  }
  const end = collect(bidi)
  bidi.end()
  t.equal((await end).status?.code, grpc.status.OK)
  t.same(got, ['echo:1', 'echo:2', 'echo:3'], 'bidi: ping-pong')

  // one HTTP/2 connection from the client sidecar to the server sidecar carried all of it
  const stats = await m.server.adminJson('/stats')
  t.equal(stats.listeners[0].cxTotal, 1, 'one connection between the sidecars')
  const mc = await metrics(m.client)
  t.equal(mc.requests({ request_protocol: 'grpc', grpc_response_status: '0', response_code: '200' }), 4, 'client sidecar: 4 gRPC requests, grpc-status 0')
  const ms = await metrics(m.server)
  t.equal(ms.requests({ request_protocol: 'grpc', grpc_response_status: '0', reporter: 'destination' }), 4, 'server sidecar too')
})

t.test('status code, message and trailing metadata are preserved (trailers-only and after messages)', async (t) => {
  const app = await startGrpcServer(t, {
    unary: (call, cb) => {
      const md = new grpc.Metadata()
      md.set('x-detail', 'shelf ' + call.request.text)
      md.set('x-bin-bin', Buffer.from([1, 2, 3]))
      cb({ code: grpc.status.NOT_FOUND, details: 'no such book: ' + call.request.text, metadata: md })
    },
    serverStream: (call) => {
      call.write({ text: 'one' })
      const md = new grpc.Metadata()
      md.set('x-detail', 'after one')
      call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'stopped early ✓', metadata: md })
    },
  })
  const m = await startGrpcMesh(t, app.port)
  const c = echoClient(t, m.client.port)
  const u = await unary(c, { text: 'dune' })
  t.equal(u.err?.code, grpc.status.NOT_FOUND)
  t.equal(u.err?.details, 'no such book: dune')
  t.same(u.err?.metadata.get('x-detail'), ['shelf dune'])
  t.same(u.err?.metadata.get('x-bin-bin'), [Buffer.from([1, 2, 3])], 'binary metadata')

  const ss = await collect((c.serverStream as (r: Msg) => grpc.ClientReadableStream<Msg>)({ text: 'x' }))
  t.same(ss.msgs, [{ text: 'one' }])
  t.equal(ss.err?.code, grpc.status.FAILED_PRECONDITION)
  t.equal(ss.err?.details, 'stopped early ✓', 'non-ASCII message (percent-encoded on the wire) survives')
  t.same(ss.err?.metadata.get('x-detail'), ['after one'], 'trailers after messages are forwarded')

  const mc = await metrics(m.client)
  t.equal(mc.requests({ request_protocol: 'grpc', grpc_response_status: '5' }), 1, 'grpc_response_status from a trailers-only response')
  t.equal(mc.requests({ request_protocol: 'grpc', grpc_response_status: '9' }), 1, 'grpc_response_status from the trailers')
})

t.test('deadline exceeded: the client gets DEADLINE_EXCEEDED and the app sees the cancel', async (t) => {
  let cancelled = 0
  const app = await startGrpcServer(t, {
    unary: (call, cb) => {
      const timer = setTimeout(() => cb(null, { text: 'late' }), 5000)
      call.on('cancelled', () => {
        cancelled++
        clearTimeout(timer)
      })
    },
  })
  const m = await startGrpcMesh(t, app.port)
  const c = echoClient(t, m.client.port)
  const started = Date.now()
  const u = await unary(c, { text: 'slow' }, { deadline: Date.now() + 300 })
  t.equal(u.err?.code, grpc.status.DEADLINE_EXCEEDED)
  t.ok(Date.now() - started < 2000, 'not waiting for the handler')
  await until('the app saw the cancel', () => cancelled > 0)
  t.equal(cancelled, 1, 'the app\'s handler saw the cancel, once')
})

/** A raw HTTP/2 gRPC request (no client-side deadline timer): headers, trailers, what came back. */
async function rawGrpc(t: Teardown, port: number, path: string, headers: Record<string, string>, body: Buffer): Promise<{ headers: IncomingHttpHeaders; trailers: IncomingHttpHeaders; ms: number }> {
  const s = connect(`http://127.0.0.1:${port}`)
  t.teardown(() => s.destroy())
  const t0 = Date.now()
  const st = s.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers })
  st.end(body)
  return new Promise((resolve, reject) => {
    let h: IncomingHttpHeaders = {}
    let tr: IncomingHttpHeaders = {}
    st.on('response', (x) => {
      h = x
    })
    st.on('trailers', (x) => {
      tr = x
    })
    st.on('data', () => {})
    st.on('error', reject)
    st.on('close', () => resolve({ headers: h, trailers: tr, ms: Date.now() - t0 }))
  })
}

const frame = (m: Msg): Buffer => {
  const b = Buffer.from(JSON.stringify(m))
  const f = Buffer.alloc(5 + b.length)
  f.writeUInt32BE(b.length, 1)
  b.copy(f, 5)
  return f
}

t.test('grpc-timeout is the proxy deadline: DEADLINE_EXCEEDED (flag UT) and the upstream stream is cancelled', async (t) => {
  let cancelled = 0
  const app = await startGrpcServer(t, {
    unary: (call) => {
      call.on('cancelled', () => cancelled++)
    },
  })
  const m = await startGrpcMesh(t, app.port)
  const r = await rawGrpc(t, m.client.port, '/weft.test.Echo/Unary', { 'grpc-timeout': '200m' }, frame({ text: 'x' }))
  t.equal(Number(r.headers[':status']), 200)
  t.equal(r.headers['grpc-status'], '4', 'DEADLINE_EXCEEDED, trailers-only')
  t.equal(r.headers['x-weft-response-flags'], 'UT')
  t.ok(r.ms >= 150 && r.ms < 2000, `answered at the deadline (${r.ms} ms)`)
  await until('the app saw the cancel', () => cancelled === 1)
  const mc = await metrics(m.client)
  t.equal(mc.decision('request_timeout'), 1)
  t.equal(mc.requests({ request_protocol: 'grpc', grpc_response_status: '4', response_flags: 'UT' }), 1)
})

t.test('cancellation: a client cancelling a server stream cancels the handler', async (t) => {
  let cancelled = 0
  const app = await startGrpcServer(t, {
    serverStream: (call) => {
      const timer = setInterval(() => call.write({ text: 'tick' }), 20)
      call.on('cancelled', () => {
        cancelled++
        clearInterval(timer)
      })
    },
  })
  const m = await startGrpcMesh(t, app.port)
  const c = echoClient(t, m.client.port)
  const call = (c.serverStream as (r: Msg) => grpc.ClientReadableStream<Msg>)({ text: 'x' })
  const done = collect(call)
  await new Promise((resolve) => call.once('data', resolve))
  call.cancel()
  const r = await done
  t.equal(r.err?.code, grpc.status.CANCELLED)
  await until('the app saw the cancel', () => cancelled > 0)
  t.equal(cancelled, 1, 'the cancel crossed both proxies: the app\'s handler saw it, once')
  const mc = await metrics(m.client)
  await until('recorded', async () => (await metrics(m.client)).requests({ request_protocol: 'grpc', response_flags: 'DC' }) === 1)
  void mc
})

t.test('retry on UNAVAILABLE: the proxy tries again, the client sees OK, the retry is counted', async (t) => {
  let calls = 0
  const app = await startGrpcServer(t, {
    unary: (call, cb) => {
      calls++
      if (calls === 1) cb({ code: grpc.status.UNAVAILABLE, details: 'warming up' })
      else cb(null, { text: 'ok ' + call.request.text })
    },
  })
  const m = await startGrpcMesh(t, app.port, {
    clientRoutes: (c) => [{ backends: [{ cluster: c }], retry: { attempts: 2, on: ['unavailable'], backoff: { base: '1ms' } } }],
  })
  const c = echoClient(t, m.client.port)
  const u = await unary(c, { text: 'again' })
  t.same(u.res, { text: 'ok again' })
  t.equal(calls, 2, 'the app was called twice')
  const mc = await metrics(m.client)
  t.equal(mc.decision('retry'), 1, 'one retry counted')
  t.equal(mc.requests({ request_protocol: 'grpc', grpc_response_status: '0' }), 1, 'one request, OK')

  // not on the list: returned as it is
  calls = 10
  const app2 = await startGrpcServer(t, { unary: (_call, cb) => cb({ code: grpc.status.INTERNAL, details: 'boom' }) })
  const m2 = await startGrpcMesh(t, app2.port, {
    clientRoutes: (c) => [{ backends: [{ cluster: c }], retry: { attempts: 2, on: ['unavailable'] } }],
  })
  const u2 = await unary(echoClient(t, m2.client.port), { text: 'x' })
  t.equal(u2.err?.code, grpc.status.INTERNAL)
  t.equal((await metrics(m2.client)).decision('retry'), 0)
})

t.test('local replies are gRPC-shaped: no route → UNIMPLEMENTED, rate limit → RESOURCE_EXHAUSTED, no endpoint → UNAVAILABLE', async (t) => {
  const app = await startGrpcServer(t)
  const m = await startGrpcMesh(t, app.port, {
    clientRoutes: (c) => [
      { match: { path: { prefix: '/weft.test.Echo/Unary' }, headers: [{ name: 'x-limit', present: true }] }, backends: [{ cluster: c }], rateLimit: { requests: 1, interval: '1h' } },
      { match: { path: { prefix: '/weft.test.Echo/' } }, backends: [{ cluster: c }] },
    ],
  })
  const c = echoClient(t, m.client.port)
  const none = await unary(c, { text: 'x' }, {}, undefined)
  t.same(none.res, { text: 'x' }, 'routed on the service/method path')

  const md = new grpc.Metadata()
  md.set('x-limit', '1')
  t.same((await unary(c, { text: 'a' }, {}, md)).res, { text: 'a' })
  const limited = await unary(c, { text: 'b' }, {}, md)
  t.equal(limited.err?.code, grpc.status.RESOURCE_EXHAUSTED)
  t.match(limited.err?.details, /WEFT_ERR_RATE_LIMITED/)

  const r = await rawGrpc(t, m.client.port, '/other.Service/Call', {}, frame({ text: 'x' }))
  t.equal(Number(r.headers[':status']), 200)
  t.equal(r.headers['grpc-status'], '12', 'no route: UNIMPLEMENTED')
  t.equal(r.headers['x-weft-response-flags'], 'NR')

  // the app gone: the server sidecar cannot connect (UF) → UNAVAILABLE
  app.server.forceShutdown()
  const gone = await unary(c, { text: 'x' })
  t.equal(gone.err?.code, grpc.status.UNAVAILABLE)
})

t.test('route policy on gRPC: fault abort and maxRequests answer gRPC-shaped; the access log has grpc_status', async (t) => {
  const { readFileSync } = await import('node:fs')
  const { tempDir } = await import('./helpers/sidecar.ts')
  const logFile = tempDir(t) + '/access.log'
  let release: (() => void) | null = null
  const app = await startGrpcServer(t, {
    unary: (call, cb) => {
      if (call.request.text === 'hold') release = () => cb(null, { text: 'held' })
      else cb(null, { text: call.request.text })
    },
  })
  const m = await startGrpcMesh(t, app.port, {
    clientRoutes: (c) => [
      { match: { headers: [{ name: 'x-fault', present: true }] }, backends: [{ cluster: c }], fault: { abort: { percent: 100, status: 503 } } },
      { backends: [{ cluster: c }] },
    ],
    app: { pool: { maxRequests: 1 } },
    clientTelemetry: { accessLog: { enabled: true, path: logFile } },
  })
  const c = echoClient(t, m.client.port)
  const md = new grpc.Metadata()
  md.set('x-fault', '1')
  const f = await unary(c, { text: 'x' }, {}, md)
  t.equal(f.err?.code, grpc.status.UNAVAILABLE, 'fault abort 503 → UNAVAILABLE')
  t.match(f.err?.details, /WEFT_ERR_FAULT_ABORT/)

  const held = unary(c, { text: 'hold' })
  await until('the first call holds the only slot', () => release !== null)
  const over = await unary(c, { text: 'y' })
  t.equal(over.err?.code, grpc.status.UNAVAILABLE, 'maxRequests overflow on the server sidecar → UNAVAILABLE')
  t.match(over.err?.details, /WEFT_ERR_UPSTREAM_OVERFLOW/)
  release!()
  t.same((await held).res, { text: 'held' })

  const lines = await until('access log lines', () => {
    try {
      const l = readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((x) => JSON.parse(x))
      return l.length >= 3 ? l : null
    } catch {
      return null
    }
  })
  const byPath = lines!.map((l: Record<string, unknown>) => [l.response_flags, l.grpc_status, l.protocol, l.path])
  t.same(byPath[0], ['FI', '14', 'HTTP/2', '/weft.test.Echo/Unary'], 'the local reply: flag FI, grpc_status 14')
  t.ok(byPath.some((x: unknown[]) => x[0] === '-' && x[1] === '0'), 'a relayed OK call: grpc_status 0')
})

t.test('HTTP/1.1 client → client sidecar → (HTTP/2) server sidecar → gRPC-style HTTP/2 app', async (t) => {
  const { Pool } = await import('undici')
  const { createServer } = await import('node:http2')
  const h2app = createServer()
  h2app.on('stream', (s: import('node:http2').ServerHttp2Stream, h: IncomingHttpHeaders) => {
    s.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true })
    s.on('wantTrailers', () => s.sendTrailers({ 'x-trailer': 'yes' }))
    s.end('h2 app ' + h[':path'])
  })
  await new Promise<void>((resolve) => h2app.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => h2app.close(() => resolve())))
  const port = (h2app.address() as { port: number }).port
  const m = await startGrpcMesh(t, port)
  const pool = new Pool(`http://127.0.0.1:${m.client.port}`)
  t.teardown(() => pool.close())
  const r = await pool.request({ path: '/hello', method: 'GET', headers: { host: 'app.test' } })
  t.equal(r.statusCode, 200)
  t.equal(await r.body.text(), 'h2 app /hello')
  t.equal(r.trailers['x-trailer'], 'yes', 'trailers crossed both hops')
  const mc = await metrics(m.client)
  t.equal(mc.requests({ request_protocol: 'http', response_code: '200' }), 1, 'the HTTP/1 client is counted as http')
  const ms = await metrics(m.server)
  t.equal(ms.requests({ request_protocol: 'http2', response_code: '200' }), 1, 'the hop between the sidecars was HTTP/2')
})

t.test('outlier detection counts grpc-status UNAVAILABLE; the breaker opens on it and fails fast gRPC-shaped', async (t) => {
  const { clusterView } = await import('./helpers/policy.ts')
  const { makeConfig, startTestSidecar } = await import('./helpers/sidecar.ts')
  const bad = await startGrpcServer(t, { unary: (_c, cb) => cb({ code: grpc.status.UNAVAILABLE, details: 'down' }) })
  const good = await startGrpcServer(t)
  const s = await startTestSidecar(t, makeConfig({
    routes: [{ backends: [{ cluster: 'app' }] }],
    clusters: [{
      name: 'app', protocol: 'http2',
      outlierDetection: { consecutiveGatewayErrors: 2, consecutive5xx: 0, baseEjectionTime: '10s', maxEjectionPercent: 50 },
      endpoints: [{ address: '127.0.0.1', port: bad.port }, { address: '127.0.0.1', port: good.port }],
    }],
  }))
  const c = echoClient(t, s.port)
  const codes: number[] = []
  for (let i = 0; i < 8; i++) codes.push((await unary(c, { text: 'x' })).err?.code ?? 0)
  t.equal(codes.filter((x) => x === grpc.status.UNAVAILABLE).length, 2, `two UNAVAILABLE before the ejection (${codes})`)
  const v = await clusterView(s, 'app')
  t.equal(v.outlierDetection.ejected, 1, 'the endpoint answering UNAVAILABLE is ejected')
  t.equal(v.endpoints.find((e: { health: string }) => e.health === 'ejected').responses5xx, 2)

  const s2 = await startTestSidecar(t, makeConfig({
    routes: [{ backends: [{ cluster: 'app' }] }],
    clusters: [{ name: 'app', protocol: 'http2', circuitBreaker: { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: '10s' }, endpoints: [{ address: '127.0.0.1', port: bad.port }] }],
  }))
  const c2 = echoClient(t, s2.port)
  for (let i = 0; i < 3; i++) await unary(c2, { text: 'x' })
  const open = await unary(c2, { text: 'x' })
  t.equal(open.err?.code, grpc.status.UNAVAILABLE)
  t.match(open.err?.details, /WEFT_ERR_CIRCUIT_OPEN/, 'failed fast by the open breaker')
})

t.test('200 calls with cancellations and deadlines mixed in: every slot is given back, the sidecars keep serving', async (t) => {
  const app = await startGrpcServer(t, {
    unary: (call, cb) => {
      const ms = call.request.n ?? 0
      const timer = setTimeout(() => cb(null, { text: call.request.text }), ms)
      call.on('cancelled', () => clearTimeout(timer))
    },
  })
  const m = await startGrpcMesh(t, app.port)
  const c = echoClient(t, m.client.port)
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => {
    const kind = i % 4
    if (kind === 1) return unary(c, { text: 'slow', n: 1000 }, { deadline: Date.now() + 30 + (i % 7) * 5 })
    if (kind === 2) {
      return new Promise<{ err?: grpc.ServiceError }>((resolve) => {
        const call = (c.unary as (r: Msg, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall)({ text: 'x', n: 200 }, (e) => resolve({ err: e ?? undefined }))
        setTimeout(() => call.cancel(), 5 + (i % 11))
      })
    }
    return unary(c, { text: 'ok' + i, n: i % 3 })
  }))
  const codes = new Map<number, number>()
  for (const r of results) codes.set(r.err?.code ?? 0, (codes.get(r.err?.code ?? 0) ?? 0) + 1)
  t.equal(codes.get(grpc.status.OK), 100, 'the plain calls all succeeded')
  t.equal(codes.get(grpc.status.DEADLINE_EXCEEDED), 50)
  t.equal(codes.get(grpc.status.CANCELLED), 50)
  const inFlight: number[][] = []
  for (const s of [m.client, m.server]) {
    const v = await until('no request in flight', async () => {
      const v = await s.adminJson('/clusters')
      return v.clusters[0].activeRequests === 0 && v.clusters[0].endpoints[0].activeRequests === 0 ? v : null
    })
    inFlight.push([v.clusters[0].activeRequests, v.clusters[0].endpoints[0].activeRequests])
  }
  t.same(inFlight, [[0, 0], [0, 0]], '/clusters: activeRequests back to 0 on both sidecars (cluster, endpoint)')
  t.same((await unary(c, { text: 'after' })).res, { text: 'after' }, 'still serving')
})
