// Admission of the Kubernetes state (control-plane/sources/admit.ts): objects that fail the
// cross-resource checks are left out with their errors, what depended on them goes too, and a
// state where only EndpointSlices changed reuses the last verdicts.
import t from 'tap'
import { admitResources } from '../control-plane/sources/admit.ts'
import { checkObject, WATCHED_KINDS, type RawObject } from '../control-plane/sources/kube-objects.ts'
import { emptyResourceSet, type Located } from '../control-plane/resources/load.ts'
import type { ResourceSet } from '../control-plane/resources/load.ts'
import { formatConfigError } from '../api/errors.ts'

function located(kind: string, obj: RawObject): Located<any> {
  const c = checkObject(kind as any, obj)
  if (!c.ok || !('located' in c)) throw new Error(`fixture ${kind} is invalid: ${JSON.stringify(c)}`)
  return c.located
}
const svc = (name: string) => located('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 80 }] } } as RawObject)
const slice = (name: string, svcName: string, ip: string) =>
  located('EndpointSlice', {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': svcName } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [ip] }],
    ports: [{ name: 'http', port: 8080 }],
  } as RawObject)
const route = (name: string, backend: string) =>
  located('HTTPRoute', {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: 'shop' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
  } as RawObject)

function set(parts: Partial<ResourceSet>): ResourceSet {
  return { ...emptyResourceSet(), ...parts }
}

t.test('an object that fails the checks is left out with its error; the rest is admitted', async (t) => {
  t.ok(WATCHED_KINDS.length > 0)
  const web = svc('web')
  const a = admitResources(set({ services: [web], endpointSlices: [slice('web-1', 'web', '10.0.0.1')], httpRoutes: [route('bad', 'nowhere'), route('good', 'web')] }))
  t.same(a.excluded, ['k8s:HTTPRoute/shop/bad'])
  t.same(a.resources.httpRoutes.map((r) => r.name), ['good'])
  t.equal(a.errors.length, 1)
  t.equal(formatConfigError(a.errors[0]), 'k8s:HTTPRoute/shop/bad:0:0: HTTPRoute shop/bad: spec.rules[0].backendRefs[0].name: unknown Service "shop/nowhere" (defined: shop/web)')
  t.same(a.resources.services, [web])
})

t.test('a shadowed rule is a warning: the route stays', async (t) => {
  const a = admitResources(set({ services: [svc('web')], httpRoutes: [route('first', 'web'), route('second', 'web')] }))
  t.same(a.excluded, [])
  t.equal(a.resources.httpRoutes.length, 2)
  t.equal(a.warnings.length, 1)
  t.match(formatConfigError(a.warnings[0]), /^k8s:HTTPRoute\/shop\/second:0:0: HTTPRoute shop\/second: spec\.rules\[0\]: unreachable: shadowed by shop\/first\/0 match 0/)
})

t.test('only EndpointSlices changed: the last verdicts are reused, the new slices admitted', async (t) => {
  const web = svc('web')
  const routes = [route('bad', 'nowhere')]
  const first = admitResources(set({ services: [web], endpointSlices: [slice('web-1', 'web', '10.0.0.1')], httpRoutes: routes }))
  const moved = [slice('web-1', 'web', '10.0.0.9'), slice('web-2', 'web', '10.0.0.10')]
  const second = admitResources(set({ services: [web], endpointSlices: moved, httpRoutes: [...routes] }), first)
  t.equal(second.errors, first.errors, 'the same verdicts (not computed again)')
  t.same(second.excluded, first.excluded)
  t.equal(second.resources.endpointSlices.length, 2)
  t.equal(second.resources.endpointSlices[0], moved[0])
  t.equal(second.resources.httpRoutes, first.resources.httpRoutes)

  // a Service appears: everything is checked again, and the route that needed it is admitted
  const third = admitResources(set({ services: [web, svc('nowhere')], endpointSlices: moved, httpRoutes: routes }), second)
  t.same(third.excluded, [])
  t.equal(third.resources.httpRoutes.length, 1)
})
