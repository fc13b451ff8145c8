// The `xds-decoder` fuzz target: what a hostile control plane sends on the proxy's gRPC config
// stream. An input is a gRPC message stream (1 flag byte, 4 length bytes, a ConfigResponse each):
// mutations of recorded valid batches, generated ConfigResponses with wrong types, garbage and large
// resources, raw bytes. Two paths per input:
// - every input, as functions: each message through the real protobuf codec (undecodable: grpc-js
//   ends the stream, allowed), then what the config client runs on a batch (decodeBatch, assemble,
//   checkAssembled, the compile of apply): none may throw (a throw would wedge the stream with
//   neither ACK nor NACK), and a refusal carries a message;
// - every 8th input (WEFT_FUZZ_XDS_LIVE_EVERY) (and every regression case), live: a grpc-js server whose response
//   serializer passes Buffers through writes each message's bytes on the stream of an in-process
//   proxy (startXdsSidecar) that serves a good config routing to the strict upstream. The proxy
//   stays up, ACKs, NACKs or ends the stream (and reconnects), keeps its last good config (a probe
//   through its listener after each batch), and the heap returns to its level.
import fc from 'fast-check'
import pino from 'pino'
import { Server as GrpcServer, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js'
import { configDiscoveryService, TYPE, type ConfigResponse, type ConfigResponse__Output } from '../../protos/api.ts'
import { startXdsSidecar, type XdsSidecar } from '../../proxy/xds/sidecar.ts'
import { assemble, checkAssembled, decodeBatch, NOTHING_ACCEPTED } from '../../proxy/xds/assemble.ts'
import { compileConfig } from '../../proxy/config/compile.ts'
import { PoolRegistry } from '../../proxy/cluster/cluster.ts'
import { loadRegressions } from './engine.ts'
import { heapBase, heapCheck, probeHttp, strictUpstream, closeServer, type StrictUpstream } from './kit.ts'
import type { FuzzInput, Target } from './engine.ts'

const codec = configDiscoveryService().StreamConfig
const encode = (r: ConfigResponse): Buffer => codec.responseSerialize(r)
const grpcFrame = (m: Buffer): Buffer => {
  const h = Buffer.alloc(5)
  h.writeUInt32BE(m.length, 1)
  return Buffer.concat([h, m])
}
/** live stream check on one input in this many (the function path runs on every input) */
// 0: the function path only. `npm test` sets 0 (see fuzz.test.ts): the live path's waits are
// timing-dependent on a loaded machine (two unexplained failures on 2026-12-05: a probe 503 after
// an accepted input, and the good config not restored within 3 × 2 s); `npm run fuzz` runs it.
const liveEvery = (): number => Number(process.env.WEFT_FUZZ_XDS_LIVE_EVERY ?? 8)

/** The messages of a gRPC message stream; a truncated last message is never delivered. */
function messages(b: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at + 5 <= b.length;) {
    const len = b.readUInt32BE(at + 1)
    if (len > b.length - at - 5) break
    out.push(b.subarray(at + 5, at + 5 + len))
    at += 5 + len
  }
  return out
}

/** The config client's work on the messages, as functions: null, or what went wrong. */
function functionCheck(msgs: Buffer[]): string | null {
  const decoded: ConfigResponse__Output[] = []
  for (const m of msgs) {
    try {
      decoded.push(codec.responseDeserialize(m) as ConfigResponse__Output)
    } catch {
      return null // undecodable protobuf: grpc-js ends the stream with an error; allowed
    }
  }
  try {
    let accepted = NOTHING_ACCEPTED
    let batch: ConfigResponse__Output[] = []
    for (const m of decoded) {
      batch.push(m)
      if (m.batchRemaining > 0) continue // as the client does: a batch ends at batchRemaining 0
      const d = decodeBatch(accepted, batch)
      batch = []
      if (!d.ok) { if (d.errors.length === 0) return 'a refusal without an error message'; continue }
      const checked = checkAssembled(assemble({}, d.value))
      if (!checked.ok) { if (checked.errors.length === 0) return 'a refusal without an error message'; continue }
      compileConfig(checked.value, 1, new PoolRegistry())
      accepted = d.value
    }
  } catch (err) {
    return `threw: ${(err as Error).stack?.split('\n').slice(0, 3).join(' | ')}`
  }
  return null
}

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
    const huge = JSON.stringify(r.resources).length > 10_000
    const resources = Array.from({ length: huge ? 1 : r.many }, () => r.resources).flat().map((x) => ({ name: x.name, version: x.version, ...x.body }))
    return grpcFrame(encode({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, nonce: 'g', resources, removedResources: r.removedResources, incremental: r.incremental, batchRemaining: r.batchRemaining } as ConfigResponse))
  })
const genStream = fc.array(genResponse, { minLength: 1, maxLength: 4 }).map((ms) => Buffer.concat(ms))

