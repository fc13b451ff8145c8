// Trace context: B3 (single and multi) and W3C extraction, injection round trips, sampling
// decisions (caller's, debug, rate) and the span a finished request turns into.
import t from 'tap'
import {
  extractContext,
  randomId128,
  randomId64,
  RETRY_ANNOTATION,
  TRACE_HEADER_NAMES,
  Tracer,
  type RequestTrace,
  type SpanKind,
  type ZipkinSpan,
} from '../proxy/telemetry/tracing/index.ts'
import type { FormatName } from '../proxy/telemetry/tracing/inject.ts'
import type { RequestRecord } from '../proxy/telemetry/types.ts'

const TRACE128 = '463ac35c9f6413ad48485a3953bb6124'
const TRACE64 = '48485a3953bb6124'
const SPAN = 'a2fb4a1d1a96d312'
const PARENT = '0020000000000001'

/** mulberry32: small seeded PRNG in [0,1). */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** header pairs -> lower-cased names[] / values[] as the codec produces them */
function fields(...pairs: [string, string][]): [string[], string[]] {
  return [pairs.map((p) => p[0].toLowerCase()), pairs.map((p) => p[1])]
}

function extract(...pairs: [string, string][]) {
  const [n, v] = fields(...pairs)
  return extractContext(n, v)
}

/** "name: value\r\n" lines -> names[] / values[] */
function parseBlock(block: string): [string[], string[]] {
  if (!block.endsWith('\r\n')) throw new Error('header block must end with CRLF')
  const lines = block.split('\r\n').slice(0, -1)
  const names: string[] = []
  const values: string[] = []
  for (const l of lines) {
    const c = l.indexOf(': ')
    names.push(l.slice(0, c))
    values.push(l.slice(c + 2))
  }
  return [names, values]
}

function header(block: string, name: string): string | undefined {
  const [n, v] = parseBlock(block)
  const i = n.indexOf(name)
  return i === -1 ? undefined : v[i]
}

interface Collected {
  spans: ZipkinSpan[]
  tracer: Tracer
}

function tracer(sampling: number, random?: () => number, propagation?: FormatName[]): Collected {
  const spans: ZipkinSpan[] = []
  return {
    spans,
    tracer: new Tracer({
      sampling,
      serviceName: 'Reviews-Sidecar',
      localEndpoint: { ipv4: '127.0.0.1', port: 15006 },
      reporter: { report: (s) => spans.push(s) },
      random,
      propagation,
    }),
  }
}

function begin(tr: Tracer, kind: SpanKind, ...pairs: [string, string][]): RequestTrace {
  const [n, v] = fields(...pairs)
  return tr.begin(n, v, kind)
}

function record(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    startTime: 1_700_000_000_123.456,
    peer: null,
    durationMs: 2.5,
    method: 'GET',
    authority: 'reviews.default.svc:9080',
    path: '/reviews/1?x=y',
    protocol: 'HTTP/1.1',
    status: 200,
    grpcStatus: '',
    flags: '',
    routeName: 'reviews-v1',
    vhostName: 'reviews',
    clusterName: 'reviews-v1',
    upstreamHost: '10.1.2.3:9080',
    bytesIn: 0,
    bytesOut: 10,
    requestId: '7d1b0e5e-1111-4222-8333-944444444444',
    traceId: '',
    downstreamAddress: '::ffff:10.9.8.7',
    ...over,
  }
}

// ---- extraction ----------------------------------------------------------------------------------

