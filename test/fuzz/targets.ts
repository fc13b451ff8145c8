// One fuzz target per reader of peer bytes. Function targets call the parser directly; sidecar
// targets start an in-process sidecar on 127.0.0.1 (a crash of the proxy ends the run) with a strict
// raw upstream that records every malformed byte the proxy writes, and probe a good route after each
// batch. Targets not built yet are listed in PLANNED so they are not forgotten.
import fc from 'fast-check'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'
import { xdsDecoder } from './xds-target.ts'
import { admissionWebhook } from './webhook-target.ts'
import { parseRequestHead, parseResponseHead, HttpError } from '../../api/http1/head.ts'
import { ChunkedDecoder } from '../../api/http1/chunked.ts'
import { classify, DETECT_UNDECIDED, DETECT_TCP, DETECT_HTTP2 } from '../../proxy/listener/detect.ts'
import { makeConfig, cluster, routeTo, startTestSidecar, tempDir, writeConfig, freePort, spawnWeft, waitReady, type TestSidecar, type ChildSidecar } from '../helpers/sidecar.ts'
import { RawClient } from '../helpers/raw.ts'
import { parseFrames } from '../helpers/h2frames.ts'
import { checkStream } from './strict.ts'
import { closeServer, heapBase, heapCheck, probeHttp, strictUpstream, type StrictUpstream } from './kit.ts'
import { pieces, type FuzzInput, type Target } from './engine.ts'

const B = (s: string) => Buffer.from(s, 'latin1')
const BAD_VALUE = /[\r\n\0]/

// ---- recorded valid inputs ----------------------------------------------------------------------
const REQUESTS = [
  'GET /a HTTP/1.1\r\nHost: app.test\r\n\r\n',
  'POST /a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello',
  'POST /a HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'PUT /a?x=1 HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\nX-A: 1\r\n\r\n3;ext=1\r\nabc\r\n0\r\nT: v\r\n\r\n',
  'GET http://app.test/abs HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.1\r\nHost: app.test\r\n\r\n',
  'GET /a HTTP/1.0\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: app.test\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
  'POST /a HTTP/1.1\r\nHost: app.test\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc',
].map(B)

const REQ_TOKENS = [
  '\r\n', '\n', '\r', '\0', ' ', '\t', ':', '\r\n\r\n', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 0\r\n',
  'Content-Length: 99999999999999999999\r\n', 'Content-Length: -1\r\n', 'Content-Length: 5, 6\r\n', 'Transfer-Encoding: chunked, identity\r\n',
  'Transfer-Encoding:\tchunked\r\n', ' chunked', 'Host: other\r\n', 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n', 'ffffffffffffffff\r\n',
  '0\r\n\r\n', ';ext', 'HTTP/1.1', 'HTTP/2.0', 'Connection: close\r\n', 'Upgrade: h2c\r\n', 'X-Long: ' + 'a'.repeat(2000) + '\r\n', '\xff', '%00', '#frag',
]

const RESPONSES = [
  'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'HTTP/1.1 204 No Content\r\n\r\n',
  'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nX-Up: 1\r\n\r\nnop',
  'HTTP/1.0 200 OK\r\n\r\nbody until close',
  'HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n',
].map(B)

const RESP_TOKENS = [
  ...REQ_TOKENS, 'HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n', 'garbage after', 'zz\r\n', '-1\r\n', '0x10\r\n',
]

const CHUNKED = [
  '5\r\nhello\r\n0\r\n\r\n', '1;a=b\r\nx\r\n0\r\n\r\n', '3\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: v\r\nX: y\r\n\r\n', '0\r\n\r\nGET / HTTP/1.1\r\n',
  'A\r\n0123456789\r\n0\r\n\r\n', '0 \r\n\r\n',
].map(B)

