// Fills dist/compile-cache, V8's code cache of the JavaScript a static sidecar compiles at start
// (bin/weft.js enables it there: module.enableCompileCache, portable paths), and the static sidecar
// bundle's code cache (dist/sidecar/weft-proxy-HASH.v8cache, written as it exits: see bin/weft.js,
// runSidecarFile), by starting one: `node build/warm-cache.ts` (run by `npm run build` after the
// bundle). The bootstrap validator (dist/api/bootstrap-validate.cjs), which a sidecar loads only
// for a config that fails the quick schema check (api/schema-check.ts), is compiled into the
// compile cache by a separate process. A sidecar whose dist/ is read-only
// (an image with readOnlyRootFilesystem, a global install) then reads the cache from its first
// start; Node checks each entry against the file's contents and the Node version, and ignores what
// does not match. The files are made readable by everyone, since the proxy may run as another user.
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
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

/** Starts `weft proxy` once, stops it when its admin listens; the cache is written as it exits. */
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
    const child = spawn(process.execPath, [path.join(root, 'bin', 'weft.js'), 'proxy', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env })
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    let out = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (s: string) => {
      out += s
      if (out.includes('"admin listening"')) {
        out = ''
        child.kill('SIGTERM')
      }
    })
    const code = await exited
    clearTimeout(timer)
    if (code !== 0) process.stderr.write(`warm-cache: the sidecar exited with ${code}; dist/compile-cache may be incomplete\n`)
    const validator = path.join(root, 'dist', 'api', 'bootstrap-validate.cjs')
    const load = `require('node:module').enableCompileCache({ directory: ${JSON.stringify(cacheDir)}, portable: true }); require(${JSON.stringify(validator)})`
    const r = spawnSync(process.execPath, ['-e', load], { stdio: 'inherit', env })
    if (r.status !== 0) process.stderr.write(`warm-cache: loading ${validator} failed\n`)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  readable(cacheDir)
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
