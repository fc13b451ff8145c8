// The resources Weft reads to build its routing: the subset of Kubernetes Service and
// EndpointSlice it uses, the Gateway API HTTPRoute in its mesh form (attached to a Service, as
// GAMMA specifies), and Weft's own TrafficPolicy for what the Gateway API does not have. One
// TypeBox definition per kind gives the JSON Schema (validation; exported to ./schemas/ by
// `npm run schemas`, the base of the CRDs) and the TypeScript type.
//
// TrafficPolicy's blocks reuse the proxy's own schema pieces (api/schema.ts), so a field
// means the same thing, with the same name and limits, in both places.
import Type from 'typebox'
import type { TSchema } from 'typebox'
import { Cluster, FaultPolicy, GlobalRateLimitPolicy, LoadBalancer, RateLimitPolicy, RetryPolicy } from '../../api/schema.ts'

// ---- patterns (their messages are in ./load.ts) ----------------------------------------------

/** RFC 1123 label: namespaces, port names. */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
/** RFC 1035 label: Service names (they become DNS names, so they start with a letter). */
export const DNS_1035_LABEL = '^[a-z]([-a-z0-9]*[a-z0-9])?$'
/** RFC 1123 subdomain: names of most objects. */
export const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'
/** Gateway API duration (GEP-2257): 1 to 4 terms of up to 5 digits, units h, m, s, ms. */
export const GATEWAY_DURATION = '^([0-9]{1,5}(h|m|s|ms)){1,4}$'
/** Gateway API PreciseHostname. */
export const HOSTNAME = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'
/** RFC 3339 time, as the API server writes creationTimestamp. */
export const TIMESTAMP = '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$'
/** An HTTP token: header and query parameter names (same as the proxy schema's). */
export const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
/** The proxy's duration form, used by TrafficPolicy (same as the proxy schema's). */
export const DURATION = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$'

const Port = Type.Integer({ minimum: 1, maximum: 65535 })
const Duration = Type.String({ pattern: DURATION, description: 'A duration such as "250ms", "5s", "1m30s"' })
const GatewayDuration = Type.String({ pattern: GATEWAY_DURATION, description: 'A Gateway API duration such as "10s", "500ms", "1h30m"' })
const StringMap = Type.Object({}, { additionalProperties: Type.String() })
const HeaderName = Type.String({ pattern: TOKEN, maxLength: 256 })

function metadata<L extends TSchema>(namePattern: string, nameMax: number, labels: L) {
  return Type.Object(
    {
      name: Type.String({ pattern: namePattern, maxLength: nameMax }),
      namespace: Type.Optional(Type.String({ pattern: DNS_LABEL, maxLength: 63, default: 'default' })),
      labels,
      annotations: Type.Optional(StringMap),
      // oldest first among HTTPRoutes of equal precedence (Gateway API tie-break)
      creationTimestamp: Type.Optional(Type.String({ pattern: TIMESTAMP })),
      // Set by the API server; accepted so `kubectl get -o yaml` output validates, not used.
      uid: Type.Optional(Type.String()),
      resourceVersion: Type.Optional(Type.String()),
      generation: Type.Optional(Type.Integer()),
      managedFields: Type.Optional(Type.Array(Type.Unknown())),
      ownerReferences: Type.Optional(Type.Array(Type.Unknown())),
      finalizers: Type.Optional(Type.Array(Type.String())),
    },
    { additionalProperties: false },
  )
}

// `status` is written by controllers; accepted and ignored on every kind.
const Status = Type.Optional(Type.Unknown())

// ---- core/v1 Service ---------------------------------------------------------------------------

export const ServicePort = Type.Object(
  {
    // required when the Service has more than one port; EndpointSlice ports are matched by it
    name: Type.Optional(Type.String({ pattern: DNS_LABEL, maxLength: 63 })),
    protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')], { default: 'TCP' })),
    appProtocol: Type.Optional(Type.String()),
    port: Port,
    // the Pod port; endpoints come from EndpointSlices, which already carry it
    targetPort: Type.Optional(Type.Union([Port, Type.String({ pattern: DNS_LABEL, maxLength: 15 })])),
    nodePort: Type.Optional(Port),
  },
  { additionalProperties: false },
)

