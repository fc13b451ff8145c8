// Weft's headline benchmark: the same wrk workload against the upstream directly and through Weft,
// HAProxy, nginx, fast-proxy and http-proxy, all single-threaded, in one run. See bench/README.md.
//
//   node bench/run.ts [--quick | --telemetry | --policy | --tcp] [--only weft,haproxy] [--duration 10] [--repeat N] [--weft-config FILE]
//   node bench/run.ts --overload [--quick] [--seconds S]   (bench/overload.ts: adaptive concurrency at 2x an upstream's capacity)
//   node bench/run.ts --soak [--duration 300] [--load 70]   (bench/soak.ts: RSS drift at 70 % of the max rate, metrics on)
//   node bench/run.ts --grpc [--quick] [--duration 10] [--repeat N] [--clients 10] [--streams 10]   (bench/grpc.ts)
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ChildProcess } from 'node:child_process'
import { freePorts } from './net.ts'
import { readCpuSeconds, readMem } from './proc.ts'
import { cleanupAll, cleanupAllSync, runCapture, tailFile, trackTempDir } from './spawn.ts'
import { haveWrk, runWrk, wrkArgs, wrkVersion, type WrkResult } from './wrk.ts'
import {
  formatTable,
  quickSummary,
  ROW_NAMES,
  summarize,
  TELEMETRY_ROWS,
  POLICY_ROWS,
  TCP_ROWS,
  tcpSummary,
  telemetrySummary,
  WEFT_VARIANT_ROWS,
  type RowName,
  type RowResult,
  type Sample,
} from './report.ts'
import type { Peer, PeerContext } from './peers/types.ts'
import { nginxVersion, startNginxProxy, startUpstream } from './peers/nginx.ts'
import { haproxyVersion, startHaproxy, startHaproxyTcp } from './peers/haproxy.ts'
import { startFastProxy, startHttpProxy } from './peers/node-proxies.ts'
import { isWeftRow, startWeft, startZipkinSink, telemetryFacts, TRACING_SAMPLING_PERCENT, WEFT_BIN, WEFT_ROWS, type ZipkinSink } from './peers/weft.ts'

const INSTALL_HINT = 'apt-get install -y haproxy nginx-light wrk'
const here = path.dirname(fileURLToPath(import.meta.url))
const RESULTS_DIR = path.join(here, 'results')

const USAGE = `usage: node bench/run.ts [options]      (npm run bench -- [options])
  --quick              direct, weft, haproxy only; 4 s runs, 1 s warm-up; < 60 s; last stdout line is a JSON summary
  --telemetry          direct, weft, weft+metrics, weft+tracing, weft+accesslog, weft+explain, haproxy: the cost of each
                       telemetry feature against plain weft (column "vs weft"); last stdout line is a JSON summary
  --policy             direct, weft, weft+policy, haproxy: the cost of the traffic policy (route match,
                       weighted split, retries, a rate limit that never triggers, circuit breaker)
  --tcp                TCP pass-through: direct, weft-tcp (a protocol: tcp listener), haproxy-tcp (mode tcp);
                       the same keep-alive wrk load through the tunnels; last stdout line is a JSON summary
  --mtls               two proxies in a row, plain and with mutual TLS on the hop: Weft vs HAProxy (bench/mtls.ts)
  --grpc               gRPC unary and server-streaming (100 x 1 KiB messages a call) with h2load: direct (an h2c
                       upstream), weft (h2c → http2 cluster), haproxy (proto h2 both ways); options --clients,
                       --streams, --duration, --warmup, --repeat, --quick
  --h2-hop             HTTP/1.1 client through two sidecars: HTTP/2 hop vs HTTP/1.1 hop between them (bench/h2hop.ts;
                       options --connections, --duration, --warmup, --repeat, --quick); last stdout line is JSON
  --footprint          idle RSS, RSS after load, ready time, RSS with 10k idle connections: Weft, HAProxy, nginx
                       (bench/footprint.ts; --footprint --help for its options); last stdout line is JSON
  --access-log-cost    plain weft and weft+accesslog side by side, many short alternated rounds: the log's cost as
                       CPU per request and req/s ratios, median and IQR (bench/access-log-cost.ts; --access-log-cost
                       --help for its options); last stdout line is JSON
  --soak               RSS drift of one sidecar (metrics on) driven at 70 % of its max rate for 5 minutes by
                       h2load --rps (bench/soak.ts; --soak --help for its options); last stdout line is JSON
  --only LIST          rows to measure, comma-separated: ${ROW_NAMES.join(',')} (direct is always added)
  --duration SEC       seconds of each measured wrk run (default 10, quick 4)
  --warmup SEC         seconds of the warm-up run before each row's measurement (default 2, quick 1)
  --repeat N           measuring rounds, alternating the row order; the table shows medians (default 1)
  --weft-config FILE   run Weft with this config instead of the generated one ({{UPSTREAM_PORT_1}},
                       {{UPSTREAM_PORT_2}}, {{PORT}}, {{ADMIN_PORT}} are replaced if present)
  --no-save            do not write bench/results/*.json
  -h, --help`

