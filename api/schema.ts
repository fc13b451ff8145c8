// The one schema of the proxy's configuration. The TypeScript types below are derived from it
// (TypeBox), and the same JSON Schema validates the static bootstrap YAML and, later, what the
// control plane sends. Field names follow Kubernetes conventions (camelCase, durations as "250ms").
import Type from 'typebox'

const Duration = Type.String({
  pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$',
  description: 'A duration such as "250ms", "5s", "1m30s"',
})
const Name = Type.String({ pattern: '^[A-Za-z0-9]([-A-Za-z0-9_.|]*[A-Za-z0-9])?$', maxLength: 253 })
const Port = Type.Integer({ minimum: 0, maximum: 65535 })
const HeaderName = Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" })
const HeaderValue = Type.String({ pattern: '^[\\t\\x20-\\x7e\\x80-\\xff]*$' })

export const HeaderMatch = Type.Object(
  {
    name: HeaderName,
    exact: Type.Optional(Type.String()),
    prefix: Type.Optional(Type.String()),
    regex: Type.Optional(Type.String()),
    present: Type.Optional(Type.Boolean({ description: 'true: the header must be present; false: absent' })),
  },
  { additionalProperties: false },
)

export const QueryMatch = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    exact: Type.Optional(Type.String()),
    prefix: Type.Optional(Type.String()),
    regex: Type.Optional(Type.String()),
    present: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
)

