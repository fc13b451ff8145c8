// Compile a validated config into the objects the request path reads: route tables with their
// matchers, clusters with balancers and pools, limits in milliseconds. Pure but for the pool
// registry, which keeps connections of unchanged endpoints across swaps.
import { isIP } from 'node:net'
import { buildCluster, type ClusterRuntime, type PoolRegistry } from '../cluster/cluster.ts'
import { MTLS_DISABLE, MTLS_PERMISSIVE, MTLS_STRICT, PROTOCOL_DETECT, PROTOCOL_HTTP, PROTOCOL_HTTP2, PROTOCOL_TCP, XFCC_KEEP, XFCC_SANITIZE, XFCC_SANITIZE_SET, type ListenerProtocol } from '../listener/protocol.ts'
import { CompiledAuthorization } from '../identity/authz.ts'
import { authzFilter } from '../identity/authz-filter.ts'
import type { ConnectionLimits } from '../listener/downstream.ts'
import { CompiledRouteTable } from '../route/table.ts'
import { buildListenerMetrics, listenerPeer, type ListenerTelemetry } from '../telemetry/listener.ts'
import type { ProxyMetrics } from '../telemetry/metrics.ts'
import type { TapHub } from '../telemetry/tap.ts'
import type { ExplainRecorder } from '../telemetry/explain.ts'
import type { Tracer } from '../telemetry/tracing/tracer.ts'
import type { RequestSink } from '../telemetry/types.ts'
import { parseDuration } from '../../api/duration.ts'
import type { Filter } from '../filters/filter.ts'
import { compileFilters } from '../filters/index.ts'
import type { Bootstrap, Listener, RouteTable } from '../../api/schema.ts'

export interface CompiledConfig {
  readonly version: number
  /** sha256 of the canonical JSON of the source config, first 12 hex digits */
  readonly hash: string
  readonly source: Bootstrap
  readonly appliedAt: string
  readonly limits: ConnectionLimits
  readonly drainTimeoutMs: number
  /** drain, first step: listeners keep accepting this long (callers are still learning the endpoint is gone) */
  readonly drainPeriodMs: number
  readonly tables: ReadonlyMap<string, CompiledRouteTable>
  readonly clusters: ReadonlyMap<string, ClusterRuntime>
  readonly listeners: readonly Listener[]
  /** per listener name */
  readonly telemetry: ReadonlyMap<string, ListenerTelemetry>
  /** per listener name: what its connections speak (protocol detection, opaque TCP) */
  readonly protocols: ReadonlyMap<string, ListenerProtocol>
  /** per listener name: its request filters, run before routing (null: none) */
  readonly filters: ReadonlyMap<string, readonly Filter[] | null>
}

/** What telemetry the compiler binds into listeners; owned by the proxy, kept across configs. */
export interface TelemetryDeps {
  metrics: ProxyMetrics | null
  /** extra sinks (the access log) for a listener */
  sinks(listener: Listener): RequestSink[]
  tap: TapHub | null
  /** the tracer of a listener, null when tracing is off */
  tracer(listener: Listener): Tracer | null
  /** the proxy's decision-trace recorder (telemetry/explain.ts) */
  explain?: ExplainRecorder | null
}

export const DEFAULTS = {
  /** Istio's former protocolDetectionTimeout; Linkerd waits 10 s, which a server-speaks-first client feels */
  detectTimeoutMs: 100,
  /** Envoy's tcp_proxy idle_timeout */
  tcpIdleTimeoutMs: 3_600_000,
  /** an intercepted connection passed through to its original destination: connect timeout */
  passthroughConnectTimeoutMs: 5_000,
  maxHeaderBytes: 65536,
  maxHeaders: 100,
  requestHeadTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  /** HAProxy answers a silent connection 408 after 5 s (timeout http-request) */
  firstByteTimeoutMs: 5_000,
  /** a stalled HTTP/2 stream (a client that never opens its window) holds its upstream at most this long */
  streamIdleTimeoutMs: 30_000,
  /**
   * What the HTTP/2 server advertised before it was a limit. nghttp2 refuses the streams over it
   * from the first SETTINGS on, and a gRPC client bursting 200 calls on one channel at start is
   * not retried on REFUSED_STREAM; the upstreams a connection can hold are bounded apart.
   */
  http2MaxConcurrentStreams: 1000,
  /** HAProxy's and nginx's concurrent-stream defaults (100, 128): a connection holds at most this many upstreams */
  http2MaxActiveStreams: 100,
  drainTimeoutMs: 30_000,
  /** Istio's terminationDrainDuration: the time Kubernetes takes to tell callers an endpoint is gone */
  drainPeriodMs: 5_000,
}

