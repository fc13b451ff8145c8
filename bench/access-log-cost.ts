// The access log's cost (`npm run bench -- --access-log-cost`): plain Weft (`weft`) and Weft with the
// access log on (`weft+accesslog`, every request to a file) on the same upstream, both pinned to the
// same CPU and loaded at the same time by two wrk (pinned to the other CPU with the upstream), in
// many short rounds, over a few fresh pairs of sidecar processes.
//
// Why this shape: on a shared 2-core machine the background load moves by more than the effect
// within seconds, so rows measured one after the other (the --telemetry table, or alternated 2 s
// rounds here with --alternate) differ by ±30 % from round to round. Two sidecars on one CPU at the
// same moment meet the same background; each round's ratio (access log ÷ plain) cancels it. Each
// run also records the sidecar's CPU time per request (every thread's on-CPU time from
// /proc/PID/task/*/schedstat, ns; the main thread alone too). Fresh pairs: each process's JIT makes
// its own choices (a profile showed the HTTP parser left in a lower tier in one process for the
// whole run, +2 µs a request), so the rounds of one pair share that luck; the median of each pair
// is printed to show it. Reported: median, interquartile range and a 95 % confidence interval of
// the median (order statistics) of the round ratios. That interval treats the rounds as
// independent, which rounds of one pair are not: 7 pairs of 3 rounds by default (3 pairs of 7
// before session 9; the per-pair medians of one run spread over 0.86–0.99, wider than the interval
// of its 21 rounds). Caveat: the log's write thread takes its CPU
// from both sidecars on the shared CPU, so the req/s ratio slightly understates its cost; the CPU
// ratio counts it fully.
//
// Last stdout line: JSON (`access_log_cost_rps_pct`, `rps_ratio_*`, `cpu_ratio_*`, `access_log_cost_pct` from CPU).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { freePorts } from './net.ts'
import { startUpstream } from './peers/nginx.ts'
import type { Peer } from './peers/types.ts'
import { startWeft, WEFT_BIN } from './peers/weft.ts'
import { readThreadsCpuNs } from './proc.ts'
import { cleanupAll, runCapture, trackTempDir } from './spawn.ts'
import { runWrk, wrkErrorCount } from './wrk.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const RESULTS_DIR = path.join(here, 'results')

const USAGE = `usage: npm run bench -- --access-log-cost [options]
  --rounds N        rounds; each loads both sidecars once (default 21)
  --pairs N         fresh pairs of sidecar processes the rounds are spread over (default 7)
  --seconds S       seconds of each wrk -c50 run (default 2)
  --warmup S        seconds of wrk per sidecar before the first round (default 3)
  --connections N   wrk connections (default 50)
  --no-pin          do not pin (default: taskset puts both sidecars on CPU 1, the harness, wrk and the upstream on CPU 0)
  --alternate       load the sidecars one after the other, order alternating (default: both at once, two wrk)
  --no-save         do not write bench/results/access-log-cost-*.json
  -h, --help`

export type CostRow = 'weft' | 'weft+accesslog'
export const COST_ROWS: readonly CostRow[] = ['weft', 'weft+accesslog']

/** One wrk run of one sidecar. */
export interface CostRun {
  row: CostRow
  rps: number
  requests: number
  errors: number
  /** on-CPU time of all the sidecar's threads per request, µs */
  cpuUsPerReq: number
  /** the same for its main thread alone, µs */
  mainUsPerReq: number
}

/** Both sidecars' runs of one round and their ratios (access log ÷ plain). */
export interface CostRound {
  round: number
  /** which pair of sidecar processes ran it */
  pair: number
  plain: CostRun
  logged: CostRun
  rpsRatio: number
  cpuRatio: number
  mainRatio: number
}

/** Quantile q of sorted xs (linear between closest ranks, as R's type 7). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo)
}

export interface Spread {
  median: number
  q1: number
  q3: number
  min: number
  max: number
  /** a 95 % confidence interval of the median, from order statistics (no assumption on the distribution); NaN below 6 values */
  ciLow: number
  ciHigh: number
}

/**
 * 1-based ranks (k, n + 1 − k) of the order statistics bounding the median with >= 95 %
 * confidence: the largest k with P(Binomial(n, ½) < k) <= 2.5 %. null when n is too small (< 6).
 */
export function medianCiRanks(n: number): [number, number] | null {
  let k = 0
  let below = 0 // P(B < k + 1) = sum of P(B = 0..k)
  let pk = 0.5 ** n // P(B = 0)
  for (let j = 0; j <= n; j++) {
    below += pk
    if (below > 0.025) break
    k = j + 1
    pk = (pk * (n - j)) / (j + 1)
  }
  return k >= 1 ? [k, n + 1 - k] : null
}

