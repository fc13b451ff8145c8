// The config stream's transport (proxy/xds/grpc-stream.ts: gRPC over the proxy's own HTTP/2
// codec, no grpc-js), over real sockets: a multi-MB snapshot from the real control plane arrives
// through the flow-control windows and is ACKed; gRPC errors of a plain node:http2 server (a
// trailers-only status, an HTTP 503, a compressed message) are statuses the client logs and
// backs off from; keepalive finds a control plane that accepted the connection and went silent,
// and keeps one that answers; a GOAWAY makes the client reconnect. Timers are injected: no sleeping.
// And a --control-plane sidecar started from the bundle loads none of grpc-js, http2, tls.
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import pino from 'pino'
import { configDiscoveryService, TYPE, typeName } from '../protos/api.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import type { Snapshot } from '../control-plane/snapshot/types.ts'
import { startConfigServer } from '../control-plane/xds/server.ts'
import { startConfigClient, type ConfigClientOptions } from '../proxy/xds/client.ts'
import { MessageReader, parseTarget, percentDecode, statusOf } from '../proxy/xds/grpc-stream.ts'
import { Proxy } from '../proxy/proxy.ts'
import { freePort, ROOT, spawnBuilt, tempDir, until, type Teardown } from './helpers/sidecar.ts'

const silent = pino({ level: 'silent' })
const PATH = '/weft.config.v1alpha1.ConfigDiscovery/StreamConfig'
const codec = configDiscoveryService().StreamConfig

interface LogLine { level: number; msg: string; code?: string | number; grpcCode?: number; details?: string; retryInMs?: number }

/** Timers that run only when the test says (fire) */
function manualTimers(): { list: { fn: () => void; ms: number; cleared: boolean }[]; timers: ConfigClientOptions['timers'] & object; fire(i: number): void } {
  const list: { fn: () => void; ms: number; cleared: boolean }[] = []
  return {
    list,
    timers: {
      setTimeout: (fn: () => void, ms: number) => list.push({ fn, ms, cleared: false }) - 1,
      clearTimeout: (h: unknown) => {
        if (typeof h === 'number' && list[h] !== undefined) list[h].cleared = true
      },
    },
    fire(i) {
      list[i].fn()
    },
  }
}

function capture(): { lines: LogLine[]; log: pino.Logger } {
  const lines: LogLine[] = []
  return { lines, log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as LogLine) }) }
}

