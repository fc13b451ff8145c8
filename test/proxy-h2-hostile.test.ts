// What a hostile HTTP/2 client sends, built frame by frame (test/helpers/h2frames.ts), against a
// static sidecar with a default (detect) listener and an HTTP/1 cluster (issue 18): the proxy stays
// up, refuses malformed requests with a stream error and forwards nothing of them, frames every
// request body it forwards, and keeps serving the next client.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, type IncomingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import type { Limits } from '../api/schema.ts'
import { H2Exchange } from '../proxy/h2/exchange.ts'
import { data, E, errorCode, H2RawClient, headers, hpack as hpackFields, requestFields, rstStream, statusOf, T } from './helpers/h2frames.ts'
import { cluster, listenerStats, makeConfig, routeTo, startTestSidecar, tempDir, until, type Teardown, type TestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream, type HttpUpstream } from './helpers/upstream.ts'

interface Setup {
  s: TestSidecar
  up: HttpUpstream
  /** every byte the upstream received, on every connection */
  upBytes(): number
}

/** An HTTP/1 upstream behind a detect listener routing only /public (and /ok). */
async function setup(t: Teardown, limits?: Limits, accessLog?: string): Promise<Setup> {
  const up = await startHttpUpstream(t, { name: 'app' })
  let bytes = 0
  up.server.on('connection', (sock: Socket) => sock.on('data', (b: Buffer) => (bytes += b.length)))
  const cfg = makeConfig({
    routes: [routeTo('app', { match: { path: { prefix: '/public' } } }), routeTo('app', { match: { path: { prefix: '/ok' } } })],
    clusters: [cluster('app', [up.port])],
    limits,
  })
  if (accessLog !== undefined) cfg.telemetry = { accessLog: { enabled: true, path: accessLog } }
  const s = await startTestSidecar(t, cfg)
  return { s, up, upBytes: () => bytes }
}

/** One ordinary request with node:http2's client: the proxy is alive and serving. */
async function h2get(port: number, path = '/ok', body?: string): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  const c = connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  try {
    return await new Promise((resolve, reject) => {
      const st = c.request({ ':path': path, ':authority': 'app.test', ':method': body === undefined ? 'GET' : 'POST' }, { endStream: body === undefined })
      if (body !== undefined) st.end(body)
      let h: IncomingHttpHeaders = {}
      let text = ''
      st.on('response', (x) => (h = x))
      st.on('data', (b: Buffer) => (text += b.toString()))
      st.on('end', () => resolve({ status: Number(h[':status']), body: text, headers: h }))
      st.on('error', reject)
    })
  } finally {
    c.destroy()
  }
}

// ---- 1. crashes: content-length against DATA, HEADERS + RST_STREAM in one read -------------------

const CRASHES: { name: string; frames: () => Buffer[] }[] = [
  { name: 'POST content-length 5 with 10 bytes of DATA', frames: () => [headers(1, requestFields('POST', '/public', [['content-length', '5']])), data(1, '0123456789', true)] },
  { name: 'GET content-length 0 then a DATA frame', frames: () => [headers(1, requestFields('GET', '/public', [['content-length', '0']])), data(1, 'abc', true)] },
  { name: 'content-length 100 with 5 bytes then END_STREAM', frames: () => [headers(1, requestFields('POST', '/public', [['content-length', '100']])), data(1, 'abcde', true)] },
  { name: 'HEADERS then RST_STREAM PROTOCOL_ERROR', frames: () => [headers(1, requestFields('GET', '/public')), rstStream(1, E.PROTOCOL_ERROR)] },
  { name: 'HEADERS then RST_STREAM INTERNAL_ERROR', frames: () => [headers(1, requestFields('POST', '/public')), rstStream(1, E.INTERNAL_ERROR)] },
]

