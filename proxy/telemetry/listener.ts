// Telemetry of one listener, bound at config time: for every route and backend of the listener's
// route table the metric series object is created here, so the request path only indexes arrays.
import type { Bootstrap, Listener } from '../../api/schema.ts'
import type { CompiledRouteTable, CompiledVirtualHost } from '../route/table.ts'
import { BoundRequestMetrics, type ProxyMetrics, type TcpSeries } from './metrics.ts'
import type { SpanKind, Tracer } from './tracing/tracer.ts'
import type { PeerLabels, RequestRecord, RequestSink } from './types.ts'
import type { ExplainSource } from './explain.ts'

const UNKNOWN = 'unknown'

export interface ListenerMetrics {
  /** [route.id][backend index] */
  readonly byRoute: readonly (readonly BoundRequestMetrics[])[]
  /** requests no route matched (and direct replies get their route's entry at index 0) */
  readonly noRoute: BoundRequestMetrics
  readonly tcp: TcpSeries
}

export interface ListenerTelemetry {
  readonly metrics: ListenerMetrics | null
  /** access log and other sinks that want every completed request; empty when none */
  readonly sinks: readonly RequestSink[]
  /** live request stream for `weft tap`; the request path only checks `tap.active` */
  readonly tap: (RequestSink & { readonly active: boolean }) | null
  /** tracing; null when off */
  readonly tracer: Tracer | null
  /** CLIENT on outbound listeners (the caller's side), SERVER on inbound */
  readonly spanKind: SpanKind
  readonly peer: PeerLabels
  /** decision traces (./explain.ts); null when the proxy has no recorder (tests, tools) */
  readonly explain: ExplainSource | null
}

export const NO_TELEMETRY: ListenerTelemetry = {
  metrics: null,
  sinks: [],
  tap: null,
  tracer: null,
  spanKind: 'CLIENT',
  explain: null,
  peer: {
    reporter: 'source', sourceWorkload: UNKNOWN, sourceNamespace: UNKNOWN,
    destinationService: UNKNOWN, destinationWorkload: UNKNOWN, destinationNamespace: UNKNOWN,
    sourcePrincipal: UNKNOWN, destinationPrincipal: UNKNOWN, connectionSecurityPolicy: UNKNOWN,
  },
}

/** Labels of the traffic through a listener: who calls whom, Istio's convention. */
export function listenerPeer(b: Bootstrap, l: Listener): PeerLabels {
  const workload = b.node?.workload ?? UNKNOWN
  const namespace = b.node?.namespace ?? UNKNOWN
  return l.direction === 'outbound'
    ? {
        reporter: 'source', sourceWorkload: workload, sourceNamespace: namespace, destinationService: UNKNOWN, destinationWorkload: UNKNOWN, destinationNamespace: UNKNOWN,
        sourcePrincipal: UNKNOWN, destinationPrincipal: UNKNOWN, connectionSecurityPolicy: UNKNOWN,
      }
    : {
        reporter: 'destination', sourceWorkload: UNKNOWN, sourceNamespace: UNKNOWN, destinationService: workload, destinationWorkload: workload, destinationNamespace: namespace,
        // a plain-text caller's series; callers over mutual TLS get their own (BoundRequestMetrics.forPeer)
        sourcePrincipal: UNKNOWN, destinationPrincipal: ownPrincipal(b), connectionSecurityPolicy: 'none',
      }
}

/** This proxy's SPIFFE ID as its config names it, "unknown" without an identity. */
export function ownPrincipal(b: Bootstrap): string {
  const id = b.identity
  return id === undefined ? UNKNOWN : `spiffe://${id.trustDomain ?? 'cluster.local'}/ns/${b.node?.namespace ?? 'default'}/sa/${id.serviceAccount ?? 'default'}`
}

function routePeer(base: PeerLabels, b: Bootstrap, vh: CompiledVirtualHost, cluster: string | undefined): PeerLabels {
  const c = cluster === undefined ? undefined : b.clusters.find((x) => x.name === cluster)
  const dest = c?.destination
  if (base.reporter === 'source') {
    // over mesh TLS this proxy is the source principal; the destination is known when the
    // cluster allows exactly one identity (secure naming)
    const tls = c?.tls !== undefined && (c.tls.mode ?? 'mutual') === 'mutual'
    return {
      ...base,
      sourcePrincipal: tls ? ownPrincipal(b) : UNKNOWN,
      destinationPrincipal: tls && c!.tls!.identities?.length === 1 ? c!.tls!.identities[0] : UNKNOWN,
      destinationService: dest?.service ?? (vh.serviceFqdn || vh.name),
      destinationWorkload: dest?.workload ?? cluster ?? UNKNOWN,
      destinationNamespace: dest?.namespace ?? (vh.serviceNamespace || UNKNOWN),
    }
  }
  return { ...base, destinationService: vh.serviceFqdn || base.destinationService }
}

export function buildListenerMetrics(m: ProxyMetrics, b: Bootstrap, l: Listener, table: CompiledRouteTable): ListenerMetrics {
  const base = listenerPeer(b, l)
  const byRoute: BoundRequestMetrics[][] = []
  for (const vh of table.vhosts) {
    for (const r of vh.routes) {
      byRoute[r.id] = r.backends.length === 0
        ? [new BoundRequestMetrics(m, routePeer(base, b, vh, undefined), r.name)]
        : r.backends.map((be) => new BoundRequestMetrics(m, routePeer(base, b, vh, be.cluster), r.name))
    }
  }
  return { byRoute, noRoute: new BoundRequestMetrics(m, base, ''), tcp: m.tcpSeries(base.reporter, l.name) }
}

/** Record a finished request on its bound series. */
export function recordRequest(lm: ListenerMetrics, routeId: number, backend: number, r: RequestRecord): void {
  const bound = routeId < 0 ? lm.noRoute : lm.byRoute[routeId][backend]
  if (r.peer === null) bound.record(r)
  else bound.forPeer(r.peer.principal).record(r)
}

/** Record a finished request of another protocol (http2, grpc: the request_protocol label). */
export function recordRequestAs(lm: ListenerMetrics, routeId: number, backend: number, protocol: string, r: RequestRecord): void {
  const bound = routeId < 0 ? lm.noRoute : lm.byRoute[routeId][backend]
  if (r.peer === null) bound.forProtocol(protocol).record(r)
  else bound.forProtocol(protocol).forPeer(r.peer.principal).record(r)
}
