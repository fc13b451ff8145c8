// `npm run bench -- --soak`: does a sidecar's memory grow under steady load? (issue 14: "no growth
// over a 5-minute run at 70 % of max rate, drift < 10 %", metrics on.)
//
//   1. max rate: h2load --h1 -c50 (no pacing) through Weft for --probe seconds, after a warm-up;
//   2. soak: h2load --h1 -c50 --rps R for --duration seconds (default 300), R per client so that the
//      50 clients ask for --load percent (default 70) of the max rate; Weft's RSS (/proc VmRSS) is
//      sampled every --interval seconds (default 5), and its /metrics is scraped at each sample,
//      as Prometheus would;
//   3. report: RSS at minute 1 (the sample nearest 60 s into the soak; 20 % of the duration when
//      --duration is under 5 minutes) against RSS at the end of the soak, the drift in percent,
//      the least-squares slope of RSS from minute 1 on, the rate reached and the failed requests.
//
// The paced client is h2load (Debian's nghttp2-client, already the gRPC bench's client): C, one
// thread, and its --rps paces each connection itself, so the rate holds for minutes without the
// harness's Node process spending the machine's second core on sending requests, as an undici loop
// would; wrk has no rate of its own (a Lua delay() is think time per connection, so the rate would
// follow the latency). The max rate is measured with the same client and connections, so 70 % is of
// what this client reaches, not of wrk's number.
//
// The last stdout line is JSON: soak_rss_start_mb, soak_rss_end_mb, soak_drift_pct, soak_rate,
// soak_errors (and the target rate, the max rate, the slope, the load average, every sample).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import YAML from 'yaml'
import { freePorts, httpGet, sleep } from './net.ts'
import { readMem } from './proc.ts'
import { cleanupAll, runCapture, spawnGroup, trackTempDir } from './spawn.ts'
import { startUpstream } from './peers/nginx.ts'
import { finishStart } from './peers/common.ts'
import { weftBenchConfig, WEFT_BIN } from './peers/weft.ts'
import type { Telemetry } from '../api/schema.ts'

const USAGE = `usage: node bench/run.ts --soak [--duration SEC] [--load PCT] [--interval SEC] [--probe SEC] [--access-log]
  --duration SEC   seconds of the paced soak (default 300)
  --load PCT       percent of the measured max rate to drive (default 70)
  --interval SEC   seconds between RSS samples and /metrics scrapes (default 5)
  --probe SEC      seconds of the unpaced max-rate run (default 10; a 3 s warm-up before it)
  --connections N  h2load clients (connections), both runs (default 50)
  --access-log     the access log on too (to a file in the temp dir)
Needs h2load (apt-get install -y nghttp2-client) and nginx (the upstream).`

const log = (msg: string): void => {
  process.stderr.write(`[soak] ${msg}\n`)
}
const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10

export interface H2loadCounts {
  /** req/s over the run, as h2load reports it */
  rps: number
  done: number
  succeeded: number
  failed: number
  errored: number
  timeout: number
  /** responses by class: [2xx, 3xx, 4xx, 5xx] */
  status: number[]
}

/** h2load's summary lines ("finished in …, N req/s", "requests: …", "status codes: …"). */
export function parseH2loadCounts(out: string): H2loadCounts {
  const fin = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)
  const rq = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out)
  const st = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)
  if (fin === null || rq === null || st === null) throw new Error(`h2load output not understood: ${out.trim().slice(-400)}`)
  return {
    rps: Number(fin[1]),
    done: Number(rq[1]),
    succeeded: Number(rq[2]),
    failed: Number(rq[3]),
    errored: Number(rq[4]),
    timeout: Number(rq[5]),
    status: st.slice(1, 5).map(Number),
  }
}

/**
 * Requests that did not come back as a 2xx/3xx. h2load's "failed" already counts both kinds: the
 * errored ones (connection errors, timeouts) and the 4xx/5xx answers.
 */
export function h2loadErrors(c: H2loadCounts): number {
  return c.failed
}

export interface RssSample {
  /** seconds since the soak started */
  t: number
  rssBytes: number
}

export interface Drift {
  startBytes: number
  endBytes: number
  /** (end - start) / start, percent */
  driftPct: number
  /** least-squares slope of RSS from the start sample on, MB per minute */
  slopeMbPerMin: number
  /** the sample taken as the start (its t) */
  startT: number
}

/**
 * RSS at `startAt` seconds (the nearest sample) against the last sample; the slope over the samples
 * from that one on.
 */
