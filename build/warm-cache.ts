// Fills dist/compile-cache, V8's code cache of the JavaScript a static sidecar compiles at start
// (bin/weft.js enables it there: module.enableCompileCache, portable paths), and the code caches of
// the sidecar files (dist/sidecar/weft-proxy-HASH.v8cache and weft-proxy-cp-HASH.v8cache, each
// written as its sidecar exits: see bin/weft.js, runSidecarFile), by starting one sidecar of each
// mode: `node build/warm-cache.ts` (run by `npm run build` after the bundle); the --control-plane
// one against a local control plane started here. The bootstrap validator (dist/api/bootstrap-validate.cjs), which a sidecar loads only
// for a config that fails the quick schema check (api/schema-check.ts), is compiled into the
// compile cache by a separate process. A sidecar whose dist/ is read-only
// (an image with readOnlyRootFilesystem, a global install) then reads the cache from its first
// start; Node checks each entry against the file's contents and the Node version, and ignores what
// does not match. The files are made readable by everyone, since the proxy may run as another user.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..')
const cacheDir = path.join(root, 'dist', 'compile-cache')
const sidecarDir = path.join(root, 'dist', 'sidecar')

const BOOTSTRAP = `node: { id: warm-cache, workload: warm-cache, namespace: default }
admin: { address: 127.0.0.1, port: 0 }
listeners: [{ name: out, direction: outbound, address: 127.0.0.1, port: 0, routeTable: t }]
routeTables: [{ name: t, virtualHosts: [{ name: v, domains: ['*'], routes: [{ name: r, match: { path: { prefix: / } }, backends: [{ cluster: c }] }] }] }]
clusters: [{ name: c, endpoints: [{ address: 127.0.0.1, port: 9 }] }]
drainPeriod: 0s
drainTimeout: 1s
`

/**
 * Starts `weft proxy` once in each mode and stops it when it is up; each sidecar file's cache is
 * written as it exits. Static mode: stopped when its admin listens. --control-plane mode: against
 * a local control plane (`weft control-plane --local` with examples/demo's resources), stopped
 * once /ready answers 200 on the control plane's config; when no control plane can be started
 * (or the demo's files are missing), that file runs without a cache (it is compiled at each start)
 * and the build goes on.
 */
export async function warmCache(timeoutMs = 20000): Promise<void> {
  rmSync(cacheDir, { recursive: true, force: true })
  for (const f of existsSync(sidecarDir) ? readdirSync(sidecarDir) : []) if (f.endsWith('.v8cache')) rmSync(path.join(sidecarDir, f))
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'weft-warm-'))
  try {
    const file = path.join(tmp, 'bootstrap.yaml')
    writeFileSync(file, BOOTSTRAP)
    const env: NodeJS.ProcessEnv = { ...process.env, WEFT_LOG_LEVEL: 'info', WEFT_WRITE_SIDECAR_CACHE: '1' }
    delete env.NODE_COMPILE_CACHE
    delete env.WEFT_COMPILE_CACHE
    const code = await runSidecar(['--config', file], env, timeoutMs, async () => true)
    if (code !== 0) process.stderr.write(`warm-cache: the sidecar exited with ${code}; dist/compile-cache may be incomplete\n`)
    const validator = path.join(root, 'dist', 'api', 'bootstrap-validate.cjs')
    const load = `require('node:module').enableCompileCache({ directory: ${JSON.stringify(cacheDir)}, portable: true }); require(${JSON.stringify(validator)})`
    const r = spawnSync(process.execPath, ['-e', load], { stdio: 'inherit', env })
    if (r.status !== 0) process.stderr.write(`warm-cache: loading ${validator} failed\n`)
    await warmControlPlaneMode(tmp, env, timeoutMs)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  readable(cacheDir)
}