t.test('crashes: a stream nghttp2 resets in the read that opened it ends that stream (or connection), not the process', async (t) => {
  const x = await setup(t)
  for (const c of CRASHES) {
    const cl = await H2RawClient.connect(x.s.port)
    await cl.send(...c.frames())
    // the client either sees its stream reset or the connection go away; the proxy stays up
    const resetFirst = c.name.includes('RST_STREAM')
    if (!resetFirst) {
      const f = await cl.waitReset(1)
      t.ok(f !== null, `${c.name}: RST_STREAM or GOAWAY`)
      if (f !== null) t.not(errorCode(f), E.NO_ERROR, `${c.name}: with an error code (${f.type === T.GOAWAY ? 'GOAWAY' : 'RST_STREAM'} ${errorCode(f)})`)
    }
    const r = await h2get(x.s.port)
    t.equal(r.status, 200, `${c.name}: the proxy is alive and serves the next request`)
    cl.destroy()
  }
  t.equal(x.up.requests.filter((r) => r.url === '/public').length, 0, 'nothing of them reached the upstream')
  const st = await listenerStats(x.s)
  t.ok(st.downstreamProtocolErrors >= 3, `counted as downstream protocol errors (${st.downstreamProtocolErrors})`)
})

t.test('crashes: content-length disagreeing with DATA sent in a later read (the exchange has started)', async (t) => {
  const x = await setup(t)
  const cases: [string, Buffer][] = [['5', data(1, '0123456789', true)], ['100', data(1, 'abcde', true)]]
  for (const [cl, body] of cases) {
    const c = await H2RawClient.connect(x.s.port)
    await c.send(headers(1, requestFields('POST', '/public', [['content-length', cl]])))
    await c.waitFrame((f) => f.type === T.SETTINGS)
    await c.send(body)
    const f = await c.waitReset(1)
    t.ok(f !== null, `content-length ${cl}: the stream is reset or the connection goes away`)
    c.destroy()
    t.equal((await h2get(x.s.port)).status, 200, 'the proxy is alive')
  }
  for (const r of x.up.requests.filter((r) => r.url === '/public')) {
    // an upstream that saw the head got no complete body (its request was cut)
    t.not(r.body.length, 10, 'never the body beyond content-length')
  }
})

// ---- 2. smuggling: a body on GET/HEAD/DELETE/OPTIONS is framed -----------------------------------

t.test('smuggling: DATA on GET, HEAD, DELETE, OPTIONS without content-length goes upstream chunked, one request', async (t) => {
  const x = await setup(t)
  const inner = 'GET /admin HTTP/1.1\r\nhost: app.test\r\n\r\n'
  let id = 1
  for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS']) {
    const before = x.up.requests.length
    const c = await H2RawClient.connect(x.s.port)
    await c.send(headers(id, requestFields(method, '/public')), data(id, inner, true))
    const h = await c.waitResponse(id)
    t.equal(h === null ? -1 : statusOf(h.payload), 200, `${method}: 200`)
    c.destroy()
    await new Promise((r) => setTimeout(r, 30))
    const got = x.up.requests.slice(before)
    t.same(got.map((r) => [r.method, r.url]), [[method, '/public']], `${method}: the upstream saw exactly one request`)
    t.equal(got[0]?.header('transfer-encoding'), 'chunked', `${method}: its body framed (chunked)`)
    t.equal(got[0]?.body.toString(), inner, `${method}: the DATA is that request's body`)
    id += 2
  }
  t.notOk(x.up.requests.some((r) => r.url === '/admin'), 'no /admin request reached the upstream')
})

t.test('a body with content-length keeps it (no chunking)', async (t) => {
  const x = await setup(t)
  const c = await H2RawClient.connect(x.s.port)
  await c.send(headers(1, requestFields('GET', '/public', [['content-length', '5']])), data(1, 'hello', true))
  t.equal(statusOf((await c.waitResponse(1))!.payload), 200)
  c.destroy()
  const r = x.up.requests.at(-1)!
  t.equal(r.header('content-length'), '5')
  t.equal(r.header('transfer-encoding'), undefined)
  t.equal(r.body.toString(), 'hello')
})

