// A mesh of a given size, in memory, in the shape a source hands to the control plane: a
// ResourceSet of Located objects (as control-plane/resources/load.ts and the Kubernetes source
// produce), each list sorted by namespace/name as the Kubernetes source sorts it. Deterministic:
// the same sizes give the same objects, so two runs publish the same versions.
//
//   Services        N, round robin over the namespaces; every tenth has a second port (grpc)
//   EndpointSlices  M endpoints in total, as evenly as possible, at most 100 per slice (the
//                   EndpointSlice controller's default); 2 % of the endpoints are not ready
//   HTTPRoutes      for `routeFraction` of the Services: a canary header match and an /api split
//                   with a timeout; one in ten is a consumer route (GAMMA) from the next namespace
//   TrafficPolicies for `policyFraction` of the Services: retry, timeout, circuit breaker and
//                   outlier detection on the Service; one in four also retries an HTTPRoute rule
import type { Located, ResourceSet } from '../../control-plane/resources/load.ts'
import { SERVICE_NAME_LABEL } from '../../control-plane/resources/schema.ts'
import type { EndpointSlice, HTTPRoute, Kind, Service, TrafficPolicy } from '../../control-plane/resources/schema.ts'

export interface MeshSize {
  /** Services (default 10,000) */
  services: number
  /** endpoints over all Services (default 100,000) */
  endpoints: number
  /** namespaces the Services are spread over (default 50) */
  namespaces: number
  /** fraction of Services with an HTTPRoute (default 0.05) */
  routeFraction?: number
  /** fraction of Services with a TrafficPolicy (default 0.05) */
  policyFraction?: number
}

const WORDS = ['api', 'web', 'orders', 'payments', 'catalog', 'search', 'users', 'auth', 'cart', 'checkout', 'reviews', 'ratings', 'inventory', 'shipping', 'billing', 'notify']
const ZONES = ['zone-a', 'zone-b', 'zone-c']
const SLICE_MAX = 100

export function namespaceName(k: number): string {
  return `team-${String(k).padStart(2, '0')}`
}

export function serviceName(i: number): string {
  return `${WORDS[i % WORDS.length]}-${i}`
}

/** The namespace of Service i. */
export function serviceNamespace(i: number, namespaces: number): string {
  return namespaceName(i % namespaces)
}

function located<T extends { metadata: { name: string; namespace?: string } }>(kind: Kind, obj: T): Located<T> {
  const namespace = obj.metadata.namespace ?? 'default'
  const name = obj.metadata.name
  return { kind, obj, namespace, name, id: `${namespace}/${name}`, file: `bench:${kind}/${namespace}/${name}`, locate: () => ({ line: 0, column: 0 }) }
}

function byId<T>(a: Located<T>, b: Located<T>): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

/** 10.96.0.0/12 for cluster IPs, 10.128.0.0/9 for pods: distinct for any size here. */
function clusterIp(i: number): string {
  return `10.${96 + ((i >> 16) & 15)}.${(i >> 8) & 255}.${i & 255}`
}

export function podIp(e: number): string {
  return `10.${128 + ((e >> 16) & 127)}.${(e >> 8) & 255}.${e & 255}`
}

function twoPorts(i: number): boolean {
  return i % 10 === 3
}

export function generateMesh(size: MeshSize): ResourceSet {
  const { services: n, endpoints: m, namespaces: nsCount } = size
  if (!(n >= 1 && nsCount >= 1 && m >= 0)) throw new RangeError(`need services >= 1, namespaces >= 1, endpoints >= 0 (got ${n}, ${nsCount}, ${m})`)
  const routeEvery = fractionStep(size.routeFraction ?? 0.05)
  const policyEvery = fractionStep(size.policyFraction ?? 0.05)
  const services: Located<Service>[] = []
  const slices: Located<EndpointSlice>[] = []
  const routes: Located<HTTPRoute>[] = []
  const policies: Located<TrafficPolicy>[] = []
  let e = 0
  for (let i = 0; i < n; i++) {
    const name = serviceName(i)
    const namespace = serviceNamespace(i, nsCount)
    const grpc = twoPorts(i)
    services.push(located('Service', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace, labels: { app: name }, uid: `svc-uid-${i}`, resourceVersion: String(1000 + i) },
      spec: {
        type: 'ClusterIP',
        clusterIP: clusterIp(i),
        clusterIPs: [clusterIp(i)],
        selector: { app: name },
        ports: grpc
          ? [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }, { name: 'grpc', port: 9090, targetPort: 9090, protocol: 'TCP' }]
          : [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }],
      },
    }))
    const count = Math.floor(m / n) + (i < m % n ? 1 : 0)
    for (let s = 0; s * SLICE_MAX < count; s++) {
      const endpoints: EndpointSlice['endpoints'] = []
      for (let j = s * SLICE_MAX; j < Math.min(count, (s + 1) * SLICE_MAX); j++, e++) {
        endpoints.push({
          addresses: [podIp(e)],
          conditions: { ready: e % 50 !== 7, serving: true, terminating: false },
          nodeName: `node-${e % 500}`,
          zone: ZONES[e % ZONES.length],
          targetRef: { kind: 'Pod', name: `${name}-${(e * 2654435761) % 0xfffff}`.slice(0, 63), namespace },
        })
      }
      slices.push(located('EndpointSlice', {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: `${name}-${sliceSuffix(i, s)}`,
          namespace,
          labels: { [SERVICE_NAME_LABEL]: name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
          resourceVersion: String(5000 + e),
        },
        addressType: 'IPv4',
        ports: grpc
          ? [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'grpc', port: 9090, protocol: 'TCP' }]
          : [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints,
      }))
    }
    // A second Service of the namespace for canaries and splits (itself when it is alone).
    const other = i + nsCount < n ? i + nsCount : i
    if (routeEvery > 0 && i % routeEvery === 0) {
      routes.push(located('HTTPRoute', producerRoute(i, other, namespace)))
      if ((i / routeEvery) % 10 === 5 && nsCount > 1) routes.push(located('HTTPRoute', consumerRoute(i, namespace, serviceNamespace(i + 1, nsCount))))
    }
    if (policyEvery > 0 && i % policyEvery === Math.floor(policyEvery / 2)) {
      policies.push(located('TrafficPolicy', servicePolicy(name, namespace)))
    }
    if (routeEvery > 0 && i % (routeEvery * 4) === 0) policies.push(located('TrafficPolicy', rulePolicy(name, namespace)))
  }
  return {
    services: services.sort(byId),
    endpointSlices: slices.sort(byId),
    httpRoutes: routes.sort(byId),
    trafficPolicies: policies.sort(byId),
    peerAuthentications: [],
    authorizationPolicies: [],
    bootstraps: [],
    files: [],
  }
}

