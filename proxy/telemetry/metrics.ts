// Prometheus metrics. prom-client owns the registry and the text exposition; the request path
// never calls it. prom-client's own label children hash every label value on every inc()/observe(),
// which is the per-request label-string building a sidecar cannot afford. Instead each label
// combination is a Series object of plain numbers, found per request by an array index (status
// code) on an object bound when the config was compiled; prom-client reads the Series at scrape
// time through collectors that implement its metric interface.
import { createRequire } from 'node:module'
import type { Counter, Gauge, Metric, Registry } from 'prom-client'
import type { PeerLabels, RequestRecord } from './types.ts'

/** Request duration buckets in ms: fine below 1 ms, where a sidecar's own cost lives. */
export const DURATION_BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]
/** The same in seconds, for weft_request_duration_seconds (Prometheus base units: promtool-clean). */
export const DURATION_BUCKETS_S = DURATION_BUCKETS_MS.map((b) => b / 1000)
/** Body size buckets in bytes. */
export const BYTES_BUCKETS = [0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]


export type Naming = 'weft' | 'istio'

type Labels = Record<string, string>

/** One label combination of the request metrics: a counter and three histograms. */
export class RequestSeries {
  readonly labels: Labels
  count = 0
  readonly duration: HistogramData
  readonly requestBytes = new HistogramData(BYTES_BUCKETS)
  readonly responseBytes = new HistogramData(BYTES_BUCKETS)
  constructor(labels: Labels, durationBounds: readonly number[]) {
    this.labels = labels
    this.duration = new HistogramData(durationBounds)
  }
}

export class HistogramData {
  readonly bounds: readonly number[]
  readonly counts: Float64Array
  sum = 0
  n = 0
  constructor(bounds: readonly number[]) {
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length)
  }
  observe(v: number): void {
    const b = this.bounds
    let i = 0
    while (i < b.length && v > b[i]) i++
    if (i < b.length) this.counts[i]++
    this.sum += v
    this.n++
  }
}

interface MetricValue {
  labels: Labels
  value: number
  metricName?: string
}

/** A prom-client compatible metric whose values come from a function at scrape time. */
export class Collected {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'histogram' | 'gauge'
  readonly aggregator = 'sum'
  private readonly read: () => MetricValue[]
  constructor(name: string, help: string, type: 'counter' | 'histogram' | 'gauge', read: () => MetricValue[]) {
    this.name = name
    this.help = help
    this.type = type
    this.read = read
  }
  get(): { name: string; help: string; type: string; values: MetricValue[]; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator }
  }
  reset(): void {}
}

function histogramValues(name: string, series: Iterable<RequestSeries>, pick: (s: RequestSeries) => HistogramData): MetricValue[] {
  const out: MetricValue[] = []
  for (const s of series) {
    const h = pick(s)
    if (h.n === 0) continue
    let acc = 0
    for (let i = 0; i < h.bounds.length; i++) {
      acc += h.counts[i]
      out.push({ labels: { ...s.labels, le: String(h.bounds[i]) }, value: acc, metricName: name + '_bucket' })
    }
    out.push({ labels: { ...s.labels, le: '+Inf' }, value: h.n, metricName: name + '_bucket' })
    out.push({ labels: s.labels, value: h.sum, metricName: name + '_sum' })
    out.push({ labels: s.labels, value: h.n, metricName: name + '_count' })
  }
  return out
}

export interface TelemetryCounters {
  spansReported: number
  spansSent: number
  spansDropped: number
  accessLogDropped: number
  tapDropped: number
}

export interface TcpSeries {
  readonly labels: Labels
  opened: number
  closed: number
  received: number
  sent: number
}

/** What the per-cluster metrics read at scrape time. */
export interface ClusterMetricsView {
  cluster: string
  overflow: number
  circuitOpen: number
  ejections: number
  ejectionsOverflow: number
  concurrencyLimited: number
  /** the adaptive concurrency limit; null: off */
  concurrencyLimit: number | null
  /** the limiter's inputs (latencies in ms); null: off */
  concurrencyInputs: { minRttMs: number; sampleRttMs: number; gradient: number } | null
  /** null: no breaker */
  breakerOpen: boolean | null
  /** null: no outlier detection */
  ejected: number | null
}

/** Counters of one kind of tunnel (tcp, upgrade) of one listener. */
export interface TunnelCountersView {
  opened: number
  closed: number
  bytesUp: number
  bytesDown: number
  idleTimeouts: number
}

