// `npm start`: the local mesh demo (examples/demo/). The whole thing runs as a user runs it, as a
// child process (plain summary lines, stdout not a terminal) on a port range of its own and over
// a copy of examples/demo/: traffic reaches every Service, an edit of the canary weights moves
// all of reviews to v2 within seconds, and SIGINT stops every process with exit code 0. Also:
// a broken resource file at start stops everything with exit code 1 and the control plane's
// error; and the two pure pieces (a bootstrap's own inbound listener next to the control plane's
// listeners; the port shift of the resources).
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from 'undici'
import { scrape } from '../cli/stat.ts'
import { WORKLOADS, bootstrapOf, portsOf, shiftPorts } from '../examples/demo/runner/layout.ts'
import { loadResources } from '../control-plane/resources/validate.ts'
import { TYPE } from '../protos/api.ts'
import type { Listener, RouteTable } from '../api/schema.ts'
import { assemble, checkAssembled, NOTHING_ACCEPTED, type Accepted } from '../proxy/xds/assemble.ts'
import { ROOT, type Teardown } from './helpers/sidecar.ts'

const DEMO = join(ROOT, 'examples', 'demo')
const START = join(ROOT, 'examples', 'start.ts')

t.test('the resources in examples/demo/ are valid, and only YAML is read there', async (t) => {
  const r = await loadResources([DEMO])
  t.ok(r.ok, r.ok ? 'valid' : r.errors.map((e) => e.message).join('\n'))
  t.same(r.resources.files.map((f) => f.slice(DEMO.length + 1)).sort(), readdirSync(DEMO).filter((f) => f.endsWith('.yaml')).sort())
})

t.test('a bootstrap\'s own listeners are kept next to the control plane\'s, with their tables and clusters', async (t) => {
  const frontend = bootstrapOf(WORKLOADS[0], 17000)
  const outboundTable: RouteTable = { name: 'outbound', virtualHosts: [{ name: 'x', domains: ['x'], routes: [{ backends: [{ cluster: 'x' }] }] }] }
  const cpListener: Listener = { name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 15001, routeTable: 'outbound' }
  const accepted: Accepted = {
    ...NOTHING_ACCEPTED,
    versions: new Map([[TYPE.listener, 'v1']]),
    listeners: new Map([['outbound', cpListener]]),
    routeTables: new Map([['outbound', outboundTable]]),
    clusters: new Map([['x', { name: 'x' }]]),
    endpoints: new Map([['x', [{ address: '127.0.0.1', port: 1 }]]]),
  }
  const b = assemble(frontend, accepted)
  t.same(b.listeners.map((l) => [l.name, l.port, l.routeTable]), [['inbound', 17011, 'inbound'], ['outbound', 17012, 'outbound']], 'own inbound; the control plane\'s outbound on the bootstrap\'s port')
  t.same(b.routeTables.map((r) => r.name), ['inbound', 'outbound'])
  t.same(b.clusters.map((c) => c.name), ['inbound|80||frontend.demo.svc.cluster.local', 'x'])
  t.ok(checkAssembled(b).ok, 'the assembled config passes the proxy\'s checks')

  // A name the control plane sends is the control plane's: an "inbound" from it replaces the bootstrap's.
  const cpInbound: Listener = { name: 'inbound', direction: 'inbound', address: '127.0.0.1', port: 1, routeTable: 'outbound' }
  const both = assemble(frontend, { ...accepted, listeners: new Map([['outbound', cpListener], ['inbound', cpInbound]]) })
  t.same(both.listeners.find((l) => l.name === 'inbound'), { ...cpInbound, port: 17011 }, 'only its port comes from the bootstrap')
  t.same(both.routeTables.map((r) => r.name), ['outbound'], 'the local table is no longer used, so not added')

  // A bootstrap listener on a table the bootstrap does not define only moves the control plane's
  // listener of that name; when the control plane sends none, it is ignored, as before.
  t.same(assemble(frontend, NOTHING_ACCEPTED).listeners.map((l) => l.name), ['inbound'])
})