/** A plain node:http2 server on 127.0.0.1:0; every session and stream kept for the test. */
async function h2Server(t: Teardown, onStream: (st: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, n: number) => void): Promise<{ port: number; sessions: http2.ServerHttp2Session[]; heads: http2.IncomingHttpHeaders[] }> {
  const server = http2.createServer()
  const sessions: http2.ServerHttp2Session[] = []
  const heads: http2.IncomingHttpHeaders[] = []
  server.on('session', (s) => {
    sessions.push(s)
    s.on('error', () => {})
  })
  server.on('stream', (st: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => {
    st.on('error', () => {})
    heads.push(h)
    onStream(st, h, heads.length)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => {
    for (const s of sessions) s.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return { port: (server.address() as net.AddressInfo).port, sessions, heads }
}

/** The first gRPC message of a request stream (the client's hello), decoded. */
function firstMessage(st: http2.ServerHttp2Stream): Promise<{ node?: { id?: string } }> {
  return new Promise((resolve) => {
    let b = Buffer.alloc(0)
    st.on('data', (c: Buffer) => {
      b = Buffer.concat([b, c])
      if (b.length >= 5 && b.length >= 5 + b.readUInt32BE(1)) resolve(codec.requestDeserialize(b.subarray(5, 5 + b.readUInt32BE(1))) as { node?: { id?: string } })
    })
  })
}

t.test('message framing: split anywhere, several in one read, empty, too large, compressed', async (t) => {
  const framed = (body: Buffer, flag = 0) => {
    const f = Buffer.concat([Buffer.from([flag, 0, 0, 0, 0]), body])
    f.writeUInt32BE(body.length, 1)
    return f
  }
  const a = Buffer.from('hello config')
  const all = Buffer.concat([framed(a), framed(Buffer.alloc(0)), framed(Buffer.alloc(70_000, 7))])
  const got: Buffer[] = []
  const r = new MessageReader(1024 * 1024)
  const errors = []
  for (let i = 0; i < all.length; i += 3) errors.push(r.push(all.subarray(i, Math.min(all.length, i + 3)), (m) => void got.push(Buffer.from(m))))
  t.same(errors.filter((e) => e !== null), [])
  t.same(got.map((m) => m.length), [a.length, 0, 70_000], 'three messages, byte by byte')
  t.same(got[0], a)
  t.ok(got[2].every((x) => x === 7))
  t.equal(r.partial, false)
  const got2: number[] = []
  t.equal(new MessageReader(100).push(all.subarray(0, 22), (m) => void got2.push(m.length)), null)
  t.same(got2, [12, 0], 'two in one read')
  t.match(new MessageReader(100).push(framed(Buffer.alloc(101)), () => {}), { code: 8, details: 'Received message larger than max (101 vs. 100)' })
  t.match(new MessageReader(100).push(framed(a, 1), () => {}), { code: 13, details: /compressed/ })
  const half = new MessageReader(100)
  half.push(framed(a).subarray(0, 8), () => t.fail('not whole yet'))
  t.equal(half.partial, true)
})

t.test('targets, grpc-status and grpc-message', async (t) => {
  t.same(parseTarget('127.0.0.1:15010'), { host: '127.0.0.1', port: 15010, authority: '127.0.0.1:15010' })
  t.same(parseTarget('[::1]:15010'), { host: '::1', port: 15010, authority: '[::1]:15010' })
  t.same(parseTarget('dns:weft-cp.weft-system:15010'), { host: 'weft-cp.weft-system', port: 15010, authority: 'weft-cp.weft-system:15010' })
  t.same(parseTarget('dns:///cp:1'), { host: 'cp', port: 1, authority: 'cp:1' })
  t.same(parseTarget('cp'), { host: 'cp', port: 443, authority: 'cp:443' }, "grpc-js's default port")
  t.equal(percentDecode('a%20b%E2%9C%93'), 'a b✓')
  t.equal(percentDecode('100%'), '100%', 'a malformed escape stays')
  t.equal(percentDecode('50%25 of %ZZ%20x'), '50% of %ZZ x')
  t.same(statusOf({ 'grpc-status': '5', 'grpc-message': 'no%20such' }), { code: 5, details: 'no such' })
  t.same(statusOf({}), { code: 2, details: 'no grpc-status in the trailers' })
  t.same(statusOf({ 'grpc-status': 'x' }), { code: 2, details: 'invalid grpc-status x' })
})

/** thousands of virtual hosts (several routes each) and clusters with endpoints: a route table of several MB */
function bigSnapshot(hosts: number, clusters: number): Snapshot {
  return {
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'rt' }],
    routeTables: [{
      name: 'rt',
      virtualHosts: Array.from({ length: hosts }, (_, i) => ({
        name: `vh-${i}`,
        domains: [`service-number-${i}.a-rather-long-namespace-name.svc.cluster.local`, `service-number-${i}.a-rather-long-namespace-name`, `service-number-${i}`],
        routes: ['/api/v1/orders', '/api/v1/customers', '/api/v2/inventory', '/static/assets', '/'].map((prefix, j) => ({
          match: { path: { prefix: `${prefix}/${i}` }, headers: [{ name: 'x-tenant-identifier', exact: `tenant-${j}-of-service-number-${i}-in-a-rather-long-namespace-name-${'0123456789abcdef'.repeat(6)}` }] },
          backends: [{ cluster: `c-${(i + j) % clusters}` }],
        })),
      })),
    }],
    clusters: Array.from({ length: clusters }, (_, i) => ({ name: `c-${i}` })),
    endpoints: new Map(Array.from({ length: clusters }, (_, i) => [`c-${i}`, Array.from({ length: 8 }, (_, k) => ({ address: `10.${i >> 8}.${i & 255}.${k + 1}`, port: 8080 }))])),
  }
}

t.test('a multi-MB snapshot (thousands of routes and endpoints) arrives through the windows and is ACKed', async (t) => {
  const cache = new SnapshotCache()
  const published = cache.setSnapshot('big', bigSnapshot(3500, 1000))
  if (!published.ok) return t.fail('inconsistent test snapshot')
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0', log: silent })
  t.teardown(() => cp.stop())
  const proxy = new Proxy(silent)
  t.teardown(() => proxy.close())
  const client = await startConfigClient(proxy, { address: cp.address, node: { id: 'big' }, log: silent })
  t.teardown(() => client.close())
  await until('the config applied', () => client.status().source === 'control-plane', 60_000)
  const want = Object.fromEntries(Object.entries(published.snapshot.types).map(([type, s]) => [typeName(type), s.version]))
  await until('the control plane has the ACKs', () => cp.registry.proxies()[0]?.inFlight.length === 0, 10_000)
  const view = cp.registry.proxies()[0]
  t.same(view.acked, want, 'the control plane holds every type as ACKed at the published version')
  t.match(client.status(), { connected: true, updates: { ack: 4, nack: 0 } })
  const table = proxy.current!.source.routeTables.find((r) => r.name === 'rt')!
  t.equal(table.virtualHosts.length, 3500, 'every virtual host is served')
  t.equal(proxy.current!.source.clusters.find((c) => c.name === 'c-999')?.endpoints?.length, 8, 'and every endpoint')
  // what made the stream: the route table alone is a message of several MB (over gRPC's default 4 MiB)
  const rt = codec.responseSerialize({ typeUrl: TYPE.routeTable, versionInfo: want.routeTable, nonce: 'n', resources: [{ name: 'rt', version: want.routeTable, routeTable: table }], removedResources: [], incremental: false, batchRemaining: 0 } as never)
  t.ok(rt.length > 4 * 1024 * 1024, `the route table's message is ${(rt.length / 1048576).toFixed(1)} MB`)
})

t.test('gRPC errors from a plain HTTP/2 server: logged with their code, retried with backoff, never "connected"', async (t) => {
  const hellos: string[] = []
  const srv = await h2Server(t, (st, _h, n) => {
    void firstMessage(st).then((m) => {
      hellos.push(m.node?.id ?? '')
      if (n === 1) st.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'node%20%22p1%22%20is%20not%20allowed%3A%20%E2%9C%97' }, { endStream: true })
      else if (n === 2) st.respond({ ':status': 503, 'content-type': 'text/plain' }, { endStream: true })
      else {
        st.respond({ ':status': 200, 'content-type': 'application/grpc' })
        st.write(Buffer.from([1, 0, 0, 0, 2, 0x08, 0x01])) // a compressed message: never offered
      }
    })
  })
  const timers = manualTimers()
  const { lines, log } = capture()
  const proxy = new Proxy(silent)
  t.teardown(() => proxy.close())
  const client = await startConfigClient(proxy, { address: `127.0.0.1:${srv.port}`, node: { id: 'p1' }, backoff: { baseMs: 100, maxMs: 400 }, random: () => 0.5, timers: timers.timers, log })
  t.teardown(() => client.close())
  await until('the first answer', () => timers.list.length === 1)
  t.match(srv.heads[0], { ':method': 'POST', ':path': PATH, ':scheme': 'http', 'content-type': 'application/grpc', te: 'trailers', 'user-agent': /^weft-proxy\/\d/ })
  t.same(hellos, ['p1'], 'the hello, framed and encoded')
  const warn = lines.find((l) => l.code === 'WEFT_ERR_CONTROL_PLANE_UNREACHABLE')
  t.match(warn, { level: 40, grpcCode: 7, details: 'node "p1" is not allowed: ✗', retryInMs: 50 }, 'the trailers-only status, its message percent-decoded')
  timers.fire(0)
  await until('the second answer', () => timers.list.length === 2)
  t.match(lines.filter((l) => l.msg === 'control plane unreachable'), [{ level: 20, code: 14, details: 'Received HTTP status code 503', retryInMs: 100 }], 'HTTP 503: UNAVAILABLE')
  timers.fire(1)
  await until('the third answer', () => timers.list.length === 3)
  // up (response headers), then cut before any config: the schedule keeps growing (0.5 of 400)
  t.match(lines.filter((l) => l.msg.startsWith('control plane stream lost')), [{ level: 40, code: 13, details: /compressed/, retryInMs: 200 }], 'a compressed message ends a stream that was up: INTERNAL')
  t.match(client.status(), { connected: false, reconnects: 3, source: 'none' })
  t.equal(lines.filter((l) => l.msg === 'connected to the control plane').length, 1, 'only the third attempt had response headers')
})