/** What the protocol metrics read at scrape time, per listener. */
export interface ListenerProtocolView {
  listener: string
  /** outcome label (http1, http2, tcp, tcp_server_first, none) → count */
  detections: readonly { protocol: string; value: number }[]
  /** kind label (tcp, upgrade) → counters */
  tunnels: readonly { kind: string; counters: TunnelCountersView }[]
}

/** The parts of prom-client the proxy uses. */
export interface PromClient {
  Registry: typeof import('prom-client').Registry
  Counter: typeof import('prom-client').Counter
  Gauge: typeof import('prom-client').Gauge
}

let prom: PromClient | undefined
/**
 * prom-client's registry, counter and gauge, loaded when the first metrics are made: a proxy with
 * metrics off never loads them. Required one by one from prom-client/lib: its index also loads the
 * Pushgateway (node:http, so Node's bundled undici; https, zlib), the cluster aggregator and the
 * default metrics: 104 ms and +17 MB RSS against 8-20 ms and +5 MB for these three (measured).
 */
export function promClient(): PromClient {
  if (prom === undefined) {
    const require = createRequire(import.meta.url)
    prom = {
      Registry: require('prom-client/lib/registry') as PromClient['Registry'],
      Counter: require('prom-client/lib/counter') as PromClient['Counter'],
      Gauge: require('prom-client/lib/gauge') as PromClient['Gauge'],
    }
  }
  return prom
}

/** The proxy's metrics: one registry, series kept across config swaps so counters never reset. */
export class ProxyMetrics {
  readonly registry: Registry = new (promClient().Registry)()
  readonly naming: Naming
  /** weft: seconds (weft_request_duration_seconds); istio: milliseconds (istio_request_duration_milliseconds) */
  readonly durationScale: number
  private readonly durationBounds: readonly number[]
  private readonly series = new Map<string, RequestSeries>()
  private readonly tcp = new Map<string, TcpSeries>()
  readonly configVersion: Gauge
  readonly configRejected: Counter
  private decisionsSource: () => { listener: string; decision: string; value: number }[] = () => []
  private clustersSource: () => ClusterMetricsView[] = () => []
  private protocolSource: () => ListenerProtocolView[] = () => []
  private telemetrySource: () => TelemetryCounters = () => ({ spansReported: 0, spansSent: 0, spansDropped: 0, accessLogDropped: 0, tapDropped: 0 })

