// An injected pod's inbound policy: the mutual TLS mode (WEFT_INBOUND_MTLS, from the pod's
// weft.io/inbound-mtls annotation) and authorization of its intercepting inbound listener apply to
// every inbound hop assembled for its app ports, so no hop is a way around them; the identity
// comes from WEFT_CA_ADDRESS with the pod's namespace and ServiceAccount.
import t from 'tap'
import { assemble, checkAssembled, NOTHING_ACCEPTED } from '../proxy/xds/assemble.ts'
import { withPodListeners } from '../proxy/xds/sidecar.ts'

const env = {
  WEFT_OUTBOUND_PORT: '15001', WEFT_INBOUND_PORT: '15006', WEFT_ADMIN_PORT: '15000', POD_IP: '10.0.1.3',
  POD_NAMESPACE: 'shop', SERVICE_ACCOUNT: 'reviews', WEFT_CA_ADDRESS: 'weft-control-plane.weft-system.svc:15012', WEFT_INBOUND_MTLS: 'strict',
}

t.test("the pod's inbound listener's policy goes to every inbound hop", async (t) => {
  const local = withPodListeners(undefined, env)!
  t.same(local.identity, { serviceAccount: 'reviews', ca: { address: 'weft-control-plane.weft-system.svc:15012', tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' } })
  t.equal(local.node?.namespace, 'shop')
  const inbound = local.listeners.find((l) => l.name === 'inbound')!
  t.equal(inbound.mtls, 'strict')
  inbound.authorization = [{ name: 'frontend-only', rules: [{ from: [{ principals: ['cluster.local/ns/shop/sa/frontend'] }] }] }]
  const b = assemble(local, {
    ...NOTHING_ACCEPTED,
    listeners: new Map([['outbound', { name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 15001, routeTable: 'outbound' }]]),
    routeTables: new Map([['outbound', { name: 'outbound', virtualHosts: [] }]]),
    clusters: new Map([['reviews', { name: 'reviews' }]]),
    endpoints: new Map([['reviews', [{ address: '10.0.1.3', port: 9080 }]]]),
  })
  const hop = b.listeners.find((l) => l.name === 'inbound|9080')!
  t.match(hop, { bindToPort: false, port: 9080, mtls: 'strict', authorization: [{ name: 'frontend-only' }] })
  t.same(b.identity, local.identity, 'the identity is the proxy\'s own setting, kept in the assembled config')
  t.equal(checkAssembled(b).ok, true, 'and the whole is a valid config')

  // a Service's own inbound policy (TrafficPolicy `inbound`, on its cluster) wins for its port
  const withSvc = assemble(local, {
    ...NOTHING_ACCEPTED,
    listeners: new Map([['outbound', { name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 15001, routeTable: 'outbound' }]]),
    routeTables: new Map([['outbound', { name: 'outbound', virtualHosts: [] }]]),
    clusters: new Map([
      ['reviews', { name: 'reviews', inbound: { mtls: 'permissive', authorization: [{ name: 'svc-policy', action: 'DENY', rules: [{ to: [{ paths: ['/admin*'] }] }] }] } }],
      ['metrics', { name: 'metrics' }],
    ]),
    endpoints: new Map([['reviews', [{ address: '10.0.1.3', port: 9080 }]], ['metrics', [{ address: '10.0.1.3', port: 9090 }]]]),
  })
  t.match(withSvc.listeners.find((l) => l.name === 'inbound|9080'), { mtls: 'permissive', authorization: [{ name: 'svc-policy' }] }, "the Service's inbound policy for its port")
  t.match(withSvc.listeners.find((l) => l.name === 'inbound|9090'), { mtls: 'strict', authorization: [{ name: 'frontend-only' }] }, "another port keeps the pod's")
  t.equal(withSvc.clusters.find((c) => c.name === 'reviews')!.inbound, undefined, "the callers' cluster does not carry it")
  t.equal(checkAssembled(withSvc).ok, true)

  const none = withPodListeners(undefined, { ...env, WEFT_INBOUND_MTLS: 'bogus' })!
  t.equal(none.listeners.find((l) => l.name === 'inbound')!.mtls, undefined, 'an unknown mode: the default (permissive with an identity)')
})
