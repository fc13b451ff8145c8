// Large responses on the config stream, over real sockets: a route table of thousands of virtual
// hosts written to several proxies at once, as pieces straight to each HTTP/2 stream (each proxy
// gets its own intact response), the reused serialization buffer of grpc-js's write path, the send
// budget (a complete snapshot waits while another is being written, endpoint updates do not, and
// the waiting proxy is sent the latest state when its turn comes), and the push throttle (at most
// N complete snapshots written at once; every proxy gets its own in turn).
import t from 'tap'
import http2 from 'node:http2'
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js'
import { configDiscoveryClient, configDiscoveryService, TYPE, type ConfigRequest, type ConfigResponse__Output } from '../protos/api.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import type { EndpointSpec, Snapshot } from '../control-plane/snapshot/types.ts'
import { startConfigServer, type ConfigServer } from '../control-plane/xds/server.ts'
import { SMALL_BATCH_BYTES } from '../control-plane/xds/budget.ts'
import { createControlPlaneAdmin, listenAdmin } from '../control-plane/xds/admin.ts'
import { weft } from './helpers/cli.ts'
import { REUSE_FROM_BYTES, reusingSerializer, serializeResponse, toResponse } from '../control-plane/xds/wire.ts'
import { updateFor } from '../control-plane/snapshot/delta.ts'

const HOSTS = 5000

