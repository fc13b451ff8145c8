// `weft stat` (in the spirit of `linkerd viz stat`): golden metrics per destination service or per
// route over a short window, from the proxies' own Prometheus metrics. Each proxy's /metrics is
// scraped twice, `--window` apart; the table shows, from the counter and histogram deltas:
//
//   SUCCESS      share of requests whose response_code is not 5xx (Istio's definition: a request
//                the client abandoned, code 0, is not a failure)
//   RPS          requests completed per second
//   LATENCY_Pnn  quantiles of the request duration, estimated from the histogram bucket deltas by
//                linear interpolation within the bucket (Prometheus' histogram_quantile)
//
// Metric names: weft_requests_total and weft_request_duration_seconds (or _milliseconds), or the
// Istio names istio_requests_total / istio_request_duration_milliseconds (telemetry.metrics.naming).
//
// Reporters: a request between two meshed workloads is counted by both sidecars (reporter="source"
// on the caller's, "destination" on the callee's). With several proxies scraped, `--reporter auto`
// (default) uses, per row, the destination's view when it saw traffic and the source's otherwise,
// so nothing is counted twice.
import type { Command } from 'commander'
import { Agent, request } from 'undici'
import { parseDuration } from '../api/duration.ts'
import { parsePromText, parsePromValue, type Sample } from '../proxy/telemetry/prom-text.ts'
import { adminBase, type Out } from './tap.ts'
import { describeAdminError, EXIT } from './errors.ts'
import { emit, parseOutput, type OutputFormat } from './output.ts'

export type StatBy = 'service' | 'route'
export type ReporterChoice = 'auto' | 'source' | 'destination'

export interface StatRow {
  /** destination service (by service) or route name (by route; "" when no route matched) */
  readonly name: string
  /** by route: the destination service of the route's requests (routes of different services may share a name) */
  readonly service?: string
  /** whose view the row uses: "source", "destination" (or "" when the series have no reporter label) */
  readonly reporter: string
  /** requests completed in the window */
  readonly requests: number
  /** non-5xx share of those requests, 0–1; null without requests */
  readonly successRate: number | null
  readonly rps: number
  /** latency quantiles in ms; null without requests */
  readonly latencyMsP50: number | null
  readonly latencyMsP95: number | null
  readonly latencyMsP99: number | null
}

interface Bucket {
  le: number
  count: number
}

/**
 * The q-quantile (0–1) of a histogram given as cumulative bucket counts, Prometheus'
 * histogram_quantile: linear interpolation within the bucket holding the rank, the lowest bucket
 * starting at 0, the highest finite bound when the rank falls in the +Inf bucket. NaN without
 * observations or without a +Inf bucket.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number {
  const b = [...buckets].sort((x, y) => x.le - y.le)
  if (b.length < 2 || b[b.length - 1].le !== Infinity) return NaN
  // Counts that went down (buckets summed across series scraped at slightly different moments):
  // force monotonicity, as Prometheus does.
  for (let i = 1; i < b.length; i++) if (b[i].count < b[i - 1].count) b[i] = { le: b[i].le, count: b[i - 1].count }
  const total = b[b.length - 1].count
  if (!(total > 0)) return NaN
  if (q < 0) return -Infinity
  if (q > 1) return Infinity
  let rank = q * total
  let i = 0
  while (i < b.length - 1 && b[i].count < rank) i++
  if (i === b.length - 1) return b[b.length - 2].le
  if (i === 0 && b[0].le <= 0) return b[0].le
  let start = 0
  let count = b[i].count
  if (i > 0) {
    start = b[i - 1].le
    count -= b[i - 1].count
    rank -= b[i - 1].count
  }
  if (count === 0) return b[i].le
  return start + (b[i].le - start) * (rank / count)
}

const REQUESTS = 'requests_total'
const DURATION_BUCKET = 'request_duration_bucket'

interface MetricRef {
  /** REQUESTS or DURATION_BUCKET */
  readonly metric: string
  /** factor from the metric's unit to ms (the `le` bounds) */
  readonly toMs: number
}

const METRICS = new Map<string, MetricRef>([
  ['requests_total', { metric: REQUESTS, toMs: 1 }],
  ['request_duration_milliseconds_bucket', { metric: DURATION_BUCKET, toMs: 1 }],
  ['request_duration_seconds_bucket', { metric: DURATION_BUCKET, toMs: 1000 }],
])

/**
 * weft_requests_total / istio_requests_total, and the duration histogram's buckets in ms
 * (weft_request_duration_milliseconds, istio_request_duration_milliseconds) or seconds
 * (weft_request_duration_seconds, Prometheus base units); null for other metrics.
 */
