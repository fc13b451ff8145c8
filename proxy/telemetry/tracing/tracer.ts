// Zipkin tracing for the proxy: one span per request and proxy hop.
//
// Public API
// ----------
//   const reporter = new ZipkinReporter({ url, batchIntervalMs?, maxQueue?, maxBatch?, timeoutMs? })
//     (reporter.ts) report(span) (sync, never throws, drops beyond maxQueue), flush(), close(),
//     counters { reported, dropped, sent, failed (POSTs), batches }, queued, lastError
//   const tracer = new Tracer({ sampling, serviceName, localEndpoint?, reporter, random? })
//     sampling       percent of NEW traces sampled, 0–100 (default 1, as Istio)
//     serviceName    localEndpoint.serviceName of every span (lower-cased)
//     localEndpoint  { ipv4?, ipv6?, port? } of this proxy (the listener), optional
//     reporter       anything with report(span: ZipkinSpan): void
//     random         () => [0, 1), default Math.random (tests inject their own)
//     propagation    formats for requests without trace headers: 'b3multi' | 'b3' | 'w3c'
//                    (default ['b3multi'])
//   Build the tracer once per config (e.g. per listener, to set the local port); the reporter
//   once per process (it owns a timer and the collector connection) and share it.
//
//   const trace = tracer.begin(req.names, req.values, 'SERVER' | 'CLIENT')       per request
//     trace.traceId, trace.spanId (ours), trace.parentId (the caller's span id, "" for a root),
//     trace.sampled, trace.debug
//     trace.headerBlock   "name: value\r\n" lines to add to the upstream request, in the formats
//                         the request came with (any of b3, x-b3-*, traceparent), or for a
//                         request without trace headers in `propagation` (default x-b3-* only,
//                         as Envoy): the trace id, our span id, the caller's span id as parent,
//                         the sampled flag, debug; tracestate passed through with traceparent
//                         when it belongs to this trace. One flat string (see inject.ts). The
//                         caller drops every name in TRACE_HEADER_NAMES (context.ts) from the
//                         forwarded request, since these replace them.
//   trace.finish(rec, info?)                                                       when done
//     rec    the RequestRecord of the exchange (telemetry/types.ts), read synchronously
//     info   { remoteAddress?, remotePort?, annotations? } — only looked at when sampled, so
//            build it only `if (trace.sampled)`; without it the remote endpoint is the upstream
//            (CLIENT, from rec.upstreamHost) or the client (SERVER, rec.downstreamAddress).
//     Unsampled: returns at once. Sampled: builds one Zipkin v2 span and hands it to the
//     reporter (which never blocks nor throws). A second call does nothing.
//
// Semantics
// ---------
// - The proxy's span is a new span whose parent is the incoming span; what goes upstream
//   carries the proxy's span id, so the next hop's span is a child of the proxy's.
// - No usable context: a new trace (128-bit trace id), sampled at the configured rate.
// - The caller's sampled=1/0 is honoured (W3C: the sampled flag of traceparent, 01 / 00);
//   context without a decision (B3 ids without x-b3-sampled): decided at our rate.
// - Debug (x-b3-flags: 1, b3 "d") is always sampled and propagated (x-b3-flags: 1).
// - Span: name "<method> <route name, or path without query>" (lower-case), kind, timestamp and
//   duration in µs, localEndpoint, remoteEndpoint, debug, annotations (e.g. retries, see
//   RETRY_ANNOTATION and nowMicros()), tags http.method, http.path, http.host,
//   http.status_code (absent when no response was sent), error (status >= 500, status 0, or a
//   response flag other than DR; the value is the flag, else the status), weft.route,
//   weft.cluster, weft.upstream, weft.response_flags, guid:x-request-id (absent when empty).
//
// Cost: an unsampled request allocates the RequestTrace, the header block (one flat string, the
// new ids hex-encoded into it from pooled random bytes) and one or two slices of it for the ids;
// finish() returns at once. bench/tracing-micro.ts measures it.
import { isIPv4, isIPv6 } from 'node:net'
import type { RequestRecord } from '../types.ts'
import { scanContext } from './context.ts'
import { FORMAT_B3MULTI, FORMAT_NAMES, last, writeBlock, type FormatName } from './inject.ts'

export type SpanKind = 'CLIENT' | 'SERVER'

/** Zipkin v2 Endpoint (definitions/Endpoint of zipkin2-api.yaml). */
export interface ZipkinEndpoint {
  serviceName?: string
  ipv4?: string
  ipv6?: string
  port?: number
}

/** Zipkin v2 Annotation: timestamp in epoch microseconds. */
export interface ZipkinAnnotation {
  timestamp: number
  value: string
}

/**
 * Zipkin v2 Span. The shape of zipkin-js's `model.Span` (annotations and tags always present,
 * debug and shared booleans), so zipkin's own `jsonEncoder.JSON_V2` encodes it: absent/false
 * fields are left out of the JSON.
 */