/**
 * 12 hex digits (48 bits) naming a config's content in logs and the admin API: two 32-bit
 * multiplicative hashes (FNV-1a's step and a second multiplier) of its JSON in UTF-8, taken four
 * bytes at a time, each finished with an avalanche step. Not a digest anyone relies on for
 * integrity, so not SHA-256: node:crypto (OpenSSL's setup, ~3 MB and 10-17 ms) stays off a
 * sidecar's start path (README, *Footprint*). Four bytes a step, not one character: a
 * --control-plane sidecar's first config (~4 KB of JSON) made V8 compile the one-character loop
 * with its optimizing compiler by on-stack replacement at start (~11 ms on a background thread,
 * ~5 MB of the compiler's code paged in). The words are read in the machine's byte order, so a
 * big-endian machine names the same config differently: fine for a name compared within one
 * machine's logs and admin output, which is all it is.
 */
export function configHash(b: Bootstrap): string {
  const bytes = Buffer.from(JSON.stringify(b), 'utf8')
  const n = bytes.length >>> 2
  const words = new Int32Array(n + 1) // the last 0-3 bytes, zero-padded, in words[n]
  new Uint8Array(words.buffer).set(bytes)
  let h1 = 0x811c9dc5
  let h2 = 0x9e3779b9 ^ bytes.length
  for (let i = 0; i <= n; i++) {
    const c = words[i]
    h1 = Math.imul(h1 ^ c, 0x01000193)
    h2 = Math.imul(h2 ^ c, 0x5bd1e995)
  }
  return (mix32(h1) >>> 0).toString(16).padStart(8, '0') + ((mix32(h2 ^ h1) >>> 16) & 0xffff).toString(16).padStart(4, '0')
}

/** murmur3's 32-bit finalizer: every input bit moves about half the output bits */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return h ^ (h >>> 16)
}

