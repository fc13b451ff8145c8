// Weft as a package, installed the way a user installs it: `npm pack`, then `npm install -g` of the
// tarball into a temporary prefix. The tarball has the compiled JavaScript, a LICENSE, and no tests
// or bench results; the installed `weft` answers --help and `version`, and runs a static proxy that
// forwards a request, started from a shell whose `node` is the system's older one (the wrapper
// re-runs it under the pinned Node, the package's `node` dependency) and under the pinned Node.
// Needs the npm registry (or npm's cache) for the dependencies.
import t from 'tap'
import { execFile, execFileSync, spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WEFT_VERSION } from '../protos/version.ts'
import { cluster, freePort, makeConfig, ROOT, routeTo, tempDir, until, writeConfig } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

t.setTimeout(300_000)

/** PATH without node_modules/.bin (tap's PATH has the pinned Node first; a user's shell does not). */
const USER_PATH = (process.env.PATH ?? '').split(':').filter((p) => !p.includes('node_modules/.bin')).join(':')

/** out: stdout; all: stdout then stderr */
/** A user's shell: no tap loaders in NODE_OPTIONS, no test variables. */
const USER_ENV: NodeJS.ProcessEnv = { HOME: process.env.HOME, PATH: USER_PATH, LANG: process.env.LANG ?? 'C.UTF-8', TMPDIR: process.env.TMPDIR }

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = ROOT): Promise<{ code: number; out: string; all: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env: { ...USER_ENV, ...env }, timeout: 240_000, maxBuffer: 16 << 20 }, (e, out, err) => {
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, out, all: out + err })
    })
  })
}

t.test('npm pack, npm install -g --prefix DIR: a working weft', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-pack-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  // env -u: tap adds its loaders to NODE_OPTIONS of every process the test starts; npm's scripts
  // (the prepack build) run without them, as in a user's shell
  // Packed from a copy of the checkout (its node_modules linked): the prepack build's dist/ must not
  // appear in the checkout while other test files run weft from it.
  const src = join(dir, 'src')
  mkdirSync(src)
  for (const f of readdirSync(ROOT)) if (!['node_modules', '.git', '.tap', 'dist'].includes(f)) cpSync(join(ROOT, f), join(src, f), { recursive: true })
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'))
  const pack = await run('env', ['-u', 'NODE_OPTIONS', 'npm', 'pack', '--json', '--pack-destination', dir], { PATH: USER_PATH }, src)
  t.equal(pack.code, 0, `npm pack (prepack builds the JavaScript):\n${pack.all.slice(-3000)}`)
  const json = pack.out.slice(pack.out.indexOf('\n[') + 1)
  const info = (JSON.parse(json) as { filename: string; files: { path: string }[] }[])[0]
  const files = info.files.map((f) => f.path)
  t.ok(files.includes('LICENSE'), 'a LICENSE')
  t.ok(files.includes('bin/weft.js'))
  t.same(files.filter((f) => /^(test|bench)\//.test(f) || /\.test\.[jt]s$/.test(f)), [], 'no tests, no benchmarks or their results')
  t.ok(files.some((f) => f.endsWith('.js') && f.includes('cli/weft')), 'the CLI as compiled JavaScript')

  const prefix = join(dir, 'prefix')
  const install = await run('env', ['-u', 'NODE_OPTIONS', 'npm', 'install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', join(dir, info.filename)], { PATH: USER_PATH })
  t.equal(install.code, 0, `npm install -g:\n${install.all.slice(-3000)}`)
  const weft = join(prefix, 'bin', 'weft')
  const pinned = join(prefix, 'lib', 'node_modules', 'weft', 'node_modules', 'node', 'bin', 'node')

  for (const [how, env] of [['the system Node first on PATH', { PATH: USER_PATH }], ['the pinned Node first on PATH', { PATH: `${join(pinned, '..')}:${USER_PATH}` }]] as const) {
    const help = await run(weft, ['--help'], env, dir)
    t.equal(help.code, 0, `weft --help, ${how}:\n${help.all.slice(0, 2000)}`)
    t.match(help.out, /Usage: weft/)
    t.match(help.out, /proxy/)
    const version = await run(weft, ['version'], env, dir)
    t.equal(version.code, 0, `weft version, ${how}`)
    t.match(version.out, new RegExp(`^client: weft ${WEFT_VERSION.replaceAll('.', '\\.')} \\(node v26\\.`), `runs on the pinned Node 26, ${how}: ${version.out}`)
  }
  t.match(execFileSync(pinned, ['--version'], { encoding: 'utf8' }), /^v26\./, 'the pinned Node is installed with the package')

  // A static proxy from the installed package, and `weft version --admin` against it.
  const up = await startHttpUpstream(t, { name: 'app' })
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = writeConfig(tempDir(t), makeConfig({ port, adminPort, drainPeriod: '0s', routes: [routeTo('app')], clusters: [cluster('app', [up.port])] }))
  const proxy = spawn(weft, ['proxy', '--config', file], { cwd: dir, env: { ...USER_ENV, WEFT_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proxy.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  proxy.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d))
  const exited = new Promise<number | null>((r) => proxy.once('exit', (code) => r(code)))
  t.teardown(() => {
    if (proxy.exitCode === null && proxy.signalCode === null) proxy.kill('SIGKILL')
  })
  await until('the installed proxy is ready', async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => null))?.status === 200, 20_000, 50).catch(() => {})
  const body = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/installed', headers: { host: 'svc' }, agent: false }, (res) => {
      let b = ''
      res.setEncoding('utf8').on('data', (d: string) => (b += d))
      res.on('end', () => resolve(`${res.statusCode} ${b}`))
    }).on('error', reject).end()
  }).catch((e: Error) => `error ${e.message}: ${out}`)
  t.equal(body, '200 app GET /installed', 'the installed proxy forwards a request')
  const v = await run(weft, ['version', '--admin', `127.0.0.1:${adminPort}`], { PATH: USER_PATH }, dir)
  t.match(v.out, `proxy 127.0.0.1:${adminPort}: weft ${WEFT_VERSION} (node v26.`, 'and reports its version')
  proxy.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: drained, exit 0')
})
