// Tracing through two sidecars: client -> sidecar A (outbound listener) -> sidecar B (inbound
// listener) -> app, with a Zipkin v2 collector on 127.0.0.1. One trace id end to end, A's CLIENT
// span is the parent of B's SERVER span, the app sees B's span id in x-b3-* and traceparent, and
// both spans reach the collector. Needs the tracer wired into the exchange and the config
// compiler (telemetry.tracing: outbound listener -> CLIENT span, inbound -> SERVER span).
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { Pool } from 'undici'
import type { Bootstrap } from '../api/schema.ts'
import type { ZipkinSpan } from '../proxy/telemetry/tracing/index.ts'
import { cluster, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream, type HttpUpstream, type RecordedRequest } from './helpers/upstream.ts'

const CLIENT_TRACE = '463ac35c9f6413ad48485a3953bb6124'
const CLIENT_SPAN = 'a2fb4a1d1a96d312'

interface Collector {
  url: string
  spans: ZipkinSpan[]
  posts: number
}

async function startCollector(t: Test): Promise<Collector> {
  const c: Collector = { url: '', spans: [], posts: 0 }
  const server = createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (b: Buffer) => parts.push(b))
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/api/v2/spans') {
        c.posts++
        c.spans.push(...(JSON.parse(Buffer.concat(parts).toString('utf8')) as ZipkinSpan[]))
        res.writeHead(202).end()
      } else {
        res.writeHead(404).end()
      }
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  c.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2/spans`
  t.teardown(
    () =>
      new Promise<void>((r) => {
        server.close(() => r())
        server.closeAllConnections()
      }),
  )
  return c
}

function sidecarConfig(direction: 'inbound' | 'outbound', serviceName: string, zipkinUrl: string, upstreamPort: number, clusterName: string): Bootstrap {
  return {
    node: { id: `${serviceName}-1.shop`, workload: serviceName, namespace: 'shop' },
    admin: { address: '127.0.0.1', port: 0 },
    telemetry: { tracing: { enabled: true, zipkinUrl, sampling: 100, batchInterval: '50ms', serviceName } },
    listeners: [{ name: direction, direction, address: '127.0.0.1', port: 0, routeTable: 'rt' }],
    routeTables: [
      { name: 'rt', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ name: `to-${clusterName}`, backends: [{ cluster: clusterName }] }] }] },
    ],
    clusters: [cluster(clusterName, [upstreamPort])],
  }
}

interface Mesh {
  collector: Collector
  app: HttpUpstream
  /** GET through sidecar A with the given headers; the request the app received */
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; seen: RecordedRequest }>
}

async function mesh(t: Test): Promise<Mesh> {
  const collector = await startCollector(t)
  const app = await startHttpUpstream(t, { name: 'app' })
  const b = await startTestSidecar(t, sidecarConfig('inbound', 'sidecar-b', collector.url, app.port, 'app'))
  const bPort = b.sidecar.port('inbound')
  t.ok(bPort > 0, 'sidecar B inbound listening')
  const a = await startTestSidecar(t, sidecarConfig('outbound', 'sidecar-a', collector.url, bPort, 'reviews'))
  const aPort = a.sidecar.port('outbound')
  t.ok(aPort > 0, 'sidecar A outbound listening')
  const pool = new Pool(`http://127.0.0.1:${aPort}`, { connections: 1 })
  t.teardown(() => pool.destroy())
  return {
    collector,
    app,
    async get(path, headers = {}) {
      const before = app.requests.length
      const r = await pool.request({ method: 'GET', path, headers })
      await r.body.text()
      t.equal(app.requests.length, before + 1, 'the request reached the app')
      return { status: r.statusCode, seen: app.requests[before] }
    },
  }
}

/** The two spans of a trace (A's CLIENT, B's SERVER) once both reached the collector. */
async function spansOf(c: Collector, traceId: string): Promise<{ a: ZipkinSpan; b: ZipkinSpan }> {
  const both = await until(`spans of trace ${traceId} at the collector`, () => {
    const s = c.spans.filter((x) => x.traceId === traceId)
    return s.length >= 2 ? s : null
  })
  if (both === null) throw new Error('unreachable')
  const a = both.find((s) => s.kind === 'CLIENT')
  const b = both.find((s) => s.kind === 'SERVER')
  if (a === undefined || b === undefined) throw new Error(`expected a CLIENT and a SERVER span, got ${JSON.stringify(both)}`)
  return { a, b }
}

t.test('a request without context: one new trace through both sidecars', async (t) => {
  const m = await mesh(t)
  const { status, seen } = await m.get('/reviews/1?x=1')
  t.equal(status, 200)
  const traceId = seen.header('x-b3-traceid')!
  t.match(traceId, /^[0-9a-f]{32}$/, 'a 128-bit trace id')
  const appSpanId = seen.header('x-b3-spanid')!
  const appParent = seen.header('x-b3-parentspanid')!
  t.equal(seen.header('x-b3-sampled'), '1')
  t.equal(seen.header('traceparent'), undefined, 'a new trace goes on in B3 multi only (the default propagation)')
  t.equal(seen.header('b3'), undefined)
  t.same(seen.headerAll('x-b3-traceid').length, 1, 'trace headers not duplicated')

  const { a, b } = await spansOf(m.collector, traceId)
  t.equal(a.parentId, undefined, "A's span is the root")
  t.equal(b.parentId, a.id, "A's span is the parent of B's")
  t.equal(appSpanId, b.id, "the app sees B's span id")
  t.equal(appParent, a.id, "and A's as its parent")
  t.equal(a.localEndpoint?.serviceName, 'sidecar-a')
  t.equal(b.localEndpoint?.serviceName, 'sidecar-b')
  for (const s of [a, b]) {
    t.equal(s.tags['http.method'], 'GET')
    t.equal(s.tags['http.path'], '/reviews/1')
    t.equal(s.tags['http.status_code'], '200')
    t.notOk('error' in s.tags)
    t.ok(s.duration >= 1 && s.timestamp > 1_600_000_000_000_000, 'µs timestamp and duration')
  }
  t.equal(a.tags['weft.cluster'], 'reviews')
  t.equal(b.tags['weft.cluster'], 'app')
  t.equal(b.tags['weft.upstream'], `127.0.0.1:${m.app.port}`)
  t.equal(a.tags['guid:x-request-id'], b.tags['guid:x-request-id'], 'same request id on both hops')
  t.ok(b.timestamp >= a.timestamp, "B's span starts within A's")
})