export const PathMatch = Type.Object(
  {
    exact: Type.Optional(Type.String({ pattern: '^/' })),
    // a string prefix: "/api" matches "/api", "/api/x" and "/apix"
    prefix: Type.Optional(Type.String({ pattern: '^/' })),
    // whole path segments (Gateway API PathPrefix): "/api" matches "/api" and "/api/x", not "/apix"
    segmentPrefix: Type.Optional(Type.String({ pattern: '^/' })),
    regex: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
)

export const RouteMatch = Type.Object(
  {
    path: Type.Optional(PathMatch),
    method: Type.Optional(Type.String({ pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" })),
    headers: Type.Optional(Type.Array(HeaderMatch)),
    queryParams: Type.Optional(Type.Array(QueryMatch)),
  },
  { additionalProperties: false },
)

export const HeaderMutation = Type.Object(
  {
    add: Type.Optional(Type.Record(HeaderName, HeaderValue, { additionalProperties: false, description: 'appended, keeping any existing value' })),
    set: Type.Optional(Type.Record(HeaderName, HeaderValue, { additionalProperties: false, description: 'replaces any existing value' })),
    remove: Type.Optional(Type.Array(HeaderName)),
  },
  { additionalProperties: false },
)

export const WeightedBackend = Type.Object(
  {
    cluster: Name,
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000000, default: 1 })),
  },
  { additionalProperties: false },
)

export const DirectResponse = Type.Object(
  {
    status: Type.Integer({ minimum: 200, maximum: 599 }),
    body: Type.Optional(Type.String()),
    headers: Type.Optional(Type.Record(HeaderName, HeaderValue, { additionalProperties: false })),
  },
  { additionalProperties: false },
)

const Percent = Type.Number({ minimum: 0, maximum: 100 })

// ---- route policy (compiled into the route's filter chain, proxy/filters/) -------------------

export const RetryOn = Type.Union([
  Type.Literal('5xx'), // any 5xx response, a connect failure, a reset or a per-try timeout
  Type.Literal('gateway-error'), // 502, 503, 504 responses, a connect failure, a per-try timeout
  Type.Literal('connect-failure'),
  Type.Literal('reset'), // the connection failed or was reset before a response head
  Type.Literal('retriable-status-codes'), // the codes in retriableStatusCodes
  // gRPC: the grpc-status of a trailers-only response (Envoy's retry_on names; README "Protocols")
  Type.Literal('cancelled'), // 1 CANCELLED
  Type.Literal('deadline-exceeded'), // 4 DEADLINE_EXCEEDED
  Type.Literal('resource-exhausted'), // 8 RESOURCE_EXHAUSTED
  Type.Literal('internal'), // 13 INTERNAL
  Type.Literal('unavailable'), // 14 UNAVAILABLE
])

export const RetryPolicy = Type.Object(
  {
    // retries after the first try (Envoy num_retries); 0 turns retries off
    attempts: Type.Integer({ minimum: 0, maximum: 10 }),
    on: Type.Optional(Type.Array(RetryOn, { minItems: 1, uniqueItems: true, default: ['connect-failure', 'reset', 'gateway-error'] })),
    retriableStatusCodes: Type.Optional(Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { uniqueItems: true })),
    // each try gets at most this long to start its response (504, flag UT, then maybe a retry)
    perTryTimeout: Type.Optional(Duration),
    // exponential backoff with full jitter: try n waits random(0, min(max, base * 2^n))
    backoff: Type.Optional(Type.Object({ base: Type.Optional(Duration), max: Type.Optional(Duration) }, { additionalProperties: false })),
    // retries are at most `percent` of the requests of the last `ttl`, plus minRetriesPerSecond
    // (Linkerd's retry budget); when spent, the failure is returned as it is (flag URX)
    budget: Type.Optional(
      Type.Object(
        { percent: Type.Optional(Percent), minRetriesPerSecond: Type.Optional(Type.Integer({ minimum: 0 })), ttl: Type.Optional(Duration) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

export const FaultPolicy = Type.Object(
  {
    delay: Type.Optional(Type.Object({ percent: Percent, fixedDelay: Duration }, { additionalProperties: false })),
    abort: Type.Optional(Type.Object({ percent: Percent, status: Type.Integer({ minimum: 200, maximum: 599 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
)

export const RateLimitPolicy = Type.Object(
  {
    // a token bucket: `requests` tokens every `interval`, holding at most `burst` (default requests)
    requests: Type.Integer({ minimum: 1 }),
    interval: Duration,
    burst: Type.Optional(Type.Integer({ minimum: 1 })),
    // one bucket per client key instead of one per route: a request header's value, or the
    // client's address; requests without the header share one bucket
    key: Type.Optional(
      Type.Object({ header: Type.Optional(HeaderName), clientAddress: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    ),
    // bound on the per-key buckets kept (least recently used dropped first)
    maxKeys: Type.Optional(Type.Integer({ minimum: 1, default: 10000 })),
  },
  { additionalProperties: false },
)

// A limit shared by every sidecar: the rate limit service (Envoy's RLS protocol,
// envoy.service.ratelimit.v3; `weft ratelimit-server` or any other) decides per request.
export const GlobalRateLimitPolicy = Type.Object(
  {
    // the rate limit service, host:port (plaintext gRPC)
    service: Type.String({ minLength: 3 }),
    // the limits' namespace in the service's config
    domain: Type.String({ minLength: 1 }),
    // each descriptor is checked on its own; one over its limit: 429. A descriptor with an entry
    // whose header is missing is not sent (as Envoy).
    descriptors: Type.Array(
      Type.Object(
        {
          entries: Type.Array(
            Type.Object(
              {
                key: Type.String({ minLength: 1 }),
                // the entry's value: fixed (value), a request header's, the client's address, the
                // route's name, the calling workload as the proxy knows it (source: "namespace/workload")
                from: Type.Union([Type.Literal('value'), Type.Literal('header'), Type.Literal('remoteAddress'), Type.Literal('route'), Type.Literal('source')]),
                header: Type.Optional(HeaderName),
                value: Type.Optional(Type.String()),
              },
              { additionalProperties: false },
            ),
            { minItems: 1, maxItems: 16 },
          ),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 16 },
    ),
    // the service cannot be asked (down, too slow): allow (default) lets the request go, deny answers 500 (flag RLSE)
    failureMode: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny')], { default: 'allow' })),
    // how long a request waits for the service's answer; default 20ms
    timeout: Type.Optional(Duration),
  },
  { additionalProperties: false },
)

export const MirrorPolicy = Type.Object(
  {
    cluster: Name,
    percent: Type.Optional(Percent),
  },
  { additionalProperties: false },
)

export const RedirectPolicy = Type.Object(
  {
    scheme: Type.Optional(Type.Union([Type.Literal('http'), Type.Literal('https')])),
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    // the whole path, or (pathPrefix) the part the route's prefix matched
    path: Type.Optional(Type.String({ pattern: '^/' })),
    pathPrefix: Type.Optional(Type.String({ pattern: '^/' })),
    status: Type.Optional(Type.Union([Type.Literal(301), Type.Literal(302), Type.Literal(303), Type.Literal(307), Type.Literal(308)], { default: 302 })),
  },
  { additionalProperties: false },
)

export const Route = Type.Object(
  {
    name: Type.Optional(Name),
    match: Type.Optional(RouteMatch),
    backends: Type.Optional(Type.Array(WeightedBackend, { minItems: 1 })),
    directResponse: Type.Optional(DirectResponse),
    redirect: Type.Optional(RedirectPolicy),
    requestHeaders: Type.Optional(HeaderMutation),
    responseHeaders: Type.Optional(HeaderMutation),
    rewrite: Type.Optional(
      Type.Object(
        {
          pathPrefix: Type.Optional(Type.String({ pattern: '^/' })),
          path: Type.Optional(Type.String({ pattern: '^/' })),
          host: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    // the whole request, retries included: 504 with flag UT when no response has started
    timeout: Type.Optional(Duration),
    retry: Type.Optional(RetryPolicy),
    fault: Type.Optional(FaultPolicy),
    rateLimit: Type.Optional(RateLimitPolicy),
    globalRateLimit: Type.Optional(GlobalRateLimitPolicy),
    mirror: Type.Optional(MirrorPolicy),
  },
  { additionalProperties: false },
)

export const VirtualHost = Type.Object(
  {
    name: Name,
    // A Kubernetes service: expands to name, name.ns, name.ns.svc, name.ns.svc.cluster.local (each with and without :port).
    service: Type.Optional(
      Type.Object(
        {
          name: Name,
          namespace: Type.Optional(Name),
          port: Type.Optional(Port),
          clusterDomain: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    // Extra host names; "*" matches any host, "*.example.com" a suffix.
    domains: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    routes: Type.Array(Route, { minItems: 1 }),
  },
  { additionalProperties: false },
)

export const RouteTable = Type.Object(
  {
    name: Name,
    virtualHosts: Type.Array(VirtualHost),
  },
  { additionalProperties: false },
)

export const Endpoint = Type.Object(
  {
    address: Type.String({ minLength: 1 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000, default: 1 })),
  },
  { additionalProperties: false },
)

export const LoadBalancer = Type.Object(
  {
    policy: Type.Optional(
      Type.Union(
        [
          Type.Literal('roundRobin'),
          Type.Literal('leastRequest'),
          Type.Literal('peakEwma'),
          Type.Literal('ringHash'),
          Type.Literal('maglev'),
        ],
        { default: 'roundRobin' },
      ),
    ),
    // ringHash / maglev: the request header whose value picks the endpoint (session affinity).
    hashHeader: Type.Optional(HeaderName),
    // peakEwma: decay window of the latency average.
    decay: Type.Optional(Duration),
  },
  { additionalProperties: false },
)

export const AdaptiveConcurrency = Type.Object(
  {
    // how often the limit is recomputed from the latencies of the requests finished since; default 100ms
    sampleWindow: Type.Optional(Duration),
    // the latency of a window (and of the minRTT measurement) is this percentile of its samples; default 50
    percentile: Type.Optional(Type.Number({ minimum: 1, maximum: 100, default: 50 })),
    // latency above minRTT tolerated before the limit shrinks, percent of minRTT; default 25
    buffer: Type.Optional(Type.Number({ minimum: 0, maximum: 1000, default: 25 })),
    // how often minRTT is measured again (the limit pinned to minConcurrency meanwhile); default 60s
    minRttInterval: Type.Optional(Duration),
    // requests the minRTT measurement takes; default 50
    minRttRequests: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, default: 50 })),
    minConcurrency: Type.Optional(Type.Integer({ minimum: 1, default: 3 })),
    maxConcurrency: Type.Optional(Type.Integer({ minimum: 1, default: 1000 })),
  },
  { additionalProperties: false },
)
export type AdaptiveConcurrency = Type.Static<typeof AdaptiveConcurrency>

// A principal, "spiffe://<trust-domain>/ns/<ns>/sa/<sa>" or Istio's form without "spiffe://";
// "*" any, "prefix*" and "*suffix" as Istio's string matches
const MatchString = Type.String({ minLength: 1 })
// An authorization policy of an inbound listener (Istio's security.istio.io/v1 AuthorizationPolicy):
// DENY policies first (one that matches denies), then ALLOW (when the listener has any ALLOW
// policy, a request none of them matches is denied); AUDIT only marks what it matches. A rule
// matches when each of its from / to / when lists has an element that matches (an absent list
// matches anything); an element matches when each of its fields does; a field matches when one of
// its values does, and a not* field when none does.
export const AuthorizationRule = Type.Object(
  {
    from: Type.Optional(Type.Array(Type.Object(
      {
        principals: Type.Optional(Type.Array(MatchString)),
        notPrincipals: Type.Optional(Type.Array(MatchString)),
        namespaces: Type.Optional(Type.Array(MatchString)),
        notNamespaces: Type.Optional(Type.Array(MatchString)),
      },
      { additionalProperties: false },
    ))),
    to: Type.Optional(Type.Array(Type.Object(
      {
        ports: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }))),
        notPorts: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }))),
        // HTTP only (a TCP connection: an ALLOW rule with one never matches, a DENY rule ignores it)
        methods: Type.Optional(Type.Array(MatchString)),
        notMethods: Type.Optional(Type.Array(MatchString)),
        paths: Type.Optional(Type.Array(MatchString)),
        notPaths: Type.Optional(Type.Array(MatchString)),
      },
      { additionalProperties: false },
    ))),
    // HTTP only: request headers (lower-case name); values as MatchString
    when: Type.Optional(Type.Array(Type.Object(
      {
        header: HeaderName,
        values: Type.Optional(Type.Array(Type.String())),
        notValues: Type.Optional(Type.Array(Type.String())),
      },
      { additionalProperties: false },
    ))),
  },
  { additionalProperties: false },
)

export const AuthorizationPolicy = Type.Object(
  {
    name: Name,
    action: Type.Optional(Type.Union([Type.Literal('ALLOW'), Type.Literal('DENY'), Type.Literal('AUDIT')], { default: 'ALLOW' })),
    // no rules: the policy matches nothing (an ALLOW policy without rules denies everything)
    rules: Type.Optional(Type.Array(AuthorizationRule)),
  },
  { additionalProperties: false },
)
export type AuthorizationPolicy = Type.Static<typeof AuthorizationPolicy>
export type AuthorizationRule = Type.Static<typeof AuthorizationRule>

const InboundMtls = Type.Union([Type.Literal('disable'), Type.Literal('permissive'), Type.Literal('strict')])
const PodPolicy = Type.Object({ mtls: Type.Optional(InboundMtls), authorization: Type.Optional(Type.Array(AuthorizationPolicy)) }, { additionalProperties: false })

export const Cluster = Type.Object(
  {
    name: Name,
    // Who is behind this cluster, for metric labels (destination_service / _workload / _namespace).
    destination: Type.Optional(
      Type.Object(
        {
          service: Type.Optional(Type.String()),
          workload: Type.Optional(Type.String()),
          namespace: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    lb: Type.Optional(LoadBalancer),
    // What the endpoints speak: http1 (default) or http2 (h2c, prior knowledge; gRPC needs it).
    // One HTTP/2 connection per endpoint carries all its streams (README "Protocols").
    protocol: Type.Optional(Type.Union([Type.Literal('http1'), Type.Literal('http2')], { default: 'http1' })),
    pool: Type.Optional(
      Type.Object(
        {
          maxConnections: Type.Optional(Type.Integer({ minimum: 1, default: 1024, description: 'per endpoint' })),
          maxPending: Type.Optional(Type.Integer({ minimum: 0, default: 1024, description: 'requests waiting for a connection' })),
          idleTimeout: Type.Optional(Duration),
          connectTimeout: Type.Optional(Duration),
          // requests in flight to the whole cluster; more: 503 with flag UO
          maxRequests: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    // error-rate breaker over the whole cluster (opossum): opens when at least volumeThreshold
    // requests in the rolling window failed errorThresholdPercentage % or more (5xx, connect
    // failure, reset, timeout); open: 503 at once (flag UO); after resetTimeout one probe
    // request goes through (half-open) and its success closes the breaker
    circuitBreaker: Type.Optional(
      Type.Object(
        {
          errorThresholdPercentage: Type.Optional(Percent),
          volumeThreshold: Type.Optional(Type.Integer({ minimum: 1 })),
          window: Type.Optional(Duration),
          buckets: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          resetTimeout: Type.Optional(Duration),
        },
        { additionalProperties: false },
      ),
    ),
    // a limit on the requests in flight that follows the cluster's latency (Envoy's
    // adaptive_concurrency gradient controller, proxy/cluster/adaptive.ts); over it: 503, flag UO
    adaptiveConcurrency: Type.Optional(AdaptiveConcurrency),
    // per endpoint: consecutive failures eject it for baseEjectionTime x its ejection count
    // (at most maxEjectionTime), never more than maxEjectionPercent of the cluster at once
    outlierDetection: Type.Optional(
      Type.Object(
        {
          consecutive5xx: Type.Optional(Type.Integer({ minimum: 0 })),
          consecutiveGatewayErrors: Type.Optional(Type.Integer({ minimum: 0 })),
          consecutiveConnectFailures: Type.Optional(Type.Integer({ minimum: 0 })),
          baseEjectionTime: Type.Optional(Duration),
          maxEjectionTime: Type.Optional(Duration),
          maxEjectionPercent: Type.Optional(Percent),
        },
        { additionalProperties: false },
      ),
    ),
    // Mutual TLS to the endpoints' sidecars with this proxy's identity: the peer must present an
    // SVID of the trust domain, and one of `identities` when given (the service's workloads).
    // ALPN says what is inside: http/1.1, h2 (protocol http2) or weft-tcp (tunnels).
    tls: Type.Optional(
      Type.Object(
        {
          mode: Type.Optional(Type.Union([Type.Literal('mutual'), Type.Literal('disable')], { default: 'mutual' })),
          identities: Type.Optional(Type.Array(Type.String({ pattern: '^spiffe://' }))),
        },
        { additionalProperties: false },
      ),
    ),
    // What the Service's own sidecars apply to the calls they receive for it (a TrafficPolicy
    // `inbound` block, PeerAuthentication and AuthorizationPolicy resources): an injected pod
    // whose IP is among the cluster's endpoints gives its inbound hop for that port this mutual
    // TLS mode and these authorization policies, or those of the `workloads` entry that lists its
    // IP (pods of one Service that policies with selectors treat differently). An entry replaces
    // the defaults as a whole. `pod`: the workload-wide policy (PeerAuthentication and
    // AuthorizationPolicy, without port levels or the Service's own), which the pod's sidecar
    // gives its intercepting inbound listener (its ports that no Service names).
    inbound: Type.Optional(
      Type.Object(
        {
          mtls: Type.Optional(InboundMtls),
          authorization: Type.Optional(Type.Array(AuthorizationPolicy)),
          pod: Type.Optional(PodPolicy),
          workloads: Type.Optional(Type.Array(Type.Object(
            {
              addresses: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
              mtls: Type.Optional(InboundMtls),
              authorization: Type.Optional(Type.Array(AuthorizationPolicy)),
              pod: Type.Optional(PodPolicy),
            },
            { additionalProperties: false },
          ))),
        },
        { additionalProperties: false },
      ),
    ),
    endpoints: Type.Array(Endpoint),
  },
  { additionalProperties: false },
)


export const Listener = Type.Object(
  {
    name: Name,
    direction: Type.Union([Type.Literal('inbound'), Type.Literal('outbound')]),
    address: Type.Optional(Type.String({ default: '127.0.0.1' })),
    port: Port,
    // The route table of the listener's HTTP traffic (required by the schema; a `protocol: tcp`
    // listener names one all the same and never reads it).
    routeTable: Name,
    // What the accepted connections speak (README "Protocols"):
    //   detect (default): peek at the first bytes: the HTTP/2 preface, an HTTP/1 request line, or
    //     anything else (opaque TCP, to `tcp.cluster`; without it, to the HTTP/1 codec as before)
    //   http: HTTP/1 only, no detection
    //   tcp: opaque, no detection: every connection goes to `tcp.cluster`
    //   http2: HTTP/2 with prior knowledge (h2c, gRPC) only, no detection (nothing is waited for)
    protocol: Type.Optional(Type.Union([Type.Literal('detect'), Type.Literal('http'), Type.Literal('tcp'), Type.Literal('http2')], { default: 'detect' })),
    // detect: how long a client that sends nothing is waited for before it is taken to be the
    // client of a server-speaks-first protocol (SMTP, MySQL) and tunnelled to `tcp.cluster`;
    // only armed when the listener has `tcp.cluster`. Default 100ms (Linkerd waits 10 s).
    detectTimeout: Type.Optional(Duration),
    // Listener-level request filters: they run for every HTTP request of the listener, HTTP/1 and
    // HTTP/2, before routing (a listener-wide rate limit, a fault); then the route's own filters.
    filters: Type.Optional(
      Type.Object({ rateLimit: Type.Optional(RateLimitPolicy), fault: Type.Optional(FaultPolicy) }, { additionalProperties: false }),
    ),
    // The listener receives connections that iptables redirected to it (`weft init`), and each
    // connection's original destination (SO_ORIGINAL_DST) decides where it goes:
    //   outbound: a destination the route table names (an IP literal among its virtual hosts'
    //     domains, "10.96.0.10:8080", or "10.96.0.10" for port 80: a Service's ClusterIP) takes the
    //     listener's normal path (detection, routing by Host); any other destination is passed
    //     through to itself as opaque TCP (decision `passthrough`), as Istio's PassthroughCluster;
    //   inbound: every redirected connection goes to 127.0.0.1:<its original port>, the app's port.
    // A connection made to the listener's own address (not redirected) takes the normal path.
    // Linux only (netfilter); the proxy must run as the uid `weft init --proxy-uid` excludes.
    interception: Type.Optional(Type.Union([Type.Literal('outbound'), Type.Literal('inbound')])),
    // false: the listener does not listen; an intercepting listener of the same direction hands it
    // the redirected connections whose original destination is its port (and its address, unless
    // that is 0.0.0.0 or ::), as Envoy's bind_to_port: false. How an injected pod's inbound traffic
    // to one app port gets its own route table, policies and reporter=destination telemetry.
    bindToPort: Type.Optional(Type.Boolean({ default: true })),
    // Mutual TLS on an inbound listener (needs the proxy's `identity`): permissive (the default
    // with an identity) serves mesh TLS and plain text, told apart by the first byte; strict
    // refuses plain text (counted); disable (the default without an identity) serves plain text only.
    mtls: Type.Optional(Type.Union([Type.Literal('disable'), Type.Literal('permissive'), Type.Literal('strict')])),
    // Authorization of an inbound listener's requests and TCP connections (README "Identity").
    authorization: Type.Optional(Type.Array(AuthorizationPolicy)),
    // Where opaque TCP goes: the cluster's endpoints and balancer, its pool.connectTimeout.
    tcp: Type.Optional(
      Type.Object(
        {
          cluster: Name,
          // a tunnel with no byte either way for this long is closed; default 1h (as Envoy)
          idleTimeout: Type.Optional(Duration),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

export const Limits = Type.Object(
  {
    maxHeaderBytes: Type.Optional(Type.Integer({ minimum: 256, maximum: 1048576, default: 65536 })),
    maxHeaders: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })),
    requestHeadTimeout: Type.Optional(Duration),
    idleTimeout: Type.Optional(Duration),
    // a connection that sends no byte for this long is closed (HTTP/1: 408); default 5s
    firstByteTimeout: Type.Optional(Duration),
    // HTTP/2: a stream that moves no byte either way for this long is reset; default 30s
    streamIdleTimeout: Type.Optional(Duration),
    // HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS of a client connection; more are refused (REFUSED_STREAM)
    http2MaxConcurrentStreams: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })),
    // HTTP/2: streams of one client connection in progress at once (each may hold an upstream
    // stream or connection); more wait, unread, until one ends
    http2MaxActiveStreams: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 100 })),
  },
  { additionalProperties: false },
)

export const Telemetry = Type.Object(
  {
    metrics: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ default: true })),
          // weft: weft_requests_total, ...; istio: istio_requests_total, ... (Istio dashboards, Kiali)
          naming: Type.Optional(Type.Union([Type.Literal('weft'), Type.Literal('istio')], { default: 'weft' })),
        },
        { additionalProperties: false },
      ),
    ),
    tracing: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ default: false })),
          // Zipkin v2 collector, e.g. http://127.0.0.1:9411/api/v2/spans
          zipkinUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
          // percent of new traces sampled (callers' decisions are honoured); default 1, as Istio
          sampling: Type.Optional(Type.Number({ minimum: 0, maximum: 100, default: 1 })),
          batchInterval: Type.Optional(Duration),
          maxQueue: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000, default: 1000 })),
          serviceName: Type.Optional(Type.String()),
          // header formats put on requests that came without trace headers (a request with
          // trace headers goes on in the formats it came with); default [b3multi], as Envoy
          propagation: Type.Optional(
            Type.Array(Type.Union([Type.Literal('b3multi'), Type.Literal('b3'), Type.Literal('w3c')]), { minItems: 1, uniqueItems: true }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    accessLog: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ default: false })),
          // file to append to; default standard output
          path: Type.Optional(Type.String({ minLength: 1 })),
          // only these status classes (e.g. ["4xx", "5xx"]; 0xx: the client left before a response); default all
          statusClasses: Type.Optional(Type.Array(Type.Union([Type.Literal('0xx'), Type.Literal('1xx'), Type.Literal('2xx'), Type.Literal('3xx'), Type.Literal('4xx'), Type.Literal('5xx')]))),
          // percent of requests logged; default 100
          sampling: Type.Optional(Type.Number({ minimum: 0, maximum: 100, default: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    // decision traces of single requests (admin /explain, weft explain --admin, weft tap --explain)
    explain: Type.Optional(
      Type.Object(
        {
          // honour `x-weft-explain: 1` from this pod's application (outbound listeners); default true
          header: Type.Optional(Type.Boolean({ default: true })),
          // percent of all requests traced; default 0
          sampling: Type.Optional(Type.Number({ minimum: 0, maximum: 100, default: 0 })),
          // traces kept, the oldest dropped first; default 256
          keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, default: 256 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
)

export const Bootstrap = Type.Object(
  {
    node: Type.Optional(
      Type.Object(
        {
          id: Type.Optional(Type.String()),
          workload: Type.Optional(Name),
          namespace: Type.Optional(Name),
        },
        { additionalProperties: false },
      ),
    ),
    admin: Type.Optional(
      Type.Object(
        { address: Type.Optional(Type.String()), port: Port },
        { additionalProperties: false },
      ),
    ),
    // The proxy's own identity, an X.509 SVID for spiffe://<trustDomain>/ns/<node.namespace>/sa/<serviceAccount>
    // (README "Identity"): from the mesh CA (`ca`), or from files (certFile, keyFile, trustBundleFile).
    identity: Type.Optional(
      Type.Object(
        {
          trustDomain: Type.Optional(Type.String({ pattern: '^[a-z0-9.-]+$', default: 'cluster.local' })),
          serviceAccount: Type.Optional(Type.String({ minLength: 1, default: 'default' })),
          ca: Type.Optional(
            Type.Object(
              {
                // host:port of the certificate service (`weft control-plane --ca`)
                address: Type.String({ minLength: 1 }),
                // the token that proves the workload (a ServiceAccount token; local mode: one of the CA's tokens file)
                tokenFile: Type.Optional(Type.String({ minLength: 1 })),
                // lifetime asked for; default the CA's (24h); renewed at half of it
                ttl: Type.Optional(Duration),
                // PEM of the mesh root(s): the CA is reached over TLS and its certificate checked
                // against them (and, after the first answer, against the trust bundle it sends);
                // unset: plain text (local mode on one machine)
                root: Type.Optional(Type.String({ pattern: '-----BEGIN CERTIFICATE-----' })),
              },
              { additionalProperties: false },
            ),
          ),
          certFile: Type.Optional(Type.String({ minLength: 1 })),
          keyFile: Type.Optional(Type.String({ minLength: 1 })),
          trustBundleFile: Type.Optional(Type.String({ minLength: 1 })),
          // x-forwarded-client-cert toward the app on inbound listeners: sanitizeSet (default)
          // drops what the caller sent and sets By/Hash/URI of the mTLS peer; sanitize only drops it
          forwardClientCert: Type.Optional(Type.Union([Type.Literal('sanitizeSet'), Type.Literal('sanitize')], { default: 'sanitizeSet' })),
        },
        { additionalProperties: false },
      ),
    ),
    drainTimeout: Type.Optional(Duration),
    /** on SIGTERM, how long the listeners keep accepting (HTTP/1 answers with Connection: close, HTTP/2 gets GOAWAY) before idle connections close; at most drainTimeout */
    drainPeriod: Type.Optional(Duration),
    limits: Type.Optional(Limits),
    telemetry: Type.Optional(Telemetry),
    listeners: Type.Array(Listener),
    routeTables: Type.Array(RouteTable),
    clusters: Type.Array(Cluster),
  },
  { additionalProperties: false },
)

export type HeaderMatch = Type.Static<typeof HeaderMatch>
export type QueryMatch = Type.Static<typeof QueryMatch>
export type RouteMatch = Type.Static<typeof RouteMatch>
export type HeaderMutation = Type.Static<typeof HeaderMutation>
export type Route = Type.Static<typeof Route>
export type VirtualHost = Type.Static<typeof VirtualHost>
export type RouteTable = Type.Static<typeof RouteTable>
export type Endpoint = Type.Static<typeof Endpoint>
export type LoadBalancer = Type.Static<typeof LoadBalancer>
export type Cluster = Type.Static<typeof Cluster>
export type Listener = Type.Static<typeof Listener>
export type Limits = Type.Static<typeof Limits>
export type Telemetry = Type.Static<typeof Telemetry>
export type Bootstrap = Type.Static<typeof Bootstrap>
export type RetryPolicy = Type.Static<typeof RetryPolicy>
export type FaultPolicy = Type.Static<typeof FaultPolicy>
export type RateLimitPolicy = Type.Static<typeof RateLimitPolicy>
export type GlobalRateLimitPolicy = Type.Static<typeof GlobalRateLimitPolicy>
export type MirrorPolicy = Type.Static<typeof MirrorPolicy>
export type RedirectPolicy = Type.Static<typeof RedirectPolicy>
/** A cluster as the config stream carries it: its endpoints travel apart (ClusterEndpoints), so that
 * an endpoint change does not resend the cluster. */
export type ClusterSpec = Omit<Cluster, 'endpoints'>
