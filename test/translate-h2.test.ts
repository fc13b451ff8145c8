// The control plane declares a cluster's upstream protocol from its Service port: appProtocol
// (grpc, http2, h2c, kubernetes.io/h2c) or, without one, a port name prefix (grpc-, http2-, h2c-),
// as Istio does; and the proxy accepts `clusters[].protocol` and the gRPC retry conditions.
import t from 'tap'
import { checkResourceTexts } from '../control-plane/resources/validate.ts'
import { resourcesOf, speaksHttp2, translate } from '../control-plane/translate/translate.ts'
import { parseBootstrap } from '../api/load.ts'
import { formatConfigError } from '../api/errors.ts'

t.test('speaksHttp2: appProtocol first, then the port name', async (t) => {
  const yes = [{ port: 1, appProtocol: 'grpc' }, { port: 1, appProtocol: 'kubernetes.io/h2c' }, { port: 1, appProtocol: 'HTTP2' }, { port: 1, name: 'grpc' }, { port: 1, name: 'grpc-api' }, { port: 1, name: 'http2-x' }, { port: 1, name: 'h2c' }]
  const no = [{ port: 1 }, { port: 1, name: 'http' }, { port: 1, name: 'grpcx' }, { port: 1, name: 'grpc-api', appProtocol: 'http' }, { port: 1, appProtocol: 'kubernetes.io/ws' }]
  for (const p of yes) t.ok(speaksHttp2(p), JSON.stringify(p))
  for (const p of no) t.notOk(speaksHttp2(p), JSON.stringify(p))
})

t.test('a gRPC Service port becomes a protocol: http2 cluster, which the proxy accepts', async (t) => {
  const r = checkResourceTexts([{ file: 's.yaml', text: 'apiVersion: v1\nkind: Service\nmetadata: { name: books, namespace: shop }\nspec: { ports: [{ name: grpc, port: 9090 }, { name: web, port: 80 }] }\n' }])
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'))
  const x = translate(resourcesOf(r.resources), { namespace: 'shop' })
  const byName = Object.fromEntries(x.clusters.map((c) => [c.name, c.protocol]))
  t.same(byName, { 'outbound|80||books.shop.svc.cluster.local': undefined, 'outbound|9090||books.shop.svc.cluster.local': 'http2' })
})

t.test('bootstrap: clusters[].protocol and retry.on gRPC conditions are checked', async (t) => {
  const ok = `listeners: [{ name: o, direction: outbound, port: 0, routeTable: rt }]
routeTables: [{ name: rt, virtualHosts: [{ name: v, domains: ['*'], routes: [{ backends: [{ cluster: c }], retry: { attempts: 2, on: [unavailable, resource-exhausted, cancelled, deadline-exceeded, internal, reset] } }] }] }]
clusters: [{ name: c, protocol: http2, endpoints: [] }]
`
  const parsed = parseBootstrap(ok, 'b.yaml')
  t.ok(parsed.ok, parsed.ok ? 'valid' : parsed.errors.map(formatConfigError).join('\n'))
  const bad = parseBootstrap(ok.replace('protocol: http2', 'protocol: h3'), 'b.yaml')
  t.notOk(bad.ok)
  if (!bad.ok) t.match(bad.errors.map(formatConfigError).join('\n'), /b\.yaml:3:\d+: clusters\[0\]\.protocol: must be one of http1, http2/)
})

t.test('bootstrap: listener protocol http2 is accepted; with tcp.cluster it is an error', async (t) => {
  const base = `listeners: [{ name: o, direction: outbound, port: 0, routeTable: rt, protocol: http2 }]
routeTables: [{ name: rt, virtualHosts: [{ name: v, domains: ['*'], routes: [{ backends: [{ cluster: c }] }] }] }]
clusters: [{ name: c, protocol: http2, endpoints: [] }]
`
  t.ok(parseBootstrap(base, 'b.yaml').ok)
  const bad = parseBootstrap(base.replace('protocol: http2 }', 'protocol: http2, tcp: { cluster: c } }'), 'b.yaml')
  t.notOk(bad.ok)
  if (!bad.ok) t.match(bad.errors.map(formatConfigError).join('\n'), /b\.yaml:1:\d+: listeners\[0\]\.tcp: protocol "http2" never sends a connection to tcp\.cluster/)
})
