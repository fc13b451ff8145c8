// HTTP/2 bodies that outrun their reader, and request trailers, through sidecars on Weft's own
// codec (both sides):
// - a streamed response to a client with a small stream window: the proxy pauses the upstream
//   stream while the client's window is shut; when the upstream ended meanwhile and its last bytes
//   filled the window again, the response must still end with its trailers (it was reset with
//   INTERNAL_ERROR, flag UC: the upstream stream closed before its end was handed on);
// - request trailers (HEADERS after the request's DATA) reach the app, through one sidecar and
//   through two (the HTTP/2 hop between sidecars).
import t from 'tap'
import { connect, createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { startGrpcMesh } from './helpers/grpc.ts'
import { cluster, makeConfig, routeTo, startTestSidecar, type Teardown } from './helpers/sidecar.ts'

const MESSAGES = 100
const MESSAGE = Buffer.alloc(1029, 0x61)

interface App {
  port: number
  /** request trailers the app received, by :path */
  trailers: Map<string, IncomingHttpHeaders>
  bodies: Map<string, string>
}

/** An h2c app: /stream answers 100 x 1029 bytes then grpc-status 0; anything else echoes its body and records its trailers. */
async function startApp(t: Teardown): Promise<App> {
  const trailers = new Map<string, IncomingHttpHeaders>()
  const bodies = new Map<string, string>()
  const server = createServer()
  server.on('stream', (s: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    const path = String(h[':path'])
    let body = ''
    s.on('error', () => {})
    s.on('data', (b: Buffer) => (body += b.toString()))
    s.on('trailers', (tr: IncomingHttpHeaders) => trailers.set(path, tr))
    s.on('end', () => {
      bodies.set(path, body)
      if (s.closed) return
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
      s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }))
      if (path !== '/stream') return void s.end('got ' + body)
      for (let i = 0; i < MESSAGES - 1; i++) s.write(MESSAGE)
      s.end(MESSAGE)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { port: (server.address() as { port: number }).port, trailers, bodies }
}

interface Result {
  status: string
  grpc: string
  bytes: number
  rst: number | undefined
  body: string
}

t.test('streamed responses to clients with a small window end whole (no reset when the upstream ended while paused)', async (t) => {
  const app = await startApp(t)
  const s = await startTestSidecar(t, makeConfig({ clusters: [cluster('app', [app.port], { protocol: 'http2' })], routes: [routeTo('app')] }))
  // 16 KiB stream windows: the proxy's writes to the client stop every 16 KiB until it reads
  const client = connect(`http://127.0.0.1:${s.port}`, { settings: { initialWindowSize: 16384 } })
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  const call = (): Promise<Result> =>
    new Promise((resolve) => {
      const st = client.request({ ':method': 'POST', ':path': '/stream', 'content-type': 'application/grpc', te: 'trailers' })
      const r: Result = { status: '', grpc: '', bytes: 0, rst: undefined, body: '' }
      st.on('response', (h) => (r.status = String(h[':status'])))
      st.on('data', (b: Buffer) => (r.bytes += b.length))
      st.on('trailers', (h) => (r.grpc = String(h['grpc-status'])))
      st.on('error', () => {})
      st.on('close', () => {
        r.rst = st.rstCode
        resolve(r)
      })
      st.end(Buffer.from([0, 0, 0, 0, 1, 0x78]))
    })
  let whole = 0
  const bad: Result[] = []
  // rounds of 20 concurrent calls: with the bug, a few of every round were reset (INTERNAL_ERROR)
  for (let round = 0; round < 5; round++) {
    const rs = await Promise.all(Array.from({ length: 20 }, call))
    for (const r of rs) {
      if (r.status === '200' && r.grpc === '0' && r.bytes === MESSAGES * MESSAGE.length && r.rst === 0) whole++
      else bad.push(r)
    }
  }
  t.same(bad.slice(0, 3), [], 'no call cut short or reset')
  t.equal(whole, 100, 'all 100 calls: every byte and grpc-status 0')
})

/** POST path with body, then trailers; the response body and the app's view. */
function postWithTrailers(port: number, path: string, body: string, trailers: Record<string, string>): Promise<Result> {
  return new Promise((resolve, reject) => {
    const client = connect(`http://127.0.0.1:${port}`)
    client.on('error', reject)
    const st = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' }, { waitForTrailers: true })
    const r: Result = { status: '', grpc: '', bytes: 0, rst: undefined, body: '' }
    st.on('wantTrailers', () => st.sendTrailers(trailers))
    st.on('response', (h) => (r.status = String(h[':status'])))
    st.on('data', (b: Buffer) => (r.body += b.toString()))
    st.on('trailers', (h) => (r.grpc = String(h['grpc-status'])))
    st.on('error', () => {})
    st.on('close', () => {
      r.rst = st.rstCode
      client.close()
      resolve(r)
    })
    // two DATA frames: the rest (and the trailers) once the first piece is written out
    st.write(body.slice(0, 3), () => st.end(body.slice(3)))
  })
}

t.test('request trailers are forwarded: one sidecar (HTTP/2 → HTTP/2) and two (the HTTP/2 hop between sidecars)', async (t) => {
  const app = await startApp(t)
  const one = await startTestSidecar(t, makeConfig({ clusters: [cluster('app', [app.port], { protocol: 'http2' })], routes: [routeTo('app')] }))
  const r1 = await postWithTrailers(one.port, '/one', 'hello one', { 'x-checksum': 'abc', 'grpc-status-details-bin': 'AAEC' })
  t.equal(r1.status, '200')
  t.equal(r1.body, 'got hello one', 'the body went through')
  t.equal(app.trailers.get('/one')?.['x-checksum'], 'abc', 'the app got the request trailer')
  t.equal(app.trailers.get('/one')?.['grpc-status-details-bin'], 'AAEC', 'and the second one')

  const mesh = await startGrpcMesh(t, app.port)
  const r2 = await postWithTrailers(mesh.client.port, '/two', 'hello two', { 'x-checksum': 'def' })
  t.equal(r2.status, '200')
  t.equal(r2.body, 'got hello two')
  t.equal(app.trailers.get('/two')?.['x-checksum'], 'def', 'through two sidecars')

  // trailers without a body: HEADERS, then HEADERS with END_STREAM
  const r3 = await postWithTrailers(one.port, '/empty', '', { 'x-checksum': 'none' })
  t.equal(r3.status, '200')
  t.equal(app.bodies.get('/empty'), '', 'no body')
  t.equal(app.trailers.get('/empty')?.['x-checksum'], 'none', 'the trailers of a request without DATA')
})

t.test("the client codec's field limit: an upstream response head over 200 fields is refused (502), one of 150 goes through", async (t) => {
  const server = createServer()
  server.on('stream', (s: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    const n = Number(String(h[':path']).slice(1))
    const head: Record<string, string | number> = { ':status': 200 }
    for (let i = 0; i < n; i++) head['x-f' + i] = 'v'
    s.on('error', () => {})
    s.respond(head)
    s.end('fields ' + n)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as { port: number }).port
  const s = await startTestSidecar(t, makeConfig({ clusters: [cluster('app', [port], { protocol: 'http2' })], routes: [routeTo('app')] }))
  const get = async (n: number): Promise<{ status: number; body: string; fields: number }> => {
    const r = await fetch(`http://127.0.0.1:${s.port}/${n}`)
    return { status: r.status, body: await r.text(), fields: [...r.headers.keys()].filter((k) => k.startsWith('x-f')).length }
  }
  const ok = await get(150)
  t.equal(ok.status, 200)
  t.equal(ok.fields, 150, 'every field of a 150-field head relayed')
  const big = await get(250)
  t.equal(big.status, 502, 'a 250-field head (over the 200 fields the client codec takes) is refused')
  t.match(big.body, /WEFT_ERR_UPSTREAM_RESET/)
})

/**
 * Bulk bodies both ways through the proxy's codec, several streams at once so their frames
 * interleave in the reads: every byte arrives, in order. The proxy hands large DATA payloads on as
 * views of its read buffers (upstream side: 64 KiB slabs read one after the other, a frame cut by
 * the end of a read completed in place; client side: the reused read buffer left to the view)
 * and small ones as copies; a view handed on must never be written over by a later read.
 */
t.test('bulk bodies both ways, streams interleaved: every byte arrives (read buffers left to the payload views)', async (t) => {
  const { createHash, randomBytes } = await import('node:crypto')
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  const STREAMS = 8
  const down = Array.from({ length: STREAMS }, (_, i) => randomBytes(1_500_000 + i * 7919))
  const up = Array.from({ length: STREAMS }, (_, i) => randomBytes(700_000 + i * 104_729))
  const got = new Map<string, string>()
  const server = createServer()
  server.on('stream', (s: ServerHttp2Stream, h: IncomingHttpHeaders) => {
    const i = Number(String(h[':path']).slice(1))
    const parts: Buffer[] = []
    s.on('error', () => {})
    s.on('data', (b: Buffer) => parts.push(b))
    s.on('end', () => {
      got.set(String(i), sha(Buffer.concat(parts)))
      if (s.closed) return
      s.respond({ ':status': 200 })
      // chunks of varied sizes, so DATA frames of every length cross the proxy's reads
      const body = down[i]
      let p = 0
      let k = 0
      const pump = (): void => {
        while (p < body.length) {
          const n = [1, 17, 4095, 4096, 16384, 40000, 100][k++ % 7]
          const ok = s.write(body.subarray(p, Math.min(body.length, p + n)))
          p += n
          if (!ok) return void s.once('drain', pump)
        }
        s.end()
      }
      pump()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const port = (server.address() as { port: number }).port
  const s = await startTestSidecar(t, makeConfig({ clusters: [cluster('app', [port], { protocol: 'http2' })], routes: [routeTo('app')] }))
  const c = connect(`http://127.0.0.1:${s.port}`)
  c.on('error', () => {})
  t.teardown(() => c.destroy())
  const results = await Promise.all(Array.from({ length: STREAMS }, (_, i) => new Promise<{ status: string; sha: string }>((resolve, reject) => {
    const st = c.request({ ':method': 'POST', ':path': `/${i}`, ':authority': 'app.test' })
    const parts: Buffer[] = []
    let status = ''
    st.on('response', (h) => (status = String(h[':status'])))
    st.on('data', (b: Buffer) => parts.push(b))
    st.on('end', () => resolve({ status, sha: sha(Buffer.concat(parts)) }))
    st.on('error', reject)
    // the request body in pieces of varied sizes too
    let p = 0
    let k = 0
    const body = up[i]
    const pump = (): void => {
      while (p < body.length) {
        const n = [5000, 1, 16384, 300, 65536][k++ % 5]
        const ok = st.write(body.subarray(p, Math.min(body.length, p + n)))
        p += n
        if (!ok) return void st.once('drain', pump)
      }
      st.end()
    }
    pump()
  })))
  for (let i = 0; i < STREAMS; i++) {
    t.equal(results[i].status, '200', `stream ${i}: 200`)
    t.equal(results[i].sha, sha(down[i]), `stream ${i}: the response body arrived whole (${down[i].length} bytes)`)
    t.equal(got.get(String(i)), sha(up[i]), `stream ${i}: the request body arrived whole (${up[i].length} bytes)`)
  }
})