function snapshot(port = 8080): Snapshot {
  const endpoints: EndpointSpec[] = [{ address: '10.1.0.1', port }]
  return {
    listeners: [{ name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' }],
    routeTables: [{
      name: 'rt',
      virtualHosts: Array.from({ length: HOSTS }, (_, i) => ({ name: `vh-${i}`, domains: [`svc-${i}.shop.svc.cluster.local`, `svc-${i}`], routes: [{ backends: [{ cluster: 'app' }] }] })),
    }],
    clusters: [{ name: 'app' }],
    endpoints: new Map([['app', endpoints]]),
  }
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

interface Proxy {
  responses: ConfigResponse__Output[]
  ack(r: ConfigResponse__Output): void
}

function proxy(t: { teardown(fn: () => unknown): void }, cp: ConfigServer, id: string, knownVersions: Record<string, string> = {}): Proxy {
  const Client = configDiscoveryClient()
  const client = new Client(cp.address, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 })
  const call: ClientDuplexStream<ConfigRequest, ConfigResponse__Output> = client.StreamConfig()
  const responses: ConfigResponse__Output[] = []
  call.on('data', (r: ConfigResponse__Output) => void responses.push(r))
  call.on('error', () => {})
  t.teardown(() => {
    call.cancel()
    client.close()
  })
  call.write({ node: { id, pod: id, namespace: 'shop', serviceAccount: 'sa', workload: 'w', labels: {}, proxyVersion: 'test/1' }, knownVersions })
  return { responses, ack: (r) => call.write({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce }) }
}

/** A proxy on a raw HTTP/2 stream that says hello and then reads nothing (its flow-control window stays shut). */
function stalledProxy(cp: ConfigServer, id: string): { close(): void } {
  const session = http2.connect(`http://${cp.address}`, { settings: { initialWindowSize: 65535 } })
  session.on('error', () => {})
  const req = session.request({ ':method': 'POST', ':path': configDiscoveryService().StreamConfig.path, 'content-type': 'application/grpc', te: 'trailers' })
  req.on('error', () => {})
  req.pause()
  const msg = configDiscoveryService().StreamConfig.requestSerialize({ node: { id, pod: id, namespace: 'shop' } } as ConfigRequest)
  const frame = Buffer.alloc(5 + msg.length)
  frame.writeUInt32BE(msg.length, 1)
  msg.copy(frame, 5)
  req.write(frame)
  return { close: () => session.destroy() }
}

t.test('a large route table to three proxies at once: each response intact, with its own nonce', async (t) => {
  const cache = new SnapshotCache()
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0' })
  t.teardown(() => cp.stop())
  const proxies = ['a', 'b', 'c'].map((id) => proxy(t, cp, id))
  await until('three proxies connected', () => cp.registry.connected === 3)
  // published after the hellos: the three batches are written in the same turn
  const published = cache.setSnapshot('a', snapshot())
  cache.setSnapshot('b', snapshot())
  cache.setSnapshot('c', snapshot())
  t.ok(published.ok)
  await until('every batch', () => proxies.every((p) => p.responses.length === 4))
  const nonces = new Set<string>()
  for (const p of proxies) {
    const rt = p.responses.find((r) => r.typeUrl === TYPE.routeTable)!
    const table = rt.resources[0].routeTable!
    t.equal(table.virtualHosts.length, HOSTS, 'every virtual host')
    t.same([table.virtualHosts[0].name, table.virtualHosts[HOSTS - 1].name, table.virtualHosts[HOSTS - 1].domains], ['vh-0', `vh-${HOSTS - 1}`, [`svc-${HOSTS - 1}.shop.svc.cluster.local`, `svc-${HOSTS - 1}`]])
    t.equal(rt.versionInfo, published.ok ? published.snapshot.types[TYPE.routeTable].version : '')
    for (const r of p.responses) nonces.add(r.nonce)
  }
  t.equal(nonces.size, 12, 'twelve responses, twelve nonces')
  t.same(cp.writes, { direct: 12, serialized: 0 }, 'written to the HTTP/2 streams directly, not through grpc-js\'s serializer')
  t.ok(HOSTS * 40 > REUSE_FROM_BYTES, 'the route table is serialized into the reused buffer')
})

t.test('the reused buffer of large responses: the same bytes, let go once idle', async (t) => {
  const cache = new SnapshotCache()
  const r = cache.setSnapshot('n', snapshot())
  if (!r.ok) return t.fail('refused')
  const u = updateFor(r.snapshot.types[TYPE.routeTable], undefined)!
  const response = toResponse(u, 'nonce-1', 0)
  const serialize = reusingSerializer(30)
  t.equal(serialize.scratchBytes, 0, 'nothing held before a large response')
  const bytes = Buffer.from(serialize(response)) // (valid until the next call: copied, as grpc-js does)
  t.ok(bytes.length > REUSE_FROM_BYTES)
  t.same(bytes, serializeResponse(response), 'the same bytes as a buffer of its own')
  t.ok(serialize.scratchBytes >= bytes.length, 'written into the reused buffer')
  await until('the buffer let go', () => serialize.scratchBytes === 0, 2000)
  t.same(Buffer.from(serialize(response)), bytes, 'and taken again for the next large response')
})

t.test('send budget: a complete snapshot waits while another is written; endpoint updates do not', async (t) => {
  const cache = new SnapshotCache()
  // room for less than one complete snapshot: a second waits for the first to be written
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0', sendBudgetBytes: 64 * 1024 })
  t.teardown(() => cp.stop())
  for (const id of ['stalled', 'late', 'warm']) cache.setSnapshot(id, snapshot(8080))
  const first = cache.getSnapshot('warm')!
  const stalled = stalledProxy(cp, 'stalled')
  await until('the stalled proxy holds the budget', () => (cp.budget?.inUse ?? 0) > SMALL_BATCH_BYTES)
  const late = proxy(t, cp, 'late')
  await until('the late proxy waits', () => cp.budget?.queued === 1)
  // a proxy that holds the current versions: only endpoint updates for it
  const warm = proxy(t, cp, 'warm', Object.fromEntries(Object.entries(first.types).map(([type, s]) => [type, s.version])))
  await until('the warm proxy connected', () => cp.registry.connected === 3)
  for (const id of ['stalled', 'late', 'warm']) cache.setSnapshot(id, snapshot(9090))
  await until('the endpoint update', () => warm.responses.length === 1)
  const update = warm.responses[0]
  t.equal(update.typeUrl, TYPE.endpoints)
  t.equal(update.incremental, true)
  t.equal(update.resources[0].endpoints!.endpoints[0].port, 9090)
  t.equal(late.responses.length, 0, 'the late proxy is still waiting')
  t.equal(cp.budget!.queued, 1)
  // the stalled proxy goes away: what it held is given back, the late one is sent the latest state
  stalled.close()
  await until('the late proxy synced', () => late.responses.length === 4)
  const eps = late.responses.find((r) => r.typeUrl === TYPE.endpoints)!
  t.equal(eps.resources[0].endpoints!.endpoints[0].port, 9090, 'the state at its turn, not at its hello')
  t.equal(eps.incremental, false)
  for (const r of late.responses) late.ack(r)
  await until('everything written', () => cp.budget!.inUse === 0)
  t.equal(cp.budget!.queued, 0, 'nobody waiting')
})

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? NaN : Number(line.slice(series.length + 1))
}

t.test('push throttle: at most N complete snapshots written at once; the others wait their turn, and every proxy gets its own', async (t) => {
  const cache = new SnapshotCache()
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0', pushThrottle: 2 })
  t.teardown(() => cp.stop())
  const admin = createControlPlaneAdmin(cp)
  const adminPort = await listenAdmin(admin, '127.0.0.1:0')
  t.teardown(() => new Promise<void>((r) => admin.close(() => r())))
  const get = async (path: string) => (await fetch(`http://127.0.0.1:${adminPort}${path}`)).text()
  const ids = ['stalled-1', 'stalled-2', 'p1', 'p2', 'p3']
  for (const id of ids) cache.setSnapshot(id, snapshot())
  // two proxies that read nothing hold both turns: their snapshots are never written out
  const stalled = [stalledProxy(cp, 'stalled-1'), stalledProxy(cp, 'stalled-2')]
  await until('both stalled proxies are being written', () => cp.budget?.sending === 2)
  const proxies = ['p1', 'p2', 'p3'].map((id) => proxy(t, cp, id))
  await until('the three others wait', () => cp.budget?.queued === 3)
  const during = JSON.parse(await get('/debug/proxies')) as { connected: number; pushes: Record<string, number> }
  t.equal(during.connected, 5)
  t.match(during.pushes, { throttle: 2, sending: 2, mostSending: 2, waiting: 3, waited: 3 }, '/debug/proxies: two written, three waiting')
  const m = await get('/metrics')
  t.equal(metricValue(m, 'weft_cp_push_sending'), 2)
  t.equal(metricValue(m, 'weft_cp_push_waiting'), 3)
  t.equal(metricValue(m, 'weft_cp_push_throttled_total'), 3)
  t.ok(proxies.every((p) => p.responses.length === 0), 'the waiting proxies were sent nothing yet')
  // the stalled proxies go away: their turns go to the others, two at a time
  for (const s of stalled) s.close()
  await until('every waiting proxy has its snapshot', () => proxies.every((p) => p.responses.length === 4))
  for (const p of proxies) {
    const table = p.responses.find((r) => r.typeUrl === TYPE.routeTable)!.resources[0].routeTable!
    t.equal(table.virtualHosts.length, HOSTS, 'a complete route table')
    t.equal(p.responses[p.responses.length - 1].batchRemaining, 0, 'the whole batch')
  }
  await until('everything written', () => cp.budget!.sending === 0)
  const after = JSON.parse(await get('/debug/proxies')) as { pushes: Record<string, number> }
  t.match(after.pushes, { throttle: 2, sending: 0, mostSending: 2, waiting: 0, waited: 3, bytesInUse: 0 }, 'never more than two at once')
})

t.test('weft control-plane --push-throttle: not a whole number is a usage error (exit 2)', async (t) => {
  for (const bad of ['-1', 'two', '1.5']) {
    const r = await weft(['control-plane', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--push-throttle', bad])
    t.equal(r.code, 2, bad)
    t.match(r.stderr, `weft: --push-throttle: expected a whole number (0: no limit), got "${bad}"`)
  }
})