export function spread(xs: readonly number[]): Spread {
  const s = [...xs].sort((a, b) => a - b)
  const ci = medianCiRanks(s.length)
  return {
    median: quantile(s, 0.5),
    q1: quantile(s, 0.25),
    q3: quantile(s, 0.75),
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    ciLow: ci ? s[ci[0] - 1] : NaN,
    ciHigh: ci ? s[ci[1] - 1] : NaN,
  }
}

export function roundOf(round: number, plain: CostRun, logged: CostRun, pair = 1): CostRound {
  return {
    round,
    pair,
    plain,
    logged,
    rpsRatio: logged.rps / plain.rps,
    cpuRatio: logged.cpuUsPerReq / plain.cpuUsPerReq,
    mainRatio: logged.mainUsPerReq / plain.mainUsPerReq,
  }
}

export interface CostSummary {
  rounds: number
  rps: Record<CostRow, Spread>
  cpuUsPerReq: Record<CostRow, Spread>
  mainUsPerReq: Record<CostRow, Spread>
  /** per-round ratios, access log ÷ plain */
  rpsRatio: Spread
  cpuRatio: Spread
  mainRatio: Spread
  /** the throughput a saturated proxy loses to the log, from CPU per request: 1 − 1/cpuRatio, % */
  costPct: Spread
}

export function summarizeCost(rounds: readonly CostRound[]): CostSummary {
  const per = (f: (r: CostRun) => number): Record<CostRow, Spread> => ({
    weft: spread(rounds.map((r) => f(r.plain))),
    'weft+accesslog': spread(rounds.map((r) => f(r.logged))),
  })
  return {
    rounds: rounds.length,
    rps: per((r) => r.rps),
    cpuUsPerReq: per((r) => r.cpuUsPerReq),
    mainUsPerReq: per((r) => r.mainUsPerReq),
    rpsRatio: spread(rounds.map((r) => r.rpsRatio)),
    cpuRatio: spread(rounds.map((r) => r.cpuRatio)),
    mainRatio: spread(rounds.map((r) => r.mainRatio)),
    costPct: spread(rounds.map((r) => (1 - 1 / r.cpuRatio) * 100)),
  }
}

const r2 = (x: number): number => Math.round(x * 100) / 100
const r3 = (x: number): number => Math.round(x * 1000) / 1000
const fmt = (s: Spread, f: (x: number) => string): string => `${f(s.median)} (${f(s.q1)}–${f(s.q3)})`
const fmtCi = (s: Spread, f: (x: number) => string): string => `${fmt(s, f)} [${f(s.ciLow)}–${f(s.ciHigh)}]`

async function taskset(args: string[]): Promise<void> {
  const r = await runCapture('taskset', args)
  if (r.error || r.code !== 0) throw new Error(`taskset ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`)
}

