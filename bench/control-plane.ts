// The control plane at scale: N Services x M endpoints x P proxies connected over real gRPC
// streams. Snapshots from scratch (validate, translate, version and publish), the initial sync,
// then K endpoint changes, each timed from the change to every proxy's ACK. See bench/README.md.
//
//   node --expose-gc bench/control-plane.ts [--services 10000] [--endpoints 100000] [--namespaces 50]
//        [--proxies 1000] [--workers 2] [--changes 10] [--concurrency 8] [--sync full|warm] [--validate-proxies] [--no-save]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { CONTROL_PLANE_ENV, hasControlPlaneSettings, runWithControlPlaneSettings } from '../control-plane/runtime.ts'
import { DEFAULT_PUSH_THROTTLE } from '../control-plane/xds/budget.ts'
import { DEFAULTS, runCpBench, type CpBenchOptions, type CpBenchResult } from './cp/bench.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const RESULTS_DIR = path.join(here, 'results')

/** Targets of issue 5, on the 2-core bench machine. */
export const TARGETS = { translateMs: 1000, changeP99Ms: 1000 }

const USAGE = `usage: node --expose-gc bench/control-plane.ts [options]      (npm run bench:cp -- [options])
  --services N         Services (default ${DEFAULTS.services})
  --endpoints M        endpoints over all Services (default ${DEFAULTS.endpoints})
  --namespaces K       namespaces the Services and proxies are spread over (default ${DEFAULTS.namespaces})
  --proxies P          connected proxies, real gRPC streams (default ${DEFAULTS.proxies})
  --workers W          processes the proxies run in, 1-4 (default ${DEFAULTS.workers})
  --changes K          endpoint changes measured (default ${DEFAULTS.changes})
  --warmup N           endpoint changes before those, not counted (default ${DEFAULTS.warmupChanges})
  --concurrency C      proxies per worker waiting for their first snapshot at a time (default ${DEFAULTS.concurrency})
  --push-throttle N    the control plane's push throttle: complete snapshots written at a time (default: its own, ${DEFAULT_PUSH_THROTTLE}; 0: none)
  --sync MODE          initial sync: full (every proxy is sent the complete snapshot; default ${DEFAULTS.sync}) or warm
                       (one proxy per namespace and process is; the others connect declaring its versions)
  --validate-proxies   proxies also assemble and validate each config (slow at full size)
  --no-save            do not write bench/results/cp-*.json
  -h, --help`

function fail(msg: string): never {
  console.error(msg)
  process.exit(1)
}