  constructor(naming: Naming = 'weft') {
    this.naming = naming
    const p = naming === 'istio' ? 'istio_' : 'weft_'
    const durationName = naming === 'istio' ? 'istio_request_duration_milliseconds' : 'weft_request_duration_seconds'
    this.durationScale = naming === 'istio' ? 1 : 0.001
    this.durationBounds = naming === 'istio' ? DURATION_BUCKETS_MS : DURATION_BUCKETS_S
    const reg = (m: Collected) => this.registry.registerMetric(m as unknown as Metric)
    const all = () => this.series.values()
    reg(new Collected(p + 'requests_total', 'Requests completed, by source, destination, route, response code and response flags.', 'counter', () =>
      [...all()].filter((s) => s.count > 0).map((s) => ({ labels: s.labels, value: s.count }))))
    reg(new Collected(durationName, `Request duration in ${naming === 'istio' ? 'milliseconds' : 'seconds'}, from the request head to the last response byte.`, 'histogram', () =>
      histogramValues(durationName, all(), (s) => s.duration)))
    reg(new Collected(p + 'request_bytes', 'Request body size in bytes.', 'histogram', () =>
      histogramValues(p + 'request_bytes', all(), (s) => s.requestBytes)))
    reg(new Collected(p + 'response_bytes', 'Response body size in bytes.', 'histogram', () =>
      histogramValues(p + 'response_bytes', all(), (s) => s.responseBytes)))
    const tcp = (field: 'opened' | 'closed' | 'received' | 'sent') => () =>
      [...this.tcp.values()].map((s) => ({ labels: s.labels, value: s[field] }))
    reg(new Collected(p + 'tcp_connections_opened_total', 'Client connections accepted.', 'counter', tcp('opened')))
    reg(new Collected(p + 'tcp_connections_closed_total', 'Client connections closed.', 'counter', tcp('closed')))
    reg(new Collected(p + 'tcp_received_bytes_total', 'Bytes received from clients (closed connections).', 'counter', tcp('received')))
    reg(new Collected(p + 'tcp_sent_bytes_total', 'Bytes sent to clients (closed connections).', 'counter', tcp('sent')))
    reg(new Collected('weft_proxy_decisions_total', 'Decisions the proxy took on its own, by listener and kind (no_route, local_reply, upstream_error, stale_retry, downstream_protocol_error, timeout, retry, retry_limit_exceeded, retry_budget_exhausted, request_timeout, per_try_timeout, rate_limited, circuit_open, overflow, concurrency_limited, fault_delay, fault_abort, mirror, mirror_failed, mirror_abandoned, tcp_connect_failure, tcp_no_endpoint, passthrough, http2_refused, h2_malformed, h2_codec_reset, h2_refused_stream, h2_stream_idle_timeout, h2_reset_flood, h2_internal_error).', 'counter', () =>
      this.decisionsSource().map((d) => ({ labels: { listener: d.listener, decision: d.decision }, value: d.value }))))
    reg(new Collected('weft_cluster_decisions_total', 'Decisions per cluster: overflow (maxRequests), circuit_open (failed fast), ejection (outlier detection), ejection_overflow (refused by maxEjectionPercent), concurrency_limited (over the adaptive concurrency limit).', 'counter', () =>
      this.clustersSource().flatMap((c) => [
        { labels: { cluster: c.cluster, decision: 'overflow' }, value: c.overflow },
        { labels: { cluster: c.cluster, decision: 'circuit_open' }, value: c.circuitOpen },
        { labels: { cluster: c.cluster, decision: 'ejection' }, value: c.ejections },
        { labels: { cluster: c.cluster, decision: 'ejection_overflow' }, value: c.ejectionsOverflow },
        { labels: { cluster: c.cluster, decision: 'concurrency_limited' }, value: c.concurrencyLimited },
      ])))
    reg(new Collected('weft_cluster_concurrency_limit', 'The adaptive concurrency limit per cluster that has one (requests in flight).', 'gauge', () =>
      this.clustersSource().filter((c) => c.concurrencyLimit !== null).map((c) => ({ labels: { cluster: c.cluster }, value: c.concurrencyLimit! }))))
    // the limit's inputs, so a dashboard shows why it moved: minRTT (no queue), the last window's
    // sampleRTT, and the gradient between them (< 1: a queue is growing, the limit shrinks)
    reg(new Collected('weft_cluster_concurrency_min_rtt_seconds', 'Adaptive concurrency: the latency measured with no queue (minRTT), per cluster that has a limit.', 'gauge', () =>
      this.clustersSource().filter((c) => c.concurrencyInputs !== null).map((c) => ({ labels: { cluster: c.cluster }, value: c.concurrencyInputs!.minRttMs / 1000 }))))
    reg(new Collected('weft_cluster_concurrency_sample_rtt_seconds', 'Adaptive concurrency: the latency of the last sample window (sampleRTT), per cluster that has a limit.', 'gauge', () =>
      this.clustersSource().filter((c) => c.concurrencyInputs !== null).map((c) => ({ labels: { cluster: c.cluster }, value: c.concurrencyInputs!.sampleRttMs / 1000 }))))
    reg(new Collected('weft_cluster_concurrency_gradient', 'Adaptive concurrency: minRTT(1 + buffer) / sampleRTT clamped to 0.5..2, per cluster that has a limit.', 'gauge', () =>
      this.clustersSource().filter((c) => c.concurrencyInputs !== null).map((c) => ({ labels: { cluster: c.cluster }, value: c.concurrencyInputs!.gradient }))))
    reg(new Collected('weft_circuit_breaker_open', 'Circuit breaker state per cluster with a breaker: 1 open or half-open, 0 closed.', 'gauge', () =>
      this.clustersSource().filter((c) => c.breakerOpen !== null).map((c) => ({ labels: { cluster: c.cluster }, value: c.breakerOpen ? 1 : 0 }))))
    reg(new Collected('weft_outlier_ejected_endpoints', 'Endpoints ejected right now, per cluster with outlier detection.', 'gauge', () =>
      this.clustersSource().filter((c) => c.ejected !== null).map((c) => ({ labels: { cluster: c.cluster }, value: c.ejected ?? 0 }))))
    reg(new Collected('weft_proxy_protocol_detections_total', 'Protocol detection outcomes per listener: http1, http2 (the prior-knowledge preface), tcp (the first bytes were not HTTP), tcp_server_first (nothing sent within detectTimeout), none (closed before saying).', 'counter', () =>
      this.protocolSource().flatMap((l) => l.detections.map((d) => ({ labels: { listener: l.listener, protocol: d.protocol }, value: d.value })))))
    const tunnels = (f: (c: TunnelCountersView) => number) => () =>
      this.protocolSource().flatMap((l) => l.tunnels.map((t) => ({ labels: { listener: l.listener, kind: t.kind }, value: f(t.counters) })))
    reg(new Collected('weft_tunnels_opened_total', 'Tunnels started per listener and kind: tcp (opaque TCP), upgrade (HTTP/1.1 after 101, e.g. WebSocket).', 'counter', tunnels((c) => c.opened)))
    reg(new Collected('weft_tunnels_closed_total', 'Tunnels closed per listener and kind.', 'counter', tunnels((c) => c.closed)))
    reg(new Collected('weft_tunnel_idle_timeouts_total', 'Tunnels closed by their idle timeout.', 'counter', tunnels((c) => c.idleTimeouts)))
    reg(new Collected('weft_tunnel_bytes_total', 'Bytes through tunnels, as they flow: direction upstream (client to endpoint) or downstream (endpoint to client).', 'counter', () =>
      this.protocolSource().flatMap((l) => l.tunnels.flatMap((t) => [
        { labels: { listener: l.listener, kind: t.kind, direction: 'upstream' }, value: t.counters.bytesUp },
        { labels: { listener: l.listener, kind: t.kind, direction: 'downstream' }, value: t.counters.bytesDown },
      ]))))
    const tel = (f: (c: TelemetryCounters) => number) => () => [{ labels: {}, value: f(this.telemetrySource()) }]
    reg(new Collected('weft_tracing_spans_reported_total', 'Spans handed to the Zipkin reporter (sampled requests).', 'counter', tel((c) => c.spansReported)))
    reg(new Collected('weft_tracing_spans_sent_total', 'Spans the Zipkin collector accepted.', 'counter', tel((c) => c.spansSent)))
    reg(new Collected('weft_tracing_spans_dropped_total', 'Spans dropped: reporter queue full or collector unreachable or failing.', 'counter', tel((c) => c.spansDropped)))
    reg(new Collected('weft_access_log_dropped_total', 'Access log lines dropped because the destination could not keep up.', 'counter', tel((c) => c.accessLogDropped)))
    reg(new Collected('weft_tap_dropped_total', 'Tap lines dropped because a tap client could not keep up.', 'counter', tel((c) => c.tapDropped)))
    const { Counter, Gauge } = promClient()
    this.configVersion = new Gauge({ name: 'weft_config_version', help: 'Version of the active config (increments on every accepted config).', registers: [this.registry] })
    this.configRejected = new Counter({ name: 'weft_config_rejected_total', help: 'Configs rejected (invalid); the last good config kept serving.', registers: [this.registry] })
  }

