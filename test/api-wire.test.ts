// The proto is the API: every field of a Listener, RouteTable and Cluster of the config model
// (api/schema.ts) is a typed field of its message in protos/weft/config/v1alpha1/config.proto,
// and a resource goes over the real protobuf codec and comes back as the same object.
import { loadSync } from '@grpc/proto-loader'
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { Cluster, Listener, RouteTable } from '../api/schema.ts'
import type { ClusterSpec, Listener as ListenerT, RouteTable as RouteTableT } from '../api/schema.ts'
import { fromMessage } from '../api/wire.ts'
import { configDiscoveryService, PACKAGE, TYPE } from '../protos/api.ts'
import { encodeResource } from '../control-plane/xds/wire.ts'
import { decodeBatch, NOTHING_ACCEPTED } from '../proxy/xds/assemble.ts'

const PROTO = fileURLToPath(new URL('../protos/weft/config/v1alpha1/config.proto', import.meta.url))
const def = loadSync(PROTO, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true }) as unknown as Record<string, { type: Descriptor }>

interface Field { name: string; label: string; type: string; typeName: string }
interface Descriptor { field: Field[]; nestedType: (Descriptor & { name: string; options: { mapEntry?: boolean } | null })[]; oneofDecl: { name: string }[] }
interface Node { type?: string; const?: unknown; anyOf?: Node[]; properties?: Record<string, Node>; required?: string[]; items?: Node; patternProperties?: Record<string, Node> }

const SCALAR: Record<string, string> = { string: 'TYPE_STRING', integer: 'TYPE_UINT32', number: 'TYPE_DOUBLE', boolean: 'TYPE_BOOL' }

function scalarOf(n: Node): string | undefined {
  if (n.anyOf !== undefined) return scalarOf(n.anyOf[0])
  if (n.const !== undefined) return typeof n.const === 'number' ? 'TYPE_UINT32' : 'TYPE_STRING'
  return SCALAR[n.type ?? '']
}

/** Differences between a schema object and a message, with the path where each is. */
function compare(schema: Node, message: string, path: string, out: string[], skip: readonly string[] = []): void {
  const d = def[`${PACKAGE}.${message}`]?.type
  if (d === undefined) {
    out.push(`${path}: no message ${message}`)
    return
  }
  const fields = new Map(d.field.map((f) => [f.name, f]))
  const optional = new Set(d.oneofDecl.map((o) => o.name).filter((n) => n.startsWith('_')).map((n) => n.slice(1)))
  const required = schema.required ?? []
  for (const [key, p] of Object.entries(schema.properties ?? {})) {
    if (skip.includes(key)) continue
    const f = fields.get(key)
    fields.delete(key)
    const at = `${path}.${key}`
    if (f === undefined) {
      out.push(`${at}: no field in ${message}`)
      continue
    }
    if (p.patternProperties !== undefined) {
      const entry = d.nestedType.find((n) => n.name === f.typeName)
      if (f.label !== 'LABEL_REPEATED' || entry?.options?.mapEntry !== true) out.push(`${at}: expected map<string, string>`)
    } else if (p.type === 'array') {
      if (f.label !== 'LABEL_REPEATED') out.push(`${at}: expected repeated`)
      const items = p.items!
      if (items.properties !== undefined) compare(items, f.typeName, `${at}[]`, out)
      else if (scalarOf(items) !== f.type) out.push(`${at}[]: ${f.type}, expected ${scalarOf(items)}`)
    } else if (p.properties !== undefined) {
      if (f.type !== 'TYPE_MESSAGE') out.push(`${at}: expected a message`)
      else compare(p, f.typeName, at, out)
    } else {
      const want = scalarOf(p)
      if (f.type !== want) out.push(`${at}: ${f.type}, expected ${want}`)
      const isOptional = !required.includes(key)
      if (isOptional !== optional.has(key)) out.push(`${at}: ${isOptional ? 'optional in the schema, not in the proto' : 'required in the schema, optional in the proto'}`)
    }
  }
  for (const name of fields.keys()) out.push(`${path}.${name}: in ${message}, not in the schema`)
}

t.test('every field of the model is a typed field of the proto, and the other way round', async (t) => {
  const out: string[] = []
  compare(Listener as Node, 'Listener', 'Listener', out)
  compare(RouteTable as Node, 'RouteTable', 'RouteTable', out)
  compare(Cluster as Node, 'Cluster', 'Cluster', out, ['endpoints'])
  t.same(out, [])
  // the check itself: a missing field is seen
  const seen: string[] = []
  compare({ properties: { name: { type: 'string' }, extra: { type: 'string' } }, required: ['name'] }, 'Listener', 'X', seen)
  t.ok(seen.includes('X.extra: no field in Listener'), 'a field the proto lacks is reported')
  t.ok(seen.some((s) => s.startsWith('X.port: in Listener')), 'a field the schema lacks is reported')
})

