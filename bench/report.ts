// Results model, aggregation over rounds (medians), the printed table and the --quick summary line.
import type { MemStats } from './proc.ts'
import { wrkErrorCount, type WrkResult } from './wrk.ts'

export const ROW_NAMES = ['direct', 'weft', 'weft+metrics', 'weft+tracing', 'weft+accesslog', 'weft+explain', 'weft+policy', 'haproxy', 'nginx', 'fast-proxy', 'http-proxy', 'weft-tcp', 'haproxy-tcp'] as const
export type RowName = (typeof ROW_NAMES)[number]
/** Weft with one telemetry feature on, compared with the plain `weft` row (column "vs weft"). */
export const WEFT_VARIANT_ROWS = ['weft+metrics', 'weft+tracing', 'weft+accesslog', 'weft+explain', 'weft+policy'] as const satisfies readonly RowName[]
/** Rows of --telemetry: the telemetry variants between the baseline and HAProxy. */
export const TELEMETRY_ROWS = ['direct', 'weft', 'weft+metrics', 'weft+tracing', 'weft+accesslog', 'weft+explain', 'haproxy'] as const satisfies readonly RowName[]
/** Rows of --tcp: TCP pass-through (Weft `protocol: tcp`, HAProxy `mode tcp`); `rps/haproxy` is against haproxy-tcp. */
export const TCP_ROWS = ['direct', 'weft-tcp', 'haproxy-tcp'] as const satisfies readonly RowName[]
/** Rows of --policy: the policy row against plain weft. */
export const POLICY_ROWS = ['direct', 'weft', 'weft+policy', 'haproxy'] as const satisfies readonly RowName[]

const isWeftFamily = (n: RowName): boolean => n === 'weft' || n.startsWith('weft+')

/** One measuring round of one row. */
export interface Sample {
  round: number
  /** wrk -c50 run. */
  throughput: WrkResult
  /** wrk -c1 --latency run. */
  latency: WrkResult
  /** utime+stime of the serving process during both runs (warm-up excluded), seconds. */
  cpuSec: number
  /** Same for the upstream's nginx worker during this row's runs. */
  upstreamCpuSec: number
  /** Memory of the serving process right after the runs. */
  mem: MemStats
}

export interface RowResult {
  name: RowName
  /** Set when the row could not be measured (not installed, failed to start, every round failed). */
  error?: string
  pid?: number
  port?: number
  info?: Record<string, unknown>
  samples: Sample[]
  /** Errors of individual rounds (the row may still have other, good rounds). */
  roundErrors: string[]
  summary?: RowSummary
}

/** Medians over the row's good rounds. */
export interface RowSummary {
  rounds: number
  rps: number
  p50Us: number
  p99Us: number
  /** p50 @1 connection minus direct's p50 @1 connection; null for direct itself or without direct. */
  addedP50Us: number | null
  rpsVsHaproxy: number | null
  /** rps divided by the plain weft row's rps; only for weft and its telemetry variants */
  rpsVsWeft: number | null
  /** CPU µs/req divided by the plain weft row's; only for weft and its telemetry variants */
  cpuVsWeft: number | null
  addedP50VsHaproxy: number | null
  rssMB: number
  hwmMB: number
  cpuSec: number
  cpuUsPerReq: number
  upstreamCpuSec: number
  /** Failed requests seen by wrk (socket errors + non-2xx/3xx), summed over all rounds. */
  wrkErrors: number
  requests: number
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = Math.floor(v.length / 2)
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

const MB = 1024 * 1024

/** Fills row.summary for every row with samples; ratios relative to haproxy, added latency relative to direct. */
export function summarize(rows: RowResult[]): void {
  for (const row of rows) {
    if (row.samples.length === 0) {
      if (!row.error) row.error = row.roundErrors[0] ?? 'no measurement'
      continue
    }
    const s = row.samples
    const last = s[s.length - 1]
    const requests = s.reduce((n, x) => n + x.throughput.requests + x.latency.requests, 0)
    row.summary = {
      rounds: s.length,
      rps: median(s.map((x) => x.throughput.rps)),
      p50Us: median(s.map((x) => x.latency.percentilesUs['50'])),
      p99Us: median(s.map((x) => x.latency.percentilesUs['99'])),
      addedP50Us: null,
      rpsVsHaproxy: null,
      rpsVsWeft: null,
      cpuVsWeft: null,
      addedP50VsHaproxy: null,
      rssMB: last.mem.rssBytes / MB,
      hwmMB: Math.max(...s.map((x) => x.mem.hwmBytes)) / MB,
      cpuSec: median(s.map((x) => x.cpuSec)),
      cpuUsPerReq: median(s.map((x) => (x.cpuSec * 1e6) / Math.max(1, x.throughput.requests + x.latency.requests))),
      upstreamCpuSec: median(s.map((x) => x.upstreamCpuSec)),
      wrkErrors: s.reduce((n, x) => n + wrkErrorCount(x.throughput) + wrkErrorCount(x.latency), 0),
      requests,
    }
  }
  const direct = rows.find((r) => r.name === 'direct')?.summary
  for (const row of rows) {
    if (row.summary && direct && row.name !== 'direct') row.summary.addedP50Us = row.summary.p50Us - direct.p50Us
  }
  // TCP rows are compared with HAProxy in TCP mode, HTTP rows with HAProxy in HTTP mode (either
  // one when only one ran).
  const haHttp = rows.find((r) => r.name === 'haproxy')?.summary
  const haTcp = rows.find((r) => r.name === 'haproxy-tcp')?.summary
  for (const row of rows) {
    const s = row.summary
    const ha = row.name.endsWith('-tcp') ? (haTcp ?? haHttp) : (haHttp ?? haTcp)
    if (!s || !ha) continue
    if (ha.rps > 0) s.rpsVsHaproxy = s.rps / ha.rps
    if (s.addedP50Us !== null && ha.addedP50Us !== null && ha.addedP50Us > 0) s.addedP50VsHaproxy = s.addedP50Us / ha.addedP50Us
  }
  const weft = rows.find((r) => r.name === 'weft')?.summary
  for (const row of rows) {
    const s = row.summary
    if (!s || !weft || !isWeftFamily(row.name)) continue
    if (weft.rps > 0) s.rpsVsWeft = s.rps / weft.rps
    if (weft.cpuUsPerReq > 0) s.cpuVsWeft = s.cpuUsPerReq / weft.cpuUsPerReq
  }
}

const fmt = (v: number | null | undefined, digits = 0): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits)