interface Options {
  quick: boolean
  telemetry: boolean
  tcp: boolean
  rows: RowName[]
  durationSec: number
  warmupSec: number
  repeat: number
  weftConfig?: string
  save: boolean
  connections: number
}

function fail(msg: string, code = 1): never {
  console.error(msg)
  process.exit(code)
}

function parseOptions(argv: string[]): Options {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        telemetry: { type: 'boolean', default: false },
        policy: { type: 'boolean', default: false },
        tcp: { type: 'boolean', default: false },
        only: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        repeat: { type: 'string' },
        'weft-config': { type: 'string' },
        'no-save': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 1)
  }
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const quick = values.quick ?? false
  const telemetry = values.telemetry ?? false
  const num = (name: string, v: string | undefined, def: number, min: number): number => {
    if (v === undefined) return def
    const n = Number(v)
    if (!Number.isFinite(n) || n < min) fail(`--${name} must be a number >= ${min}, got ${JSON.stringify(v)}`)
    return n
  }
  const policy = values.policy ?? false
  const tcp = values.tcp ?? false
  let rows: RowName[] = telemetry ? [...TELEMETRY_ROWS] : policy ? [...POLICY_ROWS] : tcp ? [...TCP_ROWS] : quick ? ['direct', 'weft', 'haproxy'] : ROW_NAMES.filter((n) => !n.endsWith('-tcp'))
  if (values.only) {
    const wanted = values.only.split(',').map((s) => s.trim()).filter(Boolean)
    const unknown = wanted.filter((w) => !(ROW_NAMES as readonly string[]).includes(w))
    if (unknown.length) fail(`--only: unknown row(s) ${unknown.join(', ')}; known: ${ROW_NAMES.join(', ')}`)
    rows = ROW_NAMES.filter((n) => n === 'direct' || wanted.includes(n))
  }
  const weftConfig = values['weft-config']
  if (weftConfig && !fs.existsSync(weftConfig)) fail(`--weft-config: ${weftConfig} does not exist`)
  return {
    quick,
    telemetry,
    tcp,
    rows,
    durationSec: Math.round(num('duration', values.duration, quick ? 4 : 10, 1)),
    warmupSec: Math.round(num('warmup', values.warmup, quick ? 1 : 2, 0)),
    repeat: Math.round(num('repeat', values.repeat, 1, 1)),
    weftConfig: weftConfig ? path.resolve(weftConfig) : undefined,
    save: !values['no-save'],
    connections: 50,
  }
}

const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`)
}

let currentWrk: ChildProcess | null = null
let zipkin: ZipkinSink | null = null

async function stopZipkin(): Promise<void> {
  const z = zipkin
  zipkin = null
  await z?.close()
}
let interrupted = false

function installSignalHandlers(): void {
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return
    interrupted = true
    log(`${sig}: stopping every started process`)
    currentWrk?.kill('SIGKILL')
    void cleanupAll().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  process.on('exit', () => cleanupAllSync())
}

const STARTERS: Record<Exclude<RowName, 'direct'>, (ctx: PeerContext) => Promise<Peer>> = {
  weft: startWeft,
  'weft+metrics': startWeft,
  'weft+tracing': startWeft,
  'weft+accesslog': startWeft,
  'weft+explain': startWeft,
  'weft+policy': startWeft,
  'weft-tcp': startWeft,
  haproxy: startHaproxy,
  'haproxy-tcp': startHaproxyTcp,
  nginx: startNginxProxy,
  'fast-proxy': startFastProxy,
  'http-proxy': startHttpProxy,
}

async function wrk(url: string, connections: number, durationSec: number): Promise<WrkResult> {
  if (interrupted) throw new Error('interrupted')
  try {
    return await runWrk({ url, connections, durationSec, latency: true, onChild: (c) => (currentWrk = c) })
  } finally {
    currentWrk = null
  }
}

/** One round of one row: warm-up, -c50 throughput run, -c1 latency run, CPU and memory around them. */
async function measure(peer: Peer, upstream: Peer, opts: Options, roundNo: number): Promise<Sample> {
  const url = `http://127.0.0.1:${peer.port}/`
  if (opts.warmupSec > 0) await wrk(url, opts.connections, opts.warmupSec)
  const cpu0 = readCpuSeconds(peer.pid)
  const up0 = readCpuSeconds(upstream.pid)
  const throughput = await wrk(url, opts.connections, opts.durationSec)
  const latency = await wrk(url, 1, opts.durationSec)
  const cpu1 = readCpuSeconds(peer.pid)
  const up1 = readCpuSeconds(upstream.pid)
  const mem = readMem(peer.pid)
  const ticks = (s: number): number => Math.round(s * 100) / 100
  return { round: roundNo, throughput, latency, cpuSec: ticks(cpu1 - cpu0), upstreamCpuSec: ticks(up1 - up0), mem }
}

