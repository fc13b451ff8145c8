// `npm run bench -- --footprint`: what one sidecar costs, for Weft, HAProxy and nginx in one run.
//
//   ready_ms        time from spawn() to the first ready answer (Weft: admin GET /ready 200; HAProxy and
//                   nginx: GET / through the proxy returns the upstream's body), polled every 5 ms;
//                   median of --starts fresh starts of each
//   idle_rss_mb     VmRSS of the serving process 2 s after it passed its start-up checks (a few requests)
//   loaded_rss_mb   VmRSS right after the headline load (wrk -t1 -c50, warm-up then --duration seconds);
//                   peak (VmHWM) is printed too
//   conn10k_rss_mb  VmRSS with 10,000 idle keep-alive client connections open, each of which has made one
//                   request; "above idle" is this minus the RSS just before opening them
//
// Row weft-cp: `weft proxy --control-plane` against a local control plane, ready time and idle RSS only;
// its bootstrap is settings only (its listener names the control plane's route table "outbound"), as
// in an injected pod, so /ready turns 200 only once the control plane's first config is applied;
// when that config was applied is printed after the table too (JSON: weft_cp_config_ms). Two starts
// against the fresh control plane warm it first and are not counted.
// Row node: the runtime alone, as a floor: "ready" is spawn() to the exit of `node -e 0` (the same
// pinned Node), idle RSS that of an idle `node -e 'setTimeout(...)'` 2 s after its start.
// The last stdout line is JSON: Weft's idle_rss_mb, loaded_rss_mb, ready_ms, conn10k_rss_mb (and the
// others' numbers under weft_cp_*, haproxy_* and nginx_*).
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { freePorts, httpGet, sleep } from './net.ts'
import { readMem } from './proc.ts'
import { cleanupAll, spawnGroup, trackTempDir, type Proc } from './spawn.ts'
import { runWrk } from './wrk.ts'
import { haproxyConfig, startHaproxy } from './peers/haproxy.ts'
import { startNginxProxy, startUpstream } from './peers/nginx.ts'
import { startWeft, variantTelemetry, weftBenchConfig, WEFT_BIN } from './peers/weft.ts'
import { UPSTREAM_BODY, type Peer, type PeerContext } from './peers/types.ts'
import YAML from 'yaml'

const USAGE = `usage: node bench/run.ts --footprint [--quick] [--only weft,weft-cp,node,haproxy,nginx] [--starts N] [--conns N] [--duration SEC]
  --starts N     fresh starts per proxy for the ready time (default 7, quick 3); the median is shown
  --conns N      idle keep-alive client connections (default 10000)
  --duration SEC headline load seconds before "RSS after load" (default 10, quick 4; warm-up 2 s)
  --metrics      Weft with telemetry.metrics on (the issue's "after load" target is with metrics on)`

const NAMES = ['weft', 'weft-cp', 'node', 'haproxy', 'nginx'] as const
type Name = (typeof NAMES)[number]

/**
 * weft-cp: `weft proxy --control-plane` against a local control plane (`weft control-plane --local`
 * with examples/demo's resources), ready when its admin /ready answers 200 (after the first config);
 * only the ready time and the idle RSS (2 s after ready, median of the starts) are measured.
 */
interface ControlPlane {
  grpc: number
  proc: Proc
}
let controlPlane: ControlPlane | null = null
/** sidecar starts against a fresh control plane before weft-cp's measured ones */
const CP_WARMUP_STARTS = 2

async function startControlPlane(dir: string): Promise<ControlPlane> {
  const res = path.join(dir, 'resources')
  fs.mkdirSync(res, { recursive: true })
  const demo = path.resolve(path.dirname(WEFT_BIN), '..', 'examples', 'demo')
  for (const f of ['services.yaml', 'endpointslices.yaml', 'policies.yaml']) fs.copyFileSync(path.join(demo, f), path.join(res, f))
  const [grpc, admin] = await freePorts(2)
  const proc = spawnGroup('control-plane', process.execPath, [WEFT_BIN, 'control-plane', '--local', res, '--listen', `127.0.0.1:${grpc}`, '--admin', `127.0.0.1:${admin}`], {
    logFile: path.join(dir, 'control-plane.log'),
    env: { ...process.env, WEFT_LOG_LEVEL: 'warn' },
  })
  await until(async () => (await httpGet(admin, '/debug/proxies', 1000)).status === 200, () => proc.deadReason(), 20000)
  return { grpc, proc }
}