export interface ZipkinSpan {
  traceId: string
  parentId: string | undefined
  id: string
  name: string
  kind: SpanKind
  timestamp: number
  duration: number
  localEndpoint: ZipkinEndpoint | undefined
  remoteEndpoint: ZipkinEndpoint | undefined
  annotations: ZipkinAnnotation[]
  tags: Record<string, string>
  debug: boolean
  shared: boolean
}

/** Where finished spans go (ZipkinReporter, or a test's array). Must not block or throw. */
export interface SpanReporter {
  report(span: ZipkinSpan): void
}

export interface TracerOptions {
  /** percent of new traces sampled, 0–100; default 1 */
  sampling?: number
  serviceName: string
  localEndpoint?: { ipv4?: string; ipv6?: string; port?: number }
  reporter: SpanReporter
  /** [0, 1) source for the sampling decision; default Math.random */
  random?: () => number
  /**
   * header formats injected upstream when the request carried no trace headers; default
   * ['b3multi'] (as Envoy's Zipkin tracer). A request with trace headers gets back the formats
   * it came with.
   */
  propagation?: readonly FormatName[]
}

export interface FinishInfo {
  remoteAddress?: string
  remotePort?: number
  annotations?: ZipkinAnnotation[]
}

/** Annotation value for a request sent again to the upstream (e.g. the stale keep-alive retry). */
export const RETRY_ANNOTATION = 'weft.retry'

/** Now, in epoch microseconds (for annotations). */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000)
}

const CRLF = '\r\n'

export class Tracer {
  readonly sampling: number
  readonly serviceName: string
  readonly localEndpoint: ZipkinEndpoint
  readonly reporter: SpanReporter
  private readonly threshold: number
  /** FORMAT_* bits for requests without trace headers */
  private readonly newFormats: number
  private readonly random: () => number
  /** localEndpoint, or undefined when it is empty */
  private readonly spanLocalEndpoint: ZipkinEndpoint | undefined

  constructor(o: TracerOptions) {
    const sampling = o.sampling ?? 1
    if (!(sampling >= 0 && sampling <= 100)) throw new RangeError(`tracing: sampling must be a percentage 0–100, got ${sampling}`)
    this.sampling = sampling
    this.threshold = sampling / 100
    this.random = o.random ?? Math.random
    let formats = 0
    for (const f of o.propagation ?? ['b3multi']) {
      const bit = FORMAT_NAMES[f] as number | undefined
      if (bit === undefined) throw new RangeError(`tracing: unknown propagation format ${JSON.stringify(f)} (b3, b3multi, w3c)`)
      formats |= bit
    }
    this.newFormats = formats === 0 ? FORMAT_B3MULTI : formats
    this.reporter = o.reporter
    this.serviceName = o.serviceName.toLowerCase()
    const ep: ZipkinEndpoint = {}
    if (this.serviceName !== '') ep.serviceName = this.serviceName
    const le = o.localEndpoint
    if (le?.ipv4 !== undefined && le.ipv4 !== '') ep.ipv4 = le.ipv4
    if (le?.ipv6 !== undefined && le.ipv6 !== '') ep.ipv6 = le.ipv6
    if (le?.port !== undefined && le.port > 0) ep.port = le.port
    this.localEndpoint = Object.freeze(ep)
    this.spanLocalEndpoint = Object.keys(ep).length === 0 ? undefined : this.localEndpoint
  }

  /** Start the proxy's span for a request: read the caller's context, decide sampling, new span id. */
  begin(names: readonly string[], values: readonly string[], kind: SpanKind): RequestTrace {
    const ctx = scanContext(names, values)
    let traceId = ''
    let parentId = ''
    let tracestate = ''
    let debug = false
    let sampled: boolean
    let formats = this.newFormats
    if (ctx === null) {
      sampled = this.random() < this.threshold
    } else {
      formats = ctx.formats
      debug = ctx.debug
      sampled = debug || (ctx.sampled ?? this.random() < this.threshold)
      if (ctx.traceId !== '') {
        traceId = ctx.traceId
        parentId = ctx.spanId
        tracestate = ctx.tracestate
      }
    }
    let block = writeBlock(formats, traceId, parentId, sampled, debug)
    const spanId = block.slice(last.spanIdAt, last.spanIdAt + 16)
    if (traceId === '') traceId = block.slice(last.traceIdAt, last.traceIdAt + 32)
    // tracestate only goes with traceparent (it is never set unless the caller sent one)
    if (tracestate !== '') block += 'tracestate: ' + tracestate + CRLF
    return new RequestTrace(this, kind, traceId, spanId, parentId, sampled, debug, tracestate, block)
  }

