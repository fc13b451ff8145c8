// The Zipkin reporter against a real HTTP collector on 127.0.0.1: batches of JSON v2 spans on
// POST /api/v2/spans that validate against the official Zipkin v2 API definitions; a collector
// that is down, failing or hanging never reaches the caller, and every lost span is counted.
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isIPv4, isIPv6 } from 'node:net'
import { Ajv, type ValidateFunction } from 'ajv'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { RETRY_ANNOTATION, Tracer, ZipkinReporter, type SpanKind, type ZipkinSpan } from '../proxy/telemetry/tracing/index.ts'
import type { RequestRecord } from '../proxy/telemetry/types.ts'
import { until, type Teardown } from './helpers/sidecar.ts'

// the Zipkin v2 API spec (Apache-2.0, OpenZipkin; see test/fixtures/NOTICE)
const SPEC_FILE = new URL('./fixtures/zipkin2-api.yaml', import.meta.url)

// ---- the Zipkin v2 schema ------------------------------------------------------------------------

function loadSchemas(): { span: ValidateFunction; list: ValidateFunction } {
  const doc = parseYaml(readFileSync(SPEC_FILE, 'utf8')) as { definitions: Record<string, unknown> }
  const ajv = new Ajv({ allErrors: true, strict: true })
  ajv.addKeyword('example') // OpenAPI 2 annotation, not validation
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) })
  ajv.addFormat('ipv4', (s: string) => isIPv4(s))
  ajv.addFormat('ipv6', (s: string) => isIPv6(s))
  // One root holding the definitions, so "#/definitions/..." refs resolve inside it.
  ajv.addSchema({ $id: 'zipkin2', definitions: doc.definitions })
  return {
    span: ajv.getSchema('zipkin2#/definitions/Span')!,
    list: ajv.getSchema('zipkin2#/definitions/ListOfSpans')!,
  }
}

const schemas = loadSchemas()

// ---- a collector ---------------------------------------------------------------------------------

interface Post {
  method: string
  url: string
  contentType: string
  body: unknown
}

interface Collector {
  url: string
  posts: Post[]
  /** every span received, in order */
  spans(): ZipkinSpan[]
  /** requests received so far, answered or not */
  received: number
  close(): Promise<void>
}

async function startCollector(t: Teardown, answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(202).end()): Promise<Collector> {
  const posts: Post[] = []
  let received = 0
  const server = createServer((req, res) => {
    received++
    const parts: Buffer[] = []
    req.on('data', (b: Buffer) => parts.push(b))
    req.on('end', () => {
      const text = Buffer.concat(parts).toString('utf8')
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // recorded as text
      }
      posts.push({ method: req.method ?? '', url: req.url ?? '', contentType: String(req.headers['content-type'] ?? ''), body })
      answer(req, res)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as AddressInfo).port
  let closed = false
  const c: Collector = {
    url: `http://127.0.0.1:${port}/api/v2/spans`,
    posts,
    spans: () => posts.flatMap((p) => (Array.isArray(p.body) ? (p.body as ZipkinSpan[]) : [])),
    get received() {
      return received
    },
    close() {
      if (closed) return Promise.resolve()
      closed = true
      return new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      })
    },
  }
  t.teardown(() => c.close())
  return c
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

function reporter(t: Teardown, o: ConstructorParameters<typeof ZipkinReporter>[0]): ZipkinReporter {
  const r = new ZipkinReporter(o)
  t.teardown(() => r.close())
  return r
}

// ---- spans ---------------------------------------------------------------------------------------

function record(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    startTime: Date.now() - 3.25,
    peer: null,
    durationMs: 3.25,
    method: 'GET',
    authority: 'reviews:9080',
    path: '/reviews/1?x=y',
    protocol: 'HTTP/1.1',
    status: 200,
    grpcStatus: '',
    flags: '',
    routeName: 'reviews',
    vhostName: 'reviews',
    clusterName: 'reviews-v1',
    upstreamHost: '127.0.0.1:9080',
    bytesIn: 0,
    bytesOut: 10,
    requestId: '7d1b0e5e-1111-4222-8333-944444444444',
    traceId: '',
    downstreamAddress: '127.0.0.1',
    ...over,
  }
}

