// The local mode end to end, in process: `weft control-plane --local DIR` (cli/control-plane.ts)
// reads and translates resource files, a proxy with a settings-only bootstrap connects, serves the
// translated routes on its own port, follows an EndpointSlice edit (endpoints only), and keeps
// its config when an edit breaks the resources.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import { stringify } from 'yaml'
import { startControlPlane } from '../cli/control-plane.ts'
import { startXdsSidecar } from '../proxy/xds/sidecar.ts'
import { getStatus, tempDir, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { WEB_SERVICE, webSlice } from './helpers/resources.ts'

const service = WEB_SERVICE
const slice = webSlice

t.test('local mode: resource files -> translate -> cache -> stream -> proxy', async (t) => {
  const a = await startHttpUpstream(t, { name: 'A' })
  const b = await startHttpUpstream(t, { name: 'B' })
  const dir = tempDir(t)
  const res = join(dir, 'resources')
  mkdirSync(res)
  writeFileSync(join(res, 'service.yaml'), service)
  writeFileSync(join(res, 'slice.yaml'), slice(a.port))

  const logs: Record<string, unknown>[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s)) })
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', local: res, log, watchDebounceMs: 20 })
  t.teardown(() => cp.close())

  // Settings only: the listener names the table the control plane sends, on a port of its own.
  const bootstrap = join(dir, 'bootstrap.yaml')
  writeFileSync(
    bootstrap,
    stringify({
      node: { id: 'web-client-1', namespace: 'shop' },
      admin: { address: '127.0.0.1', port: 0 },
      listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'outbound' }],
      routeTables: [],
      clusters: [],
    }),
  )
  const s = await startXdsSidecar({ controlPlane: cp.server.address, configFile: bootstrap, log: pino({ level: 'silent' }), backoff: { baseMs: 10, maxMs: 50 } })
  t.teardown(() => s.close())
  t.equal(s.client.status().source, 'none', 'the bootstrap is not served on its own')
  await until('ready', () => s.proxy.ready)
  t.not(s.port('outbound'), 15001, 'the bootstrap port (0: any) overrides the control plane\'s 15001')
  t.equal(await getStatus(s.port('outbound'), 'web', '/'), 200)
  t.equal(a.requests.length, 1)

  const proxies = async (): Promise<any[]> => ((await (await fetch(`http://127.0.0.1:${cp.adminPort}/debug/proxies`)).json()) as { proxies: any[] }).proxies
  const p = await until('acked', async () => ((await proxies())[0]?.inFlight.length === 0 ? (await proxies())[0] : null))
  t.equal(p.key, 'ns/shop', 'proxies of a namespace share a snapshot')
  t.same(p.sent, { cluster: 1, endpoints: 1, routeTable: 1, listener: 1 })

  // The pods moved: only the endpoints go out.
  writeFileSync(join(res, 'slice.yaml'), slice(b.port))
  await until('traffic on B', async () => {
    await getStatus(s.port('outbound'), 'web', '/')
    return b.requests.length > 0
  })
  const after = await until('acked', async () => ((await proxies())[0]?.inFlight.length === 0 ? (await proxies())[0] : null))
  t.same(after.sent, { cluster: 1, endpoints: 2, routeTable: 1, listener: 1 })

  // A broken edit: logged, nothing published, the proxy keeps serving.
  writeFileSync(join(res, 'slice.yaml'), slice(b.port).replace('addressType: IPv4', 'addressType: 42'))
  await until('rejection logged', () => logs.some((l) => l.msg === 'resources rejected; the last good snapshots stay published'))
  t.equal(await getStatus(s.port('outbound'), 'web', '/'), 200)
  t.same((await proxies())[0].sent, after.sent, 'nothing was sent')
})
