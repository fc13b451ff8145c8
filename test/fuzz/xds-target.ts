// The `xds-decoder` fuzz target: a hostile control plane on the proxy's gRPC config stream. A
// grpc-js server with the ConfigDiscovery service whose response serializer passes Buffers through,
// so each piece of an input is one gRPC message of arbitrary bytes: mutations of a recorded valid
// batch (the four types routing to the strict upstream), generated ConfigResponses with wrong types,
// garbage and large resources, and raw bytes. Properties: the in-process proxy survives, a response
// it cannot use is NACKed or ends the stream (it reconnects), the last good config keeps serving
// (probe through the listener), nothing malformed reaches the upstream, the heap returns to its level.
import fc from 'fast-check'
import pino from 'pino'
import { Server as GrpcServer, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js'
import { configDiscoveryService, TYPE, type ConfigResponse } from '../../protos/api.ts'
import { startXdsSidecar, type XdsSidecar } from '../../proxy/xds/sidecar.ts'
import { heapBase, heapCheck, probeHttp, strictUpstream, closeServer, type StrictUpstream } from './kit.ts'
import { pieces, type FuzzInput, type Target } from './engine.ts'

const codec = configDiscoveryService().StreamConfig
const encode = (r: ConfigResponse): Buffer => codec.responseSerialize(r)

/** The valid batch: listener "out" on 127.0.0.1:0 -> route table -> cluster "app" -> the upstream. */
function goodBatch(upPort: number, version: string, listenerPort = 0): Buffer[] {
  const base = { nonce: version, removedResources: [], incremental: false }
  return [
    encode({ ...base, typeUrl: TYPE.cluster, versionInfo: version, batchRemaining: 3, resources: [{ name: 'app', version, cluster: { name: 'app' } }] }),
    encode({ ...base, typeUrl: TYPE.endpoints, versionInfo: version, batchRemaining: 2, resources: [{ name: 'app', version, endpoints: { clusterName: 'app', endpoints: [{ address: '127.0.0.1', port: upPort, weight: 1, ready: true, zone: '', labels: {} }] } }] }),
    encode({ ...base, typeUrl: TYPE.routeTable, versionInfo: version, batchRemaining: 1, resources: [{ name: 'rt', version, routeTable: { name: 'rt', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] } }] }),
    encode({ ...base, typeUrl: TYPE.listener, versionInfo: version, batchRemaining: 0, resources: [{ name: 'out', version, listener: { name: 'out', direction: 'outbound', address: '127.0.0.1', port: listenerPort, routeTable: 'rt' } }] }),
  ]
}

// generated ConfigResponses: right and wrong type URLs, bodies of another type, empty, huge and
// garbage names, batches that never end, removals of what exists
const str = fc.oneof(fc.constantFrom('app', 'rt', 'out', '', 'x'.repeat(70_000), '\0', '../../etc'), fc.string({ maxLength: 12 }))
const body = fc.oneof(
  fc.constant({}),
  str.map((n) => ({ cluster: { name: n } })),
  fc.record({ n: str, p: fc.integer({ min: -1, max: 70000 }), a: fc.constantFrom('127.0.0.1', '', 'not an ip', '::1', '999.1.1.1') }).map((x) => ({ endpoints: { clusterName: x.n, endpoints: [{ address: x.a, port: x.p, weight: 1, ready: true, zone: '', labels: {} }] } })),
  str.map((n) => ({ routeTable: { name: n, virtualHosts: [{ name: 'v', domains: ['*'], routes: [{ backends: [{ cluster: n }] }] }] } })),
  fc.record({ n: str, p: fc.constantFrom(0, 1, 65536, 99999) }).map((x) => ({ listener: { name: x.n, direction: 'outbound', address: '127.0.0.1', port: x.p, routeTable: 'rt' } })),
)
const genResponse = fc
  .record({
    typeUrl: fc.oneof(fc.constantFrom(...Object.values(TYPE)), fc.constantFrom('', 'weft.config.v1alpha1.Secret', 'type.googleapis.com/x')),
    versionInfo: str,
    resources: fc.array(fc.record({ name: str, version: str, body }), { maxLength: 5 }),
    removedResources: fc.array(str, { maxLength: 3 }),
    incremental: fc.boolean(),
    batchRemaining: fc.constantFrom(0, 0, 1, 3, 1000),
    many: fc.constantFrom(1, 1, 1, 200),
  })
  .map((r) => {
    const resources = Array.from({ length: r.many === 1 ? 1 : r.many }, () => r.resources).flat().map((x) => ({ name: x.name, version: x.version, ...x.body }))
    return encode({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, nonce: 'g', resources, removedResources: r.removedResources, incremental: r.incremental, batchRemaining: r.batchRemaining } as ConfigResponse)
  })

interface XdsCtx {
  up: StrictUpstream
  grpc: GrpcServer
  /** the current stream from the proxy */
  call: ServerDuplexStream<unknown, Buffer> | null
  calls: number
  s: XdsSidecar
  version: number
  heap: number
}