export function compileConfig(b: Bootstrap, version: number, registry: PoolRegistry, deps?: TelemetryDeps): CompiledConfig {
  const l = b.limits ?? {}
  const limits: ConnectionLimits = {
    maxHeaderBytes: l.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
    maxHeaders: l.maxHeaders ?? DEFAULTS.maxHeaders,
    requestHeadTimeoutMs: l.requestHeadTimeout === undefined ? DEFAULTS.requestHeadTimeoutMs : parseDuration(l.requestHeadTimeout),
    idleTimeoutMs: l.idleTimeout === undefined ? DEFAULTS.idleTimeoutMs : parseDuration(l.idleTimeout),
    firstByteTimeoutMs: l.firstByteTimeout === undefined ? DEFAULTS.firstByteTimeoutMs : parseDuration(l.firstByteTimeout),
    streamIdleTimeoutMs: l.streamIdleTimeout === undefined ? DEFAULTS.streamIdleTimeoutMs : parseDuration(l.streamIdleTimeout),
    http2MaxConcurrentStreams: l.http2MaxConcurrentStreams ?? DEFAULTS.http2MaxConcurrentStreams,
    http2MaxActiveStreams: l.http2MaxActiveStreams ?? DEFAULTS.http2MaxActiveStreams,
  }
  registry.begin()
  const clusters = new Map<string, ClusterRuntime>()
  for (const c of b.clusters) clusters.set(c.name, buildCluster(c, registry, limits))
  const tables = new Map<string, CompiledRouteTable>()
  for (const t of b.routeTables) tables.set(t.name, new CompiledRouteTable(t))
  const telemetry = new Map<string, ListenerTelemetry>()
  for (const l of b.listeners) {
    const table = tables.get(l.routeTable)!
    telemetry.set(l.name, {
      metrics: deps?.metrics ? buildListenerMetrics(deps.metrics, b, l, table) : null,
      sinks: deps ? deps.sinks(l) : [],
      tap: deps?.tap ? deps.tap.forListener(l.name) : null,
      tracer: deps ? deps.tracer(l) : null,
      spanKind: l.direction === 'outbound' ? 'CLIENT' : 'SERVER',
      peer: listenerPeer(b, l),
      // the header is honoured from this pod's own application only: outbound listeners
      explain: deps?.explain ? deps.explain.forListener(l.name, l.direction === 'outbound') : null,
    })
  }
  const filters = new Map<string, readonly Filter[] | null>()
  const authz = new Map<string, CompiledAuthorization>()
  for (const l of b.listeners) {
    let fs = l.filters === undefined ? null : compileFilters(l.filters, { matchedPrefix: '/' })
    // authorization runs first, before any other filter or the route (Envoy's RBAC filter)
    if (l.authorization !== undefined && l.authorization.length > 0) {
      const a = new CompiledAuthorization(l.authorization)
      authz.set(l.name, a)
      fs = [authzFilter(a, l.port), ...(fs ?? [])]
    }
    filters.set(l.name, fs)
  }
  const protocols = new Map<string, ListenerProtocol>()
  for (const l of b.listeners) {
    const cluster = l.tcp === undefined ? undefined : clusters.get(l.tcp.cluster)
    const mtls = l.mtls ?? (l.direction === 'inbound' && b.identity !== undefined ? 'permissive' : 'disable')
    const fcc = l.direction === 'outbound' ? XFCC_KEEP : (b.identity?.forwardClientCert ?? 'sanitizeSet') === 'sanitize' ? XFCC_SANITIZE : XFCC_SANITIZE_SET
    protocols.set(l.name, {
      mtls: mtls === 'strict' ? MTLS_STRICT : mtls === 'permissive' ? MTLS_PERMISSIVE : MTLS_DISABLE,
      authz: authz.get(l.name) ?? null,
      forwardClientCert: fcc,
      mode: l.protocol === 'http' ? PROTOCOL_HTTP : l.protocol === 'tcp' ? PROTOCOL_TCP : l.protocol === 'http2' ? PROTOCOL_HTTP2 : PROTOCOL_DETECT,
      detectTimeoutMs: l.detectTimeout === undefined ? DEFAULTS.detectTimeoutMs : parseDuration(l.detectTimeout),
      tcp: cluster === undefined
        ? null
        : { cluster, idleTimeoutMs: l.tcp?.idleTimeout === undefined ? DEFAULTS.tcpIdleTimeoutMs : parseDuration(l.tcp.idleTimeout) },
      interception: l.interception === undefined ? null : {
        inbound: l.interception === 'inbound',
        services: serviceAddresses(b.routeTables.find((t) => t.name === l.routeTable)),
        idleTimeoutMs: l.tcp?.idleTimeout === undefined ? DEFAULTS.tcpIdleTimeoutMs : parseDuration(l.tcp.idleTimeout),
        connectTimeoutMs: DEFAULTS.passthroughConnectTimeoutMs,
      },
    })
  }
  return {
    version,
    hash: configHash(b),
    source: b,
    appliedAt: new Date().toISOString(),
    limits,
    drainTimeoutMs: b.drainTimeout === undefined ? DEFAULTS.drainTimeoutMs : parseDuration(b.drainTimeout),
    drainPeriodMs: b.drainPeriod === undefined ? DEFAULTS.drainPeriodMs : parseDuration(b.drainPeriod),
    tables,
    clusters,
    listeners: b.listeners,
    telemetry,
    protocols,
    filters,
  }
}

/**
 * The destinations an outbound intercepting listener serves itself: the IP literals among its
 * route table's domains, as "ip:port" ("10.96.0.10" is port 80, "10.96.0.10:8080", "[fd00::a]:80").
 */
function serviceAddresses(t: RouteTable | undefined): ReadonlySet<string> {
  const out = new Set<string>()
  if (t === undefined) return out
  for (const vh of t.virtualHosts) {
    for (const d of vh.domains ?? []) {
      const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(d) ?? /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(d)
      if (m === null || isIP(m[1]) === 0) continue
      const ip = m[1].toLowerCase()
      // a Host without a port names port 80
      out.add(`${isIP(ip) === 6 ? `[${ip}]` : ip}:${m[2] ?? '80'}`)
    }
  }
  return out
}
