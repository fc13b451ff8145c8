// The demo runner (`npm start`): the control plane in local mode over examples/demo/, every
// workload of ./layout.ts as an app plus its own sidecar, a steady traffic generator, and a live
// summary (./summary.ts) until Ctrl-C, SIGTERM or --duration; then every process is stopped in
// order (traffic first, then the sidecars drain, then the apps, then the control plane) and the
// runner exits 0. A process that dies on its own stops the rest; the runner exits 1 with its
// last output.
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { watchDirectory, type FileWatcher } from '../../../api/watch.ts'
import { DEFAULT_BASE_PORT, NAMESPACE, WORKLOADS, controlPlanePorts, mtlsFiles, portsOf, rateLimitFiles, rateLimitPorts, renderResources, writeBootstrap, type Workload } from './layout.ts'
import type { DemoOptions } from './options.ts'
import { Supervisor, type Child, type Exit } from './processes.ts'
import { LiveStats, formatPlain, formatTable } from './summary.ts'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const WEFT = join(ROOT, 'bin', 'weft.js')
const APPS = fileURLToPath(new URL('../apps/', import.meta.url))
/** `node -e REDIS_PARENT ARGS`: redis-server ARGS, killed when this parent ends */
const REDIS_PARENT = `const c = require('node:child_process').spawn('redis-server', process.argv.slice(1), { stdio: 'inherit' })
const kill = () => c.kill('SIGKILL')
process.on('exit', kill)
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0))
c.on('exit', (code) => process.exit(code ?? 1))`
const STOP_TIMEOUT_MS = 5000
const START_TIMEOUT_MS = 30_000
const MAX_EVENTS = 4

type Out = Pick<NodeJS.WriteStream, 'write'> & { columns?: number }

export function runDemo(o: DemoOptions, out: Out = process.stdout): Promise<number> {
  return new Promise((done) => new Demo(o, out, done).start())
}

class Aborted extends Error {}

class Demo {
  private phase: 'starting' | 'running' | 'stopping' = 'starting'
  private readonly o: DemoOptions
  private readonly out: Out
  private readonly done: (code: number) => void
  private workdir = ''
  private supervisor: Supervisor | null = null
  private watcher: FileWatcher | null = null
  private stats: LiveStats | null = null
  private ticker: NodeJS.Timeout | null = null
  private durationTimer: NodeJS.Timeout | null = null
  private drawn = 0
  private startedAt = 0
  /** what the control plane said lately (published snapshots, rejected edits) */
  private readonly events: string[] = []
  /** the port-shifted copy of the resources the control plane reads, if any */
  private renderedDir: string | null = null

  constructor(o: DemoOptions, out: Out, done: (code: number) => void) {
    this.o = o
    this.out = out
    this.done = done
  }