/** HTTP/2 frame types in bytes a client sent (after the preface) */
function frameTypes(b: Buffer): number[] {
  const types: number[] = []
  for (let p = 24; p + 9 <= b.length; p += 9 + ((b[p] << 16) | (b[p + 1] << 8) | b[p + 2])) types.push(b[p + 3])
  return types
}

t.test('keepalive: a control plane that accepted the connection and went silent is found; the client reconnects', async (t) => {
  const received: Buffer[] = []
  const sockets: net.Socket[] = []
  let closed = 0
  const server = net.createServer((s) => {
    sockets.push(s)
    s.on('data', (b: Buffer) => void received.push(b))
    s.on('error', () => {})
    s.on('close', () => void closed++)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  const backoff = manualTimers()
  const stream = manualTimers()
  const { lines, log } = capture()
  const proxy = new Proxy(silent)
  t.teardown(() => proxy.close())
  const client = await startConfigClient(proxy, {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    node: { id: 'p1' },
    keepaliveMs: 25_000,
    timers: backoff.timers,
    streamTimers: stream.timers,
    random: () => 0.5,
    log,
  })
  t.teardown(() => client.close())
  // the connect timer, then (connected) the first PING's
  await until('the PING scheduled', () => stream.list.length === 2)
  t.same(stream.list.map((x) => x.ms), [20_000, 25_000])
  t.equal(stream.list[0].cleared, true, 'connected: the connect timer is off')
  await until('the request sent', () => frameTypes(Buffer.concat(received)).includes(0))
  stream.fire(1)
  await until('the PING sent', () => frameTypes(Buffer.concat(received)).includes(6))
  t.equal(stream.list[2].ms, 10_000, 'its ACK is due within min(keepalive, 10 s)')
  t.equal(backoff.list.length, 0, 'still waiting for the ACK')
  stream.fire(2)
  await until('down', () => backoff.list.length === 1)
  t.match(lines.find((l) => l.code === 'WEFT_ERR_CONTROL_PLANE_UNREACHABLE'), { grpcCode: 14, details: 'keepalive ping not acknowledged within 10000 ms' })
  await until('the connection closed', () => closed === 1)
  backoff.fire(0)
  await until('a new connection', () => sockets.length === 2)
})

t.test('keepalive: a control plane that answers the PINGs keeps the stream', async (t) => {
  const srv = await h2Server(t, (st) => st.respond({ ':status': 200, 'content-type': 'application/grpc' }))
  const backoff = manualTimers()
  const stream = manualTimers()
  const proxy = new Proxy(silent)
  t.teardown(() => proxy.close())
  const client = await startConfigClient(proxy, { address: `127.0.0.1:${srv.port}`, node: { id: 'p1' }, keepaliveMs: 1000, timers: backoff.timers, streamTimers: stream.timers, log: silent })
  t.teardown(() => client.close())
  await until('connected', () => client.status().connected)
  t.same(stream.list.map((x) => x.ms), [20_000, 1000])
  for (let i = 0; i < 3; i++) {
    stream.fire(stream.list.length - 1)
    await until(`PING ${i + 1} acknowledged`, () => stream.list.length === 4 + 2 * i)
    t.same(stream.list.slice(-2).map((x) => [x.ms, x.cleared]), [[1000, true], [1000, false]], 'the ACK came: its timeout is off, the next PING scheduled')
  }
  t.equal(backoff.list.length, 0, 'never down')
  t.equal(client.status().connected, true)
})

t.test('GOAWAY from the control plane: the client reconnects on a new connection', async (t) => {
  const srv = await h2Server(t, (st) => st.respond({ ':status': 200, 'content-type': 'application/grpc' }))
  const backoff = manualTimers()
  const { lines, log } = capture()
  const proxy = new Proxy(silent)
  t.teardown(() => proxy.close())
  const client = await startConfigClient(proxy, { address: `127.0.0.1:${srv.port}`, node: { id: 'p1' }, timers: backoff.timers, random: () => 0.5, log })
  t.teardown(() => client.close())
  await until('connected', () => client.status().connected)
  // graceful: the stream itself is still allowed (last stream id 1)
  srv.sessions[0].goaway(http2.constants.NGHTTP2_NO_ERROR, 1)
  await until('down', () => backoff.list.length === 1)
  t.match(lines.find((l) => l.msg.startsWith('control plane stream lost')), { level: 40, code: 14, details: 'the control plane sent GOAWAY (code 0, last stream 1)' })
  t.equal(client.status().connected, false)
  backoff.fire(0)
  await until('connected again', () => client.status().connected)
  t.equal(srv.sessions.length, 2, 'on a new connection')
  t.equal(srv.heads.length, 2)
  t.equal(client.status().reconnects, 1)
})

const CP_SIDECAR = join(ROOT, 'dist', 'sidecar', 'weft-proxy-cp.cjs')

t.test('a --control-plane sidecar runs from its single file and loads neither grpc-js nor node:http2 nor node:tls', { skip: existsSync(CP_SIDECAR) ? false : 'no dist/sidecar (npm run build)' }, async (t) => {
  const cache = new SnapshotCache()
  cache.setSnapshot('footprint-1', {
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [] }],
    clusters: [],
    endpoints: new Map(),
  })
  const cp = await startConfigServer({ cache, address: '127.0.0.1:0', log: silent })
  t.teardown(() => cp.stop())
  const dir = tempDir(t)
  const admin = await freePort()
  const bootstrap = join(dir, 'bootstrap.yaml')
  writeFileSync(bootstrap, `node: { id: footprint-1 }\nadmin: { address: 127.0.0.1, port: ${admin} }\nlisteners: []\nrouteTables: []\nclusters: []\n`)
  // what the process loaded: Node's built-in modules (process.moduleLoadList) and every ES module
  // URL (the bundle's chunks), written on SIGUSR2
  const preload = join(dir, 'preload.mjs')
  const out = join(dir, 'loaded.json')
  writeFileSync(preload, [
    "import { registerHooks } from 'node:module'",
    "import { writeFileSync } from 'node:fs'",
    'const urls = []',
    'registerHooks({ load(url, ctx, next) { urls.push(url); return next(url, ctx) } })',
    `process.on('SIGUSR2', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify({ builtins: process.moduleLoadList, urls })))`,
  ].join('\n'))
  const w = spawnBuilt(t, ['proxy', '--control-plane', cp.address, '--config', bootstrap], admin, { NODE_OPTIONS: `--import ${pathToFileURL(preload).href}` })
  const child = w.child
  t.ok(await w.ready(), 'ready on the control plane\'s config')
  t.notMatch(w.stderr(), /newer than dist/, 'ran the build, not the sources')
  t.match(await fetch(`http://127.0.0.1:${admin}/control_plane`).then((r) => r.json()), { connected: true, source: 'control-plane', updates: { ack: 4 } })
  child.kill('SIGUSR2')
  await until('the list written', () => existsSync(out) && readFileSync(out, 'utf8').endsWith('}'))
  const loaded = JSON.parse(readFileSync(out, 'utf8')) as { builtins: string[]; urls: string[] }
  // its code is dist/sidecar/weft-proxy-cp.cjs, compiled by bin/weft.js through node:vm (not a module load)
  t.same(loaded.urls.filter((u) => u.startsWith(`${pathToFileURL(join(ROOT, 'dist')).href}/`) && !u.endsWith('.json')), [], 'no module of dist/ loaded: neither the bundle\'s chunks nor dist/proxy/')
  t.notOk(readFileSync(CP_SIDECAR, 'latin1').includes('node_modules/@grpc/'), 'the file holds no grpc-js')
  t.same(loaded.builtins.filter((m) => /^NativeModule (http2|tls|https)$/.test(m) || m === 'Internal Binding http2'), [], 'no node:http2, node:tls, node:https')
  // tap's process-info hook, which tap adds to its children's NODE_OPTIONS, loads node:crypto (uuid) itself
  if (!loaded.urls.some((u) => u.includes('/@tapjs/processinfo/'))) t.notOk(loaded.builtins.includes('NativeModule crypto'), 'no node:crypto')
  t.same(loaded.urls.filter((u) => u.includes('/node_modules/@grpc/')), [], 'nor grpc-js from node_modules')
})