/** The --control-plane sidecar's warm start (see warmCache); a failure is reported, never thrown. */
async function warmControlPlaneMode(tmp: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  const skip = (why: string) => process.stderr.write(`warm-cache: ${why}; dist/sidecar/weft-proxy-cp.cjs runs without a code cache\n`)
  const demo = path.join(root, 'examples', 'demo')
  const res = path.join(tmp, 'resources')
  try {
    mkdirSync(res)
    for (const f of ['services.yaml', 'endpointslices.yaml', 'policies.yaml']) copyFileSync(path.join(demo, f), path.join(res, f))
  } catch (err) {
    return void skip(`no demo resources (${(err as Error).message})`)
  }
  const [grpc, admin] = await freePorts(2)
  // not the sidecar: no cache of its own written into dist/
  const cpEnv: NodeJS.ProcessEnv = { ...process.env, WEFT_LOG_LEVEL: 'warn', WEFT_COMPILE_CACHE: '0' }
  delete cpEnv.NODE_COMPILE_CACHE
  const cp = spawn(process.execPath, [path.join(root, 'bin', 'weft.js'), 'control-plane', '--local', res, '--listen', `127.0.0.1:${grpc}`, '--admin', `127.0.0.1:${admin}`], { stdio: ['ignore', 'ignore', 'inherit'], env: cpEnv })
  const cpExited = new Promise<void>((resolve) => cp.on('exit', () => resolve()))
  cp.on('error', () => {})
  try {
    if (!(await poll(() => httpStatus(admin, '/debug/proxies').then((s) => s === 200), timeoutMs, () => cp.exitCode !== null))) return void skip('the local control plane did not start')
    const file = path.join(tmp, 'cp-bootstrap.yaml')
    // a demo workload's settings and a listener on the control plane's route table "outbound", as an
    // injected pod has: settings only, so /ready turns 200 on the control plane's config (what the
    // cache must hold is that config's path), not on the bootstrap
    writeFileSync(file, 'node: { id: warm-cache, workload: frontend, namespace: demo }\nadmin: { address: 127.0.0.1, port: 0 }\nlisteners: [{ name: outbound, direction: outbound, address: 127.0.0.1, port: 0, routeTable: outbound }]\nrouteTables: []\nclusters: []\ndrainPeriod: 0s\ndrainTimeout: 1s\n')
    const code = await runSidecar(['--control-plane', `127.0.0.1:${grpc}`, '--config', file], env, timeoutMs, async (port) => (await httpStatus(port, '/ready')) === 200)
    if (code !== 0) skip(`the --control-plane sidecar exited with ${code}`)
  } finally {
    cp.kill('SIGKILL')
    await cpExited
  }
}

/**
 * Runs `weft proxy ARGS` until ready(adminPort) (polled once its admin listens) or timeoutMs, then
 * SIGTERM (SIGKILL after timeoutMs more); its exit code.
 */
async function runSidecar(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, ready: (adminPort: number) => Promise<boolean>): Promise<number | null> {
  const child = spawn(process.execPath, [path.join(root, 'bin', 'weft.js'), 'proxy', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const timer = setTimeout(() => child.kill('SIGKILL'), 2 * timeoutMs)
  let out = ''
  let adminPort = 0
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (s: string) => {
    if (adminPort !== 0) return
    out += s
    const line = out.split('\n').find((l) => l.includes('"admin listening"'))
    if (line === undefined) return
    adminPort = (JSON.parse(line) as { port: number }).port
    void poll(() => ready(adminPort), timeoutMs, () => child.exitCode !== null).then(() => child.kill('SIGTERM'))
  })
  const code = await exited
  clearTimeout(timer)
  return code
}

/** Calls ok() every 20 ms until it is true (true), or timeoutMs pass or gone() (false). */
async function poll(ok: () => Promise<boolean>, timeoutMs: number, gone: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !gone()) {
    if (await ok().catch(() => false)) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

function httpStatus(port: number, p: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', () => resolve(0))
    req.on('timeout', () => req.destroy())
  })
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => resolve(s))
  })))
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

function readable(dir: string): void {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch {
    return
  }
  chmodSync(dir, 0o755)
  for (const e of entries) {
    const p = path.join(dir, e)
    if (statSync(p).isDirectory()) readable(p)
    else chmodSync(p, 0o644)
  }
}

if (import.meta.main) await warmCache()
