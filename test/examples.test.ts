// `npm run hello` and `npm run mesh` as a user runs them (npm from the system's Node 20, which
// puts the pinned Node first on PATH for the script), on a port range of their own (--base-port):
// requests through the sidecar reach the example's services; SIGINT stops it; the ports are free.
import t from 'tap'
import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { ROOT, until, type Teardown } from './helpers/sidecar.ts'

/** PATH without node_modules/.bin (tap's PATH has the pinned Node first; a user's shell does not). */
const USER_PATH = (process.env.PATH ?? '').split(':').filter((p) => !p.includes('node_modules/.bin')).join(':')

/** A base port with `span` free ports after it. */
async function freeBase(span: number): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const base = 21000 + ((process.pid + i * 7) % 200) * 20
    const busy = await Promise.all(Array.from({ length: span }, (_, k) => isBusy(base + k)))
    if (!busy.some((b) => b)) return base
  }
  throw new Error('no free port range')
}
const isBusy = (port: number) => new Promise<boolean>((r) => {
  const s = createServer().once('error', () => r(true))
  s.listen(port, '127.0.0.1', () => s.close(() => r(false)))
})

/** the ports of [base, base+span) still in use once they had 5 s to be released */
async function portsStillBusy(base: number, span: number): Promise<number[]> {
  const busy = async () => (await Promise.all(Array.from({ length: span }, async (_, k) => ((await isBusy(base + k)) ? base + k : 0)))).filter((p) => p !== 0)
  await until('ports released', async () => (await busy()).length === 0, 5000, 50).catch(() => {})
  return busy()
}

function npmRun(t: Teardown, script: string, args: string[]) {
  const proc = spawn('npm', ['run', '--silent', script, '--', ...args], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: USER_PATH } })
  let out = ''
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  t.teardown(() => {
    try {
      process.kill(-proc.pid!, 'SIGKILL') // npm, its shell and the example: one process group
    } catch {
      // gone
    }
  })
  return { proc, out: () => out, exit }
}

/** node:http (fetch does not let a caller set Host) */
function get(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject).end()
  })
}

t.test('npm run hello -- --base-port N', async (t) => {
  const base = await freeBase(4)
  const run = npmRun(t, 'hello', ['--base-port', String(base)])
  await until('started', () => run.out().includes('Ctrl-C to stop'), 20_000, 50).catch(() => {})
  t.match(run.out(), `curl -i http://127.0.0.1:${base + 1}/ -H 'Host: hello'`, `prints the moved ports:\n${run.out()}`)
  t.match(run.out(), `"hello" service (127.0.0.1:${base + 3})`)
  const r = await get(base + 1, 'hello')
  t.equal(r.status, 200, 'outbound listener -> the hello service')
  t.match(JSON.parse(r.body), { service: 'hello', instance: `127.0.0.1:${base + 3}` })
  t.equal((await get(base + 2, 'hello', '/x')).status, 200, 'inbound listener')
  t.equal((await get(base, '127.0.0.1', '/ready')).status, 200, 'admin')
  process.kill(-run.proc.pid!, 'SIGINT') // Ctrl-C: the terminal signals the whole group
  await run.exit
  await until('stopped', () => run.out().includes('stopped'), 5000, 20).catch(() => {})
  t.match(run.out(), 'draining...\nstopped\n', 'Ctrl-C drains the sidecar and stops')
  t.same(await portsStillBusy(base, 4), [], 'ports free')
})

t.test('npm run mesh -- --base-port N', async (t) => {
  const base = await freeBase(5)
  const run = npmRun(t, 'mesh', ['--base-port', String(base)])
  await until('started', () => run.out().includes('Ctrl-C to stop'), 20_000, 50).catch(() => {})
  t.match(run.out(), `curl -s http://127.0.0.1:${base + 1}/reviews/1`, `prints the moved ports:\n${run.out()}`)
  const v2 = await get(base + 1, 'reviews:9080', '/reviews/1?version=v2')
  t.equal(v2.status, 200)
  t.match(JSON.parse(v2.body), { service: 'reviews-v2', instance: `127.0.0.1:${base + 3}` }, 'routed to the moved v2 pod')
  process.kill(-run.proc.pid!, 'SIGINT')
  await run.exit
  t.same(await portsStillBusy(base, 5), [], 'Ctrl-C stops it: ports free')
})

t.test('--base-port out of range: exit 2 with a message', async (t) => {
  const run = npmRun(t, 'hello', ['--base-port', '80'])
  t.not(await run.exit, 0)
  t.match(run.out(), '--base-port: expected a port from 1024 to 65532, got 80')
})
