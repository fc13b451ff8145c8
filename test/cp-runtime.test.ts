// The control plane's process settings (control-plane/runtime.ts): `weft control-plane` started
// without them re-executes itself once with them (same pid, so a supervisor sees one process),
// the operator's own values win, WEFT_CP_DEFAULTS=1 keeps glibc's and V8's defaults, and the
// processes the bench starts as proxies get none of them.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { CONTROL_PLANE_ENV, controlPlaneEnv, hasControlPlaneSettings, withoutControlPlaneEnv } from '../control-plane/runtime.ts'
import { ROOT, tempDir, until, WEFT_BIN, type Teardown } from './helpers/sidecar.ts'

const SETTINGS = ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'NODE_OPTIONS', 'WEFT_CP_DEFAULTS', 'WEFT_CP_REEXECUTED']

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, WEFT_LOG_LEVEL: 'info' }
  for (const k of SETTINGS) delete env[k]
  return { ...env, ...extra }
}

/** The environment of a running process, as the kernel has it (/proc/PID/environ). */
function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {}
  for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const i = kv.indexOf('=')
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1)
  }
  return out
}

const SYSTEM_NODE = '/usr/bin/node'
const systemMajor = existsSync(SYSTEM_NODE) ? Number(execFileSync(SYSTEM_NODE, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' })) : 0

async function startControlPlane(t: Teardown, env: NodeJS.ProcessEnv, node = process.execPath) {
  const dir = join(tempDir(t), 'resources')
  mkdirSync(dir)
  writeFileSync(join(dir, 'svc.yaml'), stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'demo' }, spec: { ports: [{ port: 80 }] } }))
  const child = spawn(node, [WEFT_BIN, 'control-plane', '--local', dir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  let ready: { pid: number } | null = null
  t.teardown(() => {
    if (ready !== null && ready.pid !== child.pid) {
      try {
        process.kill(ready.pid, 'SIGKILL') // the wrapper's child
      } catch {
        // gone
      }
    }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await until('control plane ready', () => out.includes('"msg":"control plane ready"'), 30_000)
  ready = JSON.parse(out.split('\n').find((l) => l.includes('"msg":"control plane ready"'))!) as { pid: number }
  return { pid: child.pid!, ready: ready as { pid: number }, stderr: () => err, stop: async () => { child.kill('SIGTERM'); return exited } }
}

t.test('weft control-plane without the settings: the same process runs with them, and stops on SIGTERM with 0', async (t) => {
  const cp = await startControlPlane(t, cleanEnv())
  t.equal(cp.ready.pid, cp.pid, 'the process the parent started is the control plane (re-executed in place)')
  const env = environOf(cp.pid)
  t.equal(env.MALLOC_ARENA_MAX, '2')
  t.equal(env.MALLOC_MMAP_THRESHOLD_, '131072')
  t.equal(env.MALLOC_TRIM_THRESHOLD_, '131072')
  t.notMatch(env.NODE_OPTIONS ?? '', /semi-space/, 'V8\'s young generation at its default size')
  t.notMatch(cp.stderr(), /without its memory settings/)
  t.equal(await cp.stop(), 0)
})

t.test('the operator\'s values win; WEFT_CP_DEFAULTS=1 keeps the defaults', async (t) => {
  const own = await startControlPlane(t, cleanEnv({ MALLOC_ARENA_MAX: '4', NODE_OPTIONS: '--max-semi-space-size=8' }))
  const env = environOf(own.pid)
  t.equal(env.MALLOC_ARENA_MAX, '4')
  t.match(env.NODE_OPTIONS, /--max-semi-space-size=8/, 'the operator\'s NODE_OPTIONS kept')
  t.equal(env.MALLOC_MMAP_THRESHOLD_, '131072', 'what the operator did not set is added')
  t.equal(await own.stop(), 0)
  const plain = await startControlPlane(t, cleanEnv({ WEFT_CP_DEFAULTS: '1' }))
  const penv = environOf(plain.pid)
  t.equal(penv.MALLOC_ARENA_MAX, undefined)
  t.notMatch(penv.NODE_OPTIONS ?? '', /semi-space/)
  t.equal(await plain.stop(), 0)
})

t.test('controlPlaneEnv / withoutControlPlaneEnv / hasControlPlaneSettings', async (t) => {
  const base = { PATH: '/bin', NODE_OPTIONS: '--enable-source-maps' }
  const cp = controlPlaneEnv(base)
  t.same(cp, { PATH: '/bin', NODE_OPTIONS: '--enable-source-maps', MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_TRIM_THRESHOLD_: '131072' })
  t.same(controlPlaneEnv({ PATH: '/bin' }), { PATH: '/bin', MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_TRIM_THRESHOLD_: '131072' }, 'no NODE_OPTIONS added')
  t.ok(hasControlPlaneSettings(cp))
  t.notOk(hasControlPlaneSettings(base))
  t.notOk(hasControlPlaneSettings({ ...cp, MALLOC_TRIM_THRESHOLD_: undefined }), 'every glibc setting')
  t.same(withoutControlPlaneEnv({ ...cp, WEFT_CP_REEXECUTED: '1' }), base, 'the bench\'s proxies get none of them')
  t.same(controlPlaneEnv({ MALLOC_ARENA_MAX: '8' }).MALLOC_ARENA_MAX, '8')
})

t.test('started by an older system Node (bin/weft.js re-runs it under the pinned Node): the control plane has its settings', { skip: systemMajor === 0 || systemMajor >= 24 ? `no system Node older than 24 at ${SYSTEM_NODE}` : false }, async (t) => {
  const cp = await startControlPlane(t, cleanEnv(), SYSTEM_NODE)
  t.not(cp.ready.pid, cp.pid, 'the control plane is the wrapper\'s child')
  const env = environOf(cp.ready.pid)
  for (const [k, v] of Object.entries(CONTROL_PLANE_ENV)) t.equal(env[k], v, `${k} given by the wrapper`)
  t.notMatch(cp.stderr(), /without its memory settings/)
  t.equal(await cp.stop(), 0, 'SIGTERM to the wrapper: it ends as the control plane ended')
})