t.test('another port range: endpoint ports move, line and column stay', async (t) => {
  const text = readFileSync(join(DEMO, 'endpointslices.yaml'), 'utf8')
  const shifted = shiftPorts(text, 17300)
  t.match(shifted, /port: 17311 \}/)
  t.notMatch(shifted, /port: 170\d\d/)
  t.equal(shifted.length, text.length)
  t.equal(shiftPorts('ports: [{ port: 80 }, { port: 18000 }, { port: 17042 }]', 17100), 'ports: [{ port: 80 }, { port: 18000 }, { port: 17142 }]')
  t.equal(shiftPorts(text, 17000), text)
})

// ---- the demo, end to end ---------------------------------------------------------------------

interface Run {
  proc: ChildProcess
  out: string[]
  err: string[]
  exit: Promise<number | null>
  /** pids the runner printed (its children) */
  pids(): number[]
}

/** A base port with the demo's 100 ports free, away from the default range and from port 0's. */
async function freeRange(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const base = 17400 + ((process.pid + i) % 20) * 100
    const ports = [base, base + 1, ...WORKLOADS.flatMap((w) => Object.values(portsOf(w, base)))]
    const busy = await Promise.all(ports.map((p) => new Promise<boolean>((r) => {
      const s = createServer().once('error', () => r(true))
      s.listen(p, '127.0.0.1', () => s.close(() => r(false)))
    })))
    if (!busy.some((b) => b)) return base
  }
  throw new Error('no free port range')
}

function startDemo(t: Teardown, args: string[]): Run {
  const proc = spawn(process.execPath, [START, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_DEMO_BASE_PORT: '' } })
  const out: string[] = []
  const err: string[] = []
  const collect = (into: string[]) => {
    let partial = ''
    return (d: Buffer) => {
      const lines = (partial + d.toString('utf8')).split('\n')
      partial = lines.pop() ?? ''
      into.push(...lines)
    }
  }
  proc.stdout!.on('data', collect(out))
  proc.stderr!.on('data', collect(err))
  const exit = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)))
  const pids = () => [...new Set([...out, ...err].join('\n').match(/pid \d+|[a-z0-9-]+ \d+(?=[,)])/g)?.map((m) => Number(m.split(' ')[1])) ?? [])]
  // Whatever happens, nothing outlives the test: the runner's children are in their own process groups.
  t.teardown(() => {
    for (const pid of pids()) {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    if (proc.exitCode === null) proc.kill('SIGKILL')
  })
  return { proc, out, err, exit, pids }
}

