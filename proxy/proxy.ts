// The sidecar at run time: applies configs (compile, then one atomic swap), keeps listeners in
// step with the config, runs the sweeper (timeouts, idle upstream connections) and drains.
import type { Bootstrap } from './config/schema.ts'
import { compileConfig, type CompiledConfig } from './config/compile.ts'
import type { Listener, Telemetry } from './config/schema.ts'
import { parseDuration } from './config/duration.ts'
import { createAccessLog, type AccessLog } from './telemetry/access-log.ts'
import { listenerPeer, NO_TELEMETRY } from './telemetry/listener.ts'
import { ProxyMetrics } from './telemetry/metrics.ts'
import { TapHub } from './telemetry/tap.ts'
import { ZipkinReporter } from './telemetry/tracing/reporter.ts'
import { Tracer } from './telemetry/tracing/tracer.ts'
import type { RequestSink } from './telemetry/types.ts'

export const DEFAULT_ZIPKIN_URL = 'http://127.0.0.1:9411/api/v2/spans'
import { PoolRegistry } from './cluster/cluster.ts'
import { ProxyListener, type ListenerConfigSlice } from './listener/listener.ts'
import type { Logger } from './log.ts'

export interface ConfigRejection {
  at: string
  source: string
  errors: string[]
}

export class Proxy {
  readonly log: Logger
  readonly pools = new PoolRegistry()
  readonly listeners = new Map<string, ProxyListener>()
  current: CompiledConfig | null = null
  lastRejection: ConfigRejection | null = null
  rejectedCount = 0
  draining = false
  /** Prometheus metrics; null when disabled. Kept across configs (counters never reset) unless the naming changes. */
  metrics: ProxyMetrics | null = null
  /** `weft tap` subscribers; costs one boolean check per request while nobody taps */
  readonly tap = new TapHub()
  /** span reporter, shared by every listener's tracer; null when tracing is off */
  reporter: ZipkinReporter | null = null
  private reporterKey = ''
  /** replaced reporters, kept so the span counters stay monotonic across config changes */
  private retiredReporters: ZipkinReporter[] = []
  private accessLogs = new Map<string, { key: string; log: AccessLog }>()
  private version = 0
  private sweeper: NodeJS.Timeout | null = null
  private coarseNow = performance.now()

  constructor(log: Logger) {
    this.log = log
  }

  /** Coarse clock for timeouts, advanced by the sweeper so the request path never reads a clock for them. */
  readonly now = (): number => this.coarseNow

  get ready(): boolean {
    return this.current !== null && !this.draining
  }

  /** Compile and swap in a validated config. Listeners are opened/closed to match. */
  async apply(b: Bootstrap): Promise<CompiledConfig> {
    this.configureMetrics(b)
    const usedLogs = new Set<string>()
    const tracing = this.configureTracing(b.telemetry?.tracing)
    const compiled = compileConfig(b, this.version + 1, this.pools, {
      metrics: this.metrics,
      tap: this.tap,
      sinks: (l): RequestSink[] => {
        const al = b.telemetry?.accessLog
        if (al?.enabled !== true) return []
        usedLogs.add(l.name)
        return [this.accessLogFor(l, al, listenerPeer(b, l))]
      },
      tracer: (l) =>
        tracing === null
          ? null
          : new Tracer({
              sampling: tracing.sampling,
              serviceName: tracing.serviceName ?? b.node?.workload ?? 'weft',
              localEndpoint: { ipv4: l.address ?? '127.0.0.1', port: l.port },
              reporter: this.reporter!,
            }),
    })
    this.version = compiled.version
    const wanted = new Map(compiled.listeners.map((l) => [l.name, l]))
    // Listeners whose address changed or that are gone are drained; new ones open below.
    for (const [name, l] of this.listeners) {
      const w = wanted.get(name)
      if (w === undefined || w.port !== l.spec.port || (w.address ?? '127.0.0.1') !== (l.spec.address ?? '127.0.0.1')) {
        this.listeners.delete(name)
        void l.drain()
      }
    }
    // The swap: each listener's slice is one reference assignment; requests in flight keep theirs.
    for (const spec of compiled.listeners) {
      const slice = this.slice(compiled, spec)
      const existing = this.listeners.get(spec.name)
      if (existing !== undefined) {
        existing.config = slice
        continue
      }
      const l = new ProxyListener(spec, slice, this.now)
      await l.listen()
      this.listeners.set(spec.name, l)
      this.log.info({ listener: spec.name, direction: spec.direction, address: spec.address ?? '127.0.0.1', port: l.port }, 'listening')
    }
    this.current = compiled
    this.metrics?.configVersion.set(compiled.version)
    for (const [name, e] of this.accessLogs) {
      if (!usedLogs.has(name)) {
        this.accessLogs.delete(name)
        void e.log.close()
      }
    }
    this.pools.collect()
    this.ensureSweeper(compiled)
    this.log.info({ version: compiled.version, hash: compiled.hash }, 'config applied')
    return compiled
  }

  /** Record a config that failed validation; the last good one keeps serving. */
  reject(source: string, errors: string[]): void {
    this.rejectedCount++
    this.metrics?.configRejected.inc()
    this.lastRejection = { at: new Date().toISOString(), source, errors }
    for (const e of errors) this.log.error({ code: 'WEFT_ERR_CONFIG_REJECTED' }, e)
  }