export const Service = Type.Object(
  {
    apiVersion: Type.Literal('v1'),
    kind: Type.Literal('Service'),
    metadata: metadata(DNS_1035_LABEL, 63, Type.Optional(StringMap)),
    spec: Type.Object(
      {
        ports: Type.Array(ServicePort, { minItems: 1 }),
        // "None" (headless): no address of its own
        clusterIP: Type.Optional(Type.String()),
        clusterIPs: Type.Optional(Type.Array(Type.String())),
        selector: Type.Optional(StringMap),
        type: Type.Optional(Type.Union([Type.Literal('ClusterIP'), Type.Literal('NodePort'), Type.Literal('LoadBalancer')], { default: 'ClusterIP' })),
        // accepted and ignored (kubectl writes them); session affinity is TrafficPolicy loadBalancer.hashHeader
        sessionAffinity: Type.Optional(Type.String()),
        ipFamilies: Type.Optional(Type.Array(Type.String())),
        ipFamilyPolicy: Type.Optional(Type.String()),
        internalTrafficPolicy: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    ),
    status: Status,
  },
  { additionalProperties: false },
)

// ---- discovery.k8s.io/v1 EndpointSlice ---------------------------------------------------------

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'

export const EndpointSlice = Type.Object(
  {
    apiVersion: Type.Literal('discovery.k8s.io/v1'),
    kind: Type.Literal('EndpointSlice'),
    metadata: metadata(
      DNS_SUBDOMAIN,
      253,
      Type.Object({ [SERVICE_NAME_LABEL]: Type.String({ pattern: DNS_1035_LABEL, maxLength: 63 }) }, { additionalProperties: Type.String() }),
    ),
    addressType: Type.Union([Type.Literal('IPv4'), Type.Literal('IPv6'), Type.Literal('FQDN')]),
    endpoints: Type.Array(
      Type.Object(
        {
          addresses: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 100 }),
          // ready unset counts as ready (as in Kubernetes); only ready endpoints get traffic
          conditions: Type.Optional(
            Type.Object(
              { ready: Type.Optional(Type.Boolean()), serving: Type.Optional(Type.Boolean()), terminating: Type.Optional(Type.Boolean()) },
              { additionalProperties: false },
            ),
          ),
          hostname: Type.Optional(Type.String()),
          targetRef: Type.Optional(Type.Unknown()),
          nodeName: Type.Optional(Type.String()),
          zone: Type.Optional(Type.String()),
          hints: Type.Optional(Type.Unknown()),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1000 },
    ),
    ports: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.Optional(Type.String({ maxLength: 63 })),
            port: Port,
            protocol: Type.Optional(Type.Union([Type.Literal('TCP'), Type.Literal('UDP'), Type.Literal('SCTP')], { default: 'TCP' })),
            appProtocol: Type.Optional(Type.String()),
          },
          { additionalProperties: false },
        ),
        { maxItems: 100 },
      ),
    ),
  },
  { additionalProperties: false },
)

// ---- gateway.networking.k8s.io/v1 HTTPRoute (mesh form) ---------------------------------------

const CoreGroup = Type.Union([Type.Literal(''), Type.Literal('core')], { default: '' })

/** A Service in the mesh: the parent a route attaches to (GAMMA), a backend, a mirror target. */
const ServiceRef = (portRequired: boolean) =>
  Type.Object(
    {
      group: Type.Optional(CoreGroup),
      kind: Type.Optional(Type.Literal('Service', { default: 'Service' })),
      name: Type.String({ pattern: DNS_1035_LABEL, maxLength: 63 }),
      namespace: Type.Optional(Type.String({ pattern: DNS_LABEL, maxLength: 63 })),
      port: portRequired ? Port : Type.Optional(Port),
    },
    { additionalProperties: false },
  )

