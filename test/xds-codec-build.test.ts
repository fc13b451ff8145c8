// The --control-plane sidecar's message code made by the build (build/config-codec.ts, in
// dist/proxy/xds/config-codec.js) reads and writes what protobufjs' run-time code does
// (proxy/xds/wire.ts from the sources, which has none): on a real control plane's snapshot of the
// demo mesh (examples/demo), and back.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import pino from 'pino'
import protobuf from 'protobufjs/light.js'
import { startControlPlane } from '../cli/control-plane.ts'
import { TYPE } from '../protos/api.ts'
import { GrpcStream } from '../proxy/xds/grpc-stream.ts'
import { REAL_TIMERS } from '../proxy/xds/backoff.ts'
import { streamConfigCodec, type MethodCodec } from '../proxy/xds/wire.ts'
import { ROOT } from './helpers/sidecar.ts'

const BUILT = join(ROOT, 'dist', 'proxy', 'xds', 'wire.js')

t.test('the build\'s message code and protobufjs\' run-time code agree on a demo snapshot', { skip: existsSync(BUILT) ? false : 'no dist (npm run build)' }, async (t) => {
  const { methods } = (await import(pathToFileURL(join(ROOT, 'dist', 'proxy', 'xds', 'config-codec.js')).href)) as { methods: unknown }
  t.ok(Array.isArray(methods), 'the build wrote the generated module over the stub')
  const built = (await import(pathToFileURL(BUILT).href)) as { streamConfigCodec(): MethodCodec }
  const b = built.streamConfigCodec()
  const s = streamConfigCodec()

  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', local: join(ROOT, 'examples', 'demo'), log: pino({ level: 'silent' }) })
  t.teardown(() => cp.close())
  // the raw response messages for a demo workload, as the control plane writes them
  const raw: Buffer[] = []
  await new Promise<void>((resolve, reject) => {
    const call = new GrpcStream<object, Buffer>(
      { address: `127.0.0.1:${cp.server.port}`, path: s.path, serialize: s.requestSerialize, deserialize: (x) => x, keepaliveMs: 30_000, maxMessage: 1 << 26, userAgent: 'test', timers: REAL_TIMERS },
      {
        onHeaders: () => {},
        onMessage: (m) => {
          raw.push(Buffer.from(m))
          const r = s.responseDeserialize(m) as { typeUrl: string; versionInfo: string; nonce: string; batchRemaining: number }
          call.write({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce })
          if (r.batchRemaining === 0 && raw.length >= 4) {
            call.cancel()
            resolve()
          }
        },
        onStatus: (st) => reject(new Error(`stream ended: ${st.details}`)),
      },
    )
    call.write({ node: { id: 'codec-test', workload: 'frontend', namespace: 'demo', labels: { app: 'frontend' } }, knownVersions: {} })
  })
  const types = raw.map((m) => (s.responseDeserialize(m) as { typeUrl: string }).typeUrl)
  t.same([...new Set(types)].sort(), [TYPE.cluster, TYPE.endpoints, TYPE.listener, TYPE.routeTable].sort(), 'every resource type')
  const hello = { node: { id: 'x', pod: 'p', namespace: 'n', labels: { a: 'b' }, proxyVersion: 'v', adminAddress: '127.0.0.1:1' }, typeUrl: TYPE.cluster, versionInfo: '3', responseNonce: 'n', errorDetail: { code: 'C', message: 'm', details: ['d'] }, knownVersions: { [TYPE.cluster]: '3' } }
  s.requestDeserialize(s.requestSerialize(hello))
  // from here on, protobufjs generates no code: the run-time codec made its own above, and the
  // build's codec has it from the build
  const util = protobuf.util as unknown as { codegen: (...a: unknown[]) => unknown }
  const codegen = util.codegen
  const generated: unknown[] = []
  util.codegen = (...a: unknown[]) => {
    generated.push(a[1])
    return codegen(...a)
  }
  t.teardown(() => {
    util.codegen = codegen
  })
  for (const m of raw) {
    const a = s.responseDeserialize(m)
    t.same(b.responseDeserialize(m), a, `decoded alike (${(a as { typeUrl: string }).typeUrl})`)
    t.same(b.responseSerialize(a), s.responseSerialize(a), 'encoded alike')
  }
  t.same(b.requestSerialize(hello), s.requestSerialize(hello), 'a request encoded alike')
  t.same(b.requestDeserialize(s.requestSerialize(hello)), s.requestDeserialize(s.requestSerialize(hello)), 'and decoded alike')
  t.same(generated, [], 'the build\'s codec generated no code at run time')
  // and the --control-plane sidecar's file has protobufjs' minimal runtime only: no reflection
  const cpFile = readFileSync(join(ROOT, 'dist', 'sidecar', 'weft-proxy-cp.cjs'), 'latin1')
  t.ok(cpFile.includes('node_modules/protobufjs/src/reader.js'), 'protobufjs\' reader is bundled')
  for (const f of ['protobufjs/src/root.js', 'protobufjs/src/type.js', 'protobufjs/src/namespace.js', '@protobufjs/codegen']) t.notOk(cpFile.includes(`node_modules/${f}`), `no ${f}`)
})
