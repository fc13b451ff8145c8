// The heap compaction after a burst of complete snapshots (control-plane/xds/compact.ts), over real
// gRPC streams: once every proxy was written its complete snapshot and the push queue is empty,
// the control plane runs one compacting collection, logs "heap compacted after a push burst" with
// the heap before and after, and counts it in weft_cp_heap_compactions_total. Off with 0.
import t from 'tap'
import pino from 'pino'
import { credentials, type ClientDuplexStream } from '@grpc/grpc-js'
import { configDiscoveryClient, type ConfigRequest, type ConfigResponse__Output } from '../protos/api.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import type { Snapshot } from '../control-plane/snapshot/types.ts'
import { startConfigServer, type ConfigServer } from '../control-plane/xds/server.ts'
import { createControlPlaneAdmin, listenAdmin } from '../control-plane/xds/admin.ts'

const HOSTS = 5000 // a route table of ~0.5 MB: a complete snapshot (over the 256 KB of a small batch)

function snapshot(): Snapshot {
  return {
    listeners: [{ name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' }],
    routeTables: [{
      name: 'rt',
      virtualHosts: Array.from({ length: HOSTS }, (_, i) => ({ name: `vh-${i}`, domains: [`svc-${i}.shop.svc.cluster.local`], routes: [{ backends: [{ cluster: 'app' }] }] })),
    }],
    clusters: [{ name: 'app' }],
    endpoints: new Map([['app', [{ address: '10.1.0.1', port: 8080 }]]]),
  }
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function proxy(t: { teardown(fn: () => unknown): void }, cp: ConfigServer, id: string): ConfigResponse__Output[] {
  const Client = configDiscoveryClient()
  const client = new Client(cp.address, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 })
  const call: ClientDuplexStream<ConfigRequest, ConfigResponse__Output> = client.StreamConfig()
  const responses: ConfigResponse__Output[] = []
  call.on('data', (r: ConfigResponse__Output) => {
    responses.push(r)
    call.write({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce })
  })
  call.on('error', () => {})
  t.teardown(() => {
    call.cancel()
    client.close()
  })
  call.write({ node: { id, pod: id, namespace: 'shop', serviceAccount: 'sa', workload: 'w', labels: {}, proxyVersion: 'test/1' }, knownVersions: {} })
  return responses
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? NaN : Number(line.slice(series.length + 1))
}

async function withAdmin(t: { teardown(fn: () => unknown): void }, cp: ConfigServer): Promise<(path: string) => Promise<string>> {
  const admin = createControlPlaneAdmin(cp)
  const port = await listenAdmin(admin, '127.0.0.1:0')
  t.teardown(() => new Promise<void>((r) => admin.close(() => r())))
  return async (path) => (await fetch(`http://127.0.0.1:${port}${path}`)).text()
}

t.test('three proxies sync a complete snapshot: one compaction once the push queue is empty, logged and counted', async (t) => {
  const logs: Record<string, unknown>[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s)) })
  const cache = new SnapshotCache()
  // 1 byte: any burst of complete snapshots is enough (the default is 64 MB)
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0', log, compactAfterBytes: 1 })
  t.teardown(() => cp.stop())
  const get = await withAdmin(t, cp)
  t.equal(metricValue(await get('/metrics'), 'weft_cp_heap_compactions_total'), 0, 'none before any push')
  const ids = ['p1', 'p2', 'p3']
  for (const id of ids) cache.setSnapshot(id, snapshot())
  const proxies = ids.map((id) => proxy(t, cp, id))
  const compacted = () => logs.filter((l) => l.msg === 'heap compacted after a push burst')
  await until('the compaction is logged', () => compacted().length > 0)
  t.ok(proxies.every((r) => r.some((x) => x.resources[0]?.routeTable?.virtualHosts.length === HOSTS)), 'every proxy had its complete route table before it ran')
  const line = compacted()[0]
  t.equal(line.level, 30, 'info')
  t.ok((line.burstMB as number) >= 0 && (line.pauseMs as number) >= 0, 'the burst and the pause')
  for (const k of ['heapUsedMB', 'heapTotalMB', 'rssMB']) {
    t.ok(Array.isArray(line[k]) && (line[k] as unknown[]).length === 2 && (line[k] as number[]).every((n) => n > 0), `${k}: [before, after]`)
  }
  const m = await get('/metrics')
  t.equal(metricValue(m, 'weft_cp_heap_compactions_total'), 1)
  t.ok(metricValue(m, 'weft_cp_heap_compaction_pause_seconds') >= 0, 'the pause as a gauge')
  // an endpoint update to every proxy (small batches) is no burst: the count stays at one
  const before = proxies.map((r) => r.length)
  for (const id of ids) cache.setSnapshot(id, { ...snapshot(), endpoints: new Map([['app', [{ address: '10.1.0.2', port: 8080 }]]]) })
  await until('every proxy has the endpoint update', () => proxies.every((r, i) => r.length > before[i]))
  t.ok(proxies.every((r, i) => r.slice(before[i]).every((x) => x.resources.every((res) => !res.routeTable))), 'only small batches were sent')
  await new Promise((r) => setTimeout(r, cp.compactor!.settleMs * 2)) // the compaction waits settleMs of quiet
  t.equal(compacted().length, 1, 'one line for the burst')
  t.equal(cp.compactor!.count, 1)
})

t.test('compactAfterBytes 0: no compaction, nothing logged', async (t) => {
  const logs: Record<string, unknown>[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => void logs.push(JSON.parse(s)) })
  const cache = new SnapshotCache()
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0', log, compactAfterBytes: 0 })
  t.teardown(() => cp.stop())
  const get = await withAdmin(t, cp)
  cache.setSnapshot('p1', snapshot())
  const responses = proxy(t, cp, 'p1')
  await until('the proxy has its route table', () => responses.some((x) => x.resources[0]?.routeTable?.virtualHosts.length === HOSTS))
  await until('everything written', () => cp.budget!.idle)
  t.equal(cp.compactor, undefined, 'no compactor')
  t.equal(metricValue(await get('/metrics'), 'weft_cp_heap_compactions_total'), 0)
  t.equal(logs.filter((l) => l.msg === 'heap compacted after a push burst').length, 0)
})