// ---- generated bad inputs -----------------------------------------------------------------------
const fieldByte = fc.constantFrom(...'aZ09-_:. \t\r\n\0\x7f\xff,;='.split(''))
const weirdString = (max: number) => fc.array(fc.oneof(fieldByte, fc.string({ maxLength: 3 })), { maxLength: max }).map((a) => a.join(''))
const genRequest = fc
  .record({
    method: fc.oneof(fc.constantFrom('GET', 'POST', 'HEAD', 'CONNECT', 'PRI', 'get', 'G ET', ''), weirdString(8)),
    target: fc.oneof(fc.constantFrom('/', '*', 'http://h/', 'h:80', '//x', '/a b', ''), weirdString(20).map((s) => '/' + s)),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ', ''),
    fields: fc.array(fc.tuple(fc.oneof(fc.constantFrom('Host', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Expect', 'TE', 'Trailer'), weirdString(10)), weirdString(20)), { maxLength: 8 }),
    sep: fc.constantFrom(': ', ':', ' : ', ':\t'),
    eol: fc.constantFrom('\r\n', '\n', '\r'),
    body: weirdString(30),
  })
  .map((r) => B(`${r.method} ${r.target} ${r.version}${r.eol}${r.fields.map(([n, v]) => `${n}${r.sep}${v}${r.eol}`).join('')}${r.eol}${r.body}`))
const genResponse = fc
  .record({
    status: fc.oneof(fc.integer({ min: 0, max: 1000 }).map(String), fc.constantFrom('2OO', '-1', '', '1000000')),
    informational: fc.nat(40),
    fields: fc.array(fc.tuple(fc.oneof(fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Connection', 'Set-Cookie'), weirdString(10)), weirdString(20)), { maxLength: 6 }),
    body: weirdString(30),
  })
  .map((r) => B(`${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(r.informational)}HTTP/1.1 ${r.status} X\r\n${r.fields.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${r.body}`))
const genChunked = fc
  .array(fc.tuple(fc.oneof(fc.nat(40).map((n) => n.toString(16)), weirdString(6)), weirdString(6), weirdString(40)), { maxLength: 6 })
  .map((cs) => B(cs.map(([size, ext, data]) => `${size}${ext}\r\n${data}\r\n`).join('') + '0\r\n\r\n'))

// ---- function targets ---------------------------------------------------------------------------
function headOf(bytes: Buffer): string {
  const s = bytes.toString('latin1').replace(/^(\r\n){0,2}/, '')
  const e = s.indexOf('\r\n\r\n')
  return e === -1 ? s : s.slice(0, e)
}

function checkFields(names: string[], values: string[]): string | null {
  if (names.length !== values.length) return 'names/values length mismatch'
  for (let i = 0; i < names.length; i++) {
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(names[i]!)) return `accepted field name ${JSON.stringify(names[i])}`
    if (BAD_VALUE.test(values[i]!)) return `accepted field value with CR/LF/NUL: ${JSON.stringify(values[i])}`
  }
  return null
}

export const http1Head: Target = {
  name: 'http1-head',
  corpus: [...REQUESTS, ...RESPONSES],
  tokens: RESP_TOKENS,
  generated: fc.oneof(genRequest, genResponse),
  check(_ctx, input) {
    const s = headOf(input.bytes)
    const r = s.startsWith('HTTP/') ? parseResponseHead(s, 100) : parseRequestHead(s, 100)
    if (r instanceof HttpError) return typeof r.status === 'number' ? null : 'HttpError without a status'
    const bad = checkFields(r.names, r.values)
    if (bad) return bad
    if (r.chunked && r.contentLength >= 0) return 'both chunked and content-length accepted'
    if (!Number.isSafeInteger(r.contentLength) || r.contentLength < -1) return `content-length ${r.contentLength}`
    if ('method' in r) {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(r.method)) return `accepted method ${JSON.stringify(r.method)}`
      if (/[\s\0]/.test(r.path) || /[\r\n]/.test(r.authority)) return `accepted path/authority ${JSON.stringify([r.path, r.authority])}`
    } else if (!(r.status >= 100 && r.status <= 999) || /[\r\n\0]/.test(r.reason)) return `accepted status line ${JSON.stringify([r.status, r.reason])}`
    return null
  },
}

function decodeChunked(parts: Buffer[]): { data: string; trailers: string | null; error: string; consumed: number; done: boolean } {
  const d = new ChunkedDecoder()
  let data = ''
  let trailers: string | null = null
  let consumed = 0
  const sink = {
    onChunkData: (b: Buffer, s: number, e: number) => { data += b.toString('latin1', s, e) },
    onChunkedEnd: (t: string) => { trailers = t },
  }
  for (const p of parts) {
    const r = d.push(p, 0, p.length, sink)
    if (r === -1) return { data, trailers, error: d.error || 'error', consumed: -1, done: false }
    consumed += r
    if (d.done) break
  }
  return { data, trailers, error: d.error, consumed, done: d.done }
}

export const http1Chunked: Target = {
  name: 'http1-chunked',
  corpus: CHUNKED,
  tokens: ['\r\n', '\n', '\r', ';', ' ', '\t', '0', 'f', 'ffffffffffffffffffff', '-', '0x', '\0', 'Trailer: x\r\n', 'Bad Trailer\r\n'],
  generated: genChunked,
  check(_ctx, input) {
    const whole = decodeChunked([input.bytes])
    const split = decodeChunked(pieces(input))
    if ((whole.consumed === -1) !== (split.consumed === -1)) return `split changes validity: whole ${whole.error || 'ok'} split ${split.error || 'ok'}`
    if (whole.consumed !== -1 && (whole.data !== split.data || whole.done !== split.done || whole.trailers !== split.trailers)) return 'split changes decoded data'
    if (whole.trailers !== null && /\r\n\r\n[\s\S]/.test(whole.trailers + '')) return 'trailers run past their end'
    if (whole.consumed > input.bytes.length) return 'consumed more than given'
    return null
  },
}

export const detect: Target = {
  name: 'detect',
  corpus: [B('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), ...REQUESTS.slice(0, 3), B('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'), B('*1\r\n$4\r\nPING\r\n'), B('\r\n\r\nGET / HTTP/1.1\r\n')],
  tokens: ['PRI', ' ', '\r\n', '\x16', 'GET ', '\0', 'HTTP/2.0'],
  check(_ctx, input) {
    let prev = DETECT_UNDECIDED
    for (let n = 0; n <= Math.min(input.bytes.length, 64); n++) {
      const buf = input.bytes.subarray(0, n)
      const a = classify(buf, false)
      const f = classify(buf, true)
      if (!(a >= 0 && a <= DETECT_TCP) || !(f >= 0 && f <= DETECT_TCP)) return `classify out of range ${a} ${f}`
      if (n > 0 && f === DETECT_UNDECIDED) return `undecided on final input of ${n} bytes`
      if (prev !== DETECT_UNDECIDED && a !== prev) return `decision changed from ${prev} to ${a} at ${n} bytes`
      if (a !== DETECT_UNDECIDED && a !== f) return `final ${f} disagrees with decided ${a} at ${n} bytes`
      prev = a
    }
    return null
  },
}

async function rawExchange(port: number, input: FuzzInput, waitMs: number): Promise<RawClient | null> {
  let c: RawClient
  try { c = await RawClient.connect(port) } catch (err) { return null }
  for (const p of pieces(input)) {
    if (c.closed) break
    c.socket.write(p)
  }
  // FIN after the input: the proxy answers what it read and closes, so most inputs end early
  if (!c.closed) c.socket.end()
  await c.waitClose(waitMs)
  c.destroy()
  return c
}

// ---- sidecar targets ----------------------------------------------------------------------------
interface SidecarCtx {
  sc: TestSidecar
  up: StrictUpstream
  fuzzUp?: FuzzServer
  closers: (() => unknown)[]
  heap: number
}

async function startWith(config: ReturnType<typeof makeConfig>, ctx: Omit<SidecarCtx, 'sc' | 'heap'>): Promise<SidecarCtx> {
  const closers: (() => unknown)[] = []
  const sc = await startTestSidecar({ teardown: (fn) => closers.push(fn) }, config)
  return { ...ctx, sc, closers: [...ctx.closers, ...closers], heap: heapBase() }
}

async function stopCtx(c: SidecarCtx): Promise<void> {
  for (const f of c.closers.reverse()) await f()
  await closeServer(c.up.server, c.up.sockets)
  if (c.fuzzUp) await closeServer(c.fuzzUp.server, c.fuzzUp.sockets)
}

function takeViolations(c: SidecarCtx): string | null {
  if (c.up.violations.length === 0) return null
  const v = c.up.violations.splice(0).join('; ')
  return v
}

export const http1Requests: Target<SidecarCtx> = {
  name: 'http1-requests',
  corpus: REQUESTS,
  tokens: REQ_TOKENS,
  generated: genRequest,
  async setup() {
    const up = await strictUpstream()
    return startWith(makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }), { up, closers: [] })
  },
  teardown: stopCtx,
  async check(c, input) {
    if (classify(input.bytes.subarray(0, 24), true) === DETECT_HTTP2) return null // the h2 targets' inputs
    const cl = await rawExchange(c.sc.port, input, 1000)
    await new Promise((r) => setImmediate(r))
    // every input ends with the client's FIN: the proxy answers what it can and closes
    if (cl && !cl.closed && !cl.ended) return `connection still open 1 s after the client's FIN (${cl.data.length} bytes answered)`
    return takeViolations(c)
  },
  async probe(c) {
    return (await probeHttp(`http://127.0.0.1:${c.sc.port}/probe`)) ?? takeViolations(c) ?? heapCheck(c.heap)
  },
}

/** A raw upstream on 127.0.0.1 that a target drives: its sockets tracked, `current` the input to answer with. */
interface FuzzServer { server: Server; port: number; sockets: Set<Socket>; current: FuzzInput | null }

async function fuzzServer(onSocket: (sock: Socket, input: FuzzInput | null) => void): Promise<FuzzServer> {
  const fz: FuzzServer = { server: null as unknown as Server, port: 0, sockets: new Set(), current: null }
  fz.server = createServer((sock) => {
    fz.sockets.add(sock)
    sock.on('error', () => {})
    sock.on('close', () => fz.sockets.delete(sock))
    onSocket(sock, fz.current)
  })
  await new Promise<void>((res) => fz.server.listen(0, '127.0.0.1', res))
  fz.port = (fz.server.address() as AddressInfo).port
  return fz
}

export const http1UpstreamResponses: Target<SidecarCtx> = {
  name: 'http1-upstream-responses',
  corpus: RESPONSES,
  tokens: RESP_TOKENS,
  generated: genResponse,
  async setup() {
    const up = await strictUpstream()
    const fuzzUp = await fuzzServer((sock, input) => {
      // an input whose first cut is at an odd offset is sent before any request (a response to no request)
      const early = input !== null && input.cuts.length > 0 && input.cuts[0]! % 2 === 1
      const send = () => {
        if (!input) return sock.destroy()
        for (const p of pieces(input)) sock.write(p)
        sock.end()
      }
      if (early) send()
      else sock.once('data', send)
    })
    const config = makeConfig({
      routes: [routeTo('good', { match: { path: { prefix: '/probe' } } }), routeTo('fz')],
      clusters: [cluster('good', [up.port]), cluster('fz', [fuzzUp.port])],
    })
    return startWith(config, { up, fuzzUp, closers: [] })
  },
  teardown: stopCtx,
  async check(c, input) {
    c.fuzzUp!.current = input
    const cl = await rawExchange(c.sc.port, { bytes: B('GET /f HTTP/1.1\r\nHost: app.test\r\n\r\n'), cuts: [] }, 300)
    if (!cl) return 'could not connect to the sidecar'
    const r = checkStream(cl.data, 'response', { final: false })
    if (r.violations.length > 0) return `client received: ${r.violations.join('; ')}`
    if (r.messages === 0 && cl.data.length > 0) return `client received a partial head ${JSON.stringify(cl.text().slice(0, 80))}`
    return null
  },
  async probe(c) {
    return (await probeHttp(`http://127.0.0.1:${c.sc.port}/probe`)) ?? heapCheck(c.heap)
  },
}

const ADMIN = ['/ready', '/live', '/config_dump', '/clusters', '/stats', '/metrics', '/', '/clusters?format=json', '/stats?filter=x&x=%zz', '/app-health/app/livez']
export const admin: Target<SidecarCtx> = {
  name: 'admin',
  corpus: ADMIN.flatMap((p) => [`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, `POST ${p} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}`]).map(B),
  tokens: [...REQ_TOKENS, '?', '&', '=', '%', '%zz', '..', '/../', '//', 'HEAD', 'DELETE', 'Accept: application/json\r\n', '?format=prometheus', '?filter=('],
  generated: genRequest,
  async setup() {
    const up = await strictUpstream()
    return startWith(makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }), { up, closers: [] })
  },
  teardown: stopCtx,
  async check(c, input) {
    const cl = await rawExchange(c.sc.adminPort, input, 200)
    if (!cl) return 'could not connect to admin'
    const r = checkStream(cl.data, 'response', { final: false })
    if (r.violations.length > 0) return `admin answered: ${r.violations.join('; ')}`
    if (/^HTTP\/1\.1 5\d\d/.test(cl.text())) return `admin answered ${cl.text().slice(0, 60)}`
    return null
  },
  async probe(c) {
    return (await probeHttp(`http://127.0.0.1:${c.sc.adminPort}/ready`)) ?? heapCheck(c.heap)
  },
}

interface TcpCtx extends SidecarCtx {
  tcpPort: number
  /** bytes the echo upstream received, per connection */
  received: Buffer[]
}

/**
 * The TCP tunnel: a `detect` listener with a TCP target (whatever is not HTTP goes to it) in front
 * of an echo upstream. Inputs that detection calls TCP must reach the upstream byte for byte and come
 * back byte for byte; every connection closes after the client's FIN.
 */
export const tcpTunnel: Target<TcpCtx> = {
  name: 'tcp-tunnel',
  corpus: [B('\x16\x03\x01\x00\x05hello'), B('*1\r\n$4\r\nPING\r\n'), B('\0\0\0\x08\x04\xd2\x16\x2f'), B('SSH-2.0-x\r\n'), B('PRI * HTTP/1.1\r\n')],
  tokens: ['\0', '\r\n', ' ', 'GET ', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', '\xff'.repeat(100)],
  async setup() {
    const up = await strictUpstream()
    const received: Buffer[] = []
    const sockets = new Set<Socket>()
    const echo = createServer({ allowHalfOpen: true }, (sock) => {
      sockets.add(sock)
      const i = received.push(Buffer.alloc(0)) - 1
      sock.on('error', () => {})
      sock.on('close', () => sockets.delete(sock))
      sock.on('data', (b: Buffer) => { received[i] = Buffer.concat([received[i]!, b]); sock.write(b) })
      sock.on('end', () => sock.end())
    })
    await new Promise<void>((res) => echo.listen(0, '127.0.0.1', res))
    const echoPort = (echo.address() as AddressInfo).port
    const config = makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port]), cluster('echo', [echoPort])] })
    config.listeners[0]!.tcp = { cluster: 'echo' }
    const ctx = await startWith(config, { up, closers: [], fuzzUp: { server: echo, port: echoPort, sockets, current: null } })
    return { ...ctx, tcpPort: ctx.sc.port, received }
  },
  teardown: stopCtx,
  async check(c, input) {
    const before = c.received.length
    const kind = classify(input.bytes.subarray(0, 24), true)
    // HTTP/2 inputs belong to the h2 targets: a client FIN without GOAWAY leaves the session open
    // today (known h2 defect, in NOTES.md under "fuzz findings for h2")
    if (kind === DETECT_HTTP2) return null
    const cl = await rawExchange(c.tcpPort, input, 1000)
    if (!cl) return 'could not connect'
    if (!cl.closed && !cl.ended) return 'connection still open 1 s after the client FIN'
    if (input.bytes.length === 0 || kind !== DETECT_TCP) return takeViolations(c)
    const got = c.received.slice(before)
    if (got.length !== 1) return `expected one upstream connection, saw ${got.length}`
    if (!got[0]!.equals(input.bytes)) return `upstream received ${got[0]!.length} bytes, sent ${input.bytes.length}`
    if (!cl.data.equals(input.bytes)) return `client got back ${cl.data.length} bytes, sent ${input.bytes.length}`
    return null
  },
  async probe(c) {
    return (await probeHttp(`http://127.0.0.1:${c.sc.port}/probe`)) ?? heapCheck(c.heap)
  },
}

// ---- HTTP/2 server side (frames from clients), against a child sidecar ----------------------------
// A small frame builder of its own (test/helpers/h2frames.ts lives on branch h2; the lead dedupes).
function h2frame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(id & 0x7fffffff, 5)
  return Buffer.concat([h, payload])
}
function hpackInt(n: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1
  if (n < max) return [first | n]
  const out = [first | max]
  n -= max
  while (n >= 128) { out.push((n & 0x7f) | 0x80); n >>= 7 }
  out.push(n)
  return out
}
function hpack(fields: [string, string][]): Buffer {
  const parts: Buffer[] = []
  for (const [n, v] of fields) {
    parts.push(Buffer.from([0x00]), Buffer.from(hpackInt(n.length, 7, 0)), B(n), Buffer.from(hpackInt(v.length, 7, 0)), B(v))
  }
  return Buffer.concat(parts)
}
const PREFACE = B('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
const SETTINGS = h2frame(4, 0, 0, Buffer.alloc(0))
const SETTINGS_ACK = h2frame(4, 1, 0, Buffer.alloc(0))
const req = (id: number, method: string, extra: [string, string][] = [], endStream = true) =>
  h2frame(1, 0x4 | (endStream ? 1 : 0), id, hpack([[':method', method], [':scheme', 'http'], [':path', '/h2'], [':authority', 'app.test'], ...extra]))
const H2_CORPUS = [
  Buffer.concat([PREFACE, SETTINGS, req(1, 'GET')]),
  Buffer.concat([PREFACE, SETTINGS, SETTINGS_ACK, req(1, 'POST', [['content-length', '5']], false), h2frame(0, 1, 1, B('hello'))]),
  Buffer.concat([PREFACE, SETTINGS, req(1, 'POST', [], false), h2frame(0, 0, 1, B('abc')), h2frame(0, 1, 1, B('de'))]),
  Buffer.concat([PREFACE, SETTINGS, req(1, 'GET'), req(3, 'GET', [['x-a', '1']]), h2frame(8, 0, 0, Buffer.from([0, 0, 0x10, 0]))]),
  Buffer.concat([PREFACE, SETTINGS, req(1, 'PUT', [['content-type', 'text/plain']], false), h2frame(0, 1, 1, B('x')), h2frame(6, 0, 0, Buffer.alloc(8))]),
]
const H2_TOKENS = [
  h2frame(0, 1, 1, B('0123456789')), h2frame(0, 0, 3, B('GET /admin HTTP/1.1\r\nHost: x\r\n\r\n')), h2frame(3, 0, 1, Buffer.from([0, 0, 0, 1])),
  h2frame(3, 0, 1, Buffer.from([0, 0, 0, 8])), h2frame(7, 0, 0, Buffer.alloc(8)), h2frame(8, 0, 1, Buffer.from([0x7f, 0xff, 0xff, 0xff])),
  h2frame(9, 4, 1, hpack([['x-b', '2']])), h2frame(1, 4, 5, hpack([[':method', 'GET'], [':path', '/a'], ['x-bad', 'a\r\nb']])),
  h2frame(1, 5, 7, hpack([[':method', 'GET'], [':path', '/a'], [':scheme', 'http'], ['content-length', '0']])), h2frame(2, 0, 1, Buffer.from([0, 0, 0, 3, 16])),
  req(9, 'POST', [['content-length', '100']], false), req(11, 'GET', [['Upper', 'x']]), req(13, 'GET', [['connection', 'close']]), SETTINGS,
].map((b) => b.toString('latin1'))
const genH2 = fc
  .array(fc.record({ type: fc.nat(10), flags: fc.constantFrom(0, 1, 4, 5, 8, 0x20, 0xff), id: fc.constantFrom(0, 1, 1, 3, 2, 0x7fffffff), payload: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 8 })
  .map((fs) => Buffer.concat([PREFACE, SETTINGS, ...fs.map((f) => h2frame(f.type, f.flags, f.id, Buffer.from(f.payload)))]))

interface ChildCtx {
  dir: string
  file: string
  port: number
  adminPort: number
  up: StrictUpstream
  child: ChildSidecar
  closers: (() => unknown)[]
  crashes: number
}

async function spawnChild(c: ChildCtx): Promise<void> {
  c.child = spawnWeft({ teardown: (fn) => c.closers.push(fn) }, c.file)
  await waitReady(c.adminPort, 15_000)
}

function childGone(c: ChildCtx): string | null {
  const ch = c.child.child
  if (ch.exitCode === null && ch.signalCode === null) return null
  const tail = c.child.stderr().split('\n').filter((l) => /Error|error/.test(l)).slice(0, 3).join(' | ')
  return `sidecar process exited (${ch.exitCode ?? ch.signalCode}): ${tail.slice(0, 300)}`
}

export const h2Server: Target<ChildCtx> = {
  name: 'h2-server',
  corpus: H2_CORPUS,
  tokens: H2_TOKENS,
  generated: genH2,
  async setup() {
    const up = await strictUpstream()
    const closers: (() => unknown)[] = []
    const dir = tempDir({ teardown: (fn) => closers.push(fn) })
    const port = await freePort()
    const adminPort = await freePort()
    const file = writeConfig(dir, makeConfig({ port, adminPort, routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
    const c: ChildCtx = { dir, file, port, adminPort, up, child: null as unknown as ChildSidecar, closers, crashes: 0 }
    await spawnChild(c)
    return c
  },
  async teardown(c) {
    for (const f of c.closers.reverse()) await f()
    await closeServer(c.up.server, c.up.sockets)
  },
  async check(c, input) {
    const cl = await rawExchange(c.port, input, 150)
    await new Promise((r) => setTimeout(r, 5))
    const gone = childGone(c)
    if (gone) {
      c.crashes++
      if (c.crashes < 20) await spawnChild(c)
      return gone
    }
    if (!cl) return 'could not connect to the sidecar'
    if (c.up.violations.length > 0) return c.up.violations.splice(0).join('; ')
    return null
  },
  async probe(c) {
    return childGone(c) ?? (await probeHttp(`http://127.0.0.1:${c.port}/probe`))
  },
}

// ---- HTTP/2 client side (frames from an upstream HTTP/2 server), against a child sidecar ----------
// A raw-socket fake upstream (cluster `fz`, protocol http2) reads the proxy's preface and request,
// answers with the input's bytes (its cuts are the writes) and closes. The client asks through an
// HTTP/1 listener: whatever the upstream sent, the client gets a well-formed HTTP/1 response (or a
// close), the good cluster keeps answering, and the sidecar stays up.
const rsp = (id: number, fields: [string, string][], endStream: boolean) => h2frame(1, 0x4 | (endStream ? 1 : 0), id, hpack([[':status', '200'], ...fields]))
const H2C_CORPUS = [
  Buffer.concat([SETTINGS, SETTINGS_ACK, rsp(1, [['content-length', '2']], false), h2frame(0, 1, 1, B('ok'))]),
  Buffer.concat([SETTINGS, rsp(1, [], true)]),
  Buffer.concat([SETTINGS, SETTINGS_ACK, h2frame(1, 0x4, 1, hpack([[':status', '103'], ['link', '</a>']])), rsp(1, [['x-a', '1']], false), h2frame(0, 0, 1, B('abc')), h2frame(1, 5, 1, hpack([['x-trailer', 'v']]))]),
  Buffer.concat([SETTINGS, rsp(1, [], false), h2frame(0, 0, 1, B('a')), h2frame(3, 0, 1, Buffer.from([0, 0, 0, 2]))]),
  Buffer.concat([SETTINGS, h2frame(7, 0, 0, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])), rsp(1, [], true)]),
  Buffer.concat([SETTINGS, h2frame(8, 0, 0, Buffer.from([0, 1, 0, 0])), rsp(1, [['content-type', 'text/plain']], false), h2frame(0, 1, 1, B('x'.repeat(100)))]),
  Buffer.concat([SETTINGS, rsp(1, [['content-length', '5']], false), h2frame(0, 0, 1, B('hel')), h2frame(0, 1, 1, B('lo'))]),
  Buffer.concat([SETTINGS, rsp(1, [['content-type', 'application/grpc']], false), h2frame(0, 0, 1, Buffer.from([0, 0, 0, 0, 1, 0x41])), h2frame(1, 5, 1, hpack([['grpc-status', '0']]))]),
  Buffer.concat([SETTINGS, h2frame(7, 0, 0, Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]))]),
]
const H2C_TOKENS = [
  h2frame(1, 4, 1, hpack([[':status', '200'], ['x-bad', 'a\r\nSet-Cookie: injected=1']])), h2frame(1, 4, 1, hpack([[':status', '200'], ['X-Upper', 'v']])),
  h2frame(1, 4, 1, hpack([[':status', '200'], ['transfer-encoding', 'chunked']])), h2frame(1, 4, 1, hpack([[':status', '2000']])), h2frame(1, 4, 1, hpack([[':status', 'abc']])),
  h2frame(1, 4, 1, hpack([['x-no-status', '1']])), h2frame(1, 4, 1, hpack([[':status', '200'], [':path', '/x']])), h2frame(1, 4, 1, hpack([[':status', '200'], ['content-length', '99']])),
  h2frame(1, 4, 1, hpack([[':status', '100']])), h2frame(1, 4, 1, hpack([[':status', '101']])), h2frame(1, 4, 1, hpack([[':status', '200'], ['x\0', 'v']])),
  h2frame(5, 4, 1, Buffer.concat([Buffer.from([0, 0, 0, 2]), hpack([[':method', 'GET'], [':path', '/p'], [':scheme', 'http'], [':authority', 'a']])])),
  h2frame(0, 0, 1, B('0123456789')), h2frame(0, 1, 3, B('x')), h2frame(3, 0, 1, Buffer.from([0, 0, 0, 8])), h2frame(7, 0, 0, Buffer.from([0, 0, 0, 1, 0, 0, 0, 2])),
  h2frame(8, 0, 1, Buffer.from([0x7f, 0xff, 0xff, 0xff])), h2frame(4, 0, 0, Buffer.from([0, 4, 0x7f, 0xff, 0xff, 0xff])), h2frame(4, 0, 0, Buffer.from([0, 5, 0, 0, 0, 1])),
  h2frame(9, 4, 1, hpack([['x-c', '1']])), h2frame(6, 0, 0, Buffer.alloc(8)), h2frame(2, 0, 1, Buffer.from([0, 0, 0, 1, 16])), SETTINGS,
  h2frame(7, 0, 0, Buffer.from([0, 0, 0, 0, 0, 0, 0, 11])), h2frame(8, 0, 1, Buffer.from([0, 0, 0, 0])), h2frame(1, 4, 1, hpack([['content-length', '-1'], [':status', '200']])),
  h2frame(1, 5, 3, hpack([[':status', '200']])), h2frame(0, 1, 1, Buffer.alloc(70000)), h2frame(4, 0, 0, Buffer.from([0, 4, 0, 0, 0, 0])), h2frame(0, 0, 0, B('x')),
].map((b) => b.toString('latin1'))
const genH2c = fc
  .array(fc.record({ type: fc.nat(10), flags: fc.constantFrom(0, 1, 4, 5, 8, 0x20, 0xff), id: fc.constantFrom(0, 1, 1, 1, 3, 2, 0x7fffffff), payload: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 8 })
  .map((fs) => Buffer.concat([SETTINGS, ...fs.map((f) => h2frame(f.type, f.flags, f.id, Buffer.from(f.payload)))]))

interface H2ClientCtx extends ChildCtx {
  /** the client's answers by status (what the run exercised) */
  answers: Map<string, number>
  fuzzUp: FuzzServer
}

export const h2Client: Target<H2ClientCtx> = {
  name: 'h2-client',
  corpus: H2C_CORPUS,
  tokens: H2C_TOKENS,
  generated: genH2c,
  async setup() {
    const up = await strictUpstream()
    const fuzzUp = await fuzzServer((sock, input) => {
      if (!input) return sock.destroy()
      const send = () => {
        for (const p of pieces(input)) sock.write(p)
        setTimeout(() => sock.end(), 20)
      }
      // an input whose first cut is odd is the whole server side from the first byte (its preface
      // fuzzed too); any other: a clean SETTINGS (the proxy opens streams only after the server's
      // SETTINGS), then the input once the client's request (a HEADERS frame) is in
      sock.resume() // read (and drop) what the proxy sends, so its FIN is seen
      if (input.cuts.length > 0 && input.cuts[0]! % 2 === 1) return send()
      sock.write(SETTINGS)
      let got = Buffer.alloc(0)
      let sent = false
      sock.on('data', (b: Buffer) => {
        if (sent) return
        got = Buffer.concat([got, b])
        if (got.length < 24 || !parseFrames(got.subarray(24)).frames.some((f) => f.type === 1)) return
        sent = true
        send()
      })
    })
    const closers: (() => unknown)[] = []
    const dir = tempDir({ teardown: (fn) => closers.push(fn) })
    const port = await freePort()
    const adminPort = await freePort()
    const config = makeConfig({
      port, adminPort,
      routes: [routeTo('good', { match: { path: { prefix: '/probe' } } }), routeTo('fz', { timeout: '2s' })],
      clusters: [cluster('good', [up.port]), cluster('fz', [fuzzUp.port], { protocol: 'http2' })],
    })
    const file = writeConfig(dir, config)
    const c: H2ClientCtx = { dir, file, port, adminPort, up, child: null as unknown as ChildSidecar, closers, crashes: 0, fuzzUp, answers: new Map() }
    await spawnChild(c)
    return c
  },
  async teardown(c) {
    if (process.env.WEFT_FUZZ_DEBUG) console.log('h2-client answers:', JSON.stringify(Object.fromEntries(c.answers)))
    for (const f of c.closers.reverse()) await f()
    await closeServer(c.up.server, c.up.sockets)
    await closeServer(c.fuzzUp.server, c.fuzzUp.sockets)
  },
  async check(c, input) {
    c.fuzzUp.current = input
    const cl = await rawExchange(c.port, { bytes: B('GET /f HTTP/1.1\r\nHost: app.test\r\n\r\n'), cuts: [] }, 2500)
    await new Promise((r) => setTimeout(r, 5))
    const gone = childGone(c)
    if (gone) {
      c.crashes++
      if (c.crashes < 20) await spawnChild(c)
      return gone
    }
    if (!cl) return 'could not connect to the sidecar'
    const r = checkStream(cl.data, 'response', { final: false })
    if (r.violations.length > 0) return `client received: ${r.violations.join('; ')}`
    if (r.messages === 0 && cl.data.length > 0) return `client received a partial head ${JSON.stringify(cl.text().slice(0, 80))}`
    if (cl.data.length === 0 && !cl.closed && !cl.ended) return 'no response and no close within 2.5 s (the route timeout is 2 s)'
    if (/injected=1|x-upper|\0/i.test(cl.text().split('\r\n\r\n')[0]!)) return `a malformed upstream field reached the client: ${JSON.stringify(cl.text().slice(0, 200))}`
    if (c.up.violations.length > 0) return c.up.violations.splice(0).join('; ')
    // the fake upstream ended its side: the proxy closes its connection to it (no half-open socket
    // left behind; a cancelled stream stuck on a session going away: within STUCK_CANCEL_MS), so
    // the next input meets a fresh session
    const end = Date.now() + 2000
    while (c.fuzzUp.sockets.size > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 2))
    if (c.fuzzUp.sockets.size > 0) return `${c.fuzzUp.sockets.size} upstream connection(s) still open 2 s after the client's answer (the upstream sent FIN)`
    const status = /^HTTP\/1\.1 (\d{3})/.exec(cl.text())?.[1] ?? (cl.data.length === 0 ? 'closed' : 'other')
    c.answers.set(status, (c.answers.get(status) ?? 0) + 1)
    return null
  },
  async probe(c) {
    return childGone(c) ?? (await probeHttp(`http://127.0.0.1:${c.port}/probe`)) ?? (await childRssCheck(c))
  },
}

/** The child's RSS after the batch, against 3x its level after start (a leak per input passes it). */
async function childRssCheck(c: ChildCtx & { rss0?: number }): Promise<string | null> {
  const pid = c.child.child.pid
  if (pid === undefined) return null
  let rss = 0
  try { rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024 } catch { return null }
  if (c.rss0 === undefined) { c.rss0 = rss; return null }
  return rss > c.rss0 * 3 && rss - c.rss0 > 200e6 ? `sidecar RSS grew from ${(c.rss0 / 1e6).toFixed(0)} to ${(rss / 1e6).toFixed(0)} MB` : null
}

export const TARGETS: Target<any>[] = [http1Head, http1Chunked, detect, http1Requests, http1UpstreamResponses, admin, tcpTunnel, h2Server, h2Client, xdsDecoder, admissionWebhook]

/** Readers of peer bytes without a target yet. */
export const PLANNED: string[] = []
