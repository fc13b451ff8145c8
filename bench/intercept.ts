// Interception cost (issue 11): the same wrk load through the sidecar's intercepting outbound
// listener, once redirected by `weft init`'s iptables (wrk calls the Service's ClusterIP) and once
// straight to the listener (wrk calls 127.0.0.1:15001 with the ClusterIP as Host: loopback is not
// redirected), alternating, in a network namespace this bench creates and removes (root only).
// Reported: requests/s and the sidecar's CPU per request (utime+stime from /proc) of each row, and
// their ratio. `node bench/intercept.ts [--seconds 5] [--rounds 3] [--connections 50]`; the last
// line is JSON (intercept_cpu_ratio: redirected over direct CPU per request). First, `weft init`'s
// start-up: --init-runs times (default 10) `bin/weft.js init` (the compiled CLI, as the image runs it)
// then `init --cleanup`, wall time of each init from exec to exit (init_p50_ms, init_max_ms; target 200).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { parseWrk } from './wrk.ts'
import { readCpuSeconds } from './proc.ts'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, connections: { type: 'string', default: '50' }, 'init-runs': { type: 'string', default: '10' } } })
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const CONNS = Number(values.connections)
if (process.getuid?.() !== 0) {
  console.error('bench/intercept.ts needs root (ip netns, iptables)')
  process.exit(2)
}
const WEFT = fileURLToPath(new URL('../cli/weft.ts', import.meta.url))
const ns = `weft-bench-${process.pid}`
const dir = mkdtempSync(join(tmpdir(), 'weft-intercept-'))
chmodSync(dir, 0o755) // the sidecar runs as uid 1337
const children: ChildProcess[] = []
const cleanup = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  spawnSync('ip', ['netns', 'del', ns])
  rmSync(dir, { recursive: true, force: true })
}
process.on('exit', cleanup)
process.on('SIGINT', () => process.exit(130))

const sh = (args: string[]) => {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}
spawnSync('ip', ['netns', 'add', ns])
sh(['ip', 'link', 'set', 'lo', 'up'])
sh(['ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'])
sh(['ip', 'addr', 'add', '10.0.0.2/24', 'dev', 'v0'])
sh(['ip', 'link', 'set', 'v0', 'up'])
sh(['ip', 'link', 'set', 'v1', 'up'])
sh(['ip', 'route', 'add', 'default', 'via', '10.0.0.1'])

// the upstream: nginx, one worker, on loopback
writeFileSync(join(dir, 'nginx.conf'), `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log stderr error;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir};
  server { listen 127.0.0.1:18080; keepalive_requests 1000000; location / { return 200 "hello world\\n"; } } }
`)
children.push(spawn('ip', ['netns', 'exec', ns, 'nginx', '-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'ignore' }))

writeFileSync(join(dir, 'sidecar.yaml'), `admin: { address: 127.0.0.1, port: 15000 }
listeners:
  - { name: outbound, direction: outbound, address: 127.0.0.1, port: 15001, routeTable: out, interception: outbound }
routeTables:
  - name: out
    virtualHosts:
      - name: reviews
        domains: ["10.96.0.10", "10.96.0.10:80"]
        routes: [{ match: { path: { prefix: "/" } }, backends: [{ cluster: reviews }] }]
clusters:
  - { name: reviews, endpoints: [{ address: 127.0.0.1, port: 18080 }] }
telemetry: { metrics: { enabled: false } }
`)
// weft init's start-up, as the init container runs it: the compiled CLI (bin/weft.js -> dist/)
const BIN = fileURLToPath(new URL('../bin/weft.js', import.meta.url))
const INIT = [process.execPath, BIN, 'init', '--proxy-uid', '1337', '--exclude-inbound-ports', '15000']
const initMs: number[] = []
for (let i = 0; i < Number(values['init-runs']); i++) {
  const t0 = performance.now()
  sh(INIT)
  initMs.push(performance.now() - t0)
  sh([process.execPath, BIN, 'init', '--cleanup'])
}
sh(INIT)
const sidecar = spawn('ip', ['netns', 'exec', ns, 'setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', process.execPath, WEFT, 'proxy', '--config', join(dir, 'sidecar.yaml')],
  { stdio: 'ignore', env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
children.push(sidecar)
for (let i = 0; i < 400; i++) {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'curl', '-s', 'http://127.0.0.1:15000/ready'], { encoding: 'utf8' })
  if (r.stdout.startsWith('ready')) break
  await new Promise((r) => setTimeout(r, 25))
}
const check = sh(['curl', '-s', 'http://10.96.0.10/'])
if (check !== 'hello world\n') throw new Error(`the redirected path does not answer: ${JSON.stringify(check)}`)

const ROWS = {
  redirected: ['http://10.96.0.10/'],
  direct: ['-H', 'Host: 10.96.0.10', 'http://127.0.0.1:15001/'],
} as const
type Row = keyof typeof ROWS
const results: Record<Row, { rps: number[]; cpuUs: number[] }> = { redirected: { rps: [], cpuUs: [] }, direct: { rps: [], cpuUs: [] } }
const run = (row: Row, seconds: number) => {
  const cpu0 = readCpuSeconds(sidecar.pid!)
  const out = sh(['wrk', '-t1', `-c${CONNS}`, `-d${seconds}s`, ...ROWS[row]])
  const cpu = readCpuSeconds(sidecar.pid!) - cpu0
  const w = parseWrk(out)
  return { rps: w.rps, cpuUs: (cpu * 1e6) / Math.max(1, w.requests) }
}
run('redirected', 1)
run('direct', 1) // warm-up
for (let r = 0; r < ROUNDS; r++) {
  const order: Row[] = r % 2 === 0 ? ['redirected', 'direct'] : ['direct', 'redirected']
  for (const row of order) {
    const x = run(row, SECONDS)
    results[row].rps.push(x.rps)
    results[row].cpuUs.push(x.cpuUs)
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!
console.log(`interception cost, ${ROUNDS} rounds of ${SECONDS} s, wrk -t1 -c${CONNS}, medians (load average ${spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.split(' ').slice(0, 3).join(' ')})`)
for (const row of ['redirected', 'direct'] as Row[]) {
  console.log(`${row.padEnd(11)} ${median(results[row].rps).toFixed(0).padStart(7)} rps  ${median(results[row].cpuUs).toFixed(1).padStart(6)} µs CPU/req  (rps ${results[row].rps.map((x) => x.toFixed(0)).join(', ')})`)
}
const ratio = median(results.redirected.cpuUs) / median(results.direct.cpuUs)
const initSorted = [...initMs].sort((a, b) => a - b)
if (initSorted.length > 0) console.log(`weft init (bin/weft.js, both nat tables, wall from exec to exit incl. 'ip netns exec'): p50 ${median(initSorted).toFixed(0)} ms, max ${initSorted.at(-1)!.toFixed(0)} ms over ${initSorted.length} runs (target 200 ms)`)
console.log(JSON.stringify({
  intercept_redirected_rps: Math.round(median(results.redirected.rps)),
  intercept_direct_rps: Math.round(median(results.direct.rps)),
  intercept_redirected_cpu_us: Number(median(results.redirected.cpuUs).toFixed(2)),
  intercept_direct_cpu_us: Number(median(results.direct.cpuUs).toFixed(2)),
  intercept_cpu_ratio: Number(ratio.toFixed(3)),
  ...(initSorted.length > 0 ? { init_p50_ms: Math.round(median(initSorted)), init_max_ms: Math.round(initSorted.at(-1)!) } : {}),
}))
process.exit(0)