  start(): void {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.phase === 'stopping') {
        // a second Ctrl-C: no more waiting
        this.out.write(`\n${signal} again: killing every process\n`)
        this.supervisor?.killAll()
        process.exit(130)
      }
      this.out.write(`\n${signal}: stopping\n`)
      void this.shutdown(0)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    // the terminal closed: the children are in process groups of their own and would not hear it
    process.on('SIGHUP', onSignal)
    // Whatever happens to the runner, no child outlives it.
    process.on('exit', () => this.supervisor?.killAll())
    this.boot().catch((err: unknown) => {
      if (err instanceof Aborted || this.phase === 'stopping') return
      process.stderr.write(`weft demo: ${(err as Error).message}\n`)
      void this.shutdown(1)
    })
  }

  /** (a method: TypeScript would narrow the field across the awaits where shutdown() may set it) */
  private isStopping(): boolean {
    return this.phase === 'stopping'
  }

  private async boot(): Promise<void> {
    const o = this.o
    const bootAt = performance.now()
    // A port in use would show as a crash of whichever process binds it, or worse, pass a
    // readiness check answered by someone else's process (another demo): check them all first.
    const busy = await portsInUse([controlPlanePorts(o.basePort).grpc, controlPlanePorts(o.basePort).admin, ...(o.mtls ? [controlPlanePorts(o.basePort).ca] : []), ...WORKLOADS.flatMap((w) => Object.values(portsOf(w, o.basePort))), ...(o.ratelimit ? Object.values(rateLimitPorts(o.basePort)) : [])])
    if (busy.length > 0) {
      throw new Error(`port${busy.length > 1 ? 's' : ''} ${busy.join(', ')} of 127.0.0.1 in use: another demo running? --base-port N (or $WEFT_DEMO_BASE_PORT) moves the range`)
    }
    if (this.isStopping()) throw new Aborted() // Ctrl-C while the ports were checked
    this.workdir = await mkdtemp(join(tmpdir(), 'weft-demo-'))
    const logDir = join(this.workdir, 'logs')
    await mkdir(logDir)
    const source = resolve(o.resources)
    let resources = source
    const rl = o.ratelimit ? rateLimitFiles(o.basePort) : null
    const extra: Record<string, string> = rl === null ? {} : { 'zz-global-ratelimit.yaml': rl.policy }
    const mt = o.mtls ? mtlsFiles() : null
    if (mt !== null) {
      extra['zz-mtls.yaml'] = mt.policies
      const { writeFile } = await import('node:fs/promises')
      await writeFile(join(this.workdir, 'tokens.yaml'), mt.tokens)
      for (const w of WORKLOADS) await writeFile(join(this.workdir, `${w.name}.token`), `demo-token-${w.name}\n`)
    }
    if (o.basePort !== DEFAULT_BASE_PORT || rl !== null || mt !== null) {
      // The YAML is written for the default range; the control plane gets a copy with the ports
      // moved (and with --ratelimit, the policy that asks the rate limit server), kept in step with
      // every edit of the original.
      resources = this.renderedDir = join(this.workdir, 'resources')
      await mkdir(resources)
      await renderResources(source, resources, o.basePort, extra)
      this.watcher = watchDirectory(source, () => void renderResources(source, resources, o.basePort, extra).catch(() => {}), { debounceMs: 20, persistent: false })
    }
    if (this.isStopping()) throw new Aborted()
    const sup = (this.supervisor = new Supervisor({
      logDir,
      onUnexpectedExit: (c, e) => this.crashed(c, e),
      onLine: (c, line) => {
        if (c.name === 'control-plane') this.controlPlaneLine(line)
      },
    }))

    if (rl !== null) {
      // the rate limit server, its counters in redis-server when it is installed
      const { writeFile } = await import('node:fs/promises')
      const { spawnSync } = await import('node:child_process')
      const rp = rateLimitPorts(o.basePort)
      await writeFile(join(this.workdir, 'limits.yaml'), rl.limits)
      const redis = spawnSync('redis-server', ['--version']).status === 0
      // redis-server under a small Node parent, so the supervisor (and its orphan guard) own it like every other process
      if (redis) sup.start('redis', ['-e', REDIS_PARENT, '--', '--port', String(rp.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.workdir])
      sup.start('ratelimit-server', [WEFT, 'ratelimit-server', '-c', join(this.workdir, 'limits.yaml'), '--listen', `127.0.0.1:${rp.rls}`, ...(redis ? ['--redis', `redis://127.0.0.1:${rp.redis}`] : [])])
      this.out.write(`global rate limit: catalogue 5/s for all callers together (weft ratelimit-server on 127.0.0.1:${rp.rls}, counters ${redis ? `in redis-server on ${rp.redis}` : 'in memory: redis-server is not installed'})\n`)
    }
    const cp = controlPlanePorts(o.basePort)
    const caArgs = mt === null ? [] : ['--ca-listen', `127.0.0.1:${cp.ca}`, '--ca-dir', join(this.workdir, 'ca'), '--ca-tokens', join(this.workdir, 'tokens.yaml')]
    const cpChild = sup.start('control-plane', [WEFT, 'control-plane', '--local', resources, '--listen', `127.0.0.1:${cp.grpc}`, '--admin', `127.0.0.1:${cp.admin}`, ...caArgs])
    if (mt !== null) {
      const fe = portsOf(WORKLOADS[0], o.basePort)
      this.out.write(`mutual TLS: on (the control plane's CA on 127.0.0.1:${cp.ca}; every sidecar has an SVID spiffe://cluster.local/ns/${NAMESPACE}/sa/<workload>, inbound listeners are strict; weft identity --admin 127.0.0.1:${fe.admin}). --plaintext turns it off.\n`)
    }
    // Everything else starts at once (11 Node processes on what may be 2 cores): the sidecars
    // retry until the control plane listens (backoff from 250 ms).
    const pids = new Map<string, { app?: Child; sidecar: Child }>()
    for (const w of WORKLOADS) {
      const p = portsOf(w, o.basePort)
      const bootstrap = await writeBootstrap(this.workdir, w, o.basePort, mt !== null)
      if (this.isStopping()) throw new Aborted() // shutdown() stops what was started
      const sidecar = sup.start(`${w.name}-sidecar`, [WEFT, 'proxy', '--control-plane', `127.0.0.1:${cp.grpc}`, '--config', bootstrap])
      const app = w.service === undefined ? undefined : sup.start(w.name, [join(APPS, w.app), '--port', String(p.app), '--outbound', `127.0.0.1:${p.outbound}`, ...(w.args ?? [])])
      pids.set(w.name, { app, sidecar })
    }
    await Promise.all([
      this.until('the control plane', () => httpOk(`http://127.0.0.1:${cp.admin}/ready`)),
      ...WORKLOADS.flatMap((w) => {
        const p = portsOf(w, o.basePort)
        const ready = [this.until(`${w.name}'s sidecar`, () => httpOk(`http://127.0.0.1:${p.admin}/ready`))]
        if (w.service !== undefined) ready.push(this.until(w.name, () => tcpOpen(p.app)))
        return ready
      }),
    ])
    if (this.isStopping()) return
    // The traffic generator is the app of the one workload without a Service; it starts last.
    for (const w of WORKLOADS.filter((x) => x.service === undefined)) {
      const p = portsOf(w, o.basePort)
      pids.get(w.name)!.app = sup.start(w.name, [join(APPS, w.app), '--outbound', `127.0.0.1:${p.outbound}`, '--rps', String(o.rps), ...(w.args ?? [])])
    }
    this.phase = 'running'
    const bootSeconds = (performance.now() - bootAt) / 1000
    this.startedAt = performance.now()
    this.out.write(this.banner(source, logDir, cpChild, pids, bootSeconds))

    this.stats = new LiveStats(WORKLOADS.map((w) => `127.0.0.1:${portsOf(w, o.basePort).admin}`), o.windowMs, WORKLOADS.flatMap((w) => (w.service === undefined ? [] : [w.service])))
    let scraping = false
    const tick = () => {
      if (scraping || this.stats === null) return // a scrape that takes more than a second: skip a beat
      scraping = true
      void this.stats.tick().then((v) => {
        scraping = false
        if (v === null || this.phase !== 'running') return
        const elapsed = (performance.now() - this.startedAt) / 1000
        if (this.o.redraw) this.redraw([...formatTable(v), ...this.events.map((e) => this.fit(e))])
        else this.out.write(formatPlain(v, elapsed).join('\n') + '\n')
      })
    }
    tick()
    this.ticker = setInterval(tick, 1000)
    if (o.durationSeconds !== null) this.durationTimer = setTimeout(() => void this.shutdown(0), o.durationSeconds * 1000)
  }

  private banner(source: string, logDir: string, cp: Child, pids: Map<string, { app?: Child; sidecar: Child }>, bootSeconds: number): string {
    const base = this.o.basePort
    const cpp = controlPlanePorts(base)
    const rows = WORKLOADS.map((w: Workload) => {
      const p = portsOf(w, base)
      const e = pids.get(w.name)!
      const app = w.service === undefined ? `${this.o.rps} rps to frontend` : `app :${p.app}`
      const inbound = w.service === undefined ? '' : `inbound :${p.inbound}  `
      return `  ${w.name.padEnd(13)} ${app.padEnd(19)} (pid ${e.app?.pid})  sidecar (pid ${e.sidecar.pid}) ${inbound}outbound :${p.outbound}  admin http://127.0.0.1:${p.admin}/metrics`
    })
    const fe = portsOf(WORKLOADS[0], base)
    const lg = portsOf(WORKLOADS[WORKLOADS.length - 1], base)
    const admins = WORKLOADS.map((w) => `127.0.0.1:${portsOf(w, base).admin}`).join(',')
    return `
Weft demo: a local mesh (namespace "demo"), up in ${bootSeconds.toFixed(1)} s. Each workload is an app behind
its own sidecar; the control plane serves the sidecars from ${source}
and watches it: edit reviews-canary.yaml (the v1/v2 weights) or policies.yaml and save.

  control plane (pid ${cp.pid})  http://127.0.0.1:${cpp.admin}/debug/proxies   (also /debug/snapshots, /debug/nacks, /metrics)
${rows.join('\n')}

  Try:
    curl -s http://127.0.0.1:${lg.outbound}/ -H 'Host: frontend'          a request the way loadgen sends it
    curl -s http://127.0.0.1:${fe.admin}/config_dump               what the control plane sent the frontend's sidecar
    node bin/weft.js stat --admin ${admins} --window 5s
    node bin/weft.js tap --admin 127.0.0.1:${fe.admin}
  Logs: ${logDir}/<name>.log
  Ctrl-C stops everything.

`
  }

  private redraw(lines: string[]): void {
    const up = this.drawn > 0 ? `\x1b[${this.drawn}F\x1b[0J` : ''
    this.out.write(up + lines.join('\n') + '\n')
    this.drawn = lines.length
  }

  private fit(line: string): string {
    const w = this.out.columns ?? 120
    return line.length < w ? line : line.slice(0, w - 2) + '…'
  }

  private controlPlaneLine(line: string): void {
    let rec: { level?: number; time?: number; msg?: string; seq?: number; changed?: string[] }
    try {
      rec = JSON.parse(line) as typeof rec
    } catch {
      return
    }
    if (rec.msg === undefined) return
    const interesting = (rec.level ?? 0) >= 40 || rec.msg === 'snapshot published'
    if (!interesting || this.phase === 'stopping') return
    let text = this.userPaths(rec.msg)
    if (rec.msg === 'snapshot published') text += ` (seq ${rec.seq}: ${(rec.changed ?? []).map((t) => t.slice(t.lastIndexOf('.') + 1)).join(', ')})`
    const at = new Date(rec.time ?? Date.now()).toTimeString().slice(0, 8)
    const event = `${at} control plane: ${text}`
    this.events.push(event)
    if (this.events.length > MAX_EVENTS) this.events.shift()
    if (!this.o.redraw && this.phase === 'running') this.out.write(event + '\n')
  }

  /** The control plane reads a port-shifted copy of the resources: messages name the user's files. */
  private userPaths(text: string): string {
    return this.renderedDir === null ? text : text.replaceAll(this.renderedDir, resolve(this.o.resources).replace(/\/$/, ''))
  }

  private crashed(c: Child, e: Exit): void {
    if (this.isStopping()) return
    const how = e.signal !== null ? `was killed by ${e.signal}` : `exited with code ${e.code}`
    const tail = c.tail().map((l) => this.userPaths(l))
    const hint = tail.some((l) => l.includes('EADDRINUSE')) ? `\n(a port of ${this.o.basePort}–${this.o.basePort + 99} is in use: another demo running? --base-port N moves the range)` : ''
    process.stderr.write(`\nweft demo: ${c.name} (pid ${c.pid}) ${how}; its last output:\n${tail.map((l) => '  ' + l).join('\n')}${hint}\n`)
    void this.shutdown(1)
  }

  /** Poll `check` every 100 ms until it holds; throws when stopping or after START_TIMEOUT_MS. */
  private async until(what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = performance.now() + START_TIMEOUT_MS
    for (;;) {
      if (this.isStopping()) throw new Aborted()
      if (await check()) return
      if (performance.now() > deadline) throw new Error(`${what} did not get ready within ${START_TIMEOUT_MS / 1000} s`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  private async shutdown(code: number): Promise<void> {
    if (this.phase === 'stopping') return
    this.phase = 'stopping'
    if (this.ticker !== null) clearInterval(this.ticker)
    if (this.durationTimer !== null) clearTimeout(this.durationTimer)
    this.watcher?.close()
    this.stats?.close()
    const problems: string[] = []
    const sup = this.supervisor
    if (sup !== null) {
      // the names are read at each stage: boot may still be starting children when this begins
      const stage = async (list: string[]) => {
        const names = new Set(sup.list().map((c) => c.name))
        problems.push(...(await sup.stop(list.filter((n) => names.has(n)), STOP_TIMEOUT_MS)))
      }
      const clients = WORKLOADS.filter((w) => w.service === undefined).map((w) => w.name)
      const apps = WORKLOADS.filter((w) => w.service !== undefined).map((w) => w.name)
      await stage(clients) // no new traffic
      await stage(WORKLOADS.map((w) => `${w.name}-sidecar`)) // drain
      await stage(apps)
      await stage(['control-plane'])
      await stage(['ratelimit-server'])
      await stage(['redis'])
      const stopped = sup.list()
      this.out.write(`stopped ${stopped.length} processes (${stopped.map((c) => `${c.name} ${c.pid}`).join(', ')})\n`)
    }
    for (const p of problems) process.stderr.write(`weft demo: ${p}\n`)
    const exit = code !== 0 || problems.length > 0 ? 1 : 0
    const started = (sup?.list().length ?? 0) > 0
    if ((exit === 0 || !started) && this.workdir !== '') await rm(this.workdir, { recursive: true, force: true })
    else if (this.workdir !== '') process.stderr.write(`weft demo: logs kept in ${this.workdir}/logs\n`)
    this.done(exit)
  }
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
    await res.body?.cancel()
    return res.status === 200
  } catch {
    return false
  }
}

/** Ports of 127.0.0.1 that cannot be bound now. */
async function portsInUse(ports: readonly number[]): Promise<number[]> {
  const busy = await Promise.all(
    ports.map(
      (port) =>
        new Promise<boolean>((resolve) => {
          const s = createServer()
          s.once('error', () => resolve(true))
          s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(false)))
        }),
    ),
  )
  return ports.filter((_, i) => busy[i])
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}