async function until<T>(what: string, f: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs: number, run?: Run): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await f()
    if (v) return v
    if (run !== undefined && run.proc.exitCode !== null) throw new Error(`waiting for ${what}: the demo exited (${run.proc.exitCode})\n${run.err.join('\n')}`)
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${run?.out.slice(-20).join('\n') ?? ''}\n${run?.err.join('\n') ?? ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const SERVICES = ['frontend', 'catalogue', 'reviews-v1', 'reviews-v2']
// [ 12s] reviews-v1  16.0rps  success 100.00%  p99 4.97ms  (own sidecar: success 100.00%, p99 4.95ms)
const LINE = /^\[\s*(\d+)s\] (\S+)\s+([\d.]+)rps\s+success\s+(\S+)/

/** The services with traffic in the latest complete block of summary lines. */
function lastTick(out: string[]): Map<string, number> {
  const ticks = new Map<string, Map<string, number>>()
  let last = ''
  for (const l of out) {
    const m = LINE.exec(l)
    if (m === null) continue
    if (!ticks.has(m[1])) ticks.set(m[1], new Map())
    ticks.get(m[1])!.set(m[2], Number(m[3]))
    last = m[1]
  }
  return ticks.get(last) ?? new Map()
}

/** The demo over a copy of examples/demo/ on a free range, once every service has traffic. */
async function runningDemo(t: Teardown): Promise<{ run: Run; base: number; res: string }> {
  const res = mkdtempSync(join(tmpdir(), 'weft-demo-test-'))
  t.teardown(() => rmSync(res, { recursive: true, force: true }))
  for (const f of readdirSync(DEMO).filter((f) => f.endsWith('.yaml'))) cpSync(join(DEMO, f), join(res, f))
  const base = await freeRange()
  // --duration: a safety net should the test itself die
  const run = startDemo(t, ['--base-port', String(base), '--resources', res, '--rps', '40', '--window', '1s', '--duration', '55'])
  await until('traffic on every service', () => {
    const tick = lastTick(run.out)
    return SERVICES.every((s) => (tick.get(s) ?? 0) > 0)
  }, 45_000, run) // ~10 s on a quiet 2-core machine: 11 Node processes start at once
  return { run, base, res }
}

t.test('npm start: a local mesh; a canary edit moves the traffic; SIGINT stops every process', async (t) => {
  const started = Date.now()
  const { run, base, res } = await runningDemo(t)
  const bootMs = Date.now() - started
  const tick = lastTick(run.out)
  t.same(SERVICES.filter((s) => !((tick.get(s) ?? 0) > 0)), [], `the summary shows traffic on ${SERVICES.join(', ')} after ${bootMs} ms`)
  t.match(run.out.join('\n'), new RegExp(`control plane \\(pid \\d+\\)  http://127\\.0\\.0\\.1:${base + 1}/debug/proxies`), 'says where the control plane admin is')
  for (const w of WORKLOADS) t.match(run.out.join('\n'), `admin http://127.0.0.1:${portsOf(w, base).admin}/metrics`, `says where ${w.name}'s sidecar metrics are`)
  const pids = run.pids()
  t.equal(pids.length, 11, 'the control plane, 5 sidecars, 4 apps and the traffic generator')
  t.match(run.out.join('\n'), /mutual TLS: on \(the control plane's CA on 127\.0\.0\.1:\d+; every sidecar has an SVID/, 'mutual TLS on by default, and said')
  await until('the summary shows the requests served over mutual TLS', () => /mTLS: 100% of the requests the sidecars served came over mutual TLS, [1-9]\d*\/[1-9]/.test(run.out.join('\n')), 10_000)

  const agent = new Agent()
  t.teardown(() => agent.destroy())
  const frontendAdmin = `127.0.0.1:${portsOf(WORKLOADS[0], base).admin}`
  const count = async (service: string, labels: Record<string, string> = {}) => {
    const s = await scrape(agent, frontendAdmin)
    return s.samples
      .filter((x) => x.name === 'weft_requests_total' && x.labels.reporter === 'source' && x.labels.destination_service === `${service}.demo.svc.cluster.local`)
      .filter((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v))
      .reduce((a, x) => a + x.value, 0)
  }
  // The injected fault: the frontend's sidecar answers some calls to catalogue itself (FI).
  await until('an injected 503', async () => (await count('catalogue', { response_code: '503', response_flags: 'FI' })) > 0, 10_000, run)
  t.ok((await count('catalogue', { response_code: '503', response_flags: 'FI' })) > 0, 'the frontend\'s sidecar reports catalogue calls answered 503 FI (the injected fault)')

  // The canary edit: all of reviews to v2.
  const file = join(res, 'reviews-canary.yaml')
  const text = readFileSync(file, 'utf8')
  const edited = text.replace('{ name: reviews-v1, port: 80, weight: 80 }', '{ name: reviews-v1, port: 80, weight: 0 }').replace('{ name: reviews-v2, port: 80, weight: 20 }', '{ name: reviews-v2, port: 80, weight: 100 }')
  t.not(edited, text, 'the weights are where the test expects them')
  const editedAt = Date.now()
  writeFileSync(file, edited)
  // v2 takes it all: between two scrapes, v1 got nothing and v2 kept getting calls.
  let prev = { v1: await count('reviews-v1'), v2: await count('reviews-v2'), at: Date.now() }
  await until('all of reviews on v2', async () => {
    if (Date.now() - prev.at < 500) return false
    const now = { v1: await count('reviews-v1'), v2: await count('reviews-v2'), at: Date.now() }
    const done = now.v1 === prev.v1 && now.v2 - prev.v2 >= 5
    prev = now
    return done
  }, 8000, run)
  const movedMs = Date.now() - editedAt
  t.ok(movedMs < 5000, `v2 takes all the traffic ${movedMs} ms after the edit`)
  await until('the summary to show it', () => run.out.some((l) => /canary: reviews-v1 0% \/ reviews-v2 100%/.test(l)), 5000, run)
  t.match(run.out.join('\n'), /control plane: snapshot published/, 'the control plane\'s update is shown')

  run.proc.kill('SIGINT')
  const code = await Promise.race([run.exit, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000).unref())])
  t.equal(code, 0, 'exit code 0')
  t.match(run.out.join('\n'), /stopped 11 processes/)
  t.same(run.err.filter((l) => l.trim() !== ''), [], 'nothing on stderr')
  t.same(pids.filter(alive), [], 'every child process exited')
  t.comment(`the whole run took ${Date.now() - started} ms`)
})

t.test('the runner killed with SIGKILL: every child exits by itself and the ports are free for the next npm start', async (t) => {
  const { run, base } = await runningDemo(t)
  const pids = run.pids()
  t.equal(pids.length, 11, 'eleven children running')
  run.proc.kill('SIGKILL')
  await run.exit
  const killedAt = Date.now()
  await until('every child gone', () => pids.every((p) => !alive(p)), 15_000).catch(() => {})
  const cmd = (p: number) => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ').slice(0, 200) } catch { return '?' } }
  t.same(pids.filter(alive), [], `no child outlives its runner (all gone ${Date.now() - killedAt} ms after the SIGKILL; left: ${pids.filter(alive).map(cmd).join(' | ')})`)
  const ports = [base, base + 1, ...WORKLOADS.flatMap((w) => Object.values(portsOf(w, base)))]
  const busy = await Promise.all(ports.map((p) => new Promise<number | null>((r) => {
    const s = createServer().once('error', () => r(p))
    s.listen(p, '127.0.0.1', () => s.close(() => r(null)))
  })))
  t.same(busy.filter((p) => p !== null), [], 'every demo port is free again')
})

t.test('a broken resource file at start: everything stops, exit 1, the error is shown', async (t) => {
  const res = mkdtempSync(join(tmpdir(), 'weft-demo-test-'))
  t.teardown(() => rmSync(res, { recursive: true, force: true }))
  for (const f of readdirSync(DEMO).filter((f) => f.endsWith('.yaml'))) cpSync(join(DEMO, f), join(res, f))
  const file = join(res, 'reviews-canary.yaml')
  writeFileSync(file, readFileSync(file, 'utf8').replace('weight: 80 }', 'weight: -1 }'))
  const run = startDemo(t, ['--base-port', String(await freeRange()), '--resources', res, '--duration', '30'])
  const code = await Promise.race([run.exit, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref())])
  t.equal(code, 1)
  const err = run.err.join('\n')
  t.match(err, /control-plane \(pid \d+\) exited with code 1; its last output:/)
  t.match(err, `${file}:`, 'the control plane\'s error names the file')
  t.match(err, /weight: must be an integer/)
  t.ok(run.pids().length >= 2, 'the runner said what it stopped')
  t.same(run.pids().filter(alive), [], 'every child process exited')
  const kept = /logs kept in (\S+)\/logs/.exec(err)
  if (kept !== null) rmSync(kept[1], { recursive: true, force: true })
})