  /** The series for a label set, created once and kept for the life of the proxy. */
  requestSeries(labels: Labels): RequestSeries {
    let key = ''
    for (const [n, v] of Object.entries(labels)) key += n + '=' + v + '\u0000'
    let s = this.series.get(key)
    if (s === undefined) {
      s = new RequestSeries(labels, this.durationBounds)
      this.series.set(key, s)
    }
    return s
  }

  tcpSeries(reporter: string, listener: string): TcpSeries {
    const key = reporter + '\u0000' + listener
    let s = this.tcp.get(key)
    if (s === undefined) {
      s = { labels: { reporter, listener }, opened: 0, closed: 0, received: 0, sent: 0 }
      this.tcp.set(key, s)
    }
    return s
  }

  /** Where the tracing / access log / tap counters are read at scrape time. */
  setTelemetrySource(f: () => TelemetryCounters): void {
    this.telemetrySource = f
  }

  /** Where the per-cluster metrics read their values (the active config's clusters). */
  setClustersSource(f: () => ClusterMetricsView[]): void {
    this.clustersSource = f
  }

  /** Where the protocol detection and tunnel metrics read their values (the listeners' counters). */
  setProtocolSource(f: () => ListenerProtocolView[]): void {
    this.protocolSource = f
  }

  /** Where weft_proxy_decisions_total reads its values (the listeners' counters). */
  setDecisionsSource(f: () => { listener: string; decision: string; value: number }[]): void {
    this.decisionsSource = f
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}

/**
 * Request metrics of one (listener, route, backend): the static labels are fixed here, at config
 * time; per request only the response code, flags and grpc status vary. The series for a plain
 * relayed response is found by indexing an array with the status code.
 */
export class BoundRequestMetrics {
  private readonly metrics: ProxyMetrics
  private readonly scale: number
  private readonly base: Labels
  private readonly byStatus: (RequestSeries | undefined)[] = []
  private readonly other = new Map<string, RequestSeries>()
  private readonly peer: PeerLabels
  private readonly route: string
  /** the same series with another request_protocol (http2, grpc), made on first use */
  private variants: Map<string, BoundRequestMetrics> | null = null
  /** the same series for a caller over mutual TLS, by its SPIFFE ID, made on first use */
  private peers: Map<string, BoundRequestMetrics> | null = null
  private readonly protocol: string