async function firstLine(cmd: string, args: string[]): Promise<string | null> {
  const r = await runCapture(cmd, args)
  return r.error || r.code !== 0 ? null : r.stdout.trim().split('\n')[0] || null
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2))
  const startedAt = new Date()
  const loadavgAtStart = os.loadavg()

  // Tools. wrk and nginx (the upstream) are required; a missing haproxy only skips its row.
  const [wrkOk, wrkVer, haVer, ngVer] = await Promise.all([haveWrk(), wrkVersion(), haproxyVersion(), nginxVersion()])
  const missing = [!wrkOk && 'wrk (the load generator)', !ngVer && "nginx (the benchmark's upstream)", !haVer && 'haproxy']
    .filter((m): m is string => typeof m === 'string')
  if (!wrkOk || !ngVer) fail(`not installed: ${missing.join(', ')}; install the benchmark tools with:\n  ${INSTALL_HINT}`)

  installSignalHandlers()
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-'))
  trackTempDir(tmpRoot)
  const dirFor = (name: string): string => {
    const d = path.join(tmpRoot, name)
    fs.mkdirSync(d, { recursive: true })
    return d
  }

  const rows: RowResult[] = opts.rows.map((name) => ({ name, samples: [], roundErrors: [] }))
  const rowOf = (n: RowName): RowResult => rows.find((r) => r.name === n)!
  for (const ha of ['haproxy', 'haproxy-tcp'] as const) {
    if (!haVer && opts.rows.includes(ha)) {
      rowOf(ha).error = `haproxy is not installed (skipped); install with: ${INSTALL_HINT}`
      log(rowOf(ha).error!)
    }
  }

  // Two upstream ports, one traffic port per row, one admin port per Weft row (they all run at once).
  const weftRows = Object.keys(WEFT_ROWS)
  const ports = await freePorts(2 + ROW_NAMES.length + weftRows.length)
  const upstreamPorts = ports.slice(0, 2)
  const portOf = (n: RowName): number => ports[2 + ROW_NAMES.indexOf(n)]
  const adminPortOf = (n: string): number => ports[2 + ROW_NAMES.length + weftRows.indexOf(n)]

  log(`${os.cpus().length} cores; wrk -t1 -c${opts.connections}/-c1 -d${opts.durationSec}s, warm-up ${opts.warmupSec}s, rounds ${opts.repeat}`)
  log(`starting upstream nginx (1 worker) on 127.0.0.1:${upstreamPorts.join(' and :')}`)
  const upstream = await startUpstream({ dir: dirFor('upstream'), upstreamPorts, port: upstreamPorts[0] })
  const peers = new Map<RowName, Peer>([['direct', upstream]])
  Object.assign(rowOf('direct'), { pid: upstream.pid, port: upstream.port, info: upstream.info })
  if (opts.rows.includes('weft+tracing')) {
    zipkin = await startZipkinSink()
    log(`Zipkin sink for weft+tracing (${TRACING_SAMPLING_PERCENT} % sampling) at ${zipkin.url}`)
  }

  for (const row of rows) {
    if (row.name === 'direct' || row.error || interrupted) continue
    log(`starting ${row.name} on 127.0.0.1:${portOf(row.name)}`)
    try {
      const ctx: PeerContext = {
        dir: dirFor(row.name),
        upstreamPorts,
        port: portOf(row.name),
        options: isWeftRow(row.name)
          ? { adminPort: String(adminPortOf(row.name)), configFile: opts.weftConfig, row: row.name, zipkinUrl: zipkin?.url }
          : undefined,
      }
      const peer = await STARTERS[row.name](ctx)
      peers.set(row.name, peer)
      Object.assign(row, { pid: peer.pid, port: peer.port, info: peer.info })
      const seen = (peer.info.upstreamPortsSeen as number[] | undefined) ?? []
      if (seen.length < upstreamPorts.length) {
        row.roundErrors.push(`load balancing: only upstream port(s) ${seen.join(', ') || 'none'} answered 4 fresh requests`)
      }
    } catch (err) {
      row.error = `failed to start: ${(err as Error).message}`
      log(`${row.name}: ${row.error}`)
    }
  }

  const measurable = rows.filter((r) => peers.has(r.name))
  for (let r = 1; r <= opts.repeat && !interrupted; r++) {
    const order = r % 2 === 1 ? measurable : [...measurable].reverse()
    for (const row of order) {
      if (interrupted) break
      const peer = peers.get(row.name)!
      log(`round ${r}/${opts.repeat}: ${row.name} (port ${peer.port}, pid ${peer.pid})`)
      try {
        const sample = await measure(peer, upstream, opts, r)
        row.samples.push(sample)
        log(`  ${row.name}: ${sample.throughput.rps.toFixed(0)} rps @${opts.connections}, p50 ${sample.latency.percentilesUs['50']} µs p99 ${sample.latency.percentilesUs['99']} µs @1`)
      } catch (err) {
        const dead = peer.deadReason()
        row.roundErrors.push(`round ${r}: ${dead ? `${dead} (during the measurement)` : (err as Error).message}`)
        log(`  ${row.name} round ${r} failed: ${(err as Error).message}`)
      }
    }
  }
  if (interrupted) return 130

  // What the Weft rows' telemetry produced (and a warning where an enabled feature produced nothing).
  for (const row of rows) {
    if (!isWeftRow(row.name) || !peers.has(row.name) || !row.info) continue
    const { facts, warning } = await telemetryFacts(row.name, row.info, zipkin)
    Object.assign(row.info, facts)
    if (warning && row.samples.length > 0) row.roundErrors.push(warning)
  }

  summarize(rows)
  const endedAt = new Date()
  // Anything the peers logged (Weft runs at warn level: normally nothing) goes into the results.
  for (const row of rows) {
    const logFile = row.info?.logFile
    if (typeof logFile === 'string' && row.info) {
      const tail = tailFile(logFile, 2000)
      if (tail) row.info.logTail = tail
      delete row.info.logFile // in the temp dir, removed at exit
    }
  }

  const gitCommit = await firstLine('git', ['-C', path.resolve(here, '..'), 'rev-parse', '--short', 'HEAD'])
  const cpus = os.cpus()
  const results = {
    date: startedAt.toISOString(),
    durationSec: (endedAt.getTime() - startedAt.getTime()) / 1000,
    mode: opts.telemetry ? (opts.quick ? 'telemetry-quick' : 'telemetry') : opts.tcp ? (opts.quick ? 'tcp-quick' : 'tcp') : opts.quick ? 'quick' : 'full',
    node: process.version,
    versions: { haproxy: haVer, nginx: ngVer, wrk: wrkVer, weftBin: WEFT_BIN, gitCommit },
    machine: {
      cores: cpus.length,
      cpuModel: cpus[0]?.model ?? null,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      totalMemMB: Math.round(os.totalmem() / 1024 / 1024),
      loadavgAtStart,
      loadavgAtEnd: os.loadavg(),
    },
    wrk: {
      threads: 1,
      throughput: wrkArgs({ url: 'URL', connections: opts.connections, durationSec: opts.durationSec, latency: true }).join(' '),
      latency: wrkArgs({ url: 'URL', connections: 1, durationSec: opts.durationSec, latency: true }).join(' '),
      warmup: opts.warmupSec > 0 ? wrkArgs({ url: 'URL', connections: opts.connections, durationSec: opts.warmupSec, latency: true }).join(' ') : null,
      path: '/',
    },
    repeat: opts.repeat,
    fairness: 'every proxy single-threaded: HAProxy nbthread 1; nginx worker_processes 1; Weft, fast-proxy and http-proxy one Node process each',
    weftVariants: {
      weft: 'metrics, tracing and access log off',
      'weft+metrics': 'telemetry.metrics.enabled: true (GET /metrics on the admin port; not scraped during the runs)',
      'weft+tracing': `telemetry.tracing: enabled, sampling ${TRACING_SAMPLING_PERCENT} %, Zipkin v2 to a sink in the harness that discards the spans`,
      'weft+accesslog': 'telemetry.accessLog: enabled, every request, to a file in the temp dir',
      'weft+explain': 'telemetry.explain.sampling: 1 (the decision trace of 1 % of the requests, kept in the ring, read by nobody)',
      'weft+policy': 'telemetry off; the default route split 90/10 over two clusters, retries 2 (budget on), a rate limit of 1e8/s, circuit breakers on both clusters',
      'weft-tcp': 'telemetry off; the listener is protocol: tcp (opaque, no detection) to a roundRobin cluster over both upstream ports',
    },
    upstream: { server: 'nginx, worker_processes 1, return 200 "hello world\\n" (12-byte body), access_log off', ports: upstreamPorts },
    rows: rows.map((r) => ({
      name: r.name,
      error: r.error ?? null,
      pid: r.pid ?? null,
      port: r.port ?? null,
      info: r.info ?? null,
      summary: r.summary ?? null,
      roundErrors: r.roundErrors,
      samples: r.samples,
    })),
  }

  let resultsFile: string | null = null
  if (opts.save) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true })
    resultsFile = path.join(RESULTS_DIR, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`)
    const json = `${JSON.stringify(results, null, 2)}\n`
    fs.writeFileSync(resultsFile, json)
    fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), json)
  }

  console.log('')
  console.log(
    `Weft bench (${results.mode}): ${cpus.length} cores, node ${process.version}, HAProxy ${haVer ?? '-'}, nginx ${ngVer}, wrk ${wrkVer ?? '?'}`,
  )
  console.log(
    `wrk -t1: rps@50 = -c${opts.connections} -d${opts.durationSec}s; latency = -c1 -d${opts.durationSec}s --latency; warm-up ${opts.warmupSec}s; ${opts.repeat} round(s)${opts.repeat > 1 ? ', medians' : ''}`,
  )
  console.log('Every proxy is single-threaded: HAProxy nbthread 1, nginx 1 worker, Weft/fast-proxy/http-proxy one Node process.')
  console.log(`Upstream: nginx 1 worker on 2 ports (12-byte body); proxies round-robin over both. CPU s = proxy CPU during the measured runs.`)
  if (rows.some((r) => (WEFT_VARIANT_ROWS as readonly string[]).includes(r.name))) {
    console.log(
      `Weft rows: weft = metrics, tracing, access log all off; weft+metrics = metrics on; weft+tracing = tracing at ${TRACING_SAMPLING_PERCENT} % to a local Zipkin sink; weft+accesslog = access log to a file. vs weft = rps / plain weft rps.`,
    )
  }
  console.log(`Load average at start ${loadavgAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other load skews results).`)
  console.log('')
  console.log(formatTable(rows))
  console.log('')
  if (resultsFile) console.log(`results: ${path.relative(process.cwd(), resultsFile)} (and bench/results/latest.json)`)
  if (opts.telemetry) console.log(JSON.stringify(telemetrySummary(rows, resultsFile)))
  else if (opts.tcp) console.log(JSON.stringify(tcpSummary(rows, resultsFile)))
  else if (opts.quick) console.log(JSON.stringify(quickSummary(rows, resultsFile)))

  return rows.some((r) => r.error) ? 2 : 0
}

let exitCode = 1
try {
  // --grpc: the gRPC unary rows (h2load; direct, weft, haproxy in HTTP/2 mode), a harness of its own
  if (process.argv.includes('--footprint')) exitCode = await (await import('./footprint.ts')).runFootprintBench(process.argv.slice(2).filter((a) => a !== '--footprint'))
  else if (process.argv.includes('--access-log-cost')) exitCode = await (await import('./access-log-cost.ts')).runAccessLogCostBench(process.argv.slice(2).filter((a) => a !== '--access-log-cost'))
  else if (process.argv.includes('--soak')) exitCode = await (await import('./soak.ts')).runSoakBench(process.argv.slice(2).filter((a) => a !== '--soak'))
  else if (process.argv.includes('--mtls')) exitCode = await (await import('./mtls.ts')).runMtlsBench(process.argv.slice(2).filter((a) => a !== '--mtls'))
  else if (process.argv.includes('--overload')) exitCode = await (await import('./overload.ts')).runOverloadBench(process.argv.slice(2).filter((a) => a !== '--overload'))
  else if (process.argv.includes('--h2-hop')) exitCode = await (await import('./h2hop.ts')).runH2HopBench(process.argv.slice(2).filter((a) => a !== '--h2-hop'))
  else if (process.argv.includes('--grpc')) exitCode = await (await import('./grpc.ts')).runGrpcBench(process.argv.slice(2).filter((a) => a !== '--grpc'))
  else exitCode = await main()
} catch (err) {
  console.error(`[bench] fatal: ${(err as Error).stack ?? err}`)
  exitCode = 1
} finally {
  await stopZipkin()
  await cleanupAll()
}
process.exit(exitCode)
