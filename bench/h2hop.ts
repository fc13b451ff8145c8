// The mesh's inter-proxy shape (`npm run bench -- --h2-hop`): an HTTP/1.1 client (wrk) → sidecar A
// → sidecar B → an HTTP/1.1 upstream (nginx, bench/peers/nginx.ts), with the hop between the two
// sidecars in HTTP/2 (A's cluster `protocol: http2`: one shared h2c connection, A bridges HTTP/1 to
// HTTP/2, B's `detect` listener takes the h2c preface and its HTTP/1 cluster takes the request on)
// against the same two sidecars with an HTTP/1.1 hop (A's cluster `protocol: http1`, a keep-alive
// pool). One sidecar B serves both (its `detect` listener takes either); two A's, one per hop
// protocol, are loaded one at a time.
//
// Rows: `direct` (wrk → nginx), `http1-hop`, `h2-hop`. Per row and round: a warm-up, wrk -t1 -c50
// (requests/s), wrk -t1 -c1 --latency (p50, p99); CPU of both sidecars from /proc during the two
// measured runs, per request. The ratios compare h2-hop with http1-hop of the same run.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import type { Bootstrap } from '../api/schema.ts'
import { freePorts, httpGet, sleep } from './net.ts'
import { startUpstream } from './peers/nginx.ts'
import { UPSTREAM_BODY } from './peers/types.ts'
import { readCpuSeconds, readMem } from './proc.ts'
import { cleanupAll, spawnGroup, trackTempDir, type Proc } from './spawn.ts'
import { runWrk, wrkErrorCount, type WrkResult } from './wrk.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const WEFT_BIN = path.resolve(here, '../bin/weft.js')
const RESULTS_DIR = path.join(here, 'results')

/** Sidecar A: an outbound listener, one route, a cluster of one endpoint (sidecar B) in `protocol`. */
function sidecarA(port: number, adminPort: number, bPort: number, protocol: 'http1' | 'http2'): Bootstrap {
  return {
    node: { id: `bench-a-${protocol}`, workload: 'bench-a', namespace: 'bench' },
    admin: { address: '127.0.0.1', port: adminPort },
    telemetry: { metrics: { enabled: false }, tracing: { enabled: false }, accessLog: { enabled: false } },
    listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ name: 'default', backends: [{ cluster: 'sidecar-b' }] }] }] }],
    clusters: [{ name: 'sidecar-b', protocol, endpoints: [{ address: '127.0.0.1', port: bPort }] }],
  }
}