function metricOf(name: string): MetricRef | null {
  let base: string
  if (name.startsWith('weft_')) base = name.slice(5)
  else if (name.startsWith('istio_')) base = name.slice(6)
  else return null
  return METRICS.get(base) ?? null
}

/** One series: its full metric name and every label, in a stable order. */
function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  let k = name
  for (const n of Object.keys(labels).sort()) k += '\u0000' + n + '=' + labels[n]
  return k
}

interface Acc {
  requests: number
  errors: number
  /** le → cumulative count delta */
  buckets: Map<number, number>
}

function newAcc(): Acc {
  return { requests: 0, errors: 0, buckets: new Map() }
}

const REPORTER_PREFERENCE = ['destination', 'source']

/**
 * Rows of `weft stat` from two scrapes `windowSeconds` apart (samples of several proxies may be
 * concatenated; give each proxy's samples a distinguishing label such as `instance`). Counters that
 * went down between the scrapes (a restarted proxy) count from zero. Rows are sorted by name and
 * include groups without requests in the window (requests 0, rates null).
 */
export function computeStats(
  before: readonly Sample[],
  after: readonly Sample[],
  windowSeconds: number,
  by: StatBy,
  reporter: ReporterChoice = 'auto',
): StatRow[] {
  const prev = new Map<string, number>()
  for (const s of before) {
    const m = metricOf(s.name)
    if (m !== null) prev.set(seriesKey(s.name, s.labels), s.value)
  }
  // group name → reporter → accumulated deltas
  const groups = new Map<string, Map<string, Acc>>()
  for (const s of after) {
    const m = metricOf(s.name)
    if (m === null) continue
    const rep = s.labels.reporter ?? ''
    if (reporter !== 'auto' && rep !== reporter) continue
    // by route: keyed by service and route, as two services' route tables may both have a route "default"
    const name = by === 'service' ? (s.labels.destination_service ?? '') : (s.labels.route ?? '') + '\u0000' + (s.labels.destination_service ?? '')
    const p = prev.get(seriesKey(s.name, s.labels)) ?? 0
    let delta = s.value - p
    if (delta < 0) delta = s.value // counter reset
    if (!Number.isFinite(delta)) continue
    let g = groups.get(name)
    if (g === undefined) groups.set(name, (g = new Map()))
    let acc = g.get(rep)
    if (acc === undefined) g.set(rep, (acc = newAcc()))
    if (m.metric === REQUESTS) {
      acc.requests += delta
      const code = s.labels.response_code ?? ''
      if (code.length === 3 && code[0] === '5') acc.errors += delta
    } else {
      const raw = s.labels.le === undefined ? NaN : parsePromValue(s.labels.le)
      if (Number.isNaN(raw)) continue
      // 0.00005 s → 0.05 ms, not 0.05000000000000001: bounds of different proxies must meet.
      const le = raw === Infinity ? raw : Number((raw * m.toMs).toPrecision(12))
      acc.buckets.set(le, (acc.buckets.get(le) ?? 0) + delta)
    }
  }

  const rows: StatRow[] = []
  for (const [name, g] of groups) {
    const reps = [...g.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    const chosen = reps.find((r) => g.get(r)!.requests > 0) ?? reps[0]
    const acc = g.get(chosen)!
    const buckets = [...acc.buckets].map(([le, count]) => ({ le, count }))
    const q = (x: number): number | null => {
      if (acc.requests <= 0) return null
      const v = histogramQuantile(x, buckets)
      return Number.isNaN(v) ? null : v
    }
    const sep = name.indexOf('\u0000')
    rows.push({
      name: by === 'route' && sep >= 0 ? name.slice(0, sep) : name,
      ...(by === 'route' && sep >= 0 ? { service: name.slice(sep + 1) } : {}),
      reporter: chosen,
      requests: acc.requests,
      successRate: acc.requests > 0 ? (acc.requests - acc.errors) / acc.requests : null,
      rps: windowSeconds > 0 ? acc.requests / windowSeconds : 0,
      latencyMsP50: q(0.5),
      latencyMsP95: q(0.95),
      latencyMsP99: q(0.99),
    })
  }
  const key = (r: StatRow): string => r.name + '\u0000' + (r.service ?? '')
  rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))
  return rows
}

function rank(reporter: string): number {
  const i = REPORTER_PREFERENCE.indexOf(reporter)
  return i < 0 ? REPORTER_PREFERENCE.length : i
}

// ---- presentation ---------------------------------------------------------------------------