// ---- 5. malformed heads: RST_STREAM PROTOCOL_ERROR, nothing upstream ------------------------------

const R = (m: string, p: string, x: [string, string][] = []): [string, string][] => requestFields(m, p, x)

/** What RFC 9113 §8.2.1/8.2.2/8.3 calls malformed and the codec refuses (nghttp2 or validate.ts). */
const REFUSED: Record<string, [string, string][]> = {
  'uppercase in a field name': R('GET', '/public', [['X-Auth', 'v']]),
  'connection': R('GET', '/public', [['connection', 'close']]),
  'keep-alive': R('GET', '/public', [['keep-alive', '5']]),
  'proxy-connection': R('GET', '/public', [['proxy-connection', 'x']]),
  'transfer-encoding': R('GET', '/public', [['transfer-encoding', 'chunked']]),
  'upgrade': R('GET', '/public', [['upgrade', 'h2c']]),
  'te other than trailers': R('GET', '/public', [['te', 'gzip']]),
  'unknown pseudo-header': [...R('GET', '/public'), [':foo', 'x']],
  'pseudo-header after a regular field': [[':method', 'GET'], [':scheme', 'http'], ['x-a', 'v'], [':path', '/public'], [':authority', 'app.test']],
  'no :method': [[':scheme', 'http'], [':path', '/public'], [':authority', 'app.test']],
  'no :scheme': [[':method', 'GET'], [':path', '/public'], [':authority', 'app.test']],
  'no :path': [[':method', 'GET'], [':scheme', 'http'], [':authority', 'app.test']],
  'duplicate :method': [[':method', 'GET'], [':method', 'GET'], [':scheme', 'http'], [':path', '/public'], [':authority', 'app.test']],
  'duplicate :path': [[':method', 'GET'], [':scheme', 'http'], [':path', '/public'], [':path', '/public/b'], [':authority', 'app.test']],
  'empty :path': R('GET', ''),
  ':path not starting with /': R('GET', 'public'),
  ':path * on GET': R('GET', '*'),
  'bad :method token': R('GE T', '/public'),
  ':path with a byte beyond ASCII': R('GET', '/public/caf\xe9'),
  ':path with a space': R('GET', '/public/a b'),
  'host disagreeing with :authority': R('GET', '/public', [['host', 'admin.test']]),
  'content-length not a decimal': R('GET', '/public', [['content-length', 'abc']]),
  'content-length with a sign': R('GET', '/public', [['content-length', '+0']]),
  'two content-length fields': R('GET', '/public', [['content-length', '0'], ['content-length', '0']]),
  'content-length as a list': R('GET', '/public', [['content-length', '0, 0']]),
}

t.test('malformed heads: RST_STREAM PROTOCOL_ERROR, 0 bytes upstream, the proxy serves the next request', async (t) => {
  const logFile = join(tempDir(t), 'access.log')
  const x = await setup(t, undefined, logFile)
  for (const [name, fields] of Object.entries(REFUSED)) {
    const c = await H2RawClient.connect(x.s.port)
    await c.send(headers(1, fields, { endStream: true }))
    const f = await c.waitReset(1)
    t.ok(f !== null && f.type === T.RST_STREAM && errorCode(f) === E.PROTOCOL_ERROR, `${name}: RST_STREAM PROTOCOL_ERROR${f === null ? ' (got nothing)' : f.type === T.GOAWAY ? ' (got GOAWAY)' : ` (got ${errorCode(f)})`}`)
    c.destroy()
  }
  t.equal(x.upBytes(), 0, 'the upstream received 0 bytes')
  t.equal((await h2get(x.s.port)).status, 200, 'the proxy serves the next request')
  const st = await listenerStats(x.s)
  const h2 = (st as unknown as { h2: Record<string, number> }).h2
  t.ok(h2.malformed >= 1, `refusals by the proxy's own check counted (h2.malformed ${h2.malformed})`)
  t.ok(st.downstreamProtocolErrors >= 1, 'and as downstream_protocol_error')
  const m = await x.s.admin('/metrics')
  t.match(m.body, /weft_proxy_decisions_total\{[^}]*decision="h2_malformed"[^}]*\} [1-9]/, 'weft_proxy_decisions_total{decision="h2_malformed"}')
  // one access-log line per refusal of the proxy's own check
  const lines = await until('the refusals in the access log', () => {
    const l = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((x) => x !== '').map((x) => JSON.parse(x)) : []
    const dpe = l.filter((r: { response_flags: string }) => r.response_flags === 'DPE')
    return dpe.length >= h2.malformed ? dpe : null
  })
  t.match(lines![0], { response_flags: 'DPE', response_code: 0, protocol: 'HTTP/2', path: '/public' }, 'access log: flag DPE, no response, the request as sent')
})