/** The human-readable table (one string, lines joined with \n). */
export function formatTable(rows: RowResult[]): string {
  // "vs weft" / "CPU vs weft": rps and CPU µs per request of each Weft telemetry variant divided by the
  // plain weft row's (shown when a variant runs).
  const vsWeft = rows.some((r) => (WEFT_VARIANT_ROWS as readonly string[]).includes(r.name))
  const head = ['proxy', 'rps@50', 'rps/haproxy', ...(vsWeft ? ['vs weft'] : []), 'p50 µs @1', 'p99 µs @1', 'added p50 µs', 'added/haproxy', 'RSS MB', 'peak MB', 'CPU s', 'CPU µs/req', ...(vsWeft ? ['CPU vs weft'] : [])]
  const lines: string[][] = [head]
  const errors: string[] = []
  for (const row of rows) {
    const s = row.summary
    if (!s) {
      const msg = (row.error ?? 'not measured').replace(/\s+/g, ' ')
      if (msg.length <= 100) {
        lines.push([row.name, `ERROR: ${msg}`])
      } else {
        lines.push([row.name, `ERROR: ${msg.slice(0, 90)}... (below)`])
        errors.push(`${row.name}: ${msg.length > 800 ? `${msg.slice(0, 797)}...` : msg}`)
      }
      continue
    }
    const isDirect = row.name === 'direct'
    const flag = s.wrkErrors > 0 ? ' !' : ''
    lines.push([
      row.name + flag,
      fmt(s.rps),
      fmt(s.rpsVsHaproxy, 2),
      ...(vsWeft ? [fmt(s.rpsVsWeft, 2)] : []),
      fmt(s.p50Us, 0),
      fmt(s.p99Us, 0),
      isDirect ? '-' : fmt(s.addedP50Us, 0),
      isDirect ? '-' : fmt(s.addedP50VsHaproxy, 2),
      isDirect ? '-' : fmt(s.rssMB, 1),
      isDirect ? '-' : fmt(s.hwmMB, 1),
      isDirect ? '-' : fmt(s.cpuSec, 2),
      isDirect ? '-' : fmt(s.cpuUsPerReq, 1),
      ...(vsWeft ? [fmt(s.cpuVsWeft, 2)] : []),
    ])
    if (s.wrkErrors > 0) errors.push(`${row.name}: wrk saw ${s.wrkErrors} failed requests (socket errors or non-2xx) of ${s.requests}`)
    for (const e of row.roundErrors) errors.push(`${row.name}: ${e}`)
  }
  const widths = head.map((_, i) =>
    Math.max(...lines.filter((l) => i === 0 || l.length === head.length).map((l) => (l[i] ?? '').length)),
  )
  const out = lines.map((l) => {
    if (l.length !== head.length) return `${l[0].padEnd(widths[0])}  ${l[1]}`
    return l.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')
  })
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '))
  if (errors.length) out.push('', ...errors.map((e) => `! ${e}`))
  return out.join('\n')
}