/** Spans of many shapes, made by the tracer and reported to `r`. */
function reportVariety(r: ZipkinReporter): ZipkinSpan[] {
  const made: ZipkinSpan[] = []
  const tr = new Tracer({
    sampling: 100,
    serviceName: 'Productpage',
    localEndpoint: { ipv4: '127.0.0.1', port: 15001 },
    reporter: { report: (s) => (made.push(s), r.report(s)) },
  })
  const go = (kind: SpanKind, h: [string, string][], rec: Partial<RequestRecord>, info?: Parameters<ReturnType<Tracer['begin']>['finish']>[1]) => {
    tr.begin(h.map((x) => x[0]), h.map((x) => x[1]), kind).finish(record(rec), info)
  }
  go('SERVER', [], {})
  go('CLIENT', [], {})
  go('SERVER', [['x-b3-traceid', '48485a3953bb6124'], ['x-b3-spanid', 'a2fb4a1d1a96d312'], ['x-b3-flags', '1']], {}) // 64-bit, debug
  go('CLIENT', [['b3', '463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1-0020000000000001']], { status: 503, flags: 'UF' })
  go('CLIENT', [['traceparent', '00-463ac35c9f6413ad48485a3953bb6124-00f067aa0ba902b7-01']], { status: 502, flags: 'UC' }, {
    annotations: [{ timestamp: Date.now() * 1000, value: RETRY_ANNOTATION }],
  })
  go('SERVER', [], { status: 0, flags: 'DC', downstreamAddress: '::1' })
  go('SERVER', [], { status: 404, flags: 'NR', routeName: '', clusterName: '', upstreamHost: '' })
  go('CLIENT', [], { upstreamHost: '::ffff:10.0.0.1:80', durationMs: 0 })
  go('CLIENT', [], { upstreamHost: 'reviews.default:9080', requestId: '' })
  go('SERVER', [], { method: 'POST', status: 201, downstreamAddress: '' })
  return made
}

// ---- tests ---------------------------------------------------------------------------------------

t.test('the schema itself rejects what is not a v2 span', async (t) => {
  t.notOk(schemas.span({ traceId: 'XYZ', id: '1' }), 'bad ids')
  t.notOk(schemas.span({ traceId: '463ac35c9f6413ad', id: 'a2fb4a1d1a96d312', duration: 0 }), 'duration 0')
  t.notOk(schemas.span({ traceId: '463ac35c9f6413ad', id: 'a2fb4a1d1a96d312', localEndpoint: { ipv4: 'nope' } }), 'bad ipv4')
  t.notOk(schemas.span({ traceId: '463ac35c9f6413ad', id: 'a2fb4a1d1a96d312', tags: { a: 1 } }), 'tag values are strings')
  t.ok(schemas.span({ traceId: '463ac35c9f6413ad', id: 'a2fb4a1d1a96d312' }), 'minimal span')
})

t.test('spans arrive in batches as JSON v2 and validate against the Zipkin v2 API', async (t) => {
  const col = await startCollector(t)
  const r = reporter(t, { url: col.url, batchIntervalMs: 20, maxQueue: 100 })
  const made = reportVariety(r)
  t.equal(made.length, 10)
  t.equal(r.queued, 10, 'queued, nothing sent synchronously')
  t.equal(col.received, 0)
  // the collector has them before the reporter has read its 202
  await until('10 spans at the collector, and the reporter told', () => col.spans().length === 10 && r.counters.sent === 10)
  t.equal(col.posts.length, 1, 'one POST for spans reported together')
  const post = col.posts[0]
  t.equal(post.method, 'POST')
  t.equal(post.url, '/api/v2/spans')
  t.match(post.contentType, /^application\/json/)
  t.ok(schemas.list(post.body), `ListOfSpans valid ${JSON.stringify(schemas.list.errors)}`)
  for (const s of col.spans()) t.ok(schemas.span(s), `Span valid: ${s.name} ${JSON.stringify(schemas.span.errors)}`)
  // v2, not v1: kind and endpoints, no v1 binaryAnnotations; false/empty fields left out
  const got = col.spans()
  for (const s of got) {
    t.notOk('binaryAnnotations' in s)
    t.ok(s.kind === 'CLIENT' || s.kind === 'SERVER')
    t.notOk('shared' in s, 'shared: false is not written')
  }
  t.same(got.map((s) => s.id), made.map((s) => s.id), 'the spans, in order')
  t.equal(got.filter((s) => s.debug === true).length, 1, 'debug written only when true')
  t.equal(got.filter((s) => 'annotations' in s).length, 1, 'annotations only when there are some')
  t.same(got[4].annotations?.[0].value, 'weft.retry')
  t.equal(got[2].traceId, '48485a3953bb6124', '64-bit trace id kept')
  t.equal(got[2].parentId, 'a2fb4a1d1a96d312')
  t.same(got[0].localEndpoint, { serviceName: 'productpage', ipv4: '127.0.0.1', port: 15001 })
  t.same(r.counters, { reported: 10, dropped: 0, sent: 10, failed: 0, batches: 1 })

  // a later batch is a later POST
  reportVariety(r)
  await until('second batch', () => col.posts.length === 2 && r.counters.sent === 20)
  t.ok(schemas.list(col.posts[1].body))
  t.same(r.counters, { reported: 20, dropped: 0, sent: 20, failed: 0, batches: 2 })
})