const log = (msg: string): void => {
  process.stderr.write(`[footprint] ${msg}\n`)
}
const mb = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

interface Row {
  name: Name
  readyMs: number[]
  idleRss?: number
  loadedRss?: number
  loadedHwm?: number
  rps?: number
  beforeConnsRss?: number
  connsRss?: number
  connsOpen?: number
  error?: string
}

/** Polls until ok() resolves true; every 5 ms. */
async function until(ok: () => Promise<boolean>, alive: () => string | null, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const dead = alive()
    if (dead) throw new Error(dead)
    if (await ok().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms`)
    await sleep(5)
  }
}

/** Spawns one proxy from scratch and returns ms from spawn() to its first ready answer; then stops it. */
async function timeReady(name: Name, dir: string, upstreamPorts: number[], opts: { metrics: boolean; idleRss?: number[]; nodeIdleRss?: number[]; cpConfigMs?: number[] }): Promise<number> {
  fs.mkdirSync(dir, { recursive: true })
  const [port, adminPort] = await freePorts(2)
  let proc: Proc
  let ok: () => Promise<boolean>
  const throughProxy = async () => {
    const r = await httpGet(port, '/', 1000)
    return r.status === 200 && r.body === UPSTREAM_BODY
  }
  if (name === 'weft') {
    const config = weftBenchConfig({ port, adminPort, upstreamPorts, telemetry: variantTelemetry(opts.metrics ? 'metrics' : 'plain') })
    const file = path.join(dir, 'weft.yaml')
    fs.writeFileSync(file, YAML.stringify(config))
    const t0 = performance.now()
    proc = spawnGroup('weft', process.execPath, [WEFT_BIN, 'proxy', '--config', file], {
      logFile: path.join(dir, 'weft.log'),
      env: { ...process.env, WEFT_LOG_LEVEL: 'warn' },
    })
    ok = async () => (await httpGet(adminPort, '/ready', 1000)).status === 200
    return finish(t0)
  }
  if (name === 'weft-cp') {
    controlPlane ??= await startControlPlane(path.join(dir, '..', 'control-plane'))
    const file = path.join(dir, 'bootstrap.yaml')
    // the proxy's own settings (a demo workload's identity, admin port) and a listener on the control
    // plane's route table: incomplete alone, so nothing is served and /ready is 503 until it answers
    fs.writeFileSync(file, YAML.stringify({
      node: { id: 'reviews-bench', workload: 'reviews', namespace: 'demo' },
      admin: { address: '127.0.0.1', port: adminPort },
      listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port, routeTable: 'outbound' }],
      routeTables: [],
      clusters: [],
    }))
    const t0 = performance.now()
    proc = spawnGroup('weft-cp', process.execPath, [WEFT_BIN, 'proxy', '--control-plane', `127.0.0.1:${controlPlane.grpc}`, '--config', file], {
      logFile: path.join(dir, 'weft.log'),
      env: { ...process.env, WEFT_LOG_LEVEL: 'warn' },
    })
    ok = async () => (await httpGet(adminPort, '/ready', 1000)).status === 200
    try {
      await until(ok, () => proc.deadReason(), 20000)
      const ms = performance.now() - t0
      // the control plane's config is what made it ready (the bootstrap alone is not servable)
      await until(async () => (JSON.parse((await httpGet(adminPort, '/control_plane', 1000)).body) as { source?: string }).source === 'control-plane', () => proc.deadReason(), 20000)
      opts.cpConfigMs?.push(performance.now() - t0)
      await sleep(2000)
      opts.idleRss?.push(readMem(proc.pid).rssBytes)
      return ms
    } finally {
      await proc.stop()
    }
  }
  if (name === 'node') {
    // the floor: Node's own start and exit, then (not timed) an idle Node's RSS
    const t0 = performance.now()
    const bare = spawnGroup('node', process.execPath, ['-e', '0'], { logFile: path.join(dir, 'node.log') })
    await until(async () => bare.deadReason() !== null, () => null, 10000)
    const ms = performance.now() - t0
    const idle = spawnGroup('node-idle', process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { logFile: path.join(dir, 'node-idle.log') })
    try {
      await sleep(2000)
      opts.nodeIdleRss?.push(readMem(idle.pid).rssBytes)
    } finally {
      await idle.stop()
    }
    return ms
  }
  if (name === 'haproxy') {
    const file = path.join(dir, 'haproxy.cfg')
    fs.writeFileSync(file, haproxyConfig({ dir, upstreamPorts, port }))
    const t0 = performance.now()
    proc = spawnGroup('haproxy', 'haproxy', ['-db', '-f', file], { logFile: path.join(dir, 'haproxy.log') })
    ok = throughProxy
    return finish(t0)
  }
  // nginx: start it the way the bench does, but time it here (the peer's own poll is every 100 ms)
  const t0 = performance.now()
  const started = startNginxProxy({ dir, upstreamPorts, port })
  await until(throughProxy, () => null, 10000)
  const ms = performance.now() - t0
  await (await started).stop()
  return ms

  async function finish(t0: number): Promise<number> {
    try {
      await until(ok, () => proc.deadReason(), 20000)
      return performance.now() - t0
    } finally {
      await proc.stop()
    }
  }
}

/**
 * Opens `count` keep-alive connections to 127.0.0.1:port, each sending one GET / and reading its
 * response, `parallel` at a time; the sockets stay open (idle) until close() is called.
 */
async function openIdleConnections(port: number, count: number, parallel = 200): Promise<{ open: number; close: () => void }> {
  const sockets: net.Socket[] = []
  let failed = 0
  let next = 0
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port })
      let got = ''
      const done = (ok: boolean) => {
        s.removeAllListeners('data')
        s.setTimeout(0)
        if (ok) sockets.push(s)
        else {
          failed++
          s.destroy()
        }
        resolve()
      }
      s.setTimeout(10000, () => done(false))
      s.on('error', () => done(false))
      s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n'))
      s.on('data', (c: Buffer) => {
        got += c.toString('latin1')
        if (got.includes(UPSTREAM_BODY)) done(true)
      })
    })
  const worker = async () => {
    while (next < count) {
      next++
      await one()
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  if (failed > 0) log(`  ${failed} of ${count} connections failed`)
  return {
    open: sockets.length,
    close: () => {
      for (const s of sockets) s.destroy()
    },
  }
}

/** The hard RLIMIT_NOFILE of this process (what a child may raise its limit to). */
function fdHardLimit(): number {
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))
  return m && m[1] !== 'unlimited' ? Number(m[1]) : 1 << 20
}

export async function runFootprintBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      starts: { type: 'string' },
      conns: { type: 'string' },
      duration: { type: 'string' },
      metrics: { type: 'boolean', default: false },
      'no-save': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const quick = values.quick ?? false
  const starts = Number(values.starts ?? (quick ? 3 : 7))
  const conns = Number(values.conns ?? 10000)
  const durationSec = Number(values.duration ?? (quick ? 4 : 10))
  const metrics = values.metrics ?? false
  const names = (values.only ? values.only.split(',').map((s) => s.trim()) : [...NAMES]) as Name[]
  for (const n of names) if (!NAMES.includes(n)) throw new Error(`--only: unknown ${n}; known: ${NAMES.join(', ')}`)

  const loadStart = os.loadavg()
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-footprint-'))
  trackTempDir(tmp)
  const dirFor = (n: string) => {
    const d = path.join(tmp, n)
    fs.mkdirSync(d, { recursive: true })
    return d
  }
  const upstreamPorts = await freePorts(2)
  // The upstream sees at most `parallel` (200) connections per proxy, plus the proxies' pools.
  const upstream = await startUpstream({ dir: dirFor('upstream'), upstreamPorts, port: upstreamPorts[0] })
  log(`upstream nginx on ${upstreamPorts.join(', ')}; ${os.cpus().length} cores, load ${loadStart.map((l) => l.toFixed(2)).join(' ')}`)

  const rows: Row[] = names.map((name) => ({ name, readyMs: [] }))
  const cpIdle: number[] = []
  const cpConfigMs: number[] = []
  const nodeIdle: number[] = []
  // weft-cp's control plane is started for the run, and its first answers run its own code cold (a
  // helper's runs in session 9 had the first two sidecar starts 30-50 ms slower; the lead's did not
  // always, bench/footprint-log.md). In a cluster the control plane has served proxies long before a
  // new pod starts, so two sidecar starts against it come first and are not counted.
  if (rows.some((r) => r.name === 'weft-cp')) {
    const warm: number[] = []
    for (let i = 0; i < CP_WARMUP_STARTS; i++) warm.push(await timeReady('weft-cp', dirFor(`weft-cp-warmup-${i}`), upstreamPorts, { metrics }))
    log(`weft-cp: control plane warm-up starts (not counted) ready ${warm.map((m) => m.toFixed(0)).join(', ')} ms`)
  }
  // Ready time: the proxies' starts alternate, so a load burst on the machine hits all of them.
  for (let i = 0; i < starts; i++) {
    for (const row of rows) {
      try {
        row.readyMs.push(await timeReady(row.name, dirFor(`${row.name}-start-${i}`), upstreamPorts, { metrics, idleRss: cpIdle, nodeIdleRss: nodeIdle, cpConfigMs }))
      } catch (err) {
        row.error = `start ${i}: ${(err as Error).message}`
      }
    }
  }
  for (const row of rows) log(`${row.name}: ready ${row.readyMs.map((m) => m.toFixed(0)).join(', ')} ms`)
  const cpRow = rows.find((r) => r.name === 'weft-cp')
  if (cpRow && cpIdle.length > 0) cpRow.idleRss = median(cpIdle)
  const nodeRow = rows.find((r) => r.name === 'node')
  if (nodeRow && nodeIdle.length > 0) nodeRow.idleRss = median(nodeIdle)
  await controlPlane?.proc.stop()
  controlPlane = null

  // HAProxy 2.6 refuses to start unless its FD limit covers 2 x maxconn + a margin; this machine's hard
  // limit (ulimit -Hn) may not allow 10,000 (then HAProxy holds fewer connections: the "conns" column).
  const hardLimit = fdHardLimit()
  const connLimit = (n: Name): number => (n === 'haproxy' ? Math.min(conns + 2000, Math.floor((hardLimit - 200) / 2)) : conns + 2000)
  const STARTERS: Record<Exclude<Name, 'weft-cp' | 'node'>, (ctx: PeerContext) => Promise<Peer>> = { weft: startWeft, haproxy: startHaproxy, nginx: startNginxProxy }
  for (const row of rows) {
    if (row.error || row.name === 'weft-cp' || row.name === 'node') continue
    const ports = await freePorts(2)
    let peer: Peer | null = null
    try {
      peer = await STARTERS[row.name as Exclude<Name, 'weft-cp' | 'node'>]({
        dir: dirFor(row.name),
        upstreamPorts,
        port: ports[0],
        options: { adminPort: String(ports[1]), row: metrics ? 'weft+metrics' : 'weft', connections: String(connLimit(row.name)) },
      })
      await sleep(2000)
      row.idleRss = readMem(peer.pid).rssBytes
      const url = `http://127.0.0.1:${peer.port}/`
      await runWrk({ url, connections: 50, durationSec: 2 })
      const w = await runWrk({ url, connections: 50, durationSec })
      const m = readMem(peer.pid)
      row.rps = w.rps
      row.loadedRss = m.rssBytes
      row.loadedHwm = m.hwmBytes
      await sleep(1000)
      row.beforeConnsRss = readMem(peer.pid).rssBytes
      const c = await openIdleConnections(peer.port, Math.min(conns, connLimit(row.name) - 100))
      await sleep(1000)
      row.connsOpen = c.open
      row.connsRss = readMem(peer.pid).rssBytes
      c.close()
      log(
        `${row.name}: idle ${mb(row.idleRss)} MB, after load ${mb(row.loadedRss)} MB (peak ${mb(row.loadedHwm)}, ${w.rps.toFixed(0)} rps), ` +
          `${c.open} idle conns ${mb(row.connsRss)} MB (+${mb(row.connsRss - row.beforeConnsRss)})`,
      )
    } catch (err) {
      row.error = (err as Error).message
      log(`${row.name}: ${row.error}`)
    } finally {
      await peer?.stop()
    }
  }
  await upstream.stop()

  const loadEnd = os.loadavg()
  const pad = (s: string, n: number) => s.padStart(n)
  console.log('')
  console.log(`Weft footprint bench: ${os.cpus().length} cores, node ${process.version}, Weft ${metrics ? 'with metrics on' : 'telemetry off'}; ${starts} starts each (median ready), ${conns} idle conns`)
  console.log(`Load average at start ${loadStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadEnd.map((l) => l.toFixed(2)).join(' ')}`)
  console.log(['proxy', 'ready ms', 'idle MB', `after c50 MB`, 'peak MB', 'conns', 'conns MB', 'above idle MB'].map((h, i) => pad(h, i === 0 ? 8 : 14)).join(''))
  for (const r of rows) {
    const f = (v: number | undefined, money = true) => (v === undefined || !Number.isFinite(v) ? '-' : money ? mb(v).toFixed(1) : v.toFixed(0))
    console.log(
      [
        pad(r.name, 8),
        pad(f(median(r.readyMs), false), 14),
        pad(f(r.idleRss), 14),
        pad(f(r.loadedRss), 14),
        pad(f(r.loadedHwm), 14),
        pad(String(r.connsOpen ?? '-'), 14),
        pad(f(r.connsRss), 14),
        pad(r.connsRss !== undefined && r.beforeConnsRss !== undefined ? f(r.connsRss - r.beforeConnsRss) : '-', 14),
      ].join('') + (r.error ? `  error: ${r.error}` : ''),
    )
  }
  if (cpConfigMs.length > 0) console.log(`weft-cp: the control plane's first config applied ${Math.round(median(cpConfigMs))} ms after exec (median; /ready waits for it)`)
  const out: Record<string, unknown> = {}
  for (const r of rows) {
    const k = r.name === 'weft' ? '' : `${r.name.replace('-', '_')}_`
    out[`${k}idle_rss_mb`] = r.idleRss === undefined ? null : mb(r.idleRss)
    out[`${k}loaded_rss_mb`] = r.loadedRss === undefined ? null : mb(r.loadedRss)
    out[`${k}ready_ms`] = r.readyMs.length ? Math.round(median(r.readyMs)) : null
    out[`${k}conn10k_rss_mb`] = r.connsRss === undefined ? null : mb(r.connsRss)
    out[`${k}conns_open`] = r.connsOpen ?? null
    out[`${k}conn10k_above_idle_mb`] = r.connsRss === undefined || r.beforeConnsRss === undefined ? null : mb(r.connsRss - r.beforeConnsRss)
    if (r.error) out[`${k}error`] = r.error
  }
  out.weft_ready_ms_all = rows.find((r) => r.name === 'weft')?.readyMs.map(Math.round)
  if (cpConfigMs.length > 0) out.weft_cp_config_ms = Math.round(median(cpConfigMs))
  out.loadavg = [loadStart[0], loadEnd[0]].map((l) => Math.round(l * 100) / 100)
  await cleanupAll()
  console.log(JSON.stringify(out))
  return rows.some((r) => r.error) ? 2 : 0
}