function parse(argv: string[]): { opts: Partial<CpBenchOptions>; save: boolean } {
  let values
  try {
    values = parseArgs({
      args: argv,
      options: {
        services: { type: 'string' },
        endpoints: { type: 'string' },
        namespaces: { type: 'string' },
        proxies: { type: 'string' },
        workers: { type: 'string' },
        changes: { type: 'string' },
        warmup: { type: 'string' },
        concurrency: { type: 'string' },
        'push-throttle': { type: 'string' },
        'validate-proxies': { type: 'boolean', default: false },
        sync: { type: 'string' },
        'no-save': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`)
  }
  if (values.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const int = (name: string, v: string | undefined, min: number, max = Infinity): number | undefined => {
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < min || n > max) fail(`--${name}: expected an integer from ${min}${max === Infinity ? '' : ` to ${max}`}, got "${v}"`)
    return n
  }
  const opts: Partial<CpBenchOptions> = {}
  const set = <K extends keyof CpBenchOptions>(k: K, v: CpBenchOptions[K] | undefined) => {
    if (v !== undefined) opts[k] = v
  }
  set('services', int('services', values.services, 1))
  set('endpoints', int('endpoints', values.endpoints, 0))
  set('namespaces', int('namespaces', values.namespaces, 1))
  set('proxies', int('proxies', values.proxies, 1))
  set('workers', int('workers', values.workers, 1, 4))
  set('changes', int('changes', values.changes, 1))
  set('warmupChanges', int('warmup', values.warmup, 0))
  set('concurrency', int('concurrency', values.concurrency, 1))
  set('pushThrottle', int('push-throttle', values['push-throttle'], 0))
  if (values['validate-proxies']) opts.validateProxies = true
  if (values.sync !== undefined) {
    if (values.sync !== 'full' && values.sync !== 'warm') fail(`--sync: expected full or warm, got "${values.sync}"`)
    opts.sync = values.sync
  }
  return { opts, save: !values['no-save'] }
}

const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : '-')
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '-')

export function formatReport(r: CpBenchResult): string {
  const m = r.mesh
  const s = r.scratch
  const c = r.changePhase
  const ok = (good: boolean) => (good ? 'met' : 'MISSED')
  const lines = [
    `mesh: ${m.services} Services (${m.clusters} clusters), ${m.endpoints} endpoints (${m.clusterEndpoints} in clusters) in ${m.endpointSlices} EndpointSlices, ${m.httpRoutes} HTTPRoutes, ${m.trafficPolicies} TrafficPolicies, ${m.namespaces} namespaces; ${r.options.proxies} proxies in ${r.options.workers} processes`,
    '',
    'from scratch                         ms',
    `  validate (checkResources)    ${f0(s.validateMs).padStart(9)}`,
    `  translate, ${String(m.namespaces).padStart(3)} namespaces     ${f0(s.translateAllMs).padStart(9)}   target < ${TARGETS.translateMs} ms: ${ok(s.translateAllMs < TARGETS.translateMs)}`,
    `  version + check + publish    ${f0(s.publishMs).padStart(9)}   (${s.snapshots} snapshots; route table ${(s.routeTableBytes / 1e6).toFixed(1)} MB of JSON each)`,
    `  total                        ${f0(s.totalMs).padStart(9)}`,
    `  translate(), one namespace   ${f0(s.translateOneMs).padStart(9)}   (the plain function, for reference)`,
    `  heap ${f0(s.mem.heapUsedMB)} MB, RSS ${f0(s.mem.rssMB)} MB`,
    '',
    `initial sync (${r.sync.mode}): ${f1(r.sync.ms / 1000)} s, control plane CPU ${f1(r.sync.cpuS)} s, heap ${f0(r.sync.mem.heapUsedMB)} MB, RSS ${f0(r.sync.mem.rssMB)} MB, RSS max during sync ${f0(r.sync.maxRssMB)} MB`,
    `after the sync: RSS max ${f0(r.afterSync.maxRssMB)} MB until the first change; heap compactions ${r.afterSync.compactions} (last pause ${f0(r.afterSync.compactionPauseMs)} ms); RSS max over the run ${f0(Math.max(r.sync.maxRssMB, r.afterSync.maxRssMB, r.changePhase.maxRssMB))} MB`,
    '',
    '                                                   control plane (ms)                       change -> ACK (ms)',
    'change  slice                                validate translate snapshots  sent      ACKed      p50     p99     max',
    ...r.changes.map((x, i) =>
      `${String(i + 1).padStart(6)}  ${x.slice.padEnd(36).slice(0, 36)} ${f1(x.validateMs).padStart(8)} ${f1(x.translateMs).padStart(9)} ${f1(x.publishMs).padStart(9)} ${f0(x.sentMs).padStart(5)} ${`${x.acked}/${x.acked + x.missing}`.padStart(10)} ${f0(x.ackMs.p50).padStart(8)} ${f0(x.ackMs.p99).padStart(7)} ${f0(x.ackMs.max).padStart(7)}`),
    `   all  ${r.ackMs.n} ACKs`.padEnd(72) + `${f0(r.sentMs.p50).padStart(5)}  (p50)     ${f0(r.ackMs.p50).padStart(8)} ${f0(r.ackMs.p99).padStart(7)} ${f0(r.ackMs.max).padStart(7)}`,
    '',
    `change -> ACK at ${r.options.proxies} proxies: p50 ${f0(r.ackMs.p50)} ms, p99 ${f0(r.ackMs.p99)} ms, max ${f0(r.ackMs.max)} ms   target p99 < ${TARGETS.changeP99Ms} ms: ${ok(r.ackMs.p99 < TARGETS.changeP99Ms && r.complete)}`,
    `control plane during the changes: CPU ${f1(c.cpuS)} s over ${f1(c.ms / 1000)} s (${f0(c.cpuPerChangeMs)} ms a change, ${f0(c.sysCpuPerChangeMs)} ms of it in the kernel, ${f0(c.faultsPerChange)} page faults), RSS max ${f0(c.maxRssMB)} MB, heap ${f0(c.mem.heapUsedMB)} MB; proxy processes CPU ${f1(c.workerCpuS)} s`,
    `control plane's collections during the changes: ${c.gc.scavenges} scavenges, ${c.gc.markCompacts} mark-compacts, ${f0(c.gc.pauseMs)} ms of pauses; CPU ms a change by thread: ${Object.entries(c.threadCpuPerChangeMs).map(([t, ms]) => `${t} ${ms}`).join(', ')}`,
    `proxies: ${r.proxies.acks} ACKs, ${r.proxies.nacks} NACKs, ${r.proxies.streamErrors.length} stream errors; decode ${f0(r.proxies.decodeMs)} ms in all${r.options.validateProxies ? ' (with validation)' : ' (decodeBatch only, no validation)'}`,
  ]
  if (!r.complete) lines.push('!  not every proxy ACKed every change (see "missing", NACKs and stream errors in the JSON)')
  for (const e of [...r.proxies.streamErrors, ...r.proxies.nackErrors].slice(0, 5)) lines.push(`!  ${e}`)
  return lines.join('\n')
}

export function summary(r: CpBenchResult, file: string | null): Record<string, unknown> {
  return {
    services: r.mesh.services,
    endpoints: r.mesh.endpoints,
    namespaces: r.mesh.namespaces,
    proxies: r.options.proxies,
    validate_ms: Math.round(r.scratch.validateMs),
    translate_ms: Math.round(r.scratch.translateAllMs),
    publish_ms: Math.round(r.scratch.publishMs),
    scratch_total_ms: Math.round(r.scratch.totalMs),
    scratch_rss_mb: Math.round(r.scratch.mem.rssMB),
    sync_s: Math.round(r.sync.ms / 100) / 10,
    change_ack_p50_ms: Math.round(r.ackMs.p50),
    change_ack_p99_ms: Math.round(r.ackMs.p99),
    change_ack_max_ms: Math.round(r.ackMs.max),
    change_sent_p50_ms: Math.round(r.sentMs.p50),
    change_sent_max_ms: Math.round(r.sentMs.max),
    change_cp_cpu_ms: Math.round(r.changePhase.cpuPerChangeMs),
    change_cp_sys_ms: Math.round(r.changePhase.sysCpuPerChangeMs),
    change_cp_faults: Math.round(r.changePhase.faultsPerChange),
    change_cp_scavenges: r.changePhase.gc.scavenges,
    change_cp_mark_compacts: r.changePhase.gc.markCompacts,
    heap_compactions: r.afterSync.compactions,
    heap_compaction_pause_ms: Math.round(r.afterSync.compactionPauseMs),
    run_max_rss_mb: Math.round(Math.max(r.sync.maxRssMB, r.afterSync.maxRssMB, r.changePhase.maxRssMB)),
    change_cp_thread_cpu_ms: r.changePhase.threadCpuPerChangeMs,
    change_cp_gc_pause_ms: Math.round(r.changePhase.gc.pauseMs),
    sync_rss_mb: Math.round(r.sync.mem.rssMB),
    sync_rss_max_mb: Math.round(r.sync.maxRssMB),
    change_cp_rss_max_mb: Math.round(r.changePhase.maxRssMB),
    translate_target_met: r.scratch.translateAllMs < TARGETS.translateMs,
    change_target_met: r.ackMs.p99 < TARGETS.changeP99Ms && r.complete,
    complete: r.complete,
    results_file: file,
  }
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8' }).trim()
  } catch {
    return null
  }
}

/** The control plane's process settings this run has (control-plane/runtime.ts), for the report. */
function settings(): string {
  const given = [...Object.keys(CONTROL_PLANE_ENV), 'NODE_OPTIONS'].filter((k) => process.env[k] !== undefined).map((k) => `${k}=${process.env[k]}`)
  if (process.env.WEFT_CP_DEFAULTS === '1') return ['WEFT_CP_DEFAULTS=1 (defaults but what is set here)', ...given].join(' ')
  if (!hasControlPlaneSettings()) return ['without the control plane\'s settings', ...given].join(' ')
  return given.join(' ')
}

async function main(): Promise<void> {
  const { opts, save } = parse(process.argv.slice(2))
  // the control plane runs here as `weft control-plane` runs: with its glibc and V8 settings (re-executed once)
  const unset = runWithControlPlaneSettings()
  if (unset !== null) console.error(`(the control plane's memory settings are not applied: ${unset})`)
  if ((globalThis as { gc?: unknown }).gc === undefined) console.error('(run with node --expose-gc for heap numbers after a collection)')
  const started = new Date()
  console.log(`weft control-plane benchmark — ${started.toISOString()}, node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  console.log(`control plane process: ${settings()}`)
  const r = await runCpBench({ ...opts, log: (l) => console.log(l) })
  console.log('')
  console.log(formatReport(r))
  let file: string | null = null
  if (save) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true })
    const body = JSON.stringify({ date: started.toISOString(), node: process.version, settings: settings(), commit: gitCommit(), cores: os.cpus().length, cpu: os.cpus()[0]?.model, load: os.loadavg(), ...r }, null, 2)
    file = path.join(RESULTS_DIR, `cp-${started.toISOString().replace(/[:.]/g, '-')}.json`)
    fs.writeFileSync(file, body)
    fs.writeFileSync(path.join(RESULTS_DIR, 'cp-latest.json'), body)
    file = path.relative(process.cwd(), file)
  }
  console.log(JSON.stringify(summary(r, file)))
  process.exitCode = r.complete ? 0 : 2
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((err: unknown) => {
    console.error((err as Error).stack ?? String(err))
    process.exit(1)
  })
}