t.test('collector down: report() never throws, lost spans are counted', async (t) => {
  const port = await closedPort()
  const r = reporter(t, { url: `http://127.0.0.1:${port}/api/v2/spans`, batchIntervalMs: 10, maxQueue: 50 })
  t.doesNotThrow(() => reportVariety(r))
  await until('the batch failed', () => r.counters.failed === 1)
  t.same(r.counters, { reported: 10, dropped: 10, sent: 0, failed: 1, batches: 0 })
  t.match(r.lastError, /fetch failed|ECONNREFUSED/)
  t.doesNotThrow(() => reportVariety(r))
  await r.flush()
  t.same(r.counters, { reported: 20, dropped: 20, sent: 0, failed: 2, batches: 0 })
  t.equal(r.queued, 0)
})

t.test('collector answers an error status: the batch is dropped and counted', async (t) => {
  const col = await startCollector(t, (_req, res) => res.writeHead(500).end('no'))
  const r = reporter(t, { url: col.url, batchIntervalMs: 1000 })
  reportVariety(r)
  await r.flush()
  t.equal(col.posts.length, 1)
  t.same(r.counters, { reported: 10, dropped: 10, sent: 0, failed: 1, batches: 0 })
  t.match(r.lastError, /status:500/)
  t.ok(r.lastError.length < 400, 'error text bounded')
})

t.test('queue bound: spans beyond maxQueue are dropped at once', async (t) => {
  const col = await startCollector(t)
  const r = reporter(t, { url: col.url, batchIntervalMs: 60_000, maxQueue: 5 })
  reportVariety(r) // 10 spans
  t.equal(r.queued, 5)
  t.same(r.counters, { reported: 10, dropped: 5, sent: 0, failed: 0, batches: 0 })
  await r.flush()
  t.equal(col.spans().length, 5)
  t.same(r.counters, { reported: 10, dropped: 5, sent: 5, failed: 0, batches: 1 })
})

t.test('maxBatch splits a backlog into several POSTs', async (t) => {
  const col = await startCollector(t)
  const r = reporter(t, { url: col.url, batchIntervalMs: 60_000, maxQueue: 100, maxBatch: 4 })
  reportVariety(r)
  await r.flush()
  t.same(col.posts.map((p) => (p.body as unknown[]).length), [4, 4, 2])
  t.same(r.counters, { reported: 10, dropped: 0, sent: 10, failed: 0, batches: 3 })
})

t.test('a hanging collector: one POST at a time, timed out, queue stays bounded', async (t) => {
  const held: ServerResponse[] = []
  const col = await startCollector(t, (_req, res) => held.push(res)) // never answers
  const r = reporter(t, { url: col.url, batchIntervalMs: 10, maxQueue: 10, timeoutMs: 500 })
  reportVariety(r)
  await until('first POST received', () => col.received === 1)
  t.equal(r.inFlightSpans, 10)
  // more spans and several intervals while the POST hangs
  const t0 = performance.now()
  reportVariety(r)
  reportVariety(r) // 10 over the bound
  t.ok(performance.now() - t0 < 250, 'report() does not wait')
  // kept: a negative over six 10 ms batch intervals (the reporter's setInterval takes no clock)
  await new Promise((res) => setTimeout(res, 60))
  t.equal(col.received, 1, 'no second POST while one is under way')
  t.equal(r.queued, 10, 'bounded')
  t.equal(r.counters.dropped, 10)
  await until('the hung POST timed out', () => r.counters.failed >= 1)
  t.match(r.lastError, /abort|timeout/i)
  t.equal(r.counters.dropped, 20, 'its batch counted as dropped')
  for (const res of held) res.destroy()
})

t.test('close(): sends what is queued, later spans are dropped', async (t) => {
  const col = await startCollector(t)
  const r = new ZipkinReporter({ url: col.url, batchIntervalMs: 60_000 })
  reportVariety(r)
  await r.close()
  t.equal(col.spans().length, 10)
  reportVariety(r)
  t.same(r.counters, { reported: 20, dropped: 10, sent: 10, failed: 0, batches: 1 })
  await r.close()
})

t.test('options are checked', async (t) => {
  t.throws(() => new ZipkinReporter({ url: 'http://127.0.0.1:1/', maxQueue: 0 }), RangeError)
  t.throws(() => new ZipkinReporter({ url: 'http://127.0.0.1:1/', batchIntervalMs: 0 }), RangeError)
})
