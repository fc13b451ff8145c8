// `weft stat --control-plane`: proxies tell the control plane where their admin API is (Node
// admin_address in the hello), the control plane lists them on /debug/proxies, and weft stat
// scrapes the proxies it finds there.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { startControlPlane } from '../cli/control-plane.ts'
import { discoverProxies } from '../cli/stat.ts'
import { startXdsSidecar, type XdsSidecar } from '../proxy/xds/sidecar.ts'
import { getStatus, tempDir, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { WEB_SERVICE, webSlice } from './helpers/resources.ts'

const weft = fileURLToPath(new URL('../bin/weft.js', import.meta.url))

const resources = (port: number) => `${WEB_SERVICE}---\n${webSlice(port)}`

t.test('proxies found through the control plane; weft stat reads their metrics', async (t) => {
  const up = await startHttpUpstream(t, { name: 'web' })
  const dir = tempDir(t)
  mkdirSync(join(dir, 'res'))
  writeFileSync(join(dir, 'res', 'web.yaml'), resources(up.port))
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', local: join(dir, 'res'), log: pino({ level: 'silent' }) })
  t.teardown(() => cp.close())

  const sidecar = async (id: string, namespace: string): Promise<XdsSidecar> => {
    const s = await startXdsSidecar({
      controlPlane: cp.server.address,
      bootstrap: {
        node: { id, namespace, workload: id },
        admin: { address: '127.0.0.1', port: 0 },
        listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'outbound' }],
        routeTables: [],
        clusters: [],
      },
      serveBootstrap: false,
      log: pino({ level: 'silent' }),
    })
    t.teardown(() => s.close())
    return s
  }
  const a = await sidecar('client-a', 'shop')
  const b = await sidecar('client-b', 'other')
  await until('both ready', () => a.proxy.ready && b.proxy.ready)

  const cpAdmin = `127.0.0.1:${cp.adminPort}`
  t.same(await discoverProxies(cpAdmin), [`127.0.0.1:${a.adminPort}`, `127.0.0.1:${b.adminPort}`].sort(), 'every connected proxy, by its admin address')
  t.same(await discoverProxies(cpAdmin, 'shop'), [`127.0.0.1:${a.adminPort}`], 'one namespace')
  t.same(await discoverProxies(cpAdmin, 'nowhere'), [])

  // Traffic from a while weft stat (the real CLI) watches.
  let stop = false
  const traffic = (async () => {
    while (!stop) await getStatus(a.port('outbound'), 'web.shop.svc.cluster.local', '/')
  })()
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [weft, 'stat', ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
      })
    })
  const r = await run(['--control-plane-admin', cpAdmin, '--namespace', 'shop', '--window', '500ms', '--json'])
  stop = true
  await traffic
  t.equal(r.code, 0, r.stderr)
  const body = JSON.parse(r.stdout) as { rows: { name: string; rps: number; successRate: number }[] }
  const row = body.rows.find((x) => x.name.startsWith('web.shop'))
  t.ok(row, `a row for web.shop (${r.stdout})`)
  t.ok(row!.rps > 0, 'requests per second seen')
  t.equal(row!.successRate, 1)

  // the old spelling still works, with a note
  const none = await run(['--control-plane', cpAdmin, '--namespace', 'nowhere', '--window', '10ms'])
  t.equal(none.code, 1)
  t.match(none.stderr, /--control-plane is deprecated here: .* now --control-plane-admin/)
  t.match(none.stderr, /no proxies connected in namespace nowhere/)
  const both = await run(['--control-plane-admin', cpAdmin, '--admin', '127.0.0.1:1'])
  t.equal(both.code, 2, 'bad usage: exit 2')
  t.match(both.stderr, /--admin and --control-plane-admin: choose one/)
  // the gRPC port given where the admin address goes: the error says what to check
  const grpc = await run(['--control-plane-admin', cp.server.address, '--window', '10ms'])
  t.equal(grpc.code, 3, 'unreachable: exit 3')
  t.match(grpc.stderr, /is the control plane running, and is its admin port \d+ \(not its gRPC port\)\?/)
})