  /** Build the span of a finished, sampled request and hand it to the reporter. */
  record(t: RequestTrace, rec: RequestRecord, info: FinishInfo | undefined): void {
    const path = rec.path
    const q = path.indexOf('?')
    const pathOnly = q === -1 ? path : path.slice(0, q)
    const route = rec.routeName
    const status = rec.status
    const flags = rec.flags
    const tags: Record<string, string> = { 'http.method': rec.method, 'http.path': pathOnly }
    if (rec.authority !== '') tags['http.host'] = rec.authority
    if (status > 0) tags['http.status_code'] = String(status)
    const flagError = flags !== '' && flags !== 'DR'
    if (flagError) tags.error = flags
    else if (status >= 500) tags.error = String(status)
    else if (status === 0) tags.error = 'DC'
    if (route !== '') tags['weft.route'] = route
    if (rec.clusterName !== '') tags['weft.cluster'] = rec.clusterName
    if (rec.upstreamHost !== '') tags['weft.upstream'] = rec.upstreamHost
    if (flags !== '') tags['weft.response_flags'] = flags
    if (rec.requestId !== '') tags['guid:x-request-id'] = rec.requestId

    let remote: ZipkinEndpoint | undefined
    if (info?.remoteAddress !== undefined) remote = endpointOf(info.remoteAddress, info.remotePort ?? 0, '')
    else if (t.kind === 'CLIENT') {
      const u = rec.upstreamHost
      const c = u.lastIndexOf(':')
      const cluster = rec.clusterName.toLowerCase()
      if (c > 0) remote = endpointOf(u.slice(0, c), Number(u.slice(c + 1)), cluster)
      else if (cluster !== '') remote = { serviceName: cluster }
    } else if (rec.downstreamAddress !== '') remote = endpointOf(rec.downstreamAddress, info?.remotePort ?? 0, '')

    const annotations: ZipkinAnnotation[] = []
    const given = info?.annotations
    if (given !== undefined) {
      for (let i = 0; i < given.length; i++) annotations.push({ timestamp: Math.round(given[i].timestamp), value: given[i].value })
    }

    const span: ZipkinSpan = {
      traceId: t.traceId,
      parentId: t.parentId === '' ? undefined : t.parentId,
      id: t.spanId,
      name: (rec.method + ' ' + (route !== '' ? route : pathOnly)).toLowerCase(),
      kind: t.kind,
      timestamp: Math.floor(rec.startTime * 1000),
      duration: Math.max(1, Math.round(rec.durationMs * 1000)),
      localEndpoint: this.spanLocalEndpoint,
      remoteEndpoint: remote,
      annotations,
      tags,
      debug: t.debug,
      shared: false,
    }
    try {
      this.reporter.report(span)
    } catch {
      // a reporter must not throw; if one does, the request is not its victim
    }
  }
}

/** An address (IPv4, IPv6, IPv4-mapped IPv6 or a host name) as a Zipkin endpoint; undefined when empty. */
function endpointOf(address: string, port: number, serviceName: string): ZipkinEndpoint | undefined {
  const ep: ZipkinEndpoint = {}
  if (serviceName !== '') ep.serviceName = serviceName
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) ep.ipv4 = address.slice(7)
  else if (isIPv4(address)) ep.ipv4 = address
  else if (isIPv6(address)) ep.ipv6 = address
  else if (address.startsWith('[') && address.endsWith(']') && isIPv6(address.slice(1, -1))) ep.ipv6 = address.slice(1, -1)
  if (port > 0 && port < 65536 && Number.isInteger(port)) ep.port = port
  return ep.serviceName === undefined && ep.ipv4 === undefined && ep.ipv6 === undefined ? undefined : ep
}

/** One request's trace state at this proxy (see the API comment at the top). */
export class RequestTrace {
  /** 16 or 32 lower-case hex */
  readonly traceId: string
  /** this proxy's span id: the one propagated upstream */
  readonly spanId: string
  /** the caller's span id, the parent of ours; "" when this proxy starts the trace */
  readonly parentId: string
  readonly sampled: boolean
  readonly debug: boolean
  readonly kind: SpanKind
  /** W3C tracestate passed on, "" when none */
  readonly tracestate: string
  /**
   * The propagation header lines ("name: value\r\n" each) for the upstream request: x-b3-traceid,
   * x-b3-spanid (ours), x-b3-parentspanid (the caller's), x-b3-sampled, x-b3-flags (debug),
   * traceparent, tracestate. One flat string.
   */
  readonly headerBlock: string
  private readonly tracer: Tracer
  private finished = false

  constructor(tracer: Tracer, kind: SpanKind, traceId: string, spanId: string, parentId: string, sampled: boolean, debug: boolean, tracestate: string, headerBlock: string) {
    this.tracer = tracer
    this.kind = kind
    this.traceId = traceId
    this.spanId = spanId
    this.parentId = parentId
    this.sampled = sampled
    this.debug = debug
    this.tracestate = tracestate
    this.headerBlock = headerBlock
  }

  /** The request is over: report the span when sampled (once). */
  finish(rec: RequestRecord, info?: FinishInfo): void {
    if (!this.sampled || this.finished) return
    this.finished = true
    this.tracer.record(this, rec, info)
  }
}