t.test('B3 multi headers', async (t) => {
  t.same(extract(['X-B3-TraceId', TRACE128], ['X-B3-SpanId', SPAN], ['X-B3-ParentSpanId', PARENT], ['X-B3-Sampled', '1']), {
    traceId: TRACE128, spanId: SPAN, parentId: PARENT, sampled: true, debug: false, tracestate: '', format: 'b3multi', formats: 2,
  })
  t.same(extract(['x-b3-traceid', TRACE64], ['x-b3-spanid', SPAN]), {
    traceId: TRACE64, spanId: SPAN, parentId: '', sampled: null, debug: false, tracestate: '', format: 'b3multi', formats: 2,
  }, '64-bit trace id, no sampling decision')
  t.equal(extract(['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', '0'])?.sampled, false)
  t.equal(extract(['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', 'true'])?.sampled, true, 'legacy true')
  t.equal(extract(['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', 'maybe'])?.sampled, null, 'bad sampled: no decision')
  const dbg = extract(['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', '0'], ['x-b3-flags', '1'])
  t.equal(dbg?.debug, true)
  t.equal(dbg?.sampled, true, 'debug implies sampled')
  t.equal(extract(['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-parentspanid', 'nothex!!nothex!!'])?.parentId, '', 'bad parent ignored')
  // sampling decision only
  t.same(extract(['x-b3-sampled', '0']), { traceId: '', spanId: '', parentId: '', sampled: false, debug: false, tracestate: '', format: 'b3multi', formats: 2 })
  t.same(extract(['x-b3-flags', '1']), { traceId: '', spanId: '', parentId: '', sampled: true, debug: true, tracestate: '', format: 'b3multi', formats: 2 })
  t.equal(extract(['x-b3-flags', '0']), null)
  // zero-padded 128-bit id is the 64-bit one (as Zipkin normalizes)
  t.equal(extract(['x-b3-traceid', '0000000000000000' + TRACE64], ['x-b3-spanid', SPAN])?.traceId, TRACE64)
})

t.test('B3 single header', async (t) => {
  t.same(extract(['b3', `${TRACE128}-${SPAN}-1-${PARENT}`]), {
    traceId: TRACE128, spanId: SPAN, parentId: PARENT, sampled: true, debug: false, tracestate: '', format: 'b3', formats: 1,
  })
  t.same(extract(['b3', `${TRACE64}-${SPAN}`]), {
    traceId: TRACE64, spanId: SPAN, parentId: '', sampled: null, debug: false, tracestate: '', format: 'b3', formats: 1,
  })
  t.equal(extract(['b3', `${TRACE128}-${SPAN}-0`])?.sampled, false)
  const d = extract(['b3', `${TRACE128}-${SPAN}-d`])
  t.equal(d?.debug, true)
  t.equal(d?.sampled, true)
  t.equal(extract(['b3', `${TRACE128}-${SPAN}-${PARENT}`])?.parentId, PARENT, 'parent without sampling state')
  t.same(extract(['b3', '0']), { traceId: '', spanId: '', parentId: '', sampled: false, debug: false, tracestate: '', format: 'b3', formats: 1 })
  t.same(extract(['b3', '1'])?.sampled, true)
  t.same(extract(['b3', 'd'])?.debug, true)
})

t.test('W3C traceparent and tracestate', async (t) => {
  const tp = `00-${TRACE128}-${SPAN}-01`
  t.same(extract(['traceparent', tp], ['tracestate', 'rojo=00f067aa0ba902b7'], ['tracestate', 'congo=t61rcWkgMzE']), {
    traceId: TRACE128, spanId: SPAN, parentId: '', sampled: true, debug: false, tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE', format: 'w3c', formats: 4,
  })
  t.equal(extract(['traceparent', `00-${TRACE128}-${SPAN}-00`])?.sampled, false, 'flags 00: not sampled')
  t.equal(extract(['traceparent', `00-${TRACE128}-${SPAN}-03`])?.sampled, true, 'other flag bits ignored')
  t.equal(extract(['traceparent', `01-${TRACE128}-${SPAN}-01-future`])?.traceId, TRACE128, 'a later version may append fields')
  t.equal(extract(['traceparent', `00-0000000000000000${TRACE64}-${SPAN}-01`])?.traceId, TRACE64, 'zero high bits: 64-bit id')
  t.equal(extract(['tracestate', 'a=b']), null, 'tracestate alone is no context')
})