/**
 * Fields nghttp2 drops before JavaScript sees them (no callback of Node reaches the proxy): the
 * request goes on without them. What matters is that none of the bad bytes reaches the upstream.
 */
const DROPPED: Record<string, [string, string]> = {
  'CR in a value': ['x-a', 'a\rGET /admin HTTP/1.1'],
  'LF in a value': ['x-a', 'a\nx-injected: 1'],
  'NUL in a value': ['x-a', 'a\0b'],
  'colon in a name': ['x:a', 'v'],
  'space in a name': ['x a', 'v'],
}

t.test('fields with CR, LF, NUL or a bad name: none of their bytes reaches the upstream', async (t) => {
  const x = await setup(t)
  for (const [name, field] of Object.entries(DROPPED)) {
    const before = x.up.requests.length
    const c = await H2RawClient.connect(x.s.port)
    await c.send(headers(1, R('GET', '/public', [field, ['x-ok', '1']]), { endStream: true }))
    const f = await c.waitFrame((f) => (f.type === T.HEADERS || f.type === T.RST_STREAM) && f.streamId === 1)
    t.ok(f !== null, `${name}: answered or reset`)
    c.destroy()
    for (const r of x.up.requests.slice(before)) {
      t.notOk(r.headerNames().includes('x-a') || r.headerNames().includes('x:a') || r.headerNames().includes('x a') || r.headerNames().includes('x-injected'), `${name}: not forwarded`)
    }
  }
  t.notOk(x.up.requests.some((r) => r.url === '/admin'), 'nothing smuggled')
})

/**
 * The same five as RFC 9113 §8.2.1 wants them: refused with a stream error (PROTOCOL_ERROR), 0
 * bytes upstream. The proxy's own codec (proxy/h2/codec/) hands every field to the head check as
 * sent; with WEFT_H2_CODEC=node, nghttp2 drops the field first and these fail.
 */
t.test('fields with CR, LF, NUL or a bad name: RST_STREAM PROTOCOL_ERROR, 0 bytes upstream', async (t) => {
  const x = await setup(t)
  for (const [name, field] of Object.entries(DROPPED)) {
    const c = await H2RawClient.connect(x.s.port)
    await c.send(headers(1, R('GET', '/public', [field]), { endStream: true }))
    const f = await c.waitReset(1)
    t.ok(f !== null && f.type === T.RST_STREAM && errorCode(f) === E.PROTOCOL_ERROR, `${name}: RST_STREAM PROTOCOL_ERROR${f === null ? ' (got nothing)' : f.type === T.GOAWAY ? ' (got GOAWAY)' : ` (got ${errorCode(f)})`}`)
    c.destroy()
  }
  t.equal(x.upBytes(), 0, 'the upstream received 0 bytes')
  t.equal((await h2get(x.s.port)).status, 200, 'the proxy serves the next request')
})