export function formatMs(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '-'
  if (v >= 1000) return String(Number((v / 1000).toPrecision(3))) + 's'
  return String(Number(v.toPrecision(3))) + 'ms'
}

export function formatRps(v: number): string {
  return (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)) + 'rps'
}

export function formatSuccess(v: number | null): string {
  return v === null ? '-' : (v * 100).toFixed(2) + '%'
}

/** The table `weft stat` prints (with a trailing newline). */
export function formatStatTable(rows: readonly StatRow[], by: StatBy): string {
  const head = [...(by === 'service' ? ['SERVICE'] : ['ROUTE', 'SERVICE']), 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99']
  const body = rows.map((r) => [
    r.name === '' ? (by === 'service' ? '(unknown)' : '(no route)') : r.name,
    ...(by === 'route' ? [r.service || '(unknown)'] : []),
    formatSuccess(r.successRate),
    formatRps(r.rps),
    formatMs(r.latencyMsP50),
    formatMs(r.latencyMsP95),
    formatMs(r.latencyMsP99),
  ])
  const all = [head, ...body]
  const width = head.map((_, i) => Math.max(...all.map((row) => row[i].length)))
  return all
    .map((row) => row.map((c, i) => (i < head.length - 5 ? c.padEnd(width[i]) : c.padStart(width[i]))).join('   ').trimEnd())
    .join('\n') + '\n'
}

// ---- running --------------------------------------------------------------------------------

export interface StatCliOptions {
  /** admin addresses (host:port or http:// URLs) */
  admin: string[]
  windowMs: number
  by: StatBy
  reporter?: ReporterChoice
  json?: boolean
  output?: OutputFormat
}

export interface Scrape {
  samples: Sample[]
  at: number
}

/** One proxy's /metrics, each series labelled instance=<addr> (series of different proxies stay distinct). */
export async function scrape(agent: Agent, addr: string): Promise<Scrape> {
  const url = adminBase(addr) + '/metrics'
  const res = await request(url, { dispatcher: agent, headers: { accept: 'text/plain;version=0.0.4' } })
  const text = await res.body.text()
  const at = performance.now()
  if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`)
  let samples: Sample[]
  try {
    samples = parsePromText(text)
  } catch (e) {
    throw new Error(`${url}: not Prometheus text: ${(e as Error).message}`)
  }
  // Series of different proxies stay distinct.
  return { samples: samples.map((s) => ({ name: s.name, labels: { ...s.labels, instance: addr }, value: s.value })), at }
}

/**
 * The admin addresses of the proxies connected to a control plane (its admin API's
 * /debug/proxies, where each proxy's hello said where its admin listens), optionally of one
 * namespace; each address once (a proxy that reconnected has one stream).
 */
export async function discoverProxies(controlPlaneAdmin: string, namespace?: string): Promise<string[]> {
  const url = adminBase(controlPlaneAdmin) + '/debug/proxies'
  const res = await request(url)
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new Error(`${url}: HTTP ${res.statusCode}`)
  }
  const body = (await res.body.json()) as { proxies?: { node?: { namespace?: string; adminAddress?: string } }[] }
  const out = new Set<string>()
  for (const p of body.proxies ?? []) {
    const n = p.node
    if (n?.adminAddress === undefined || n.adminAddress === '') continue
    if (namespace !== undefined && (n.namespace || 'default') !== namespace) continue
    out.add(n.adminAddress)
  }
  return [...out].sort()
}

/**
 * Scrape every proxy twice, `windowMs` apart, and print the table (or JSON). Resolves with the
 * exit code: 0, or 1 when no proxy could be scraped twice (proxies that failed are reported on `err`).
 */
export async function runStat(o: StatCliOptions, out: Out, err: Out): Promise<number> {
  const agent = new Agent({ headersTimeout: 10_000, bodyTimeout: 10_000 })
  try {
    const addrs = o.admin
    const first = await Promise.allSettled(addrs.map((a) => scrape(agent, a)))
    await new Promise((r) => setTimeout(r, o.windowMs))
    const second = await Promise.allSettled(addrs.map((a) => scrape(agent, a)))
    const before: Sample[] = []
    const after: Sample[] = []
    let elapsed = 0
    let ok = 0
    for (let i = 0; i < addrs.length; i++) {
      const a = first[i]
      const b = second[i]
      if (a.status === 'rejected' || b.status === 'rejected') {
        const e = a.status === 'rejected' ? a.reason : (b as PromiseRejectedResult).reason
        err.write(`weft stat: ${describeAdminError(addrs[i], 'proxy', e)}\n`)
        continue
      }
      before.push(...a.value.samples)
      after.push(...b.value.samples)
      elapsed += b.value.at - a.value.at
      ok++
    }
    if (ok === 0) return 1
    const windowSeconds = elapsed / ok / 1000
    const rows = computeStats(before, after, windowSeconds, o.by, o.reporter ?? 'auto')
    const format = o.output ?? (o.json ? 'json' : 'table')
    if (format !== 'table') {
      emit(out, format, { windowSeconds: Math.round(windowSeconds * 1000) / 1000, by: o.by, rows })
    } else if (rows.length === 0) {
      out.write('no request metrics yet (weft_requests_total / istio_requests_total)\n')
    } else {
      out.write(formatStatTable(rows, o.by))
    }
    return 0
  } finally {
    agent.destroy().catch(() => {})
  }
}

export function registerStat(program: Command): void {
  program
    .command('stat')
    .description('success rate, requests per second and latency percentiles per service or route, from proxies\' /metrics')
    .option('--admin <host:port,...>', 'admin addresses of the proxies, comma-separated (default 127.0.0.1:15000)')
    .option('--control-plane-admin <host:port>', 'find the proxies through the control plane\'s admin API (its /debug/proxies) instead of --admin')
    .option('--control-plane <host:port>', 'deprecated spelling of --control-plane-admin (elsewhere --control-plane is the gRPC address)')
    .option('--namespace <ns>', 'with --control-plane-admin: only the proxies of this namespace')
    .option('--window <duration>', 'time between the two scrapes, e.g. 10s, 500ms', '10s')
    .option('--by <what>', 'one row per "service" (destination_service) or "route"', 'service')
    .option('--reporter <who>', 'auto (destination view when present, else source), source or destination', 'auto')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .option('--json', 'same as -o json')
    .action(async (opts: { admin?: string; controlPlane?: string; controlPlaneAdmin?: string; namespace?: string; window: string; by: string; reporter: string; json?: boolean; output: string }) => {
      const fail = (msg: string, code: number = EXIT.USAGE): void => {
        process.stderr.write(`weft stat: ${msg}\n`)
        process.exitCode = code
      }
      let output: OutputFormat
      try {
        output = opts.json === true ? 'json' : parseOutput(opts.output)
      } catch (e) {
        return fail((e as Error).message)
      }
      if (opts.controlPlane !== undefined) {
        process.stderr.write('weft stat: --control-plane is deprecated here: it is the control plane\'s admin address, now --control-plane-admin\n')
        if (opts.controlPlaneAdmin !== undefined) return fail('--control-plane and --control-plane-admin: give one')
        opts.controlPlaneAdmin = opts.controlPlane
      }
      const cpAdmin = opts.controlPlaneAdmin
      let windowMs: number
      try {
        windowMs = parseDuration(opts.window)
      } catch (e) {
        return fail((e as Error).message)
      }
      if (!(windowMs > 0)) return fail('--window must be longer than 0')
      if (opts.by !== 'service' && opts.by !== 'route') return fail(`--by must be service or route, got ${JSON.stringify(opts.by)}`)
      if (opts.reporter !== 'auto' && opts.reporter !== 'source' && opts.reporter !== 'destination') {
        return fail(`--reporter must be auto, source or destination, got ${JSON.stringify(opts.reporter)}`)
      }
      if (opts.admin !== undefined && cpAdmin !== undefined) return fail('--admin and --control-plane-admin: choose one')
      if (opts.namespace !== undefined && cpAdmin === undefined) return fail('--namespace goes with --control-plane-admin')
      let admin: string[]
      if (cpAdmin !== undefined) {
        try {
          adminBase(cpAdmin)
        } catch (e) {
          return fail((e as Error).message)
        }
        try {
          admin = await discoverProxies(cpAdmin, opts.namespace)
        } catch (e) {
          return fail(describeAdminError(cpAdmin, 'control-plane', e), EXIT.UNREACHABLE)
        }
        if (admin.length === 0) return fail(`--control-plane-admin ${cpAdmin}: no proxies connected${opts.namespace === undefined ? '' : ` in namespace ${opts.namespace}`}`, EXIT.FAILED)
      } else {
        admin = (opts.admin ?? '127.0.0.1:15000').split(',').map((s) => s.trim()).filter((s) => s !== '')
        if (admin.length === 0) return fail('--admin: no address')
      }
      try {
        for (const a of admin) adminBase(a)
      } catch (e) {
        return fail((e as Error).message)
      }
      process.exitCode = await runStat(
        { admin, windowMs, by: opts.by, reporter: opts.reporter, output },
        process.stdout,
        process.stderr,
      )
    })
}