const listener: ListenerT = {
  name: 'out', direction: 'outbound', address: '0.0.0.0', port: 15001, routeTable: 'rt', protocol: 'detect', detectTimeout: '100ms', tcp: { cluster: 'db', idleTimeout: '1h' },
  filters: { rateLimit: { requests: 100, interval: '1s', key: { clientAddress: true } }, fault: { delay: { percent: 1, fixedDelay: '5ms' } } },
}
const table: RouteTableT = {
  name: 'rt',
  virtualHosts: [
    {
      name: 'web',
      service: { name: 'web', namespace: 'shop', port: 8080, clusterDomain: 'cluster.local' },
      domains: ['web.example.com'],
      routes: [
        {
          name: 'api',
          match: {
            path: { segmentPrefix: '/api' },
            method: 'GET',
            headers: [{ name: 'x-canary', exact: 'yes' }, { name: 'x-debug', present: false }],
            queryParams: [{ name: 'v', regex: '^[0-9]+$' }],
          },
          backends: [{ cluster: 'web-v1', weight: 90 }, { cluster: 'web-v2', weight: 0 }],
          requestHeaders: { add: { 'x-a': '1' }, set: { 'x-b': '' }, remove: ['x-c'] },
          responseHeaders: { set: { server: 'weft' } },
          rewrite: { pathPrefix: '/', host: 'internal' },
          timeout: '2s',
          retry: { attempts: 0, on: ['5xx', 'unavailable'], retriableStatusCodes: [503], perTryTimeout: '250ms', backoff: { base: '25ms', max: '1s' }, budget: { percent: 20.5, minRetriesPerSecond: 0, ttl: '10s' } },
          fault: { delay: { percent: 0.5, fixedDelay: '1s' }, abort: { percent: 100, status: 503 } },
          rateLimit: { requests: 10, interval: '1s', burst: 20, key: { header: 'x-user', clientAddress: false }, maxKeys: 100 },
          mirror: { cluster: 'shadow', percent: 0 },
        },
        { directResponse: { status: 200, body: '', headers: { 'content-type': 'text/plain' } } },
        { redirect: { scheme: 'https', host: 'x', port: 443, path: '/', status: 308 } },
        { redirect: { pathPrefix: '/new' }, rewrite: {} },
      ],
    },
  ],
}
const cluster: ClusterSpec = {
  name: 'web-v1',
  destination: { service: 'web', workload: 'web-v1', namespace: 'shop' },
  lb: { policy: 'peakEwma', hashHeader: 'x-user', decay: '10s' },
  protocol: 'http2',
  pool: { maxConnections: 1, maxPending: 0, idleTimeout: '60s', connectTimeout: '1s', maxRequests: 100 },
  circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 5, window: '10s', buckets: 10, resetTimeout: '5s' },
  outlierDetection: { consecutive5xx: 0, consecutiveGatewayErrors: 3, consecutiveConnectFailures: 2, baseEjectionTime: '30s', maxEjectionTime: '300s', maxEjectionPercent: 10 },
}

t.test('a resource goes over the protobuf codec and comes back as the same object', async (t) => {
  const codec = configDiscoveryService().StreamConfig
  const cases = [
    [TYPE.listener, Listener, listener],
    [TYPE.routeTable, RouteTable, table],
    [TYPE.cluster, Cluster, cluster],
    [TYPE.cluster, Cluster, { name: 'bare' }],
  ] as const
  for (const [type, schema, body] of cases) {
    const wire = codec.responseDeserialize(codec.responseSerialize({ typeUrl: type, resources: [encodeResource(type, { name: body.name, version: 'v', body: body as never })] }))
    const r = wire.resources[0]
    t.equal(r.body, type === TYPE.listener ? 'listener' : type === TYPE.routeTable ? 'routeTable' : 'cluster')
    t.strictSame(fromMessage(schema, r[r.body as 'listener']), body, `${type} ${body.name}`)
  }
  // and through the proxy's decoding of a whole batch
  const batch = [TYPE.cluster, TYPE.endpoints, TYPE.routeTable, TYPE.listener].map((type, i) => codec.responseDeserialize(codec.responseSerialize({
    typeUrl: type,
    versionInfo: 'v',
    nonce: 'n',
    batchRemaining: 3 - i,
    resources: type === TYPE.endpoints ? [] : [encodeResource(type, { name: type === TYPE.cluster ? cluster.name : type === TYPE.listener ? 'out' : 'rt', version: 'v', body: (type === TYPE.cluster ? cluster : type === TYPE.listener ? listener : table) as never })],
  })))
  const d = decodeBatch(NOTHING_ACCEPTED, batch)
  t.ok(d.ok)
  if (d.ok) {
    t.strictSame(d.value.clusters.get('web-v1'), cluster)
    t.strictSame(d.value.routeTables.get('rt'), table)
    t.strictSame(d.value.listeners.get('out'), listener)
  }
})