function fractionStep(f: number): number {
  return f <= 0 ? 0 : Math.max(1, Math.round(1 / f))
}

function sliceSuffix(i: number, s: number): string {
  // the controller's random 5-character suffix, made deterministic
  return ((i * 7919 + s * 104729) % 60466176).toString(36).padStart(5, 'x').slice(-5)
}

function producerRoute(i: number, other: number, namespace: string): HTTPRoute {
  const name = serviceName(i)
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: `${name}-routes`, namespace, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name, port: 80 }],
      rules: [
        { name: 'canary', matches: [{ headers: [{ name: 'x-canary', value: 'true' }] }], backendRefs: [{ name: serviceName(other), port: 80 }] },
        {
          name: 'api',
          matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
          backendRefs: [{ name, port: 80, weight: 90 }, { name: serviceName(other), port: 80, weight: 10 }],
          timeouts: { request: '10s' },
        },
      ],
    },
  }
}

/** A route of the clients in `from` for a Service of another namespace (GAMMA consumer route). */
function consumerRoute(i: number, svcNs: string, from: string): HTTPRoute {
  const name = serviceName(i)
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: `${name}-from-${from}`, namespace: from, creationTimestamp: '2026-01-02T00:00:00Z' },
    spec: {
      parentRefs: [{ kind: 'Service', name, namespace: svcNs, port: 80 }],
      rules: [{ name: 'v2', matches: [{ path: { type: 'PathPrefix', value: '/v2' } }], backendRefs: [{ name, namespace: svcNs, port: 80 }], timeouts: { request: '5s' } }],
    },
  }
}

function servicePolicy(name: string, namespace: string): TrafficPolicy {
  return {
    apiVersion: 'policy.weft.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: `${name}-policy`, namespace },
    spec: {
      targetRefs: [{ group: '', kind: 'Service', name }],
      retry: { attempts: 2, on: ['connect-failure', 'reset', 'gateway-error'], perTryTimeout: '2s' },
      timeout: '15s',
      circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, window: '10s', resetTimeout: '30s' },
      outlierDetection: { consecutive5xx: 5, baseEjectionTime: '30s', maxEjectionPercent: 50 },
    },
  }
}

function rulePolicy(name: string, namespace: string): TrafficPolicy {
  return {
    apiVersion: 'policy.weft.io/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: `${name}-api-retry`, namespace },
    spec: {
      targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: `${name}-routes`, sectionName: 'api' }],
      retry: { attempts: 3, on: ['5xx'], backoff: { base: '25ms', max: '250ms' } },
    },
  }
}

/**
 * Change k: one endpoint of one EndpointSlice gets a new address (a pod replaced), the way a
 * source sees it: a new slice object (the old one is never mutated) in a new list, every other
 * object the same. Returns the new set and the slice's id.
 */
export function changeOneEndpoint(set: ResourceSet, k: number): { set: ResourceSet; slice: string; address: string } {
  const slices = set.endpointSlices
  if (slices.length === 0) throw new Error('no EndpointSlices to change')
  const at = (k * 7919 + 13) % slices.length
  const old = slices[at]
  const eps = old.obj.endpoints
  const j = k % Math.max(1, eps.length)
  const address = podIp(0x7f0000 + k) // outside the generated range: always a new address
  const endpoints = eps.length === 0
    ? [{ addresses: [address], conditions: { ready: true } }]
    : eps.map((ep, x) => (x === j ? { ...ep, addresses: [address], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', name: `replaced-${k}`, namespace: old.namespace } } : ep))
  const obj: EndpointSlice = { ...old.obj, metadata: { ...old.obj.metadata, resourceVersion: String(9_000_000 + k) }, endpoints }
  const next = slices.slice()
  next[at] = { ...old, obj }
  return { set: { ...set, endpointSlices: next }, slice: old.id, address }
}
