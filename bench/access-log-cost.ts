// The access log's cost (`npm run bench -- --access-log-cost`): two sidecars started side by side on
// the same upstream, plain Weft (`weft`) and Weft with the access log on (`weft+accesslog`, every
// request to a file), loaded in turns by short wrk runs, many rounds, the order alternating each
// round (ABBA…).
//
// Why this shape: on a shared 2-core machine the background load drifts by more than the effect
// within seconds, so rows measured minutes apart (the --telemetry table) or even back to back with
// 10 s runs differ by ±30 %. Short runs of both sidecars close in time share the same background,
// and the ratio of each round cancels what drifts slower than a round; the median and the
// interquartile range of the round ratios then say how sure the number is. Next to requests per
// second, each run records the sidecar's CPU time per request (sum of every thread's on-CPU time
// from /proc/PID/task/*/schedstat, in ns; the main thread on its own too): a saturated
// single-threaded proxy's throughput is 1 / (main-thread CPU per request), and CPU time does not
// count the time another process held the core, so it moves much less than requests per second.
// `--pin` pins each sidecar (all its threads) to CPU 1 and the harness, wrk and the upstream to CPU 0.
//
// Last stdout line: JSON (`access_log_cost_pct` from CPU per request, `rps_ratio_*`, `cpu_ratio_*`).
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
  --rounds N        rounds; each runs both sidecars once, order alternating (default 20)
  --seconds S       seconds of each wrk -c50 run (default 2)
  --warmup S        seconds of wrk per sidecar before the first round (default 3)
  --connections N   wrk connections (default 50)
  --pin             taskset: the sidecars on CPU 1, the harness, wrk and the upstream on CPU 0
  --together        load both sidecars at the same time (two wrk) instead of one after the other
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

export function roundOf(round: number, plain: CostRun, logged: CostRun): CostRound {
  return {
    round,
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
        rounds: { type: 'string', default: '20' },
        seconds: { type: 'string', default: '2' },
        warmup: { type: 'string', default: '3' },
        connections: { type: 'string', default: '50' },
        pin: { type: 'boolean', default: false },
        together: { type: 'boolean', default: false },
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
  const seconds = Number(values.seconds)
  const warmup = Number(values.warmup)
  const connections = Number(values.connections)
  if (![rounds, seconds, connections].every((n) => Number.isInteger(n) && n >= 1) || !(warmup >= 0)) {
    console.error(`--rounds, --seconds, --connections must be integers >= 1, --warmup >= 0\n${USAGE}`)
    return 1
  }
  const pin = values.pin ?? false
  const together = values.together ?? false
  if (pin && os.cpus().length < 2) {
    console.error('--pin needs 2 CPUs')
    return 1
  }
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
    const [up1, up2, plainPort, plainAdmin, logPort, logAdmin] = await freePorts(6)
    const upstreamPorts = [up1, up2]
    const upstream = await startUpstream({ dir: dir('upstream'), upstreamPorts, port: up1 })
    const start = (row: CostRow, port: number, adminPort: number): Promise<Peer> =>
      startWeft({ dir: dir(row), upstreamPorts, port, options: { adminPort: String(adminPort), row } })
    const peers: Record<CostRow, Peer> = {
      weft: await start('weft', plainPort, plainAdmin),
      'weft+accesslog': await start('weft+accesslog', logPort, logAdmin),
    }
    const accessLogPath = String(peers['weft+accesslog'].info.accessLogPath)
    if (pin) {
      await taskset(['-p', '-c', '0', String(process.pid)]) // wrk inherits it
      await taskset(['-a', '-p', '-c', '0', String(upstream.pid)])
      for (const row of COST_ROWS) await taskset(['-a', '-p', '-c', '1', String(peers[row].pid)])
    }
    log(`${os.cpus().length} cores, load ${loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}; ${rounds} rounds of wrk -t1 -c${connections} -d${seconds}s per sidecar${pin ? ', pinned' : ''}${together ? ', both at once' : ''}`)
    for (const row of COST_ROWS) {
      if (warmup > 0) await runWrk({ url: `http://127.0.0.1:${peers[row].port}/`, connections, durationSec: warmup })
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
    for (let r = 1; r <= rounds; r++) {
      const order = r % 2 === 1 ? COST_ROWS : [...COST_ROWS].reverse()
      const runs: Partial<Record<CostRow, CostRun>> = {}
      if (together) {
        const [a, b] = await Promise.all(COST_ROWS.map(once))
        runs[a.row] = a
        runs[b.row] = b
      } else {
        for (const row of order) runs[row] = await once(row)
      }
      const round = roundOf(r, runs.weft!, runs['weft+accesslog']!)
      done.push(round)
      log(
        `round ${r}/${rounds}: weft ${round.plain.rps.toFixed(0)} req/s ${round.plain.cpuUsPerReq.toFixed(1)} µs/req, ` +
          `+accesslog ${round.logged.rps.toFixed(0)} req/s ${round.logged.cpuUsPerReq.toFixed(1)} µs/req; ratio rps ${r3(round.rpsRatio)} cpu ${r3(round.cpuRatio)}`,
      )
    }
    // every request must have left its line (checked once the 20 ms batch is written)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const text = fs.readFileSync(accessLogPath)
    for (let i = text.indexOf(10); i >= 0; i = text.indexOf(10, i + 1)) logLines++
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
  console.log(`Access log cost: weft vs weft+accesslog (every request to a file), run side by side, ${s.rounds} alternated rounds of wrk -t1 -c${connections} -d${seconds}s${pin ? ', pinned (sidecars CPU 1, wrk/upstream CPU 0)' : ''}${together ? ', both loaded at once' : ''}`)
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
  console.log(`Throughput cost of the log, 1 − 1/(CPU ratio): ${fmtCi(s.costPct, (x) => x.toFixed(1))} %; from req/s: ${((1 - s.rpsRatio.median) * 100).toFixed(1)} %`)
  console.log(`access log: ${logLines} lines for ${loggedRequests} requests counted by wrk in the rounds (plus warm-up and checks); wrk errors ${errors}`)
  const summary = {
    mode: 'access-log-cost',
    rounds: s.rounds,
    seconds,
    connections,
    pinned: pin,
    together,
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