  private slice(c: CompiledConfig, spec: { name: string; routeTable: string }): ListenerConfigSlice {
    return { table: c.tables.get(spec.routeTable)!, clusters: c.clusters, limits: c.limits, telemetry: c.telemetry.get(spec.name) ?? NO_TELEMETRY }
  }

  /** One access log per listener, reopened only when its settings change. */
  private accessLogFor(l: Listener, al: NonNullable<Telemetry['accessLog']>, peer: ReturnType<typeof listenerPeer>): AccessLog {
    const key = JSON.stringify([al, peer])
    const e = this.accessLogs.get(l.name)
    if (e !== undefined && e.key === key) return e.log
    if (e !== undefined) void e.log.close()
    const log = createAccessLog({ path: al.path, statusClasses: al.statusClasses, sampling: al.sampling }, peer)
    this.accessLogs.set(l.name, { key, log })
    return log
  }

  /** The reporter for this config's tracing (kept when unchanged), or null when tracing is off. */
  private configureTracing(t: Telemetry['tracing']): { sampling: number; serviceName?: string } | null {
    if (t?.enabled !== true) {
      if (this.reporter !== null) this.retire(this.reporter)
      this.reporter = null
      this.reporterKey = ''
      return null
    }
    const opts = {
      url: t.zipkinUrl ?? DEFAULT_ZIPKIN_URL,
      batchIntervalMs: t.batchInterval === undefined ? 1000 : parseDuration(t.batchInterval),
      maxQueue: t.maxQueue ?? 1000,
    }
    const key = JSON.stringify(opts)
    if (this.reporter === null || key !== this.reporterKey) {
      if (this.reporter !== null) this.retire(this.reporter)
      this.reporter = new ZipkinReporter(opts)
      this.reporterKey = key
    }
    return { sampling: t.sampling ?? 1, serviceName: t.serviceName }
  }

  private retire(r: ZipkinReporter): void {
    this.retiredReporters.push(r)
    void r.close()
  }

  private configureMetrics(b: Bootstrap): void {
    const m = b.telemetry?.metrics
    if (m?.enabled === false) {
      this.metrics = null
      return
    }
    const naming = m?.naming ?? 'weft'
    if (this.metrics !== null && this.metrics.naming === naming) return
    const metrics = new ProxyMetrics(naming)
    metrics.setDecisionsSource(() => {
      const out: { listener: string; decision: string; value: number }[] = []
      for (const l of this.listeners.values()) {
        const c = l.counters
        out.push(
          { listener: l.name, decision: 'no_route', value: c.noRoute },
          { listener: l.name, decision: 'local_reply', value: c.localReplies },
          { listener: l.name, decision: 'upstream_error', value: c.upstreamErrors },
          { listener: l.name, decision: 'stale_retry', value: c.staleRetries },
          { listener: l.name, decision: 'downstream_protocol_error', value: c.downstreamProtocolErrors },
          { listener: l.name, decision: 'timeout', value: c.timeouts },
        )
      }
      return out
    })
    metrics.setTelemetrySource(() => {
      const r = { reported: 0, sent: 0, dropped: 0 }
      for (const rep of [...this.retiredReporters, ...(this.reporter === null ? [] : [this.reporter])]) {
        r.reported += rep.counters.reported
        r.sent += rep.counters.sent
        r.dropped += rep.counters.dropped
      }
      let accessLogDropped = 0
      for (const e of this.accessLogs.values()) accessLogDropped += e.log.dropped
      return {
        spansReported: r.reported,
        spansSent: r.sent,
        spansDropped: r.dropped,
        accessLogDropped,
        tapDropped: this.tap.dropped,
      }
    })
    this.metrics = metrics
  }

  private ensureSweeper(c: CompiledConfig): void {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    // Fine enough for the shortest timeout, never busier than every 10 ms.
    const shortest = Math.min(c.limits.requestHeadTimeoutMs, c.limits.idleTimeoutMs, 4000)
    const every = Math.max(10, Math.min(1000, Math.floor(shortest / 4)))
    this.sweeper = setInterval(() => this.sweep(), every)
    this.sweeper.unref()
  }

  private sweep(): void {
    this.coarseNow = performance.now()
    for (const l of this.listeners.values()) l.sweep(this.coarseNow)
    this.pools.sweep(this.coarseNow)
  }

  /**
   * Graceful drain: stop accepting, let in-flight requests finish (answered with Connection:
   * close), resolve when every connection is closed or the timeout passes.
   */
  async drain(timeoutMs = this.current?.drainTimeoutMs ?? 30_000): Promise<{ timedOut: boolean }> {
    this.draining = true
    const all = Promise.all([...this.listeners.values()].map((l) => l.drain()))
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), timeoutMs)
      }),
    ])
    clearTimeout(timer)
    this.close()
    return { timedOut }
  }

  /** Close everything now (access logs and spans are flushed in the background). */
  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.sweeper = null
    for (const e of this.accessLogs.values()) void e.log.close()
    this.accessLogs.clear()
    if (this.reporter !== null) void this.reporter.close()
    this.reporter = null
    for (const l of this.listeners.values()) l.destroy()
    this.listeners.clear()
    this.pools.drainAll()
  }
}
