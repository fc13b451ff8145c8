// proxy/xds/wire.ts: the --control-plane sidecar's client codec without proto-loader (the message
// code the build generates from config.proto, over protobufjs' minimal runtime). It must read and write exactly what the
// control plane's proto-loader codec (protos/api.ts) does, and a sidecar started from the bundle in
// --control-plane mode must take its config from a real control plane and serve it.
import t from 'tap'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import pino from 'pino'
import { stringify } from 'yaml'
import { startControlPlane } from '../cli/control-plane.ts'
import { configDiscoveryService, TYPE, type ConfigRequest, type ConfigResponse } from '../protos/api.ts'
import { configDiscoveryClient, parsedRoot } from '../proxy/xds/wire.ts'
import type { ServiceMethod } from '../proxy/xds/config-codec.ts'
import { descriptorHash } from '../build/config-codec.ts'
import { getStatus, ROOT, spawnBuilt, tempDir } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { WEB_SERVICE, webSlice } from './helpers/resources.ts'

interface Codec {
  requestSerialize(o: unknown): Buffer
  requestDeserialize(b: Buffer): unknown
  responseSerialize(o: unknown): Buffer
  responseDeserialize(b: Buffer): unknown
}
const wireCodec = (): Codec => (configDiscoveryClient() as unknown as { service: { StreamConfig: Codec } }).service.StreamConfig

const REQUEST: ConfigRequest = {
  node: { id: 'web-1.shop', pod: 'web-1', namespace: 'shop', labels: { app: 'web', version: 'v2' }, proxyVersion: '0.1.0' },
  typeUrl: TYPE.cluster,
  versionInfo: '7',
  responseNonce: 'n-3',
  errorDetail: { code: 'WEFT_ERR_CONFIG_SCHEMA', message: 'bad', details: ['clusters[0].lb: unknown'] },
  knownVersions: { [TYPE.cluster]: '7', [TYPE.listener]: '2' },
}
const RESPONSE: ConfigResponse = {
  typeUrl: TYPE.endpoints,
  versionInfo: '12',
  nonce: 'n-4',
  resources: [
    { name: 'shop/web', version: '12', endpoints: { clusterName: 'shop/web', endpoints: [{ address: '10.0.0.7', port: 8080 }] } },
    { name: 'shop/db', version: '3', endpoints: { clusterName: 'shop/db', endpoints: [] } },
    // proto3 optional fields (their synthetic oneofs), as a Cluster carries them
    { name: 'shop/api', version: '1', cluster: { name: 'shop/api', protocol: 'http2' } },
  ],
  removedResources: ['shop/old'],
  incremental: true,
  batchRemaining: 2,
}

t.test('the same bytes and objects as proto-loader, both ways', async (t) => {
  const pl = configDiscoveryService().StreamConfig as unknown as Codec
  const w = wireCodec()
  t.same(w.requestSerialize(REQUEST), pl.requestSerialize(REQUEST), 'request bytes')
  t.same(w.responseSerialize(RESPONSE), pl.responseSerialize(RESPONSE), 'response bytes')
  const reqBytes = pl.requestSerialize(REQUEST)
  const resBytes = pl.responseSerialize(RESPONSE)
  t.same(w.requestDeserialize(reqBytes), pl.requestDeserialize(reqBytes), 'request decoded: defaults, maps, nested')
  t.same(w.responseDeserialize(resBytes), pl.responseDeserialize(resBytes), 'response decoded: the oneof body and its name')
  t.equal((w.responseDeserialize(resBytes) as { resources: { body: string }[] }).resources[0].body, 'endpoints')
})

const builtCodec = join(ROOT, 'dist', 'proxy', 'xds', 'config-codec.js')
t.test("the build's message code is config.proto's", { skip: existsSync(builtCodec) ? false : 'no dist (npm run build)' }, async (t) => {
  const built = (await import(pathToFileURL(builtCodec).href)) as { DESCRIPTOR_HASH: string; methods: ServiceMethod[] }
  t.equal(built.DESCRIPTOR_HASH, descriptorHash(parsedRoot()), 'made from the .proto as it is today (rebuild after editing it)')
  const m = built.methods.find((x) => x.name === 'StreamConfig')!
  t.same(Buffer.from(m.response.encode(m.response.fromObject(RESPONSE)).finish()), (configDiscoveryService().StreamConfig as unknown as Codec).responseSerialize(RESPONSE))
})

t.test('a --control-plane sidecar from the bundle takes its config from a control plane and serves it', { skip: existsSync(join(ROOT, 'dist', 'bundle', 'weft.js')) ? false : 'no dist/bundle (npm run build)' }, async (t) => {
  const app = await startHttpUpstream(t, { name: 'A' })
  const dir = tempDir(t)
  const res = join(dir, 'resources')
  mkdirSync(res)
  writeFileSync(join(res, 'service.yaml'), WEB_SERVICE)
  writeFileSync(join(res, 'slice.yaml'), webSlice(app.port))
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', local: res, log: pino({ level: 'silent' }), watchDebounceMs: 20 })
  t.teardown(() => cp.close())
  const free = async (): Promise<number> => {
    const net = await import('node:net')
    return new Promise((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port
        s.close(() => resolve(p))
      })
    })
  }
  const [admin, outbound] = [await free(), await free()]
  const bootstrap = join(dir, 'bootstrap.yaml')
  writeFileSync(bootstrap, stringify({
    node: { id: 'web-client-1', namespace: 'shop' },
    admin: { address: '127.0.0.1', port: admin },
    listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: outbound, routeTable: 'outbound' }],
    routeTables: [],
    clusters: [],
  }))
  const w = spawnBuilt(t, ['proxy', '--control-plane', cp.server.address, '--config', bootstrap], admin)
  t.ok(await w.ready(), 'ready')
  t.notMatch(w.stderr(), /newer than dist/, 'ran the build, not the sources')
  t.equal(await getStatus(outbound, 'web', '/'), 200, 'the control plane\'s route serves')
  t.equal(app.requests.length, 1)
})