export function rssDrift(samples: RssSample[], startAt: number): Drift {
  if (samples.length < 2) throw new Error('rssDrift needs at least two samples')
  let si = 0
  for (let i = 1; i < samples.length; i++) if (Math.abs(samples[i].t - startAt) < Math.abs(samples[si].t - startAt)) si = i
  if (si === samples.length - 1) si = Math.max(0, si - 1)
  const start = samples[si]
  const end = samples[samples.length - 1]
  const tail = samples.slice(si)
  const mx = tail.reduce((a, s) => a + s.t, 0) / tail.length
  const my = tail.reduce((a, s) => a + s.rssBytes, 0) / tail.length
  let sxy = 0
  let sxx = 0
  for (const s of tail) {
    sxy += (s.t - mx) * (s.rssBytes - my)
    sxx += (s.t - mx) ** 2
  }
  const slope = sxx === 0 ? 0 : sxy / sxx // bytes per second
  return {
    startBytes: start.rssBytes,
    endBytes: end.rssBytes,
    driftPct: Math.round(((end.rssBytes - start.rssBytes) / start.rssBytes) * 1000) / 10,
    slopeMbPerMin: Math.round(((slope * 60) / 1024 / 1024) * 100) / 100,
    startT: start.t,
  }
}

async function h2load(url: string, connections: number, durationSec: number, rpsPerClient?: number, warmupSec = 0): Promise<H2loadCounts> {
  const args = ['--h1', '-t1', `-c${connections}`, '-m1', `-D${durationSec}`]
  if (warmupSec > 0) args.push(`--warm-up-time=${warmupSec}`)
  if (rpsPerClient !== undefined) args.push(`--rps=${rpsPerClient}`)
  args.push(url)
  const r = await runCapture('h2load', args, { timeoutMs: (durationSec + warmupSec + 60) * 1000 })
  if (r.error) throw new Error(`h2load ${args.join(' ')}: ${r.error.message} (apt-get install -y nghttp2-client)`)
  return parseH2loadCounts(r.stdout)
}

/** The weft_*_requests_total sum of a /metrics text (the scrape is also a check that metrics are on). */
function requestsTotal(text: string): number {
  let n = 0
  for (const line of text.split('\n')) {
    const m = /^\w+_requests_total(?:\{[^}]*\})? ([0-9.e+]+)$/.exec(line)
    if (m) n += Number(m[1])
  }
  return n
}

