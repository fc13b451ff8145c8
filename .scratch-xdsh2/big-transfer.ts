// time for the 4 responses of a big snapshot to arrive and decode: own transport vs grpc-js client
import { credentials } from '/work/wt-api/node_modules/@grpc/grpc-js/build/src/index.js'
import { SnapshotCache } from '/work/wt-api/control-plane/snapshot/cache.ts'
import { startConfigServer } from '/work/wt-api/control-plane/xds/server.ts'
import { GrpcStream } from '/work/wt-api/proxy/xds/grpc-stream.ts'
import { streamConfigCodec, configDiscoveryClient } from '/work/wt-api/proxy/xds/wire.ts'
import { REAL_TIMERS } from '/work/wt-api/proxy/xds/backoff.ts'
const hosts = 3500
const snap = {
  listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'rt' }],
  routeTables: [{ name: 'rt', virtualHosts: Array.from({ length: hosts }, (_, i) => ({ name: `vh-${i}`, domains: [`service-number-${i}.a-rather-long-namespace-name.svc.cluster.local`, `s-${i}`], routes: ['/a', '/b', '/c', '/d', '/'].map((p, j) => ({ match: { path: { prefix: `${p}/${i}` }, headers: [{ name: 'x-tenant', exact: `tenant-${j}-${i}-${'0123456789abcdef'.repeat(6)}` }] }, backends: [{ cluster: 'c-0' }] })) })) }],
  clusters: [{ name: 'c-0' }],
  endpoints: new Map([['c-0', [{ address: '10.0.0.1', port: 80 }]]]),
} as never
let n = 0
for (const mode of (process.env.MODES ?? 'own,own,own,own').split(',')) {
  const cache = new SnapshotCache()
  const id = `p${n++}`
  cache.setSnapshot(id, snap)
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0' })
  const codec = streamConfigCodec()
  const t0 = performance.now()
  const hello = { node: { id, pod: '', namespace: '', serviceAccount: '', workload: '', labels: {}, proxyVersion: 'x', adminAddress: '' }, knownVersions: {} }
  await new Promise<void>((resolve) => {
    let got = 0
    if (mode === 'own') {
      const s = new GrpcStream({ address: cp.address, path: codec.path, serialize: codec.requestSerialize, deserialize: codec.responseDeserialize, keepaliveMs: 30000, maxMessage: 256 << 20, userAgent: 'x', timers: REAL_TIMERS }, { onHeaders() {}, onMessage() { if (++got === 4) { s.cancel(); resolve() } }, onStatus(st) { console.log(st) } })
      s.write(hello)
    } else {
      const C = configDiscoveryClient()
      const c = new C(cp.address, credentials.createInsecure(), { 'grpc.max_receive_message_length': 256 << 20 })
      const call = c.StreamConfig()
      call.on('data', () => { if (++got === 4) { call.cancel(); c.close(); resolve() } })
      call.on('error', () => {})
      call.write(hello)
    }
  })
  console.log(mode, Math.round(performance.now() - t0), 'ms')
  await cp.stop()
}
process.exit(0)