/**
 * The codec checks a field's characters once, when it enters the HPACK table, and trusts indexed
 * references to it afterwards (proxy/h2/codec/hpack.ts, decoder.clean): an entry that failed keeps
 * failing. A client that adds a CR LF field with incremental indexing (refused), then refers to it
 * by index in its next request, is refused again: 0 bytes upstream.
 */
t.test('a bad field added to the HPACK table and then referenced by index: both requests refused', async (t) => {
  const x = await setup(t)
  const c = await H2RawClient.connect(x.s.port)
  // literal with incremental indexing (0x40), new name x-a, value "a\r\nx-injected: 1"
  const bad = Buffer.from('4003782d61' + '1061' + Buffer.from('\r\nx-injected: 1').toString('hex'), 'hex')
  await c.send(headers(1, Buffer.concat([hpackFields(R('GET', '/public')), bad]), { endStream: true }))
  const f1 = await c.waitReset(1)
  t.ok(f1 !== null && f1.type === T.RST_STREAM && errorCode(f1) === E.PROTOCOL_ERROR, 'the literal: RST_STREAM PROTOCOL_ERROR')
  // the same field by index 62 (0xbe): the newest dynamic table entry
  await c.send(headers(3, Buffer.concat([hpackFields(R('GET', '/public')), Buffer.from([0xbe])]), { endStream: true }))
  const f3 = await c.waitReset(3)
  t.ok(f3 !== null && f3.type === T.RST_STREAM && errorCode(f3) === E.PROTOCOL_ERROR, 'the indexed reference: RST_STREAM PROTOCOL_ERROR')
  // a clean request on the same connection still goes through (the table is in step)
  await c.send(headers(5, R('GET', '/public'), { endStream: true }))
  const ok = await c.waitResponse(5)
  t.ok(ok !== null, 'the next request on the connection is answered')
  c.destroy()
  t.notOk(x.up.requests.some((r) => r.headerNames().includes('x-a') || r.headerNames().includes('x-injected')), 'nothing of the bad field upstream')
})

// ---- 1. an exception inside one exchange ----------------------------------------------------------

t.test('an exception inside one exchange (injected into its listeners) ends that exchange: 502 IE, counted, the process serves on', async (t) => {
  const x = await setup(t)
  const proto = H2Exchange.prototype as unknown as Record<string, unknown>
  for (const [method, body] of [['relayHead', undefined], ['onDownData', 'hello'], ['relayEnd', undefined]] as const) {
    const orig = proto[method]
    proto[method] = function () {
      throw new Error('injected')
    }
    let r
    try {
      r = await h2get(x.s.port, '/public', body).catch((err: NodeJS.ErrnoException) => err)
    } finally {
      proto[method] = orig
    }
    if (method === 'relayEnd') {
      // the response had started: the stream is reset, the client sees it cut
      t.match(r, { code: 'ERR_HTTP2_STREAM_ERROR', message: /NGHTTP2_INTERNAL_ERROR/ }, `${method}: RST_STREAM INTERNAL_ERROR`)
    } else if (r instanceof Error) {
      t.fail(`${method}: ${r.message}`)
    } else {
      t.equal(r.status, 502, `${method}: 502`)
      t.equal(r.headers['x-weft-error'], 'WEFT_ERR_INTERNAL', `${method}: x-weft-error`)
      t.equal(r.headers['x-weft-response-flags'], 'IE', `${method}: flag IE`)
    }
    t.equal((await h2get(x.s.port)).status, 200, `${method}: the next request is served`)
  }
  const st = (await listenerStats(x.s)) as unknown as { h2: Record<string, number> }
  t.equal(st.h2.internalErrors, 3, 'h2.internalErrors')
  const m = await x.s.admin('/metrics')
  t.match(m.body, /weft_proxy_decisions_total\{[^}]*decision="h2_internal_error"[^}]*\} 3/)
})
