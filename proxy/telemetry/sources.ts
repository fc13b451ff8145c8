// What /metrics reads from the running proxy at scrape time: the listeners' decision, detection
// and tunnel counters, the clusters' decisions and breaker/outlier state, and the telemetry
// pipeline's own drops. The decision labels of the filters come from their registry.
import type { MtlsStats } from '../listener/mesh-tls.ts'
import type { ClusterRuntime } from '../cluster/cluster.ts'
import { FILTER_DECISIONS } from '../filters/index.ts'
import type { H2Stats } from '../h2/downstream.ts'
import type { ListenerCounters } from '../listener/listener.ts'
import type { AccessLog } from './access-log.ts'
import type { ProxyMetrics } from './metrics.ts'
import type { TapHub } from './tap.ts'
import type { ZipkinReporter } from './tracing/reporter.ts'

/** What the sources read, looked up at each scrape (configs come and go). */
export interface MetricsView {
  listeners(): Iterable<{ readonly name: string; readonly counters: ListenerCounters }>
  clusters(): Iterable<ClusterRuntime>
  reporters(): Iterable<ZipkinReporter>
  accessLogs(): Iterable<AccessLog>
  readonly tap: TapHub
}

/** The listener counters that are not a filter's, with their `decision` labels. */
const CORE_DECISIONS: readonly (readonly [Exclude<keyof ListenerCounters, 'cxTotal' | 'cxActive' | 'detections' | 'tunnels' | 'h2' | 'mtls' | (typeof FILTER_DECISIONS)[number][0]>, string])[] = [
  ['noRoute', 'no_route'],
  ['localReplies', 'local_reply'],
  ['upstreamErrors', 'upstream_error'],
  ['staleRetries', 'stale_retry'],
  ['downstreamProtocolErrors', 'downstream_protocol_error'],
  ['timeouts', 'timeout'],
  ['retries', 'retry'],
  ['retryLimitExceeded', 'retry_limit_exceeded'],
  ['retryBudgetExhausted', 'retry_budget_exhausted'],
  ['requestTimeouts', 'request_timeout'],
  ['perTryTimeouts', 'per_try_timeout'],
  ['circuitOpen', 'circuit_open'],
  ['overflow', 'overflow'],
  ['concurrencyLimited', 'concurrency_limited'],
  ['mirrored', 'mirror'],
  ['mirrorFailed', 'mirror_failed'],
  ['mirrorAbandoned', 'mirror_abandoned'],
  ['tcpConnectFailures', 'tcp_connect_failure'],
  ['tcpNoEndpoint', 'tcp_no_endpoint'],
  ['passthrough', 'passthrough'],
  ['http2Refused', 'http2_refused'],
]

/** Mutual TLS on accepted connections (listener/mesh-tls.ts), with their `decision` labels. */
const MTLS_DECISIONS: readonly (readonly [keyof MtlsStats, string])[] = [
  ['accepted', 'mtls_accepted'],
  ['resumed', 'mtls_resumed'],
  ['plaintext', 'mtls_plaintext'],
  ['plaintextRefused', 'mtls_plaintext_refused'],
  ['handshakeFailed', 'mtls_handshake_failed'],
  ['peerRejected', 'mtls_peer_rejected'],
]

/** The HTTP/2 codec's decisions (proxy/h2/downstream.ts), with their `decision` labels. */
const H2_DECISIONS: readonly (readonly [keyof H2Stats, string])[] = [
  ['malformed', 'h2_malformed'],
  ['codecResets', 'h2_codec_reset'],
  ['refusedStreams', 'h2_refused_stream'],
  ['streamIdleTimeouts', 'h2_stream_idle_timeout'],
  ['resetFloods', 'h2_reset_flood'],
  ['internalErrors', 'h2_internal_error'],
]

export function bindMetricsSources(metrics: ProxyMetrics, v: MetricsView): void {
  metrics.setDecisionsSource(() => {
    const out: { listener: string; decision: string; value: number }[] = []
    for (const l of v.listeners()) {
      const c = l.counters
      for (const [key, decision] of CORE_DECISIONS) out.push({ listener: l.name, decision, value: c[key] })
      for (const [key, decision] of FILTER_DECISIONS) out.push({ listener: l.name, decision, value: c[key] })
      for (const [key, decision] of H2_DECISIONS) out.push({ listener: l.name, decision, value: c.h2[key] })
      for (const [key, decision] of MTLS_DECISIONS) out.push({ listener: l.name, decision, value: c.mtls[key] })
    }
    return out
  })
  metrics.setProtocolSource(() =>
    [...v.listeners()].map((l) => {
      const d = l.counters.detections
      return {
        listener: l.name,
        detections: [
          { protocol: 'http1', value: d.http1 },
          { protocol: 'http2', value: d.http2 },
          { protocol: 'tcp', value: d.tcp },
          { protocol: 'tcp_server_first', value: d.tcpServerFirst },
          { protocol: 'none', value: d.none },
        ],
        tunnels: [
          { kind: 'tcp', counters: l.counters.tunnels.tcp },
          { kind: 'upgrade', counters: l.counters.tunnels.upgrade },
        ],
      }
    }),
  )
  metrics.setClustersSource(() =>
    [...v.clusters()].map((c) => ({
      cluster: c.name,
      overflow: c.counters.overflow,
      circuitOpen: c.counters.circuitOpen,
      ejections: c.counters.ejections,
      ejectionsOverflow: c.counters.ejectionsOverflow,
      concurrencyLimited: c.counters.concurrencyLimited,
      concurrencyLimit: c.adaptive === null ? null : Math.floor(c.adaptive.limit),
      concurrencyInputs: c.adaptive === null ? null : { minRttMs: c.adaptive.minRttMs, sampleRttMs: c.adaptive.sampleRttMs, gradient: c.adaptive.gradient },
      breakerOpen: c.breaker === null ? null : c.breaker.state !== 'closed',
      ejected: c.outlier === null ? null : c.outlier.ejectedCount(),
    })),
  )
  metrics.setTelemetrySource(() => {
    const r = { reported: 0, sent: 0, dropped: 0 }
    for (const rep of v.reporters()) {
      r.reported += rep.counters.reported
      r.sent += rep.counters.sent
      r.dropped += rep.counters.dropped
    }
    let accessLogDropped = 0
    for (const log of v.accessLogs()) accessLogDropped += log.dropped
    return { spansReported: r.reported, spansSent: r.sent, spansDropped: r.dropped, accessLogDropped, tapDropped: v.tap.dropped }
  })
}
