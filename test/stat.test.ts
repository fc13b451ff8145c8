// `weft stat`: the Prometheus text parser, histogram_quantile, computeStats on two synthetic scrapes
// of a known traffic pattern, and the command end to end against node:http servers serving
// /metrics texts in sequence.
import t from 'tap'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parsePromText, PromTextError } from '../proxy/telemetry/prom-text.ts'
import { computeStats, formatMs, formatStatTable, histogramQuantile, runStat, type StatRow } from '../cli/stat.ts'
import { cluster, makeConfig, startTestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

// The proxy's request duration buckets (ms).
const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]

/** Requests of one label set: how many, and how many fell in each bucket (keyed by upper bound). */
interface Traffic {
  labels: Record<string, string>
  count: number
  /** upper bound → observations in (previous bound, bound] */
  hist: Record<number, number>
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function labelText(l: Record<string, string>): string {
  return '{' + Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`).join(',') + '}'
}

/**
 * A /metrics text as the proxy writes it (prom-client's layout): weft_ or istio_ names, the
 * duration histogram in milliseconds or (weft_request_duration_seconds) seconds.
 */
function render(series: Traffic[], prefix = 'weft_', seconds = false): string {
  let s = `# HELP ${prefix}requests_total Requests completed.\n# TYPE ${prefix}requests_total counter\n`
  for (const x of series) s += `${prefix}requests_total${labelText(x.labels)} ${x.count}\n`
  const h = `${prefix}request_duration_${seconds ? 'seconds' : 'milliseconds'}`
  const unit = seconds ? 1000 : 1
  s += `# HELP ${h} Request duration.\n# TYPE ${h} histogram\n`
  for (const x of series) {
    let acc = 0
    let sum = 0
    for (const b of BUCKETS) {
      acc += x.hist[b] ?? 0
      sum += ((x.hist[b] ?? 0) * b) / unit
      s += `${h}_bucket${labelText({ ...x.labels, le: String(b / unit) })} ${acc}\n`
    }
    s += `${h}_bucket${labelText({ ...x.labels, le: '+Inf' })} ${x.count}\n`
    s += `${h}_sum${labelText(x.labels)} ${sum}\n${h}_count${labelText(x.labels)} ${x.count}\n`
  }
  s += '# HELP weft_config_version Version of the active config.\n# TYPE weft_config_version gauge\nweft_config_version 3\n'
  return s
}

/** before + window, series by series (same label sets). */
function plus(base: Traffic[], win: Traffic[]): Traffic[] {
  return base.map((b, i) => {
    const w = win[i]
    const hist: Record<number, number> = { ...b.hist }
    for (const [k, v] of Object.entries(w.hist)) hist[Number(k)] = (hist[Number(k)] ?? 0) + v
    return { labels: b.labels, count: b.count + w.count, hist }
  })
}

function labels(reporter: string, service: string, code: number, route = 'r/0'): Record<string, string> {
  return {
    reporter,
    source_workload: reporter === 'source' ? 'productpage-v1' : 'unknown',
    destination_service: service,
    destination_workload: 'w',
    request_protocol: 'http',
    response_code: String(code),
    grpc_response_status: '',
    response_flags: code === 503 ? 'UF' : '-',
    route,
  }
}

const REVIEWS = 'reviews.shop.svc.cluster.local'
const RATINGS = 'ratings.shop.svc.cluster.local'

/**
 * The pattern of the window (10 s): reviews at 100 rps, 2% 503, latency 400 in (1,2.5], 500 in
 * (2.5,5], 80 in (5,10], 20 (the 503s) in (10,25] — seen by the destination and by one caller
 * (reporter source); ratings at 50 rps, all 200, all in (0.25,0.5], seen only by the caller.
 */
function windowTraffic(): Traffic[] {
  return [
    { labels: labels('destination', REVIEWS, 200), count: 980, hist: { 2.5: 400, 5: 500, 10: 80 } },
    { labels: labels('destination', REVIEWS, 503), count: 20, hist: { 25: 20 } },
    { labels: labels('source', REVIEWS, 200), count: 980, hist: { 2.5: 400, 5: 500, 10: 80 } },
    { labels: labels('source', REVIEWS, 503), count: 20, hist: { 25: 20 } },
    { labels: labels('source', RATINGS, 200), count: 500, hist: { 0.5: 500 } },
  ]
}

/** What the counters held before the window: anything, deltas are what count. */
function baseTraffic(): Traffic[] {
  return [
    { labels: labels('destination', REVIEWS, 200), count: 12345, hist: { 1: 10000, 100: 2345 } },
    { labels: labels('destination', REVIEWS, 503), count: 7, hist: { 5000: 7 } },
    { labels: labels('source', REVIEWS, 200), count: 500, hist: { 0.05: 500 } },
    { labels: labels('source', REVIEWS, 503), count: 0, hist: {} },
    { labels: labels('source', RATINGS, 200), count: 42, hist: { 60000: 42 } },
  ]
}

function near(got: number | null, want: number, tol = 1e-9): boolean {
  return got !== null && Math.abs(got - want) <= tol
}

t.test('parsePromText: HELP/TYPE, escapes, +Inf, timestamps, exemplars, errors', async (t) => {
  const text = [
    '# HELP weft_requests_total Requests "completed".',
    '# TYPE weft_requests_total counter',
    '',
    'weft_requests_total{reporter="source",path="a\\"b\\\\c\\nd",empty=""} 1027',
    'weft_requests_total { reporter = "x" , } 3 1712345678901',
    'up 1',
    'weft_request_duration_milliseconds_bucket{le="+Inf"} 1.5e3',
    'weft_request_duration_milliseconds_bucket{le="0.05"} 0',
    'x_total{a="1"} +Inf',
    'y -Inf',
    'z NaN',
    'om_total{a="b"} 4 # {trace_id="abc"} 1.0 1712345678.9',
    '\tindented 2\r',
    '# EOF',
  ].join('\n')
  const s = parsePromText(text)
  t.equal(s.length, 10)
  t.same(s[0], { name: 'weft_requests_total', labels: { reporter: 'source', path: 'a"b\\c\nd', empty: '' }, value: 1027 })
  t.same(s[1], { name: 'weft_requests_total', labels: { reporter: 'x' }, value: 3 })
  t.same(s[2], { name: 'up', labels: {}, value: 1 })
  t.same(s[3], { name: 'weft_request_duration_milliseconds_bucket', labels: { le: '+Inf' }, value: 1500 })
  t.equal(s[5].value, Infinity)
  t.equal(s[6].value, -Infinity)
  t.ok(Number.isNaN(s[7].value))
  t.same(s[8], { name: 'om_total', labels: { a: 'b' }, value: 4 })
  t.same(s[9], { name: 'indented', labels: {}, value: 2 })

  t.throws(() => parsePromText('ok 1\nbad{a="1" 2\n'), PromTextError)
  t.throws(() => parsePromText('ok 1\nbad{a="1" 2\n'), /line 2/)
  t.throws(() => parsePromText('m{a="unterminated} 1'), /unterminated/)
  t.throws(() => parsePromText('m'), /missing value/)
  t.throws(() => parsePromText('m abc'), /invalid value/)
  t.throws(() => parsePromText('<html>'), /metric name/)
  t.same(parsePromText(''), [])
})

t.test('histogramQuantile follows Prometheus', async (t) => {
  const b = (pairs: [number, number][]) => pairs.map(([le, count]) => ({ le, count }))
  const h = b([[1, 0], [2.5, 400], [5, 900], [10, 980], [25, 1000], [Infinity, 1000]])
  t.equal(histogramQuantile(0.5, h), 3)
  t.equal(histogramQuantile(0.95, h), 8.125)
  t.equal(histogramQuantile(0.99, h), 17.5)
  t.equal(histogramQuantile(0.2, b([[10, 100], [Infinity, 100]])), 2, 'the lowest bucket starts at 0')
  t.equal(histogramQuantile(0.99, b([[10, 50], [20, 90], [Infinity, 100]])), 20, 'rank in +Inf: the highest finite bound')
  t.ok(Number.isNaN(histogramQuantile(0.5, b([[10, 0], [Infinity, 0]]))), 'no observations')
  t.ok(Number.isNaN(histogramQuantile(0.5, b([[10, 5]]))), 'no +Inf bucket')
  t.equal(histogramQuantile(0.5, b([[Infinity, 10], [5, 10], [1, 0]])), 3, 'order of buckets does not matter')
  t.equal(histogramQuantile(0.5, b([[1, 4], [2, 3], [Infinity, 8]])), 1, 'non-monotonic counts are evened out')
})

t.test('computeStats: 100 rps with 2% 5xx and known latencies; auto reporter; Istio names', async (t) => {
  const before = parsePromText(render(baseTraffic()))
  const after = parsePromText(render(plus(baseTraffic(), windowTraffic())))
  const rows = computeStats(before, after, 10, 'service')
  t.same(rows.map((r) => [r.name, r.reporter]), [[RATINGS, 'source'], [REVIEWS, 'destination']], 'destination view when present, source otherwise')
  const [ratings, reviews] = rows
  t.equal(reviews.requests, 1000, 'not counted twice')
  t.ok(near(reviews.rps, 100), `reviews rps: ${reviews.rps}`)
  t.ok(near(reviews.successRate, 0.98), `reviews success: ${reviews.successRate}`)
  t.ok(near(reviews.latencyMsP50, 3), `reviews p50: ${reviews.latencyMsP50}`)
  t.ok(near(reviews.latencyMsP95, 8.125), `reviews p95: ${reviews.latencyMsP95}`)
  t.ok(near(reviews.latencyMsP99, 17.5), `reviews p99: ${reviews.latencyMsP99}`)
  t.ok(near(ratings.rps, 50), `ratings rps: ${ratings.rps}`)
  t.equal(ratings.successRate, 1)
  t.ok(near(ratings.latencyMsP50, 0.375), `ratings p50: ${ratings.latencyMsP50}`)
  t.ok(near(ratings.latencyMsP95, 0.4875), `ratings p95: ${ratings.latencyMsP95}`)
  t.ok(near(ratings.latencyMsP99, 0.4975), `ratings p99: ${ratings.latencyMsP99}`)

  const src = computeStats(before, after, 10, 'service', 'source')
  t.same(src.map((r) => [r.name, r.requests]), [[RATINGS, 500], [REVIEWS, 1000]])
  const dst = computeStats(before, after, 10, 'service', 'destination')
  t.same(dst.map((r) => r.name), [REVIEWS])

  const istio = computeStats(
    parsePromText(render(baseTraffic(), 'istio_')),
    parsePromText(render(plus(baseTraffic(), windowTraffic()), 'istio_')),
    10,
    'service',
  )
  t.same(istio, rows, 'istio_ names give the same rows')
  const secs = computeStats(
    parsePromText(render(baseTraffic(), 'weft_', true)),
    parsePromText(render(plus(baseTraffic(), windowTraffic()), 'weft_', true)),
    10,
    'service',
  )
  t.same(secs, rows, 'weft_request_duration_seconds gives the same rows (in ms)')

  const table = formatStatTable(rows, 'service').trimEnd().split('\n').map((l) => l.split(/ {2,}/))
  t.same(table, [
    ['SERVICE', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'],
    [RATINGS, '100.00%', '50.0rps', '0.375ms', '0.487ms', '0.497ms'],
    [REVIEWS, '98.00%', '100rps', '3ms', '8.13ms', '17.5ms'],
  ])
})

t.test('computeStats: by route, idle groups, counter resets, new series', async (t) => {
  const base: Traffic[] = [
    { labels: labels('destination', REVIEWS, 200, 'reviews/api'), count: 100, hist: { 1: 100 } },
    { labels: labels('destination', REVIEWS, 200, 'reviews/0'), count: 100, hist: { 1: 100 } },
    { labels: labels('destination', REVIEWS, 500, ''), count: 5, hist: { 1: 5 } },
  ]
  const before = parsePromText(render(base))
  const afterSeries: Traffic[] = [
    { labels: labels('destination', REVIEWS, 200, 'reviews/api'), count: 130, hist: { 1: 130 } }, // +30
    { labels: labels('destination', REVIEWS, 200, 'reviews/0'), count: 100, hist: { 1: 100 } }, // idle
    { labels: labels('destination', REVIEWS, 500, ''), count: 2, hist: { 1: 2 } }, // restarted: 2 since
    { labels: labels('destination', REVIEWS, 503, 'reviews/api'), count: 10, hist: { 50: 10 } }, // new series
  ]
  const rows = computeStats(before, parsePromText(render(afterSeries)), 2, 'route')
  const by = Object.fromEntries(rows.map((r) => [r.name, r])) as Record<string, StatRow>
  t.same(rows.map((r) => r.name), ['', 'reviews/0', 'reviews/api'])
  t.equal(by['reviews/api'].requests, 40)
  t.equal(by['reviews/api'].rps, 20)
  t.equal(by['reviews/api'].successRate, 0.75)
  t.equal(by['reviews/0'].requests, 0)
  t.equal(by['reviews/0'].successRate, null)
  t.equal(by['reviews/0'].latencyMsP99, null)
  t.equal(by[''].requests, 2, 'a counter that went down counts from zero')
  t.equal(by[''].successRate, 0)
  const table = formatStatTable(rows, 'route')
  t.match(table, /^ROUTE +SERVICE +SUCCESS/)
  t.match(table, /\n\(no route\) +\S+ +0\.00% +1\.0rps/)
  t.match(table, /\nreviews\/0 +\S+ +- +0\.00rps +- +- +-\n/)
  t.same(computeStats([], [], 10, 'service'), [])
  t.equal(formatMs(1500), '1.5s')
  t.equal(formatMs(0.0625), '0.0625ms')
  t.equal(formatMs(null), '-')
})

interface MetricsServer {
  port: number
  scrapes: number
}

/** A node:http server answering GET /metrics with texts[0], then texts[1] for every later scrape. */
async function metricsServer(t: { teardown(fn: () => unknown): void }, texts: string[]): Promise<MetricsServer> {
  const m = { port: 0, scrapes: 0 }
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') return res.writeHead(404).end()
    const body = texts[Math.min(m.scrapes++, texts.length - 1)]
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  m.port = (server.address() as AddressInfo).port
  return m
}

function capture(): { text: string; write(s: string): boolean } {
  const o = { text: '', write: (s: string) => ((o.text += s), true) }
  return o
}

t.test('weft stat end to end: two proxies, 200 ms window, table and JSON', async (t) => {
  // In the window: the destination proxy sees 50 reviews requests (1 of them 503), the source proxy
  // sees its 50 calls to reviews plus 20 to ratings.
  const dstBase: Traffic[] = [
    { labels: labels('destination', REVIEWS, 200), count: 1000, hist: { 1: 1000 } },
    { labels: labels('destination', REVIEWS, 503), count: 0, hist: {} },
  ]
  const dstWin: Traffic[] = [
    { labels: labels('destination', REVIEWS, 200), count: 49, hist: { 2.5: 20, 5: 25, 10: 4 } },
    { labels: labels('destination', REVIEWS, 503), count: 1, hist: { 25: 1 } },
  ]
  const srcBase: Traffic[] = [
    { labels: labels('source', REVIEWS, 200), count: 10, hist: { 1: 10 } },
    { labels: labels('source', RATINGS, 200), count: 10, hist: { 1: 10 } },
  ]
  const srcWin: Traffic[] = [
    { labels: labels('source', REVIEWS, 200), count: 50, hist: { 2.5: 50 } },
    { labels: labels('source', RATINGS, 200), count: 20, hist: { 0.5: 20 } },
  ]
  const dst = await metricsServer(t, [render(dstBase), render(plus(dstBase, dstWin))])
  const src = await metricsServer(t, [render(srcBase, 'weft_', true), render(plus(srcBase, srcWin), 'weft_', true)])

  const out = capture()
  const err = capture()
  const t0 = performance.now()
  const code = await runStat({ admin: [`127.0.0.1:${dst.port}`, `http://127.0.0.1:${src.port}`], windowMs: 200, by: 'service' }, out, err)
  const took = performance.now() - t0
  t.equal(code, 0)
  t.equal(err.text, '')
  t.equal(dst.scrapes, 2)
  t.equal(src.scrapes, 2)
  t.ok(took >= 200 && took < 1500, `took ${Math.round(took)} ms`)

  const rows = out.text.trimEnd().split('\n').map((l) => l.split(/ {2,}/))
  t.same(rows[0], ['SERVICE', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'])
  t.equal(rows.length, 3)
  const [, ratings, reviews] = rows
  t.same([ratings[0], ratings[1]], [RATINGS, '100.00%'])
  t.same([reviews[0], reviews[1]], [REVIEWS, '98.00%'])
  t.same(reviews.slice(3), ['3ms', '8.13ms', '17.5ms'])
  t.same(ratings.slice(3), ['0.375ms', '0.487ms', '0.497ms'])
  // 50 requests in ~200 ms: ~250 rps (the measured interval between the scrapes is a bit longer)
  const rps = Number(reviews[2].replace('rps', ''))
  t.ok(rps > 150 && rps <= 250, `reviews ${reviews[2]}`)
  const rrps = Number(ratings[2].replace('rps', ''))
  t.ok(rrps > 60 && rrps <= 100, `ratings ${ratings[2]}`)

  // --json, --by route, and a proxy that does not answer
  const dead = createServer()
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve))
  const deadPort = (dead.address() as AddressInfo).port
  await new Promise((r) => dead.close(r))
  const again = await metricsServer(t, [render(dstBase), render(plus(dstBase, dstWin))])
  const jout = capture()
  const jerr = capture()
  const jcode = await runStat({ admin: [`127.0.0.1:${again.port}`, `127.0.0.1:${deadPort}`], windowMs: 200, by: 'route', json: true }, jout, jerr)
  t.equal(jcode, 0, 'partial results are still results')
  t.match(jerr.text, `no Weft proxy admin API answers at 127.0.0.1:${deadPort} (connection refused)`)
  const j = JSON.parse(jout.text) as { windowSeconds: number; by: string; rows: StatRow[] }
  t.equal(j.by, 'route')
  t.ok(j.windowSeconds >= 0.2 && j.windowSeconds < 1.5)
  t.equal(j.rows.length, 1)
  t.match(j.rows[0], { name: 'r/0', reporter: 'destination', requests: 50, successRate: 0.98, latencyMsP50: 3, latencyMsP95: 8.125, latencyMsP99: 17.5 })

  // nothing answers: exit 1
  const ecode = await runStat({ admin: [`127.0.0.1:${deadPort}`], windowMs: 10, by: 'service' }, capture(), capture())
  t.equal(ecode, 1)
})

t.test('against a real sidecar: its /metrics, in both namings', async (t) => {
  const up = await startHttpUpstream(t, {
    handler: (rec, res) => {
      res.statusCode = rec.url.startsWith('/fail') ? 503 : 200
      res.end('x')
    },
  })
  for (const naming of ['weft', 'istio'] as const) {
    const config = makeConfig({
      routes: [{ name: 'app', backends: [{ cluster: 'backend' }] }],
      clusters: [cluster('backend', [up.port], { destination: { service: 'backend.shop.svc.cluster.local', workload: 'backend', namespace: 'shop' } })],
    })
    config.node = { id: 'frontend-1', workload: 'frontend', namespace: 'shop' }
    config.telemetry = { metrics: { enabled: true, naming } }
    const s = await startTestSidecar(t, config)
    const scrape = async () => parsePromText((await s.admin('/metrics')).body)

    // 40 requests between two scrapes, 2 of them answered 503 by the upstream
    const before = await scrape()
    for (let i = 0; i < 40; i++) {
      const res = await fetch(`http://127.0.0.1:${s.port}/${i % 20 === 7 ? 'fail' : 'ok'}/${i}`)
      await res.arrayBuffer()
    }
    const after = await scrape()
    const rows = computeStats(before, after, 2, 'service')
    t.equal(rows.length, 1, naming)
    t.match(rows[0], { name: 'backend.shop.svc.cluster.local', reporter: 'source', requests: 40, rps: 20, successRate: 0.95 }, naming)
    t.ok(rows[0].latencyMsP50 !== null && rows[0].latencyMsP50 > 0 && rows[0].latencyMsP50 < 1000, `${naming} p50 ${rows[0].latencyMsP50} ms`)
    t.ok(rows[0].latencyMsP99! >= rows[0].latencyMsP50!, `${naming} p99 ≥ p50`)
    t.same(computeStats(before, after, 2, 'route').map((r) => [r.name, r.requests]), [['app', 40]], `${naming} by route`)

    // the command itself, idle window: the service row with no traffic
    const out = capture()
    const err = capture()
    t.equal(await runStat({ admin: [`127.0.0.1:${s.adminPort}`], windowMs: 100, by: 'service' }, out, err), 0)
    t.equal(err.text, '')
    t.same(out.text.trimEnd().split('\n').map((l) => l.split(/ {2,}/)), [
      ['SERVICE', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'],
      ['backend.shop.svc.cluster.local', '-', '0.00rps', '-', '-', '-'],
    ], `${naming}: weft stat output`)
  }
})
