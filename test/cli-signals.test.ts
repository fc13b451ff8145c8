// The process a container runtime starts is `weft` under the system's older Node (here
// /usr/bin/node, 20), which re-runs itself under the pinned Node 26. A signal to that first
// process must drain the real proxy, and the first process must end the way the proxy ended.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import {
  cluster, freePort, makeConfig, ROOT, routeTo, sleep, tempDir, until, WEFT_BIN, writeConfig, type Teardown,
} from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { rawClient } from './helpers/raw.ts'
import { gate } from './helpers/wait.ts'

const SYSTEM_NODE = '/usr/bin/node'
const systemMajor = existsSync(SYSTEM_NODE) ? Number(execFileSync(SYSTEM_NODE, ['-p', 'process.versions.node.split(".")[0]'], { encoding: 'utf8' })) : 0

/** pids of the direct children of pid (from /proc) */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function startWrapped(t: Teardown) {
  // /slow is answered once the test opens the gate (after the proxy logged its drain)
  const slow = gate()
  const up = await startHttpUpstream(t, {
    name: 'app',
    handler: async (rec, res) => {
      if (rec.url === '/slow') await slow.wait()
      res.end(`app ${rec.url}`)
    },
  })
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = writeConfig(tempDir(t), makeConfig({ port, adminPort, drainTimeout: '5s', drainPeriod: '200ms', routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const child = spawn(SYSTEM_NODE, [WEFT_BIN, 'proxy', '--config', file], { cwd: ROOT, env: { ...process.env, WEFT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exit = new Promise<{ code: number | null; signal: string | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })))
  // bounded: a wrapper that does not end is a failure, not a hang
  const exited = Promise.race([exit, sleep(8000).then(() => ({ code: null, signal: 'still running after 8 s' }))])
  t.teardown(() => {
    for (const p of childrenOf(child.pid!)) if (alive(p)) process.kill(p, 'SIGKILL')
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  await until('ready', async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => null))?.status === 200, 15_000, 20)
  const [real] = childrenOf(child.pid!)
  return { up, port, adminPort, child, real, exited, out: () => out, slow }
}

t.test('SIGTERM to weft started by the system Node 20: the real proxy drains, the request in flight is answered, exit 0', { skip: systemMajor >= 24 || systemMajor === 0 ? `needs an older ${SYSTEM_NODE}` : false }, async (t) => {
  const w = await startWrapped(t)
  t.ok(w.real !== undefined && w.real !== w.child.pid, `the proxy runs in a child process (${w.real}) of the wrapper (${w.child.pid})`)
  const c = await rawClient(t, w.port)
  await c.write('GET /slow HTTP/1.1\r\nHost: svc\r\n\r\n')
  await until('request upstream', () => w.up.requests.length === 1, 3000, 2)
  w.child.kill('SIGTERM')
  await until('the proxy logged its drain', () => /"msg":"draining"/.test(w.out()), 3000, 5)
  w.slow.open()
  const r = await c.response({ timeoutMs: 3000 })
  t.equal(r.status, 200, 'the request in flight is answered')
  t.equal(r.body.toString(), 'app /slow')
  t.equal(r.get('connection'), 'close')
  t.same(await w.exited, { code: 0, signal: null }, 'the wrapper exits 0, as the proxy did')
  const logs = w.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; pid: number; signal?: string })
  t.match(logs.find((l) => l.msg === 'draining'), { signal: 'SIGTERM', pid: w.real }, 'the proxy logged its drain')
  t.match(logs.find((l) => l.msg === 'drained, exiting'), { timedOut: false, pid: w.real })
  t.notOk(alive(w.real), 'the proxy process is gone')
})

t.test('SIGHUP to the wrapper (its terminal closed): passed on, the proxy drains, exit 0', { skip: systemMajor >= 24 || systemMajor === 0 ? `needs an older ${SYSTEM_NODE}` : false }, async (t) => {
  const w = await startWrapped(t)
  w.child.kill('SIGHUP')
  t.same(await w.exited, { code: 0, signal: null })
  t.match(w.out(), /"signal":"SIGHUP".*"msg":"draining"/, 'the proxy drained')
  t.notOk(alive(w.real), 'the proxy process is gone')
})

t.test('SIGKILL to the wrapper: the proxy notices, drains and exits', { skip: systemMajor >= 24 || systemMajor === 0 ? `needs an older ${SYSTEM_NODE}` : false }, async (t) => {
  const w = await startWrapped(t)
  w.child.kill('SIGKILL')
  await w.exited
  await until('the proxy exits', () => !alive(w.real), 5000, 20)
  t.notOk(alive(w.real), 'no orphan left running')
  t.ok(await fetch(`http://127.0.0.1:${w.adminPort}/ready`).then(() => false, () => true), 'its ports are free')
})

t.test('a proxy killed by a signal: the wrapper ends by the same signal', { skip: systemMajor >= 24 || systemMajor === 0 ? `needs an older ${SYSTEM_NODE}` : false }, async (t) => {
  const w = await startWrapped(t)
  process.kill(w.real, 'SIGKILL')
  t.same(await w.exited, { code: null, signal: 'SIGKILL' })
})