t.test('precedence: b3, then x-b3-*, then traceparent', async (t) => {
  const other = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
  const all: [string, string][] = [
    ['traceparent', `00-${other}-${SPAN}-01`],
    ['x-b3-traceid', TRACE64],
    ['x-b3-spanid', SPAN],
    ['b3', `${TRACE128}-${SPAN}-1`],
  ]
  t.equal(extract(...all)?.format, 'b3')
  t.equal(extract(...all.slice(0, 3))?.format, 'b3multi')
  t.equal(extract(...all.slice(0, 1))?.format, 'w3c')
  // an invalid format falls through to the next
  t.equal(extract(['b3', 'garbage'], ['x-b3-traceid', TRACE64], ['x-b3-spanid', SPAN])?.format, 'b3multi')
  t.equal(extract(['x-b3-traceid', 'xyz'], ['x-b3-spanid', SPAN], ['traceparent', `00-${other}-${SPAN}-01`])?.traceId, other)
  // tracestate follows its traceparent's trace only
  const ts: [string, string] = ['tracestate', 'rojo=1']
  t.equal(extract(['b3', `${TRACE128}-${SPAN}-1`], ['traceparent', `00-${TRACE128}-${PARENT}-01`], ts)?.tracestate, 'rojo=1', 'same trace: kept')
  t.equal(extract(['b3', `${TRACE128}-${SPAN}-1`], ['traceparent', `00-${other}-${PARENT}-01`], ts)?.tracestate, '', 'other trace: dropped')
  t.equal(extract(['b3', `${TRACE128}-${SPAN}-1`], ts)?.tracestate, '', 'no traceparent: dropped')
})