t.test("the caller's B3 context is continued", async (t) => {
  const m = await mesh(t)
  const { seen } = await m.get('/ratings', { 'x-b3-traceid': CLIENT_TRACE, 'x-b3-spanid': CLIENT_SPAN, 'x-b3-sampled': '1' })
  t.equal(seen.header('x-b3-traceid'), CLIENT_TRACE)
  const { a, b } = await spansOf(m.collector, CLIENT_TRACE)
  t.equal(a.parentId, CLIENT_SPAN, "A's span is a child of the caller's")
  t.equal(b.parentId, a.id)
  t.equal(seen.header('x-b3-spanid'), b.id)
})

t.test("the caller's decision not to sample is honoured end to end", async (t) => {
  const m = await mesh(t)
  const unsampled = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
  const { seen } = await m.get('/quiet', { traceparent: `00-${unsampled}-${CLIENT_SPAN}-00` })
  t.match(seen.header('traceparent'), new RegExp(`^00-${unsampled}-[0-9a-f]{16}-00$`), 'the trace id still propagates, unsampled')
  t.equal(seen.header('x-b3-traceid'), undefined, 'in the format the caller used')
  // a sampled request afterwards: once its spans are in, the unsampled one would have been too
  const { seen: loud } = await m.get('/loud')
  await spansOf(m.collector, loud.header('x-b3-traceid')!)
  t.equal(m.collector.spans.filter((s) => s.traceId === unsampled).length, 0, 'no spans for the unsampled trace')
})

t.test('W3C traceparent and tracestate in, W3C out', async (t) => {
  const m = await mesh(t)
  const { seen } = await m.get('/w3c', { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'rojo=00f067aa0ba902b7' })
  const { a, b } = await spansOf(m.collector, CLIENT_TRACE)
  t.equal(a.parentId, CLIENT_SPAN)
  t.equal(b.parentId, a.id)
  t.equal(seen.header('traceparent'), `00-${CLIENT_TRACE}-${b.id}-01`)
  t.equal(seen.header('tracestate'), 'rojo=00f067aa0ba902b7', 'tracestate passed through both hops')
  t.equal(seen.header('x-b3-spanid'), undefined, 'no B3 headers added to a W3C trace')
})

t.test('B3 single in, B3 single out', async (t) => {
  const m = await mesh(t)
  const { seen } = await m.get('/b3', { b3: `${CLIENT_TRACE}-${CLIENT_SPAN}-1` })
  const { a, b } = await spansOf(m.collector, CLIENT_TRACE)
  t.equal(a.parentId, CLIENT_SPAN)
  t.equal(b.parentId, a.id)
  t.equal(seen.header('b3'), `${CLIENT_TRACE}-${b.id}-1-${a.id}`, "B's span, sampled, A's span as parent")
  t.equal(seen.header('x-b3-traceid'), undefined)
  t.equal(seen.header('traceparent'), undefined)
})

t.test('propagation: the formats a new trace goes on in', async (t) => {
  const collector = await startCollector(t)
  const app = await startHttpUpstream(t, { name: 'app' })
  const cfg = sidecarConfig('outbound', 'sidecar-a', collector.url, app.port, 'app')
  cfg.telemetry!.tracing!.propagation = ['w3c', 'b3']
  const a = await startTestSidecar(t, cfg)
  const pool = new Pool(`http://127.0.0.1:${a.sidecar.port('outbound')}`, { connections: 1 })
  t.teardown(() => pool.destroy())
  const r = await pool.request({ method: 'GET', path: '/new' })
  await r.body.text()
  const seen = app.requests.at(-1)!
  const [, traceId, spanId, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/.exec(seen.header('traceparent') ?? '') ?? []
  t.ok(traceId !== undefined, 'traceparent sent')
  t.equal(flags, '01', 'sampled at 100 %')
  t.equal(seen.header('b3'), `${traceId}-${spanId}-1`, 'b3 carries the same ids')
  t.equal(seen.header('x-b3-traceid'), undefined, 'B3 multi not asked for')
})

t.test('debug requests are traced and flagged', async (t) => {
  const m = await mesh(t)
  const { seen } = await m.get('/debug', { 'x-b3-traceid': CLIENT_TRACE, 'x-b3-spanid': CLIENT_SPAN, 'x-b3-flags': '1' })
  t.equal(seen.header('x-b3-flags'), '1')
  const { a, b } = await spansOf(m.collector, CLIENT_TRACE)
  t.equal(a.debug, true)
  t.equal(b.debug, true)
})