export async function runAccessLogCostBench(argv: string[]): Promise<number> {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        rounds: { type: 'string', default: '21' },
        pairs: { type: 'string', default: '7' },
        seconds: { type: 'string', default: '2' },
        warmup: { type: 'string', default: '3' },
        connections: { type: 'string', default: '50' },
        'no-pin': { type: 'boolean', default: false },
        alternate: { type: 'boolean', default: false },
        'no-save': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`)
    return 1
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const rounds = Number(values.rounds)
  const pairs = Number(values.pairs)
  const seconds = Number(values.seconds)
  const warmup = Number(values.warmup)
  const connections = Number(values.connections)
  if (![rounds, pairs, seconds, connections].every((n) => Number.isInteger(n) && n >= 1) || pairs > rounds || !(warmup >= 0)) {
    console.error(`--rounds, --pairs, --seconds, --connections must be integers >= 1, --pairs <= --rounds, --warmup >= 0\n${USAGE}`)
    return 1
  }
  const pin = !(values['no-pin'] ?? false) && os.cpus().length >= 2
  const together = !(values.alternate ?? false)
  const log = (m: string): void => void process.stderr.write(`[bench access-log-cost] ${m}\n`)
  const loadavgAtStart = os.loadavg()
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-alog-'))
  trackTempDir(tmp)
  const dir = (name: string): string => {
    const d = path.join(tmp, name)
    fs.mkdirSync(d)
    return d
  }
  const done: CostRound[] = []
  let logLines = 0
  let loggedRequests = 0
  try {
    const [up1, up2] = await freePorts(2)
    const upstreamPorts = [up1, up2]
    const upstream = await startUpstream({ dir: dir('upstream'), upstreamPorts, port: up1 })
    if (pin) {
      await taskset(['-p', '-c', '0', String(process.pid)]) // wrk inherits it
      await taskset(['-a', '-p', '-c', '0', String(upstream.pid)])
    }
    log(`${os.cpus().length} cores, load ${loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}; ${rounds} rounds over ${pairs} pairs of sidecars, wrk -t1 -c${connections} -d${seconds}s per sidecar${pin ? ', pinned' : ''}${together ? ', both at once' : ', one after the other'}`)
    let r = 0
    for (let pair = 1; pair <= pairs; pair++) {
      // a fresh pair of processes: each process's JIT makes its own choices (a hot function may stay
      // in a lower tier for the whole run), so rounds of one pair share that luck; pairs average it
      const [plainPort, plainAdmin, logPort, logAdmin] = await freePorts(4)
      const start = (row: CostRow, port: number, adminPort: number): Promise<Peer> =>
        startWeft({ dir: dir(`${row}-${pair}`), upstreamPorts, port, options: { adminPort: String(adminPort), row } })
      const peers: Record<CostRow, Peer> = {
        weft: await start('weft', plainPort, plainAdmin),
        'weft+accesslog': await start('weft+accesslog', logPort, logAdmin),
      }
      if (pin) for (const row of COST_ROWS) await taskset(['-a', '-p', '-c', '1', String(peers[row].pid)])
      const warm = (row: CostRow): Promise<unknown> => runWrk({ url: `http://127.0.0.1:${peers[row].port}/`, connections, durationSec: warmup })
      if (warmup > 0) {
        if (together) await Promise.all(COST_ROWS.map(warm))
        else for (const row of COST_ROWS) await warm(row)
      }
      const once = async (row: CostRow): Promise<CostRun> => {
        const peer = peers[row]
        const dead = peer.deadReason()
        if (dead !== null) throw new Error(`${row}: ${dead}`)
        const c0 = readThreadsCpuNs(peer.pid)
        const w = await runWrk({ url: `http://127.0.0.1:${peer.port}/`, connections, durationSec: seconds })
        const c1 = readThreadsCpuNs(peer.pid)
        if (row === 'weft+accesslog') loggedRequests += w.requests
        return {
          row,
          rps: w.rps,
          requests: w.requests,
          errors: wrkErrorCount(w),
          cpuUsPerReq: (c1.totalNs - c0.totalNs) / 1000 / w.requests,
          mainUsPerReq: (c1.mainNs - c0.mainNs) / 1000 / w.requests,
        }
      }
      const end = Math.round((rounds * pair) / pairs)
      while (r < end) {
        r++
        const runs: Partial<Record<CostRow, CostRun>> = {}
        if (together) {
          const [a, b] = await Promise.all(COST_ROWS.map(once))
          runs[a.row] = a
          runs[b.row] = b
        } else {
          for (const row of r % 2 === 1 ? COST_ROWS : [...COST_ROWS].reverse()) runs[row] = await once(row)
        }
        const round = roundOf(r, runs.weft!, runs['weft+accesslog']!, pair)
        done.push(round)
        log(
          `pair ${pair}, round ${r}/${rounds}: weft ${round.plain.rps.toFixed(0)} req/s ${round.plain.cpuUsPerReq.toFixed(1)} µs/req, ` +
            `+accesslog ${round.logged.rps.toFixed(0)} req/s ${round.logged.cpuUsPerReq.toFixed(1)} µs/req; ratio rps ${r3(round.rpsRatio)} cpu ${r3(round.cpuRatio)}`,
        )
      }
      // every request has left its line (once its slab is written: 20 ms)
      await new Promise((resolve) => setTimeout(resolve, 200))
      const text = fs.readFileSync(String(peers['weft+accesslog'].info.accessLogPath))
      for (let i = text.indexOf(10); i >= 0; i = text.indexOf(10, i + 1)) logLines++
      for (const row of COST_ROWS) await peers[row].stop()
    }
  } finally {
    await cleanupAll()
  }

  const s = summarizeCost(done)
  const errors = done.reduce((a, r) => a + r.plain.errors + r.logged.errors, 0)
  const loadavgAtEnd = os.loadavg()
  const us = (x: number): string => x.toFixed(2)
  const ratio = (x: number): string => x.toFixed(3)
  const k = (x: number): string => x.toFixed(0)
  console.log('')
  console.log(
    `Access log cost: weft vs weft+accesslog (every request to a file), ${s.rounds} rounds over ${pairs} pairs of sidecars, wrk -t1 -c${connections} -d${seconds}s, ` +
      `${together ? 'both sidecars loaded at once' : 'one after the other'}${pin ? ', pinned (sidecars CPU 1, wrk and upstream CPU 0)' : ''}`,
  )
  console.log(`${os.cpus().length} cores, node ${process.version}, ${WEFT_BIN}; load average at start ${loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadavgAtEnd.map((l) => l.toFixed(2)).join(' ')}`)
  console.log('Median (interquartile range) over the rounds; CPU = on-CPU time of the sidecar per request: all threads, main thread alone.')
  console.log('')
  console.log('| row | req/s | CPU µs/req | main thread µs/req |')
  console.log('|---|---|---|---|')
  for (const row of COST_ROWS) console.log(`| ${row} | ${fmt(s.rps[row], k)} | ${fmt(s.cpuUsPerReq[row], us)} | ${fmt(s.mainUsPerReq[row], us)} |`)
  console.log('')
  console.log('Per round, access log ÷ plain: median (interquartile range) [95 % confidence interval of the median]')
  console.log(`  CPU per request             ${fmtCi(s.cpuRatio, ratio)}`)
  console.log(`  main thread CPU per request ${fmtCi(s.mainRatio, ratio)}`)
  console.log(`  req/s                       ${fmtCi(s.rpsRatio, ratio)}`)
  const perPair = Array.from({ length: pairs }, (_, i) => spread(done.filter((d) => d.pair === i + 1).map((d) => d.rpsRatio)).median)
  console.log(`  req/s, median of each pair   ${perPair.map(ratio).join(', ')}`)
  const pct = (x: number): string => ((1 - x) * 100).toFixed(1)
  console.log(`Throughput cost of the log: ${pct(s.rpsRatio.median)} % from req/s [${pct(s.rpsRatio.ciHigh)}–${pct(s.rpsRatio.ciLow)}]; ${fmtCi(s.costPct, (x) => x.toFixed(1))} % from CPU per request (1 − 1/ratio)`)
  console.log(`access log: ${logLines} lines for ${loggedRequests} requests counted by wrk in the rounds (plus warm-up and checks); wrk errors ${errors}`)
  const summary = {
    mode: 'access-log-cost',
    rounds: s.rounds,
    seconds,
    connections,
    pairs,
    pinned: pin,
    together,
    access_log_cost_rps_pct: r2((1 - s.rpsRatio.median) * 100),
    access_log_cost_rps_pct_ci95: [r2((1 - s.rpsRatio.ciHigh) * 100), r2((1 - s.rpsRatio.ciLow) * 100)],
    rps_ratio_per_pair: perPair.map(r3),
    loadavg_start: loadavgAtStart.map(r2),
    loadavg_end: loadavgAtEnd.map(r2),
    weft_rps: Math.round(s.rps.weft.median),
    accesslog_rps: Math.round(s.rps['weft+accesslog'].median),
    weft_cpu_us_per_req: r2(s.cpuUsPerReq.weft.median),
    accesslog_cpu_us_per_req: r2(s.cpuUsPerReq['weft+accesslog'].median),
    rps_ratio_median: r3(s.rpsRatio.median),
    rps_ratio_iqr: [r3(s.rpsRatio.q1), r3(s.rpsRatio.q3)],
    cpu_ratio_median: r3(s.cpuRatio.median),
    cpu_ratio_iqr: [r3(s.cpuRatio.q1), r3(s.cpuRatio.q3)],
    main_cpu_ratio_median: r3(s.mainRatio.median),
    main_cpu_ratio_iqr: [r3(s.mainRatio.q1), r3(s.mainRatio.q3)],
    access_log_cost_pct: r2(s.costPct.median),
    access_log_cost_pct_iqr: [r2(s.costPct.q1), r2(s.costPct.q3)],
    access_log_cost_pct_ci95: [r2(s.costPct.ciLow), r2(s.costPct.ciHigh)],
    rps_ratio_ci95: [r3(s.rpsRatio.ciLow), r3(s.rpsRatio.ciHigh)],
    log_lines: logLines,
    wrk_errors: errors,
  }
  if (!values['no-save']) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true })
    const file = path.join(RESULTS_DIR, `access-log-cost-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
    fs.writeFileSync(file, JSON.stringify({ ...summary, date: new Date().toISOString(), summary: s, perRound: done }, null, 2) + '\n')
    console.log(`results: ${path.relative(process.cwd(), file)}`)
  }
  console.log(JSON.stringify(summary))
  return errors > 0 || done.length < rounds || logLines < loggedRequests ? 2 : 0
}