t.test('invalid headers are treated as absent', async (t) => {
  const bad: [string, string][][] = [
    [['x-b3-traceid', TRACE128.toUpperCase()], ['x-b3-spanid', SPAN]], // upper-case hex
    [['x-b3-traceid', TRACE128.slice(1)], ['x-b3-spanid', SPAN]], // 31 chars
    [['x-b3-traceid', TRACE128 + 'a'], ['x-b3-spanid', SPAN]],
    [['x-b3-traceid', '0'.repeat(32)], ['x-b3-spanid', SPAN]], // zero trace id
    [['x-b3-traceid', TRACE128], ['x-b3-spanid', '0'.repeat(16)]], // zero span id
    [['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN.slice(2)]],
    [['x-b3-traceid', TRACE128]], // no span id
    [['x-b3-spanid', SPAN]], // no trace id
    [['x-b3-traceid', 'g'.repeat(32)], ['x-b3-spanid', SPAN]],
    [['b3', `${TRACE128}-${SPAN}-x`]],
    [['b3', `${TRACE128}-${SPAN}-1-${PARENT}-more`]],
    [['b3', `${TRACE128}${SPAN}`]],
    [['b3', `${TRACE128}-${SPAN.slice(1)}`]],
    [['b3', '2']],
    [['b3', '']],
    [['traceparent', `ff-${TRACE128}-${SPAN}-01`]], // version ff
    [['traceparent', `00-${TRACE128}-${SPAN}-01-extra`]], // 00 has no more fields
    [['traceparent', `00-${TRACE64}-${SPAN}-01`]], // 64-bit in W3C
    [['traceparent', `00-${'0'.repeat(32)}-${SPAN}-01`]],
    [['traceparent', `00-${TRACE128}-${'0'.repeat(16)}-01`]],
    [['traceparent', `00-${TRACE128.toUpperCase()}-${SPAN}-01`]],
    [['traceparent', `00-${TRACE128}-${SPAN}-0g`]],
    [['traceparent', `00_${TRACE128}_${SPAN}_01`]],
    [['traceparent', `01-${TRACE128}-${SPAN}-01x`]],
  ]
  for (const b of bad) t.equal(extract(...b), null, JSON.stringify(b))
  t.equal(extract(['host', 'a'], ['x-b3-other', '1'], ['x-b', 'c'], ['b', 'd'], ['t', 'u']), null, 'unrelated names')
  t.equal(extract(), null, 'no headers')
})

t.test('TRACE_HEADER_NAMES', async (t) => {
  t.same([...TRACE_HEADER_NAMES].sort(), ['b3', 'traceparent', 'tracestate', 'x-b3-flags', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid'])
})

t.test('ids', async (t) => {
  const seen = new Set<string>()
  const bad: string[] = []
  for (let i = 0; i < 3000; i++) {
    const a = randomId64()
    const b = randomId128()
    if (!/^[0-9a-f]{16}$/.test(a) || a === '0'.repeat(16)) bad.push(a)
    if (!/^[0-9a-f]{32}$/.test(b) || b.startsWith('0'.repeat(16))) bad.push(b)
    seen.add(a)
    seen.add(b)
  }
  t.same(bad, [], '16 / 32 lower-case hex, never zero (high half of a trace id)')
  t.equal(seen.size, 6000, 'no repeats across pool refills')
})

// ---- begin / inject ------------------------------------------------------------------------------

t.test('round trip: incoming B3 multi -> outgoing headers', async (t) => {
  const { tracer: tr } = tracer(0)
  const trace = begin(tr, 'SERVER', ['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-parentspanid', PARENT], ['x-b3-sampled', '1'])
  t.equal(trace.traceId, TRACE128)
  t.equal(trace.parentId, SPAN, "our span's parent is the caller's span")
  t.not(trace.spanId, SPAN)
  t.match(trace.spanId, /^[0-9a-f]{16}$/)
  t.equal(trace.sampled, true, "caller's sampled=1 honoured at rate 0")
  const block = trace.headerBlock
  t.equal(block, trace.headerBlock, 'stable')
  t.equal(
    block,
    `x-b3-traceid: ${TRACE128}\r\nx-b3-spanid: ${trace.spanId}\r\nx-b3-parentspanid: ${SPAN}\r\nx-b3-sampled: 1\r\n`,
    'B3 multi in, B3 multi out',
  )
  // the next hop reads what we sent: same trace, our span as its parent
  const [n, v] = parseBlock(block)
  const next = extractContext(n, v)
  t.same(next, { traceId: TRACE128, spanId: trace.spanId, parentId: SPAN, sampled: true, debug: false, tracestate: '', format: 'b3multi', formats: 2 })
  for (const name of n) t.ok(TRACE_HEADER_NAMES.has(name), `${name} is one the proxy drops from the request`)
  // a caller that sent two formats gets both back, with the same ids
  const both = begin(tr, 'SERVER', ['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1'], ['traceparent', `00-${TRACE128}-${SPAN}-01`])
  const w3c = extractContext(['traceparent'], [header(both.headerBlock, 'traceparent')!])
  t.equal(w3c?.traceId, TRACE128)
  t.equal(w3c?.spanId, both.spanId)
  t.equal(w3c?.sampled, true)
  t.equal(header(both.headerBlock, 'x-b3-spanid'), both.spanId)
})

t.test('round trip: B3 single in, B3 single out; W3C in, W3C out', async (t) => {
  const { tracer: tr } = tracer(100)
  const a = begin(tr, 'CLIENT', ['b3', `${TRACE64}-${SPAN}-0`])
  t.equal(a.traceId, TRACE64)
  t.equal(a.sampled, false, "caller's sampled=0 honoured at rate 100")
  t.equal(a.headerBlock, `b3: ${TRACE64}-${a.spanId}-0-${SPAN}\r\n`, 'our span id, the decision, the caller as parent')

  const b = begin(tr, 'SERVER', ['traceparent', `00-${TRACE128}-${SPAN}-00`], ['tracestate', 'rojo=00f067aa0ba902b7'])
  t.equal(b.traceId, TRACE128)
  t.equal(b.parentId, SPAN)
  t.equal(b.sampled, false, 'W3C flags 00 honoured')
  t.equal(b.headerBlock, `traceparent: 00-${TRACE128}-${b.spanId}-00\r\ntracestate: rojo=00f067aa0ba902b7\r\n`, 'tracestate passed through')

  // a 64-bit trace (from B3) asked to go on in W3C too is padded there
  const { tracer: w } = tracer(100, undefined, ['w3c'])
  const c = begin(w, 'CLIENT', ['x-b3-traceid', TRACE64], ['x-b3-spanid', SPAN], ['traceparent', 'garbage'])
  t.equal(header(c.headerBlock, 'traceparent'), `00-0000000000000000${TRACE64}-${c.spanId}-01`, '64-bit id padded for W3C')
  const back = extractContext(['traceparent'], [header(c.headerBlock, 'traceparent')!])
  t.equal(back?.traceId, TRACE64, 'and read back as the same 64-bit trace')
})

const FORMATS: FormatName[][] = [['b3multi'], ['b3'], ['w3c'], ['b3multi', 'b3'], ['b3multi', 'w3c'], ['b3', 'w3c'], ['b3multi', 'b3', 'w3c']]

/** the caller's context in the given formats (W3C carries no decision without ids) */
function contextHeaders(formats: FormatName[], traceId: string, withIds: boolean, sampledIn: '1' | '0' | '', debug: boolean): [string, string][] {
  const h: [string, string][] = []
  for (const f of formats) {
    if (f === 'b3multi') {
      if (withIds) h.push(['x-b3-traceid', traceId], ['x-b3-spanid', SPAN])
      if (sampledIn !== '') h.push(['x-b3-sampled', sampledIn])
      if (debug) h.push(['x-b3-flags', '1'])
    } else if (f === 'b3') {
      const state = debug ? 'd' : sampledIn
      if (withIds) h.push(['b3', `${traceId}-${SPAN}${state === '' ? '' : '-' + state}`])
      else if (state !== '') h.push(['b3', state])
    } else if (withIds) {
      h.push(['traceparent', `00-${traceId.padStart(32, '0')}-${SPAN}-${sampledIn === '1' || debug ? '01' : '00'}`])
    }
  }
  return h
}

t.test('header block: every format and shape, and blocks stay independent', async (t) => {
  const made: { trace: RequestTrace; block: string; trace64: boolean; formats: FormatName[] }[] = []
  for (const formats of FORMATS) {
    const { tracer: tr } = tracer(50, seeded(3), formats)
    for (const trace64 of [false, true]) {
      for (const withIds of [false, true]) {
        for (const sampledIn of ['1', '0', ''] as const) {
          for (const debug of [false, true]) {
            const h = contextHeaders(formats, trace64 ? TRACE64 : TRACE128, withIds, sampledIn, debug)
            const trace = begin(tr, 'CLIENT', ...h)
            // out: the formats the request came with; for a request without any, `propagation`
            const came = FORMATS[6].filter((f) => h.some(([n]) => (f === 'b3multi' ? n.startsWith('x-b3-') : f === 'b3' ? n === 'b3' : n === 'traceparent')))
            made.push({ trace, block: trace.headerBlock, trace64: withIds && trace64, formats: came.length > 0 ? came : formats })
          }
        }
      }
    }
  }
  for (const { trace, block, trace64, formats } of made) {
    t.equal(trace.headerBlock, block, 'a later begin() did not change an earlier block')
    const [n, v] = parseBlock(block)
    const expect: string[] = []
    if (formats.includes('b3multi')) {
      expect.push('x-b3-traceid', 'x-b3-spanid')
      if (trace.parentId !== '') expect.push('x-b3-parentspanid')
      expect.push('x-b3-sampled')
      if (trace.debug) expect.push('x-b3-flags')
    }
    if (formats.includes('b3')) expect.push('b3')
    if (formats.includes('w3c')) expect.push('traceparent')
    t.same(n, expect, `${formats.join('+')}: the lines, in order`)
    t.equal(trace.traceId.length, trace64 ? 16 : 32)
    // each format on its own reads back as our span of the same trace
    for (const f of formats) {
      const only = n.map((name, i) => [name, v[i]] as [string, string]).filter(([name]) => (f === 'b3multi' ? name.startsWith('x-b3-') : f === 'b3' ? name === 'b3' : name === 'traceparent'))
      const ctx = extract(...only)!
      t.equal(ctx.format, f)
      t.equal(ctx.traceId, trace.traceId)
      t.equal(ctx.spanId, trace.spanId)
      t.equal(ctx.parentId, f === 'w3c' ? '' : trace.parentId)
      t.equal(ctx.sampled, trace.sampled)
      t.equal(ctx.debug, f === 'w3c' ? false : trace.debug)
    }
  }
  t.equal(new Set(made.map((m) => m.trace.spanId)).size, made.length, 'a new span id each time')
})

t.test('propagation: an unknown format is refused', async (t) => {
  t.throws(() => tracer(1, undefined, ['jaeger' as FormatName]), /unknown propagation format "jaeger"/)
})

t.test('no context: a new trace', async (t) => {
  const { tracer: tr } = tracer(100)
  const a = begin(tr, 'CLIENT', ['host', 'x'], ['accept', '*/*'])
  t.match(a.traceId, /^[0-9a-f]{32}$/, '128-bit trace id')
  t.equal(a.parentId, '')
  t.equal(a.sampled, true)
  t.equal(header(a.headerBlock, 'x-b3-parentspanid'), undefined, 'root: no parent header')
  t.equal(header(a.headerBlock, 'x-b3-spanid'), a.spanId)
  t.equal(header(a.headerBlock, 'traceparent'), undefined, 'B3 multi only by default, as Envoy')
  const b = begin(tr, 'CLIENT')
  t.not(b.traceId, a.traceId)
  t.equal(begin(tracer(0).tracer, 'CLIENT').sampled, false, 'rate 0: not sampled')
  // a sampling decision without ids starts a trace with that decision
  const s0 = begin(tr, 'SERVER', ['b3', '0'])
  t.equal(s0.sampled, false)
  t.match(s0.traceId, /^[0-9a-f]{32}$/)
  t.equal(begin(tracer(0).tracer, 'SERVER', ['x-b3-sampled', '1']).sampled, true)
})

t.test('debug requests are always sampled and propagated', async (t) => {
  const { tracer: tr, spans } = tracer(0)
  const a = begin(tr, 'SERVER', ['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', '0'], ['x-b3-flags', '1'])
  t.equal(a.sampled, true)
  t.equal(a.debug, true)
  t.equal(header(a.headerBlock, 'x-b3-flags'), '1')
  t.equal(header(a.headerBlock, 'x-b3-sampled'), '1')
  const b = begin(tr, 'SERVER', ['x-b3-flags', '1'])
  t.equal(b.sampled, true, 'debug without ids: new sampled trace')
  t.equal(header(b.headerBlock, 'x-b3-flags'), '1')
  const c = begin(tr, 'SERVER', ['b3', `${TRACE128}-${SPAN}-d`])
  t.equal(c.debug, true)
  a.finish(record())
  t.equal(spans.length, 1)
  t.equal(spans[0].debug, true, 'span marked debug')
})

t.test('a decision left to us is made at our rate', async (t) => {
  t.equal(begin(tracer(100).tracer, 'SERVER', ['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN]).sampled, true)
  t.equal(begin(tracer(0).tracer, 'SERVER', ['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN]).sampled, false)
})

t.test('rate sampling: threshold and statistical bounds', async (t) => {
  // exact threshold: sampled iff random() < percent / 100
  t.equal(tracer(1, () => 0.0099).tracer.begin([], [], 'CLIENT').sampled, true)
  t.equal(tracer(1, () => 0.01).tracer.begin([], [], 'CLIENT').sampled, false)
  t.equal(tracer(100, () => 0.999999).tracer.begin([], [], 'CLIENT').sampled, true)
  t.equal(tracer(0, () => 0).tracer.begin([], [], 'CLIENT').sampled, false)
  t.throws(() => tracer(101), RangeError)
  t.throws(() => tracer(-1), RangeError)
  t.throws(() => tracer(NaN), RangeError)
  t.equal(new Tracer({ serviceName: 'x', reporter: { report() {} } }).sampling, 1, 'default 1%')
  const N = 100_000
  for (const [pct, seed] of [[1, 7], [10, 11], [50, 13], [0.1, 17]] as const) {
    const { tracer: tr } = tracer(pct, seeded(seed))
    let n = 0
    for (let i = 0; i < N; i++) if (tr.begin([], [], 'CLIENT').sampled) n++
    const p = pct / 100
    const mean = N * p
    const sd = Math.sqrt(N * p * (1 - p))
    t.ok(Math.abs(n - mean) < 5 * sd, `${pct}%: ${n} of ${N} sampled (expected ${mean} ± ${Math.round(5 * sd)})`)
  }
  // the caller's decision never consults the random source
  let calls = 0
  const { tracer: tr } = tracer(50, () => (calls++, 0))
  begin(tr, 'SERVER', ['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', '0'])
  begin(tr, 'SERVER', ['b3', '1'])
  t.equal(calls, 0)
})

// ---- finish --------------------------------------------------------------------------------------

t.test('finish: unsampled reports nothing; sampled reports one span once', async (t) => {
  const { tracer: tr, spans } = tracer(0)
  const a = tr.begin([], [], 'SERVER')
  a.finish(record())
  t.equal(spans.length, 0)
  const b = begin(tr, 'SERVER', ['x-b3-traceid', TRACE128], ['x-b3-spanid', SPAN], ['x-b3-sampled', '1'])
  b.finish(record())
  b.finish(record())
  t.equal(spans.length, 1, 'once')
  const s = spans[0]
  t.same(s, {
    traceId: TRACE128,
    parentId: SPAN,
    id: b.spanId,
    name: 'get reviews-v1',
    kind: 'SERVER',
    timestamp: 1_700_000_000_123_456,
    duration: 2500,
    localEndpoint: { serviceName: 'reviews-sidecar', ipv4: '127.0.0.1', port: 15006 },
    remoteEndpoint: { ipv4: '10.9.8.7' },
    annotations: [],
    tags: {
      'http.method': 'GET',
      'http.path': '/reviews/1',
      'http.host': 'reviews.default.svc:9080',
      'http.status_code': '200',
      'weft.route': 'reviews-v1',
      'weft.cluster': 'reviews-v1',
      'weft.upstream': '10.1.2.3:9080',
      'guid:x-request-id': '7d1b0e5e-1111-4222-8333-944444444444',
    },
    debug: false,
    shared: false,
  })
  t.notOk('error' in s.tags)
})

t.test('finish: client span, remote endpoint, errors, annotations', async (t) => {
  const { tracer: tr, spans } = tracer(100)
  const finish = (rec: Partial<RequestRecord>, kind: SpanKind = 'CLIENT', info?: Parameters<RequestTrace['finish']>[1]) => {
    const tc = tr.begin([], [], kind)
    tc.finish(record(rec), info)
    return spans[spans.length - 1]
  }
  const c = finish({})
  t.equal(c.kind, 'CLIENT')
  t.equal(c.parentId, undefined, 'root span')
  t.same(c.remoteEndpoint, { serviceName: 'reviews-v1', ipv4: '10.1.2.3', port: 9080 }, 'the upstream')
  t.same(finish({ upstreamHost: '::1:8080' }).remoteEndpoint, { serviceName: 'reviews-v1', ipv6: '::1', port: 8080 })
  t.same(finish({}, 'CLIENT', { remoteAddress: '192.168.1.1', remotePort: 1234 }).remoteEndpoint, { ipv4: '192.168.1.1', port: 1234 })
  t.same(finish({ upstreamHost: '', clusterName: '' }).remoteEndpoint, undefined)
  t.same(finish({ downstreamAddress: '2001:db8::1' }, 'SERVER').remoteEndpoint, { ipv6: '2001:db8::1' })

  t.equal(finish({ status: 503, flags: 'UF' }).tags.error, 'UF')
  t.equal(finish({ status: 503, flags: 'UF' }).tags['weft.response_flags'], 'UF')
  t.equal(finish({ status: 500 }).tags.error, '500')
  t.equal(finish({ status: 404, flags: 'NR', routeName: '' }).tags.error, 'NR')
  t.equal(finish({ status: 404, flags: 'NR', routeName: '' }).name, 'get /reviews/1', 'no route: the path')
  t.notOk('error' in finish({ status: 404 }).tags, '404 relayed: no error')
  t.notOk('error' in finish({ status: 200, flags: 'DR' }).tags, 'direct response: no error')
  const dc = finish({ status: 0, flags: 'DC' })
  t.equal(dc.tags.error, 'DC')
  t.notOk('http.status_code' in dc.tags)
  t.equal(finish({ status: 0 }).tags.error, 'DC')
  t.equal(finish({ durationMs: 0 }).duration, 1, 'duration at least 1 µs')
  t.equal(finish({ method: 'POST', routeName: 'Ratings' }).name, 'post ratings', 'lower-case name')
  t.notOk('guid:x-request-id' in finish({ requestId: '' }).tags)

  const ann = finish({}, 'CLIENT', { annotations: [{ timestamp: 1_700_000_000_124_000.25, value: RETRY_ANNOTATION }] }).annotations
  t.same(ann, [{ timestamp: 1_700_000_000_124_000, value: 'weft.retry' }])
})

t.test('finish: a throwing reporter does not reach the request', async (t) => {
  const tr = new Tracer({ sampling: 100, serviceName: 's', reporter: { report() { throw new Error('boom') } } })
  const trace = tr.begin([], [], 'SERVER')
  t.doesNotThrow(() => trace.finish(record()))
  const bare = new Tracer({ sampling: 100, serviceName: '', reporter: { report() {} } })
  t.same(bare.localEndpoint, {}, 'empty local endpoint')
})
