// `weft version`: the client's version, and a proxy's and a control plane's from their admin
// /version; an address that does not answer is shown as unreachable, with exit code 1.
import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import { createControlPlaneAdmin, listenAdmin } from '../control-plane/xds/admin.ts'
import { startConfigServer } from '../control-plane/xds/server.ts'
import { WEFT_VERSION } from '../protos/version.ts'
import { freePort, makeConfig, ROOT, startTestSidecar, WEFT_BIN } from './helpers/sidecar.ts'

function weft(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT_BIN, ...args], { cwd: ROOT, timeout: 20_000 }, (e, out, err) => {
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, out, err })
    })
  })
}

t.test('the version is package.json\'s', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  t.equal(WEFT_VERSION, pkg.version)
  const r = await weft(['--version'])
  t.equal(r.out, `${pkg.version}\n`)
})

t.test('weft version --admin --control-plane-admin (and the deprecated --control-plane), -o json|yaml', async (t) => {
  const s = await startTestSidecar(t, makeConfig({ virtualHosts: [] }))
  const cp = await startConfigServer({ cache: new SnapshotCache(), address: '127.0.0.1:0', log: pino({ level: 'silent' }) })
  t.teardown(() => cp.stop())
  const admin = createControlPlaneAdmin(cp)
  const cpAdmin = await listenAdmin(admin, '127.0.0.1:0')
  t.teardown(() => admin.close())

  const r = await weft(['version', '--admin', `127.0.0.1:${s.adminPort}`, '--control-plane-admin', `127.0.0.1:${cpAdmin}`])
  t.equal(r.code, 0)
  const old = await weft(['version', '--control-plane', `127.0.0.1:${cpAdmin}`])
  t.equal(old.code, 0)
  t.match(old.out, new RegExp(`control plane 127\\.0\\.0\\.1:${cpAdmin}: weft `), 'the old spelling still works')
  const y = await weft(['version', '--control-plane-admin', `127.0.0.1:${cpAdmin}`, '-o', 'yaml'])
  t.match(y.out, /^- what: client\n  version: /)
  t.same(JSON.parse((await weft(['version', '-o', 'json'])).out).map((l: { what: string }) => l.what), ['client'])
  t.equal((await weft(['version', '-o', 'xml'])).code, 2, 'a bad -o is a usage error')
  t.equal(r.out, [
    `client: weft ${WEFT_VERSION} (node ${process.version})`,
    `proxy 127.0.0.1:${s.adminPort}: weft ${WEFT_VERSION} (node ${process.version})`,
    `control plane 127.0.0.1:${cpAdmin}: weft ${WEFT_VERSION} (node ${process.version})`,
    '',
  ].join('\n'))
  t.same(JSON.parse((await s.admin('/version')).body), { component: 'proxy', version: WEFT_VERSION, node: process.version }, 'the proxy\'s admin /version')

  const gone = await freePort()
  const u = await weft(['version', '--admin', `127.0.0.1:${gone}`])
  t.equal(u.code, 1, 'exit 1 when an address asked for does not answer')
  t.equal(u.out, `client: weft ${WEFT_VERSION} (node ${process.version})\nproxy 127.0.0.1:${gone}: unreachable (ECONNREFUSED): is the proxy running, and is its admin port ${gone}? see \`weft proxy --help\`\n`)
  const uj = JSON.parse((await weft(['version', '--control-plane-admin', `127.0.0.1:${gone}`, '-o', 'json'])).out)
  t.match(uj[1], { what: 'control plane', error: 'ECONNREFUSED', whatToDo: `is the control plane running, and is its admin port ${gone} (not its gRPC port)? see \`weft control-plane --help\`` })
})