interface XdsCtx {
  up: StrictUpstream
  grpc: GrpcServer
  /** the current stream from the proxy */
  call: ServerDuplexStream<unknown, Buffer> | null
  calls: number
  s: XdsSidecar
  version: number
  heap: number
  /** inputs seen, and how many of the first ones are regression cases (always checked live) */
  n: number
  live: number
  regressions: number
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

/** Whether the listener routes to the strict upstream again within ms. */
async function serves(c: XdsCtx, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms
  while (performance.now() < deadline) {
    const port = c.s.port('out')
    if (port > 0 && (await probeHttp(`http://127.0.0.1:${port}/probe`)) === null) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return false
}

/** Send the good batch under a new version and wait until it is ACKed and serves (or the stream is replaced). */
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
    // ACKed: restored; NACKed (it completed a batch the input left pending): send it once more
    await waitFor(() => { const n = counts(c); return n.ack > before.ack || n.nack > before.nack || c.call !== call }, 2000)
    // An ACK counted here may be the input's own, answered late on a busy machine, with the good
    // batch still queued behind it: restored means the good config serves again.
    if (counts(c).ack > before.ack && (await serves(c, 2000))) return null
  }
  return 'the good config was not ACKed again after the input'
}

export const xdsDecoder: Target<XdsCtx> = {
  name: 'xds-decoder',
  corpus: [],
  tokens: ['\0', '\x0a', '\x12', '\x1a', '\x22', '\x2a', '\x0a\x00', '\x22\xff\xff\xff\x0f', '\x2a\x80\x80\x80\x80\x10', '\x08\xff\xff\xff\xff\x0f', '\x30\x01', '\x38\xe8\x07',
    TYPE.cluster, TYPE.listener, TYPE.routeTable, TYPE.endpoints, 'weft.config.v1alpha1.Secret', '*', '/', '..', '\xff\xff', '\0\0\0\0\0', '\0\x7f\xff\xff\xff'],
  generated: genStream,
  async setup() {
    const up = await strictUpstream()
    const ctx = { up, call: null, calls: 0, version: 0, n: 0, live: 0, regressions: loadRegressions('xds-decoder').length } as unknown as XdsCtx
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
    // the corpus: the good batch (its endpoint is the strict upstream), an incremental update, both
    const batch = goodBatch(up.port, 'v').map(grpcFrame)
    const incremental = grpcFrame(encode({ typeUrl: TYPE.endpoints, versionInfo: 'e2', nonce: 'i', incremental: true, removedResources: ['b'], batchRemaining: 0,
      resources: [{ name: 'app', version: 'e2', endpoints: { clusterName: 'app', endpoints: [{ address: '127.0.0.1', port: up.port, weight: 2, ready: true, zone: '', labels: {} }] } }] }))
    this.corpus.splice(0, this.corpus.length, Buffer.concat(batch), incremental, Buffer.concat([...batch, incremental]), batch[0]!)
    ctx.heap = heapBase()
    return ctx
  },
  async teardown(c) {
    if (process.env.WEFT_FUZZ_DEBUG) console.log('xds-decoder:', JSON.stringify({ inputs: c.n, live: c.live, ...c.s.client.status(), streams: c.calls }))
    await c.s.close()
    c.grpc.forceShutdown()
    await closeServer(c.up.server, c.up.sockets)
  },
  async check(c, input: FuzzInput) {
    const msgs = messages(input.bytes)
    const fn = functionCheck(msgs)
    if (fn !== null) return fn
    const i = c.n++
    const every = liveEvery()
    if (every === 0 || (i >= c.regressions && i % every !== 0)) return null
    c.live++
    return liveCheck(c, msgs)
  },
  async probe(c) {
    const port = c.s.port('out')
    if (port === 0) return 'listener "out" is not bound'
    return (await probeHttp(`http://127.0.0.1:${port}/probe`)) ?? heapCheck(c.heap)
  },
}

/** The messages on the live stream: the proxy ACKs, NACKs or ends the stream and keeps serving. */
async function liveCheck(c: XdsCtx, msgs: Buffer[]): Promise<string | null> {
  if (msgs.length === 0) return null
  const call = c.call
  if (call === null || call.cancelled) {
    if (!(await waitFor(() => c.call !== null && !c.call.cancelled, 3000))) return 'the proxy did not reconnect to the control plane'
    return null
  }
  const before = counts(c)
  for (const m of msgs) call.write(m)
  // the proxy answers each complete batch (ACK or NACK) or ends the stream on bytes it cannot
  // decode; a batch cut short (the last batch_remaining > 0) gets no answer until it completes
  let last: ConfigResponse__Output | null = null
  try { last = codec.responseDeserialize(msgs[msgs.length - 1]!) as ConfigResponse__Output } catch {}
  if (last === null || last.batchRemaining === 0) {
    await waitFor(() => { const n = counts(c); return n.ack + n.nack > before.ack + before.nack || n.reconnects > before.reconnects || call.cancelled }, 1000)
  }
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
}
