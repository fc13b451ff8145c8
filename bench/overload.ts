// Overload bench (issue 17): `npm run bench -- --overload [--quick] [--seconds S]`.
//
// The upstream (bench/peers/queue-upstream.ts) has a knee: 4 workers, 20 ms a request, FIFO queue,
// so its capacity is 200 requests/s and its latency grows with the queue past 4 in flight. One
// Weft sidecar in front, in two rows: `adaptive` (the cluster's adaptiveConcurrency, defaults) and
// `none` (no limit). Load is open loop (requests sent on a fixed schedule whatever the answers,
// each timed from its scheduled send, so a slow answer hides nothing): first 25 % of the capacity
// (unloaded: its p99 is the reference), then twice the capacity for --seconds (default 10, quick
// 5; the first second, when the limiter measures minRTT, is not counted).
// Reported per row: p99 of the answered requests at 2x over the unloaded p99, goodput (200s
// answered while the load was on, a second) over the capacity, refusals a second.
//
// Then the global rate limit's cost: a fast upstream, wrk -t1 -c50 through one sidecar with and
// without a route globalRateLimit (a limit far above the load, so every request asks `weft
// ratelimit-server`, in memory, and passes), alternating rounds; the best requests/s of each and
// their ratio, and the p99 of ShouldRateLimit as a grpc-js client sees it (20 calls a second of its
// own) while the sidecar loads the server.
//
// The last line is JSON: adaptive_p99_ratio and goodput_ratio (the adaptive row), the same for the
// `none` row, rls_throughput_ratio and rls_p99_ms.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { stringify } from 'yaml'
import type { Bootstrap } from '../api/schema.ts'
import { freePorts, sleep } from './net.ts'
import { parseWrk } from './wrk.ts'
import { rateLimitService } from '../protos/ratelimit.ts'
import { credentials, Metadata } from '@grpc/grpc-js'

const WORKERS = 4
const SERVICE_MS = 20
const CAPACITY = (WORKERS * 1000) / SERVICE_MS // requests/s
const WEFT_BIN = fileURLToPath(new URL('../bin/weft.js', import.meta.url))
const UPSTREAM = fileURLToPath(new URL('./peers/queue-upstream.ts', import.meta.url))

interface Phase { p50: number; p99: number; ok: number; refused: number; failed: number; okPerSec: number; refusedPerSec: number }