/** Sidecar B: an inbound `detect` listener (HTTP/1.1 or h2c) to the HTTP/1.1 upstream. */
function sidecarB(port: number, adminPort: number, upstreamPort: number): Bootstrap {
  return {
    node: { id: 'bench-b', workload: 'bench-b', namespace: 'bench' },
    admin: { address: '127.0.0.1', port: adminPort },
    telemetry: { metrics: { enabled: false }, tracing: { enabled: false }, accessLog: { enabled: false } },
    listeners: [{ name: 'inbound', direction: 'inbound', address: '127.0.0.1', port, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ name: 'default', backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', protocol: 'http1', endpoints: [{ address: '127.0.0.1', port: upstreamPort }] }],
  }
}

async function startSidecar(name: string, dir: string, config: Bootstrap): Promise<Proc> {
  const file = path.join(dir, `${name}.yaml`)
  fs.writeFileSync(file, stringify(config))
  return spawnGroup(name, process.execPath, [WEFT_BIN, 'proxy', '--config', file], { logFile: path.join(dir, `${name}.log`), env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
}

/** GET / through port answers the upstream's body (10 s). */
async function ready(port: number, procs: Proc[]): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    for (const p of procs) {
      const dead = p.deadReason()
      if (dead !== null) throw new Error(dead)
    }
    try {
      const r = await httpGet(port, '/', 1000)
      if (r.status === 200 && r.body === UPSTREAM_BODY) return
      if (Date.now() > deadline) throw new Error(`GET / through ${port}: ${r.status} ${JSON.stringify(r.body.slice(0, 200))}`)
    } catch (err) {
      if (Date.now() > deadline) throw err
    }
    await sleep(100)
  }
}

interface Sample {
  throughput: WrkResult
  latency: WrkResult
  /** CPU seconds of sidecar A and of sidecar B during the two measured runs */
  cpuA: number
  cpuB: number
  rssA: number
}

interface Row {
  name: 'direct' | 'http1-hop' | 'h2-hop'
  port: number
  pidA: number
  samples: Sample[]
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

export async function runH2HopBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      repeat: { type: 'string', default: '1' },
      connections: { type: 'string', default: '50' },
      quick: { type: 'boolean', default: false },
      'no-save': { type: 'boolean', default: false },
    },
    strict: true,
  })
  const quick = values.quick ?? false
  const durationSec = quick ? 4 : Number(values.duration)
  const warmupSec = quick ? 1 : Number(values.warmup)
  const repeat = Number(values.repeat)
  const connections = Number(values.connections)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-h2hop-'))
  trackTempDir(tmp)
  const log = (m: string): void => void process.stderr.write(`[bench h2-hop] ${m}\n`)
  const [up1, up2, bPort, bAdmin, a1Port, a1Admin, a2Port, a2Admin] = await freePorts(8)
  const rows: Row[] = []
  let bPid = 0
  try {
    const upDir = path.join(tmp, 'upstream')
    fs.mkdirSync(upDir)
    const upstream = await startUpstream({ dir: upDir, upstreamPorts: [up1, up2], port: up1 })
    const b = await startSidecar('sidecar-b', tmp, sidecarB(bPort, bAdmin, up1))
    const a1 = await startSidecar('sidecar-a-http1', tmp, sidecarA(a1Port, a1Admin, bPort, 'http1'))
    const a2 = await startSidecar('sidecar-a-http2', tmp, sidecarA(a2Port, a2Admin, bPort, 'http2'))
    await ready(a1Port, [b, a1])
    await ready(a2Port, [b, a2])
    bPid = b.pid
    rows.push({ name: 'direct', port: up1, pidA: upstream.pid, samples: [] })
    rows.push({ name: 'http1-hop', port: a1Port, pidA: a1.pid, samples: [] })
    rows.push({ name: 'h2-hop', port: a2Port, pidA: a2.pid, samples: [] })
    for (let r = 1; r <= repeat; r++) {
      const order = r % 2 === 1 ? rows : [...rows].reverse()
      for (const row of order) {
        const url = `http://127.0.0.1:${row.port}/`
        log(`round ${r}/${repeat}: ${row.name}`)
        if (warmupSec > 0) await runWrk({ url, connections, durationSec: warmupSec })
        const a0 = readCpuSeconds(row.pidA)
        const b0 = readCpuSeconds(bPid)
        const throughput = await runWrk({ url, connections, durationSec })
        const latency = await runWrk({ url, connections: 1, durationSec, latency: true })
        const cpuA = readCpuSeconds(row.pidA) - a0
        const cpuB = readCpuSeconds(bPid) - b0
        row.samples.push({ throughput, latency, cpuA, cpuB, rssA: readMem(row.pidA).rssBytes / 1024 / 1024 })
        log(`  ${row.name}: ${throughput.rps.toFixed(0)} req/s, p50 ${latency.percentilesUs['50']} µs @1, errors ${wrkErrorCount(throughput) + wrkErrorCount(latency)}`)
      }
    }
  } finally {
    await cleanupAll()
  }
  const direct = rows.find((r) => r.name === 'direct')!
  const h1 = rows.find((r) => r.name === 'http1-hop')!
  const p50 = (r: Row): number => median(r.samples.map((s) => s.latency.percentilesUs['50']))
  const rps = (r: Row): number => median(r.samples.map((s) => s.throughput.rps))
  const summary = rows.map((r) => {
    const reqs = (s: Sample): number => s.throughput.requests + s.latency.requests
    const proxied = r.name !== 'direct'
    return {
      name: r.name,
      rps: Math.round(rps(r)),
      rpsVsHttp1Hop: Math.round((rps(r) / rps(h1)) * 100) / 100,
      p50Us: Math.round(p50(r)),
      p99Us: Math.round(median(r.samples.map((s) => s.latency.percentilesUs['99']))),
      addedP50Us: proxied ? Math.round(p50(r) - p50(direct)) : null,
      addedVsHttp1Hop: proxied ? Math.round(((p50(r) - p50(direct)) / (p50(h1) - p50(direct))) * 100) / 100 : null,
      cpuUsPerReqA: proxied ? Math.round(median(r.samples.map((s) => s.cpuA / reqs(s))) * 1e7) / 10 : null,
      cpuUsPerReqB: proxied ? Math.round(median(r.samples.map((s) => s.cpuB / reqs(s))) * 1e7) / 10 : null,
      rssMbA: proxied ? Math.round(median(r.samples.map((s) => s.rssA))) : null,
      errors: r.samples.reduce((a, s) => a + wrkErrorCount(s.throughput) + wrkErrorCount(s.latency), 0),
    }
  })
  console.log('')
  console.log(`Weft HTTP/2 hop between two sidecars: wrk -t1 -c${connections} -d${durationSec}s (req/s) and -c1 --latency (p50/p99); ${repeat} round(s); load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  console.log('| row | req/s | ×http1-hop | p50 µs @1 | p99 µs @1 | added p50 µs | ×http1-hop | CPU µs/req A | CPU µs/req B | errors |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const s of summary) {
    console.log(`| ${s.name} | ${s.rps} | ${s.rpsVsHttp1Hop} | ${s.p50Us} | ${s.p99Us} | ${s.addedP50Us ?? '–'} | ${s.addedVsHttp1Hop ?? '–'} | ${s.cpuUsPerReqA ?? '–'} | ${s.cpuUsPerReqB ?? '–'} | ${s.errors} |`)
  }
  if (!values['no-save']) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true })
    const file = path.join(RESULTS_DIR, `h2hop-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
    fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), mode: 'h2-hop', connections, durationSec, repeat, summary }, null, 2) + '\n')
    console.log(`results: ${path.relative(process.cwd(), file)}`)
  }
  console.log(JSON.stringify({ mode: 'h2-hop', summary }))
  return summary.some((s) => s.errors > 0) ? 2 : 0
}
