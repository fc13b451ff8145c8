// Micro-benchmark of tracing on the request path, ns per request. Not a test.
// Run: node bench/tracing-micro.ts [--requests N]
// Every scenario does what the exchange does per request: build the upstream head (request line
// and 8 header fields, a string rope) and write it latin1 into a buffer (the flatten + copy of the
// socket write). The tracing scenarios add tracer.begin(), the caller's trace headers left out of
// the head (TRACE_HEADER_NAMES) and trace.headerBlock appended instead, and trace.finish(); "Δ" is
// the difference to the scenario without tracing, i.e. what tracing adds per request.
// Each scenario runs in its own child process (JIT feedback of one does not shape the next);
// best of 5 rounds. Sampled spans go to a sink that JSON_V2-encodes them (or drops them): the
// network send, batched and off the request, is not in these numbers.

import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import zipkin from 'zipkin'
import { TRACE_HEADER_NAMES, Tracer, type SpanReporter, type ZipkinSpan } from '../proxy/telemetry/tracing/index.ts'
import type { RequestRecord } from '../proxy/telemetry/types.ts'

const argIdx = process.argv.indexOf('--requests')
const REQUESTS = argIdx > 0 ? Number(process.argv[argIdx + 1]) : 300_000
const ROUNDS = 5

interface Scenario {
  name: string
  /** -1: no tracing at all */
  sampling: number
  headers: [string, string][]
  /** JSON_V2-encode sampled spans (else drop them) */
  encode: boolean
}

// the headers of a typical proxied request, as the codec hands them over (lower-case names)
const BASE: [string, string][] = [
  ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36'],
  ['accept', 'application/json'],
  ['accept-encoding', 'gzip, deflate'],
  ['x-request-id', '7d1b0e5e-1111-4222-8333-944444444444'],
  ['x-forwarded-proto', 'http'],
  ['content-type', 'application/json'],
  ['cookie', 'session=abc'],
]
const B3: [string, string][] = [
  ['x-b3-traceid', '463ac35c9f6413ad48485a3953bb6124'],
  ['x-b3-spanid', 'a2fb4a1d1a96d312'],
  ['x-b3-parentspanid', '0020000000000001'],
]

const SCENARIOS: Scenario[] = [
  { name: 'no tracing (upstream head build + write only)', sampling: -1, headers: BASE, encode: false },
  { name: 'unsampled, no incoming context (new trace, 0%)', sampling: 0, headers: BASE, encode: false },
  { name: 'unsampled, incoming B3 sampled=0', sampling: 100, headers: [...BASE, ...B3, ['x-b3-sampled', '0']], encode: false },
  { name: 'unsampled, incoming traceparent -00', sampling: 100, headers: [...BASE, ['traceparent', '00-463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-00']], encode: false },
  { name: 'default 1% sampling, no context, spans encoded', sampling: 1, headers: BASE, encode: true },
  { name: 'sampled, incoming B3 sampled=1, span built (dropped)', sampling: 0, headers: [...BASE, ...B3, ['x-b3-sampled', '1']], encode: false },
  { name: 'sampled, incoming B3 sampled=1, span built + JSON_V2', sampling: 0, headers: [...BASE, ...B3, ['x-b3-sampled', '1']], encode: true },
]

const REC: RequestRecord = {
  startTime: Date.now(),
  durationMs: 1.234,
  peer: null,
  method: 'GET',
  authority: 'reviews.default.svc.cluster.local:9080',
  path: '/reviews/1?foo=bar',
  protocol: 'HTTP/1.1',
  status: 200,
  grpcStatus: '',
  flags: '',
  routeName: 'reviews',
  vhostName: 'reviews',
  clusterName: 'reviews-v1',
  upstreamHost: '10.0.0.12:9080',
  bytesIn: 0,
  bytesOut: 1234,
  requestId: '7d1b0e5e-1111-4222-8333-944444444444',
  traceId: '',
  downstreamAddress: '10.0.0.7',
}

let sink = 0

const out = Buffer.allocUnsafe(16384)