function counts(c: XdsCtx): { ack: number; nack: number; reconnects: number } {
  const st = c.s.client.status()
  return { ack: st.updates.ack, nack: st.updates.nack, reconnects: st.reconnects }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 2))
  }
  return true
}

/** Send the good batch under a new version and wait until it is ACKed (or the stream is replaced). */
async function restore(c: XdsCtx): Promise<string | null> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = counts(c)
    const call = c.call
    if (call === null || call.cancelled) {
      await waitFor(() => c.call !== null && c.call !== call && !c.call.cancelled, 2000)
      continue
    }
    c.version++
    for (const m of goodBatch(c.up.port, `good-${c.version}`)) call.write(m)
    if (await waitFor(() => counts(c).ack > before.ack || c.call !== call, 2000) && counts(c).ack > before.ack) return null
  }
  return 'the good config was not ACKed again after the input'
}

export const xdsDecoder: Target<XdsCtx> = {
  name: 'xds-decoder',
  corpus: [],
  tokens: ['\0', '\x0a\x00', '\x22\xff\xff\xff\x0f', '\x2a\x80\x80\x80\x80\x10', 'weft.config.v1alpha1.Listener', 'weft.config.v1alpha1.Cluster', '\xff', '\x08\x01', '\x30\x01', '\x38\xe8\x07'],
  generated: genResponse,
  async setup() {
    const up = await strictUpstream()
    const ctx = { up, call: null, calls: 0, version: 0 } as unknown as XdsCtx
    const def = configDiscoveryService()
    const passthrough = { ...def.StreamConfig, responseSerialize: (x: unknown) => (Buffer.isBuffer(x) ? x : def.StreamConfig.responseSerialize(x as ConfigResponse)) }
    const grpc = new GrpcServer()
    grpc.addService({ StreamConfig: passthrough } as never, {
      StreamConfig(call: ServerDuplexStream<unknown, Buffer>) {
        ctx.call = call
        ctx.calls++
        call.on('error', () => {})
        let first = true
        call.on('data', () => {
          // the hello: answer with the good config
          if (!first) return
          first = false
          ctx.version++
          for (const m of goodBatch(up.port, `good-${ctx.version}`)) call.write(m)
        })
        call.on('end', () => call.end())
      },
    })
    const port = await new Promise<number>((res, rej) => grpc.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))))
    ctx.grpc = grpc
    ctx.s = await startXdsSidecar({ controlPlane: `127.0.0.1:${port}`, node: { id: 'fuzz' }, log: pino({ level: 'silent' }), backoff: { baseMs: 5, maxMs: 20 }, adminPort: 0 })
    if (!(await waitFor(() => ctx.s.proxy.ready && ctx.s.port('out') > 0, 10_000))) throw new Error('the proxy never applied the good config')
    // the corpus: the good batch itself, one message per piece
    const batch = goodBatch(up.port, 'v')
    this.corpus.splice(0, this.corpus.length, ...batch, Buffer.concat(batch))
    ctx.heap = heapBase()
    return ctx
  },
  async teardown(c) {
    if (process.env.WEFT_FUZZ_DEBUG) console.log('xds-decoder:', JSON.stringify({ ...c.s.client.status(), streams: c.calls }))
    await c.s.close()
    c.grpc.forceShutdown()
    await closeServer(c.up.server, c.up.sockets)
  },
  async check(c, input: FuzzInput) {
    const call = c.call
    if (call === null || call.cancelled) {
      if (!(await waitFor(() => c.call !== null && !c.call.cancelled, 3000))) return 'the proxy did not reconnect to the control plane'
      return null
    }
    const before = counts(c)
    // one input piece = one message (a corpus entry of the whole batch is one message too)
    const msgs = pieces(input)
    for (const m of msgs) call.write(m)
    // the proxy answers each complete batch (ACK or NACK) or ends the stream on bytes it cannot decode
    await waitFor(() => { const n = counts(c); return n.ack + n.nack > before.ack + before.nack || n.reconnects > before.reconnects || call.cancelled }, 300)
    if (!c.s.proxy.ready) return 'the proxy stopped being ready'
    const after = counts(c)
    // a batch cut short (batch_remaining > 0) stays pending; a config the decoder accepted may route
    // elsewhere: either way the good config is sent again, so the next input starts from it
    if (after.ack > before.ack || (after.ack + after.nack === before.ack + before.nack && after.reconnects === before.reconnects)) {
      const r = await restore(c)
      if (r) return r
    }
    if (c.up.violations.length > 0) return c.up.violations.splice(0).join('; ')
    return null
  },
  async probe(c) {
    const port = c.s.port('out')
    if (port === 0) return 'listener "out" is not bound'
    return (await probeHttp(`http://127.0.0.1:${port}/probe`)) ?? heapCheck(c.heap)
  },
}