  constructor(metrics: ProxyMetrics, peer: PeerLabels, route: string, protocol = 'http') {
    this.metrics = metrics
    this.scale = metrics.durationScale
    this.peer = peer
    this.route = route
    this.protocol = protocol
    this.base = metrics.naming === 'istio' ? istioLabels(peer, route, protocol) : {
      reporter: peer.reporter,
      source_workload: peer.sourceWorkload,
      source_namespace: peer.sourceNamespace,
      destination_service: peer.destinationService,
      destination_workload: peer.destinationWorkload,
      destination_namespace: peer.destinationNamespace,
      source_principal: peer.sourcePrincipal,
      destination_principal: peer.destinationPrincipal,
      connection_security_policy: peer.connectionSecurityPolicy,
      request_protocol: protocol,
      route,
    }
  }

  /** These series for a caller that proved `principal` over mutual TLS (inbound listeners). */
  forPeer(principal: string): BoundRequestMetrics {
    this.peers ??= new Map()
    let v = this.peers.get(principal)
    if (v === undefined) {
      v = new BoundRequestMetrics(this.metrics, { ...this.peer, sourcePrincipal: principal, connectionSecurityPolicy: 'mutual_tls' }, this.route, this.protocol)
      this.peers.set(principal, v)
    }
    return v
  }

  /** These series for requests of another protocol (the HTTP/2 path; HTTP/1 records on this object itself). */
  forProtocol(protocol: string): BoundRequestMetrics {
    this.variants ??= new Map()
    let v = this.variants.get(protocol)
    if (v === undefined) this.variants.set(protocol, (v = new BoundRequestMetrics(this.metrics, this.peer, this.route, protocol)))
    return v
  }

  record(r: RequestRecord): void {
    const status = r.status
    let s: RequestSeries | undefined
    if (r.flags === '' && r.grpcStatus === '') {
      s = this.byStatus[status]
      if (s === undefined) s = this.byStatus[status] = this.create(status, '', '')
    } else {
      const key = status + '|' + r.flags + '|' + r.grpcStatus
      s = this.other.get(key)
      if (s === undefined) {
        s = this.create(status, r.flags, r.grpcStatus)
        this.other.set(key, s)
      }
    }
    s.count++
    s.duration.observe(r.durationMs * this.scale)
    s.requestBytes.observe(r.bytesIn)
    s.responseBytes.observe(r.bytesOut)
  }

  private create(status: number, flags: string, grpc: string): RequestSeries {
    return this.metrics.requestSeries({
      ...this.base,
      response_code: String(status),
      grpc_response_status: grpc,
      response_flags: flags === '' ? '-' : flags,
    })
  }
}

/**
 * Istio's standard label set (istio.io "Istio Standard Metrics"), so that Istio's dashboards and
 * Kiali find the series: the namespace labels are *_workload_namespace / destination_service_*,
 * and canonical service, app and version labels are present; principals and
 * connection_security_policy come from mutual TLS (PeerLabels).
 */
function istioLabels(peer: PeerLabels, route: string, protocol: string): Labels {
  const svc = peer.destinationService
  const dot = svc.indexOf('.')
  return {
    reporter: peer.reporter,
    source_workload: peer.sourceWorkload,
    source_workload_namespace: peer.sourceNamespace,
    source_principal: peer.sourcePrincipal,
    source_app: peer.sourceWorkload,
    source_version: 'unknown',
    source_canonical_service: peer.sourceWorkload,
    source_canonical_revision: 'latest',
    source_cluster: 'Kubernetes',
    destination_workload: peer.destinationWorkload,
    destination_workload_namespace: peer.destinationNamespace,
    destination_principal: peer.destinationPrincipal,
    destination_app: peer.destinationWorkload,
    destination_version: 'unknown',
    destination_service: svc,
    destination_service_name: dot === -1 ? svc : svc.slice(0, dot),
    destination_service_namespace: peer.destinationNamespace,
    destination_canonical_service: peer.destinationWorkload,
    destination_canonical_revision: 'latest',
    destination_cluster: 'Kubernetes',
    request_protocol: protocol,
    connection_security_policy: peer.connectionSecurityPolicy,
    route,
  }
}