const round = (v: number | null | undefined, digits: number): number | null =>
  v === null || v === undefined || !Number.isFinite(v) ? null : Number(v.toFixed(digits))

/** The --quick summary object (printed as the last stdout line). */
export function quickSummary(rows: RowResult[], resultsFile: string | null): Record<string, unknown> {
  const get = (n: RowName) => rows.find((r) => r.name === n)
  const weft = get('weft')
  const ha = get('haproxy')
  const direct = get('direct')
  const out: Record<string, unknown> = {
    weft_rps: round(weft?.summary?.rps, 0),
    haproxy_rps: round(ha?.summary?.rps, 0),
    throughput_ratio: round(weft?.summary?.rpsVsHaproxy, 3),
    weft_added_p50_us: round(weft?.summary?.addedP50Us, 1),
    haproxy_added_p50_us: round(ha?.summary?.addedP50Us, 1),
    added_p50_ratio: round(weft?.summary?.addedP50VsHaproxy, 3),
    weft_p50_us: round(weft?.summary?.p50Us, 1),
    weft_p99_us: round(weft?.summary?.p99Us, 1),
    haproxy_p99_us: round(ha?.summary?.p99Us, 1),
    direct_rps: round(direct?.summary?.rps, 0),
    direct_p50_us: round(direct?.summary?.p50Us, 1),
    weft_rss_mb: round(weft?.summary?.rssMB, 1),
    weft_cpu_us_per_req: round(weft?.summary?.cpuUsPerReq, 2),
  }
  for (const r of rows) if (r.error) out[`${jsonKey(r.name)}_error`] = r.error
  out.results_file = resultsFile
  return out
}

/** The --tcp summary object (printed as the last stdout line). */
export function tcpSummary(rows: RowResult[], resultsFile: string | null): Record<string, unknown> {
  const get = (n: RowName) => rows.find((r) => r.name === n)?.summary
  const weft = get('weft-tcp')
  const ha = get('haproxy-tcp')
  const direct = get('direct')
  const out: Record<string, unknown> = {
    weft_tcp_rps: round(weft?.rps, 0),
    haproxy_tcp_rps: round(ha?.rps, 0),
    tcp_throughput_ratio: round(weft?.rpsVsHaproxy, 3),
    weft_tcp_added_p50_us: round(weft?.addedP50Us, 1),
    haproxy_tcp_added_p50_us: round(ha?.addedP50Us, 1),
    tcp_added_p50_ratio: round(weft?.addedP50VsHaproxy, 3),
    weft_tcp_p99_us: round(weft?.p99Us, 1),
    haproxy_tcp_p99_us: round(ha?.p99Us, 1),
    direct_rps: round(direct?.rps, 0),
    weft_tcp_cpu_us_per_req: round(weft?.cpuUsPerReq, 2),
    haproxy_tcp_cpu_us_per_req: round(ha?.cpuUsPerReq, 2),
  }
  for (const r of rows) if (r.error) out[`${jsonKey(r.name)}_error`] = r.error
  out.results_file = resultsFile
  return out
}

/** A row name as a JSON key prefix: weft+metrics -> weft_metrics, fast-proxy -> fast_proxy. */
const jsonKey = (name: string): string => name.replace(/[^a-z0-9]+/gi, '_')

/**
 * The --telemetry summary object (printed as the last stdout line): each Weft row's rps, CPU µs per
 * request and, for the variants, the ratio of both to the plain weft row.
 */
export function telemetrySummary(rows: RowResult[], resultsFile: string | null): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const r of rows) {
    if (!isWeftFamily(r.name)) continue
    const k = jsonKey(r.name)
    out[`${k}_rps`] = round(r.summary?.rps, 0)
    out[`${k}_cpu_us_per_req`] = round(r.summary?.cpuUsPerReq, 2)
    out[`${k}_added_p50_us`] = round(r.summary?.addedP50Us, 1)
    if (r.name !== 'weft') {
      out[`${k}_vs_weft`] = round(r.summary?.rpsVsWeft, 3)
      out[`${k}_cpu_vs_weft`] = round(r.summary?.cpuVsWeft, 3)
    }
  }
  const ha = rows.find((r) => r.name === 'haproxy')
  out.haproxy_rps = round(ha?.summary?.rps, 0)
  for (const r of rows) if (r.error) out[`${jsonKey(r.name)}_error`] = r.error
  out.results_file = resultsFile
  return out
}