function started(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('ready')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${out.slice(-500)}`)))
  })
}

/** Open loop at `rate`/s for `seconds`; requests scheduled before `countFrom` s are not counted. */
async function openLoop(url: string, rate: number, seconds: number, countFrom: number): Promise<Phase> {
  const pool = new Pool(url, { connections: 512, pipelining: 1, headersTimeout: 20_000, bodyTimeout: 20_000 })
  const lat: number[] = []
  let ok = 0
  /** answered 200 while the load was on (goodput: a backlog answered later is not throughput under load) */
  let okInWindow = 0
  let refused = 0
  let failed = 0
  const t0 = performance.now()
  const total = Math.round(rate * seconds)
  const inflight: Promise<void>[] = []
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    const counted = (due - t0) / 1000 >= countFrom
    inflight.push(
      pool.request({ path: '/work', method: 'GET', headers: { host: 'svc' } }).then(
        async (r) => {
          await r.body.dump()
          const ms = performance.now() - due
          if (!counted) return
          if (r.statusCode === 200) {
            ok++
            if (performance.now() <= t0 + seconds * 1000) okInWindow++
            lat.push(ms)
          } else if (r.statusCode === 503) refused++
          else failed++
        },
        () => {
          if (counted) failed++
        },
      ),
    )
  }
  await Promise.all(inflight)
  await pool.close()
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat.length === 0 ? NaN : lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!
  const span = seconds - countFrom
  return { p50: q(0.5), p99: q(0.99), ok, refused, failed, okPerSec: okInWindow / span, refusedPerSec: refused / span }
}

/** A sidecar with `config` (written to `file`), once its admin says ready. */
async function startProxy(file: string, config: Bootstrap, adminPort: number, children: ChildProcess[]): Promise<ChildProcess> {
  writeFileSync(file, stringify(config))
  const weft = spawn(process.execPath, [WEFT_BIN, 'proxy', '--config', file], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
  children.push(weft)
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => null)
    if (r?.status === 200) break
    await sleep(25)
  }
  return weft
}

const FAST_UPSTREAM = `require('node:http').createServer((q, s) => { q.resume(); q.on('end', () => { s.writeHead(200, { 'content-length': '3' }); s.end('ok\\n') }) }).listen(Number(process.argv[1]), '127.0.0.1', () => console.log('ready'))`

/** The global rate limit on vs off at the headline load (wrk -c50), and the RLS p99. */
async function rlsRows(dir: string, children: ChildProcess[], seconds: number): Promise<{ off: number; on: number; p99: number }> {
  const [upPort, rlsPort, weftPort, adminPort] = await freePorts(4)
  const up = spawn(process.execPath, ['-e', FAST_UPSTREAM, String(upPort)], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(up)
  await started(up, 'fast upstream')
  writeFileSync(join(dir, 'limits.yaml'), 'domain: bench\ndescriptors:\n  - key: route\n    rate_limit: { unit: second, requests_per_unit: 1000000000 }\n')
  const rls = spawn(process.execPath, [WEFT_BIN, 'ratelimit-server', '-c', join(dir, 'limits.yaml'), '--listen', `127.0.0.1:${rlsPort}`], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
  children.push(rls)
  const { Client: C } = rateLimitService()
  const probe = new C(`127.0.0.1:${rlsPort}`, credentials.createInsecure())
  const ask = () => new Promise<number>((resolve, reject) => {
    const t0 = performance.now()
    ;(probe as unknown as { ShouldRateLimit: (req: unknown, md: Metadata, o: unknown, cb: (err: Error | null) => void) => void }).ShouldRateLimit(
      { domain: 'bench', descriptors: [{ entries: [{ key: 'route', value: 'probe' }] }] }, new Metadata(), { deadline: Date.now() + 2000 },
      (err) => (err ? reject(err) : resolve(performance.now() - t0)))
  })
  for (let i = 0; i < 100; i++) {
    try {
      await ask()
      break
    } catch {
      await sleep(50)
    }
  }
  const rows: Record<'off' | 'on', number[]> = { off: [], on: [] }
  const lat: number[] = []
  for (let round = 0; round < 2; round++) {
    for (const row of (round === 0 ? ['off', 'on'] : ['on', 'off']) as ('off' | 'on')[]) {
      const limit = { globalRateLimit: { service: `127.0.0.1:${rlsPort}`, domain: 'bench', descriptors: [{ entries: [{ key: 'route', from: 'route' as const }] }], timeout: '100ms' } }
      const config: Bootstrap = {
        admin: { address: '127.0.0.1', port: adminPort! },
        listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: weftPort!, routeTable: 'rt' }],
        routeTables: [{ name: 'rt', virtualHosts: [{ name: 'svc', domains: ['*'], routes: [{ name: 'all', backends: [{ cluster: 'app' }], ...(row === 'on' ? limit : {}) }] }] }],
        clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: upPort! }] }],
        telemetry: { metrics: { enabled: false } },
      }
      const weft = await startProxy(join(dir, `rls-${row}.yaml`), config, adminPort!, children)
      const url = `http://127.0.0.1:${weftPort}/`
      const wrk = (secs: number) => new Promise<string>((resolve) => {
        const p = spawn('wrk', ['-t1', '-c50', `-d${secs}s`, url], { stdio: ['ignore', 'pipe', 'ignore'] })
        let out = ''
        p.stdout.on('data', (d: Buffer) => { out += d.toString() })
        p.on('close', () => resolve(out))
      })
      await wrk(1) // warm-up
      let probing = row === 'on'
      const prober = (async () => {
        while (probing) {
          lat.push(await ask().catch(() => Infinity))
          await sleep(50)
        }
      })()
      const w = parseWrk(await wrk(seconds))
      probing = false
      await prober
      if (w.non2xx3xx > 0) throw new Error(`global rate limit ${row}: ${w.non2xx3xx} responses were not 2xx`)
      rows[row].push(w.rps)
      weft.kill('SIGKILL')
      await new Promise((r) => weft.once('exit', r))
    }
  }
  probe.close()
  rls.kill('SIGTERM')
  up.kill('SIGKILL')
  lat.sort((a, b) => a - b)
  const p99 = lat[Math.min(lat.length - 1, Math.floor(0.99 * lat.length))] ?? NaN
  const median = lat[Math.floor(lat.length / 2)] ?? NaN
  const off = Math.max(...rows.off)
  const on = Math.max(...rows.on)
  console.log(`global rate limit (wrk -t1 -c50, ${seconds} s, 2 rounds, best of each): off ${off.toFixed(0)} rps (${rows.off.map((x) => x.toFixed(0)).join(', ')}), on ${on.toFixed(0)} rps (${rows.on.map((x) => x.toFixed(0)).join(', ')}): ${(on / off).toFixed(3)}x; ShouldRateLimit p99 ${p99.toFixed(2)} ms, median ${median.toFixed(2)} ms over ${lat.length} probe calls during the on rounds`)
  return { off, on, p99 }
}