export async function runSoakBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      load: { type: 'string' },
      interval: { type: 'string' },
      probe: { type: 'string' },
      connections: { type: 'string' },
      'access-log': { type: 'boolean', default: false },
      'no-save': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const number = (name: string, v: string | undefined, def: number, min: number): number => {
    const n = v === undefined ? def : Number(v)
    if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got ${JSON.stringify(v)}`)
    return n
  }
  const durationSec = Math.round(number('duration', values.duration, 300, 10))
  const loadPct = number('load', values.load, 70, 1)
  const intervalSec = number('interval', values.interval, 5, 1)
  const probeSec = Math.round(number('probe', values.probe, 10, 2))
  const connections = Math.round(number('connections', values.connections, 50, 1))
  const accessLog = values['access-log'] ?? false
  if ((await runCapture('h2load', ['--version'])).error) {
    console.error('h2load is not installed: apt-get install -y nghttp2-client')
    return 1
  }

  const loadStart = os.loadavg()
  const startedAt = new Date()
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-soak-'))
  trackTempDir(tmp)
  const dirFor = (n: string): string => {
    const d = path.join(tmp, n)
    fs.mkdirSync(d, { recursive: true })
    return d
  }
  const [up1, up2, port, adminPort] = await freePorts(4)
  const upstreamPorts = [up1, up2]
  const upstream = await startUpstream({ dir: dirFor('upstream'), upstreamPorts, port: up1 })

  const telemetry: Telemetry = {
    metrics: { enabled: true },
    tracing: { enabled: false },
    accessLog: accessLog ? { enabled: true, path: path.join(tmp, 'access.log') } : { enabled: false },
  }
  const dir = dirFor('weft')
  const configFile = path.join(dir, 'weft.yaml')
  fs.writeFileSync(configFile, `# generated by bench/soak.ts\n${YAML.stringify(weftBenchConfig({ port, adminPort, upstreamPorts, telemetry }))}`)
  const proc = spawnGroup('weft', process.execPath, [WEFT_BIN, 'proxy', '--config', configFile], {
    logFile: path.join(dir, 'weft.log'),
    env: { ...process.env, WEFT_LOG_LEVEL: 'warn' },
  })
  const weft = await finishStart({ name: 'weft', proc, port, upstreamPorts, readyPort: adminPort, readyPath: '/ready', readyTimeoutMs: 20000 })
  const url = `http://127.0.0.1:${port}/`
  log(`${os.cpus().length} cores, load ${loadStart.map((l) => l.toFixed(2)).join(' ')}; Weft pid ${weft.pid}, metrics on${accessLog ? ', access log on' : ''}`)
  const idleRss = readMem(weft.pid).rssBytes

  const max = await h2load(url, connections, probeSec, undefined, 3)
  const perClient = Math.max(1, Math.round((max.rps * loadPct) / 100 / connections))
  const target = perClient * connections
  log(`max rate ${max.rps.toFixed(0)} req/s (h2load --h1 -c${connections}, ${probeSec} s); soak at ${target} req/s (${perClient}/s per client, ${((target / max.rps) * 100).toFixed(0)} %) for ${durationSec} s`)

  // The soak, sampled while h2load runs.
  const samples: RssSample[] = []
  const scrapes: { t: number; requests: number; bytes: number }[] = []
  let scrapeErrors = 0
  const t0 = performance.now()
  const soak = h2load(url, connections, durationSec, perClient)
  let running = true
  void soak.finally(() => (running = false))
  const sampler = (async () => {
    for (let next = intervalSec; running; next += intervalSec) {
      const wait = t0 + next * 1000 - performance.now()
      if (wait > 0) await sleep(wait)
      if (!running) break
      const t = Math.round((performance.now() - t0) / 100) / 10
      if (weft.deadReason() !== null) break
      samples.push({ t, rssBytes: readMem(weft.pid).rssBytes })
      const m = await httpGet(adminPort, '/metrics', 4000).catch(() => null)
      if (m === null || m.status !== 200) scrapeErrors++
      else scrapes.push({ t, requests: requestsTotal(m.body), bytes: m.body.length })
      if (samples.length % Math.max(1, Math.round(60 / intervalSec)) === 0) log(`  ${t.toFixed(0)} s: RSS ${mb(samples[samples.length - 1].rssBytes)} MB`)
    }
  })()
  let result: H2loadCounts
  try {
    result = await soak
  } finally {
    running = false
    await sampler
  }
  // the RSS once the load is over (the last sample during the load is the "end" of the drift)
  samples.push({ t: Math.round((performance.now() - t0) / 100) / 10, rssBytes: readMem(weft.pid).rssBytes })
  const dead = weft.deadReason()
  await weft.stop()
  await upstream.stop()
  const loadEnd = os.loadavg()
  if (dead !== null) {
    console.error(`[soak] Weft died during the soak: ${dead}`)
    return 2
  }
  const during = samples.slice(0, -1)
  const startAt = Math.min(60, durationSec / 5)
  const d = rssDrift(during, startAt)
  const errors = h2loadErrors(result)

  console.log('')
  console.log(`Weft soak bench: ${os.cpus().length} cores, node ${process.version}, Weft with metrics on${accessLog ? ' and the access log' : ''}, h2load --h1 -c${connections}`)
  console.log(`Load average at start ${loadStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadEnd.map((l) => l.toFixed(2)).join(' ')}`)
  console.log(`max rate ${max.rps.toFixed(0)} req/s; soak ${durationSec} s at ${target} req/s asked (${loadPct} %), ${result.rps.toFixed(0)} req/s reached, ${errors} errors (failed ${result.failed}, errored ${result.errored}, timeout ${result.timeout}, 4xx ${result.status[2]}, 5xx ${result.status[3]})`)
  console.log(`RSS: idle ${mb(idleRss)} MB; at ${d.startT.toFixed(0)} s ${mb(d.startBytes)} MB; at the end ${mb(d.endBytes)} MB; drift ${d.driftPct} % (slope ${d.slopeMbPerMin} MB/min); after the load ${mb(samples[samples.length - 1].rssBytes)} MB`)
  console.log(`RSS every ${intervalSec} s (MB): ${during.map((s) => mb(s.rssBytes).toFixed(1)).join(' ')}`)
  if (scrapeErrors > 0) console.log(`/metrics failed ${scrapeErrors} of ${scrapeErrors + scrapes.length} scrapes`)
  const out = {
    soak_rss_start_mb: mb(d.startBytes),
    soak_rss_end_mb: mb(d.endBytes),
    soak_drift_pct: d.driftPct,
    soak_rate: Math.round(result.rps),
    soak_errors: errors,
    soak_target_rate: target,
    soak_max_rate: Math.round(max.rps),
    soak_duration_s: durationSec,
    soak_rss_start_at_s: d.startT,
    soak_slope_mb_per_min: d.slopeMbPerMin,
    soak_idle_rss_mb: mb(idleRss),
    soak_metrics_scrapes: scrapes.length,
    soak_metrics_scrape_errors: scrapeErrors,
    soak_requests_counted: scrapes.length > 0 ? scrapes[scrapes.length - 1].requests : null,
    soak_access_log: accessLog,
    loadavg: [loadStart[0], loadEnd[0]].map((l) => Math.round(l * 100) / 100),
  }
  if (!values['no-save']) {
    const dirOut = path.join(path.dirname(new URL(import.meta.url).pathname), 'results')
    fs.mkdirSync(dirOut, { recursive: true })
    const file = path.join(dirOut, `soak-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`)
    fs.writeFileSync(file, `${JSON.stringify({ ...out, samples: during, afterLoad: samples[samples.length - 1], scrapes, max, result }, null, 2)}\n`)
    console.log(`results: ${path.relative(process.cwd(), file)}`)
  }
  await cleanupAll()
  console.log(JSON.stringify(out))
  return errors > 0 || scrapeErrors > 0 ? 2 : 0
}