/**
 * The upstream head as the exchange builds it (a rope), plus `extra` lines. With tracing, the
 * caller's trace headers are left out (the exchange skips TRACE_HEADER_NAMES: the block replaces them).
 */
function head(names: string[], values: string[], extra: string, tracing: boolean): string {
  let h = 'GET /reviews/1?foo=bar HTTP/1.1\r\nhost: reviews.default.svc.cluster.local:9080\r\n'
  for (let i = 0; i < names.length; i++) {
    if (tracing && TRACE_HEADER_NAMES.has(names[i])) continue
    h += names[i] + ': ' + values[i] + '\r\n'
  }
  return h + 'x-forwarded-for: 10.0.0.7\r\n' + extra + '\r\n'
}

function run(s: Scenario): { ns: number; sampledPct: number } {
  const names = s.headers.map((h) => h[0])
  const values = s.headers.map((h) => h[1])
  const encoder = zipkin.jsonEncoder.JSON_V2
  const reporter: SpanReporter = s.encode
    ? { report: (span: ZipkinSpan) => (sink += encoder.encode(span as unknown as zipkin.model.Span).length) }
    : { report: (span: ZipkinSpan) => (sink += span.duration) }
  const tracer = s.sampling < 0 ? null : new Tracer({ sampling: s.sampling, serviceName: 'reviews', localEndpoint: { ipv4: '10.0.0.7', port: 15006 }, reporter })
  let sampled = 0
  const loop = (count: number): void => {
    for (let i = 0; i < count; i++) {
      if (tracer === null) {
        sink += out.latin1Write(head(names, values, '', false), 0)
        continue
      }
      const tr = tracer.begin(names, values, 'SERVER')
      sink += out.latin1Write(head(names, values, tr.headerBlock, true), 0)
      if (tr.sampled) sampled++
      tr.finish(REC)
    }
  }
  loop(100_000)
  let best = Infinity
  sampled = 0
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint()
    loop(REQUESTS)
    const ns = Number(process.hrtime.bigint() - t0) / REQUESTS
    if (ns < best) best = ns
  }
  return { ns: best, sampledPct: (100 * sampled) / (REQUESTS * ROUNDS) }
}

function uuidBaseline(): number {
  let best = Infinity
  for (let r = 0; r < ROUNDS + 1; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < REQUESTS; i++) sink += randomUUID().length
    const ns = Number(process.hrtime.bigint() - t0) / REQUESTS
    if (r > 0 && ns < best) best = ns
  }
  return best
}

const child = process.argv.indexOf('--scenario')
if (child > 0) {
  const arg = process.argv[child + 1]
  const out = arg === 'uuid' ? { ns: uuidBaseline(), sampledPct: 0 } : run(SCENARIOS[Number(arg)])
  process.stdout.write(JSON.stringify({ ...out, sink: sink % 10 }) + '\n')
} else {
  const self = fileURLToPath(import.meta.url)
  console.log(`tracing micro-benchmark: ${REQUESTS} requests per round, best of ${ROUNDS}, node ${process.version}`)
  console.log('ns/request       Δ  sampled  scenario')
  const runOne = (arg: string) =>
    JSON.parse(execFileSync(process.execPath, [self, '--scenario', arg, '--requests', String(REQUESTS)], { encoding: 'utf8' })) as { ns: number; sampledPct: number }
  let base = 0
  for (let i = 0; i < SCENARIOS.length; i++) {
    const r = runOne(String(i))
    if (i === 0) base = r.ns
    const delta = i === 0 ? '' : (r.ns - base).toFixed(0)
    console.log(`${r.ns.toFixed(0).padStart(10)}  ${delta.padStart(6)}  ${r.sampledPct.toFixed(1).padStart(6)}%  ${SCENARIOS[i].name}`)
  }
  const u = runOne('uuid')
  console.log(`${u.ns.toFixed(0).padStart(10)}                   for scale: one crypto.randomUUID() (the proxy makes one per request for x-request-id)`)
}