export async function runOverloadBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false }, seconds: { type: 'string' } }, strict: false })
  const seconds = Number(values.seconds ?? (values.quick ? 5 : 10))
  const dir = mkdtempSync(join(tmpdir(), 'weft-overload-'))
  const children: ChildProcess[] = []
  const stop = () => { for (const c of children) if (c.exitCode === null) c.kill('SIGKILL') }
  process.on('exit', stop)
  try {
    const [upPort, weftPort, adminPort] = await freePorts(3)
    const up = spawn(process.execPath, [UPSTREAM, String(upPort), String(WORKERS), String(SERVICE_MS)], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(up)
    await started(up, 'queue upstream')
    const rows: Record<string, { unloaded: Phase; overload: Phase }> = {}
    for (const row of ['adaptive', 'none'] as const) {
      const config: Bootstrap = {
        admin: { address: '127.0.0.1', port: adminPort! },
        listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: weftPort!, routeTable: 'rt' }],
        routeTables: [{ name: 'rt', virtualHosts: [{ name: 'svc', domains: ['*'], routes: [{ name: 'all', backends: [{ cluster: 'app' }] }] }] }],
        clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: upPort! }], ...(row === 'adaptive' ? { adaptiveConcurrency: {} } : {}) }],
        telemetry: { metrics: { enabled: false } },
      }
      const weft = await startProxy(join(dir, `${row}.yaml`), config, adminPort!, children)
      const url = `http://127.0.0.1:${weftPort}`
      const unloaded = await openLoop(url, CAPACITY / 4, 4, 1)
      const overload = await openLoop(url, CAPACITY * 2, seconds, 1)
      rows[row] = { unloaded, overload }
      console.log(`${row.padEnd(9)} unloaded p99 ${unloaded.p99.toFixed(1)} ms | at 2x capacity: p50 ${overload.p50.toFixed(1)} ms, p99 ${overload.p99.toFixed(1)} ms (${(overload.p99 / unloaded.p99).toFixed(2)}x unloaded), goodput ${overload.okPerSec.toFixed(0)}/s (${(overload.okPerSec / CAPACITY).toFixed(2)} of capacity), refused ${overload.refusedPerSec.toFixed(0)}/s, failed ${overload.failed}`)
      weft.kill('SIGKILL')
      await new Promise((r) => weft.once('exit', r))
      await sleep(500) // the upstream's queue empties
    }
    const rls = await rlsRows(dir, children, values.quick ? 4 : 8)
    const load = (await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')
    console.log(`upstream: ${WORKERS} workers x ${SERVICE_MS} ms = ${CAPACITY}/s; offered ${CAPACITY * 2}/s open loop for ${seconds} s (first second not counted); load average ${load}`)
    const a = rows.adaptive!
    const n = rows.none!
    console.log(JSON.stringify({
      adaptive_p99_ratio: Number((a.overload.p99 / a.unloaded.p99).toFixed(3)),
      goodput_ratio: Number((a.overload.okPerSec / CAPACITY).toFixed(3)),
      adaptive_p99_ms: Number(a.overload.p99.toFixed(2)),
      unloaded_p99_ms: Number(a.unloaded.p99.toFixed(2)),
      adaptive_refused_per_s: Math.round(a.overload.refusedPerSec),
      none_p99_ratio: Number((n.overload.p99 / n.unloaded.p99).toFixed(3)),
      none_goodput_ratio: Number((n.overload.okPerSec / CAPACITY).toFixed(3)),
      none_p99_ms: Number(n.overload.p99.toFixed(2)),
      rls_off_rps: Math.round(rls.off),
      rls_on_rps: Math.round(rls.on),
      rls_throughput_ratio: Number((rls.on / rls.off).toFixed(3)),
      rls_p99_ms: Number(rls.p99.toFixed(2)),
    }))
    return 0
  } finally {
    stop()
    rmSync(dir, { recursive: true, force: true })
  }
}