export const ParentRef = Type.Object(
  {
    group: Type.Optional(CoreGroup),
    // Gateway API's default is Gateway; in the mesh the parent is a Service, so it is required here
    kind: Type.Literal('Service'),
    name: Type.String({ pattern: DNS_1035_LABEL, maxLength: 63 }),
    namespace: Type.Optional(Type.String({ pattern: DNS_LABEL, maxLength: 63 })),
    // only this port of the Service; every port when unset
    port: Type.Optional(Port),
  },
  { additionalProperties: false },
)

const HeaderValueMatch = Type.Object(
  {
    type: Type.Optional(Type.Union([Type.Literal('Exact'), Type.Literal('RegularExpression')], { default: 'Exact' })),
    name: HeaderName,
    value: Type.String({ maxLength: 4096 }),
  },
  { additionalProperties: false },
)

export const HTTPRouteMatch = Type.Object(
  {
    path: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(Type.Union([Type.Literal('Exact'), Type.Literal('PathPrefix'), Type.Literal('RegularExpression')], { default: 'PathPrefix' })),
          value: Type.Optional(Type.String({ maxLength: 1024, default: '/' })),
        },
        { additionalProperties: false },
      ),
    ),
    headers: Type.Optional(Type.Array(HeaderValueMatch, { maxItems: 16 })),
    queryParams: Type.Optional(Type.Array(HeaderValueMatch, { maxItems: 16 })),
    method: Type.Optional(
      Type.Union(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'].map((m) => Type.Literal(m))),
    ),
  },
  { additionalProperties: false },
)

const HeaderPair = Type.Object({ name: HeaderName, value: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false })
export const HeaderModifier = Type.Object(
  {
    set: Type.Optional(Type.Array(HeaderPair, { maxItems: 16 })),
    add: Type.Optional(Type.Array(HeaderPair, { maxItems: 16 })),
    remove: Type.Optional(Type.Array(HeaderName, { maxItems: 16 })),
  },
  { additionalProperties: false },
)

export const PathModifier = Type.Object(
  {
    type: Type.Union([Type.Literal('ReplaceFullPath'), Type.Literal('ReplacePrefixMatch')]),
    replaceFullPath: Type.Optional(Type.String({ maxLength: 1024 })),
    replacePrefixMatch: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
)

export const FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'URLRewrite', 'RequestRedirect', 'RequestMirror', 'ExtensionRef'] as const

export const HTTPRouteFilter = Type.Object(
  {
    type: Type.Union(FILTER_TYPES.map((f) => Type.Literal(f))),
    requestHeaderModifier: Type.Optional(HeaderModifier),
    responseHeaderModifier: Type.Optional(HeaderModifier),
    urlRewrite: Type.Optional(
      Type.Object({ hostname: Type.Optional(Type.String({ pattern: HOSTNAME, maxLength: 253 })), path: Type.Optional(PathModifier) }, { additionalProperties: false }),
    ),
    requestRedirect: Type.Optional(
      Type.Object(
        {
          scheme: Type.Optional(Type.Union([Type.Literal('http'), Type.Literal('https')])),
          hostname: Type.Optional(Type.String({ pattern: HOSTNAME, maxLength: 253 })),
          path: Type.Optional(PathModifier),
          port: Type.Optional(Port),
          statusCode: Type.Optional(Type.Union([301, 302, 303, 307, 308].map((c) => Type.Literal(c)), { default: 302 })),
        },
        { additionalProperties: false },
      ),
    ),
    requestMirror: Type.Optional(
      Type.Object(
        {
          backendRef: ServiceRef(true),
          percent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          fraction: Type.Optional(
            Type.Object(
              { numerator: Type.Integer({ minimum: 0 }), denominator: Type.Optional(Type.Integer({ minimum: 1, default: 100 })) },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    // accepted by the schema so the error can say it is not supported (./validate.ts)
    extensionRef: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
)

export const HTTPBackendRef = Type.Object(
  {
    ...ServiceRef(true).properties,
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000000, default: 1 })),
    // per-backend filters are not supported (./validate.ts says so)
    filters: Type.Optional(Type.Array(HTTPRouteFilter)),
  },
  { additionalProperties: false },
)

export const HTTPRouteRule = Type.Object(
  {
    // Gateway API SectionName; TrafficPolicy targetRefs[].sectionName names a rule by it
    name: Type.Optional(Type.String({ pattern: DNS_LABEL, maxLength: 253 })),
    // none: everything (path prefix "/")
    matches: Type.Optional(Type.Array(HTTPRouteMatch, { maxItems: 64 })),
    filters: Type.Optional(Type.Array(HTTPRouteFilter, { maxItems: 16 })),
    backendRefs: Type.Optional(Type.Array(HTTPBackendRef, { maxItems: 16 })),
    timeouts: Type.Optional(
      Type.Object({ request: Type.Optional(GatewayDuration), backendRequest: Type.Optional(GatewayDuration) }, { additionalProperties: false }),
    ),
    // Gateway API HTTPRouteRetry
    retry: Type.Optional(
      Type.Object(
        {
          codes: Type.Optional(Type.Array(Type.Integer({ minimum: 400, maximum: 599 }), { uniqueItems: true })),
          // retries after the first try; the proxy allows at most 10
          attempts: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
          backoff: Type.Optional(GatewayDuration),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

export const HTTPRoute = Type.Object(
  {
    apiVersion: Type.Literal('gateway.networking.k8s.io/v1'),
    kind: Type.Literal('HTTPRoute'),
    metadata: metadata(DNS_SUBDOMAIN, 253, Type.Optional(StringMap)),
    spec: Type.Object(
      {
        parentRefs: Type.Array(ParentRef, { minItems: 1, maxItems: 32 }),
        // accepted and ignored: in the mesh a route applies to the Service's own host names
        hostnames: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 16 })),
        rules: Type.Optional(Type.Array(HTTPRouteRule, { maxItems: 16 })),
      },
      { additionalProperties: false },
    ),
    status: Status,
  },
  { additionalProperties: false },
)

// ---- policy.weft.io/v1alpha1 TrafficPolicy ------------------------------------------------------

export const PolicyTargetRef = Type.Object(
  {
    // "" (or "core") for a Service, gateway.networking.k8s.io for an HTTPRoute
    group: Type.Union([Type.Literal(''), Type.Literal('core'), Type.Literal('gateway.networking.k8s.io')]),
    kind: Type.Union([Type.Literal('Service'), Type.Literal('HTTPRoute')]),
    name: Type.String({ pattern: DNS_SUBDOMAIN, maxLength: 253 }),
    // HTTPRoute only: the rule of that name
    sectionName: Type.Optional(Type.String({ pattern: DNS_LABEL, maxLength: 253 })),
  },
  { additionalProperties: false },
)

export const ConnectionPool = Type.Object(
  {
    maxConnections: Type.Optional(Type.Integer({ minimum: 1, description: 'per endpoint' })),
    maxPendingRequests: Type.Optional(Type.Integer({ minimum: 0, description: 'requests waiting for a connection, per endpoint' })),
    maxRequests: Type.Optional(Type.Integer({ minimum: 1, description: 'requests in flight to the whole Service port' })),
    connectTimeout: Type.Optional(Duration),
    idleTimeout: Type.Optional(Duration),
  },
  { additionalProperties: false },
)

/** The blocks that shape a Service's clusters; only valid with Service targets. */
export const SERVICE_BLOCKS = ['loadBalancer', 'connectionPool', 'circuitBreaker', 'outlierDetection', 'adaptiveConcurrency', 'tls', 'inbound'] as const
/** The blocks that shape routes: every route of a Service, of an HTTPRoute, or of one of its rules. */
export const ROUTE_BLOCKS = ['retry', 'timeout', 'rateLimit', 'globalRateLimit', 'fault'] as const
export type ServiceBlock = (typeof SERVICE_BLOCKS)[number]
export type RouteBlock = (typeof ROUTE_BLOCKS)[number]

export const TrafficPolicy = Type.Object(
  {
    apiVersion: Type.Literal('policy.weft.io/v1alpha1'),
    kind: Type.Literal('TrafficPolicy'),
    metadata: metadata(DNS_SUBDOMAIN, 253, Type.Optional(StringMap)),
    spec: Type.Object(
      {
        // in the policy's namespace (Gateway API LocalPolicyTargetReference)
        targetRefs: Type.Array(PolicyTargetRef, { minItems: 1, maxItems: 16 }),
        loadBalancer: Type.Optional(LoadBalancer),
        connectionPool: Type.Optional(ConnectionPool),
        circuitBreaker: Type.Optional(Cluster.properties.circuitBreaker),
        outlierDetection: Type.Optional(Cluster.properties.outlierDetection),
        adaptiveConcurrency: Type.Optional(Cluster.properties.adaptiveConcurrency),
        // mutual TLS from the callers' sidecars to the Service's (its pods have sidecars with an
        // identity): mode mutual, and the SPIFFE IDs its workloads may present (secure naming)
        tls: Type.Optional(Cluster.properties.tls),
        // what the Service's own pods' sidecars apply to the calls they receive for it: their
        // mutual TLS mode and authorization policies (Istio's PeerAuthentication and
        // AuthorizationPolicy, scoped to the Service's pods)
        inbound: Type.Optional(Cluster.properties.inbound),
        retry: Type.Optional(RetryPolicy),
        timeout: Type.Optional(Duration),
        rateLimit: Type.Optional(RateLimitPolicy),
        globalRateLimit: Type.Optional(GlobalRateLimitPolicy),
        fault: Type.Optional(FaultPolicy),
      },
      { additionalProperties: false },
    ),
    status: Status,
  },
  { additionalProperties: false },
)

// ---- security.weft.io/v1alpha1: Istio's security.istio.io/v1 PeerAuthentication and
// AuthorizationPolicy, field for field (a user's Istio policies change only their apiVersion).
// A policy without a selector applies to every workload of its namespace; one in the mesh's root
// namespace (the control plane's --root-namespace, default weft-system) to every workload of the
// mesh. A selector matches Pod labels (Kubernetes mode: the control plane watches Pods).

export const SECURITY_API = 'security.weft.io/v1alpha1'

const WorkloadSelector = Type.Object({ matchLabels: Type.Optional(StringMap) }, { additionalProperties: false })
const MtlsMode = Type.Union([Type.Literal('UNSET'), Type.Literal('DISABLE'), Type.Literal('PERMISSIVE'), Type.Literal('STRICT')])
const Mtls = Type.Object({ mode: Type.Optional(MtlsMode) }, { additionalProperties: false })

export const PeerAuthentication = Type.Object(
  {
    apiVersion: Type.Literal(SECURITY_API),
    kind: Type.Literal('PeerAuthentication'),
    metadata: metadata(DNS_SUBDOMAIN, 253, Type.Optional(StringMap)),
    spec: Type.Object(
      {
        selector: Type.Optional(WorkloadSelector),
        // UNSET (or absent): the parent's mode (namespace, then mesh; the proxy's default, PERMISSIVE)
        mtls: Type.Optional(Mtls),
        // by the workload's port (the container port, the Service's targetPort); only with a selector
        portLevelMtls: Type.Optional(Type.Object({}, { additionalProperties: Mtls })),
      },
      { additionalProperties: false },
    ),
    status: Status,
  },
  { additionalProperties: false },
)

const Strings = Type.Array(Type.String({ minLength: 1 }))
const PortStrings = Type.Array(Type.String({ pattern: '^[1-9][0-9]{0,4}$' }))

export const AuthorizationPolicy = Type.Object(
  {
    apiVersion: Type.Literal(SECURITY_API),
    kind: Type.Literal('AuthorizationPolicy'),
    metadata: metadata(DNS_SUBDOMAIN, 253, Type.Optional(StringMap)),
    spec: Type.Object(
      {
        selector: Type.Optional(WorkloadSelector),
        action: Type.Optional(Type.Union([Type.Literal('ALLOW'), Type.Literal('DENY'), Type.Literal('AUDIT')])),
        // none: an ALLOW policy matches nothing (denies everything it selects); DENY and AUDIT do nothing
        rules: Type.Optional(Type.Array(Type.Object(
          {
            from: Type.Optional(Type.Array(Type.Object(
              {
                source: Type.Object(
                  {
                    principals: Type.Optional(Strings),
                    notPrincipals: Type.Optional(Strings),
                    namespaces: Type.Optional(Strings),
                    notNamespaces: Type.Optional(Strings),
                  },
                  { additionalProperties: false },
                ),
              },
              { additionalProperties: false },
            ))),
            to: Type.Optional(Type.Array(Type.Object(
              {
                operation: Type.Object(
                  {
                    ports: Type.Optional(PortStrings),
                    notPorts: Type.Optional(PortStrings),
                    methods: Type.Optional(Strings),
                    notMethods: Type.Optional(Strings),
                    paths: Type.Optional(Strings),
                    notPaths: Type.Optional(Strings),
                  },
                  { additionalProperties: false },
                ),
              },
              { additionalProperties: false },
            ))),
            // conditions: request.headers[<name>] only
            when: Type.Optional(Type.Array(Type.Object(
              {
                key: Type.String({ pattern: '^request\\.headers\\[[!#$%&\'*+.^_`|~0-9A-Za-z-]+\\]$' }),
                values: Type.Optional(Type.Array(Type.String())),
                notValues: Type.Optional(Type.Array(Type.String())),
              },
              { additionalProperties: false },
            ))),
          },
          { additionalProperties: false },
        ))),
      },
      { additionalProperties: false },
    ),
    status: Status,
  },
  { additionalProperties: false },
)

export type Service = Type.Static<typeof Service>
export type ServicePort = Type.Static<typeof ServicePort>
export type EndpointSlice = Type.Static<typeof EndpointSlice>
export type HTTPRoute = Type.Static<typeof HTTPRoute>
export type HTTPRouteRule = Type.Static<typeof HTTPRouteRule>
export type HTTPRouteMatch = Type.Static<typeof HTTPRouteMatch>
export type HTTPRouteFilter = Type.Static<typeof HTTPRouteFilter>
export type HTTPBackendRef = Type.Static<typeof HTTPBackendRef>
export type HeaderModifier = Type.Static<typeof HeaderModifier>
export type PathModifier = Type.Static<typeof PathModifier>
export type ParentRef = Type.Static<typeof ParentRef>
export type TrafficPolicy = Type.Static<typeof TrafficPolicy>
export type PolicyTargetRef = Type.Static<typeof PolicyTargetRef>
export type PeerAuthentication = Type.Static<typeof PeerAuthentication>
export type AuthorizationPolicy = Type.Static<typeof AuthorizationPolicy>

/** Every kind Weft reads, by apiVersion and kind; the name is also the file name under ./schemas/. */
export const KINDS = [
  { apiVersion: 'v1', kind: 'Service', schema: Service, file: 'service' },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', schema: EndpointSlice, file: 'endpointslice' },
  { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', schema: HTTPRoute, file: 'httproute' },
  { apiVersion: 'policy.weft.io/v1alpha1', kind: 'TrafficPolicy', schema: TrafficPolicy, file: 'trafficpolicy' },
  { apiVersion: SECURITY_API, kind: 'PeerAuthentication', schema: PeerAuthentication, file: 'peerauthentication' },
  { apiVersion: SECURITY_API, kind: 'AuthorizationPolicy', schema: AuthorizationPolicy, file: 'authorizationpolicy' },
] as const
export type Kind = (typeof KINDS)[number]['kind']
