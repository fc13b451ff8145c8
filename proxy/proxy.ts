// The sidecar at run time: applies configs (compile, then one atomic swap), keeps listeners in
// step with the config, runs the sweeper (timeouts, idle upstream connections) and drains.
import type { IdentityManager } from './identity/identity.ts'
import { originalDstSupported } from './intercept/original-dst.ts'
import type { Bootstrap } from '../api/schema.ts'
import { compileConfig, type CompiledConfig } from './config/compile.ts'
import type { Listener, Telemetry } from '../api/schema.ts'
import { parseDuration } from '../api/duration.ts'
import { createAccessLog, type AccessLog } from './telemetry/access-log.ts'
import { listenerPeer, NO_TELEMETRY } from './telemetry/listener.ts'
import { ProxyMetrics } from './telemetry/metrics.ts'
import { bindMetricsSources } from './telemetry/sources.ts'
import { TapHub } from './telemetry/tap.ts'
import { ExplainRecorder } from './telemetry/explain.ts'
import type { ZipkinReporter } from './telemetry/tracing/reporter.ts'
import { Tracer } from './telemetry/tracing/tracer.ts'
import type { FormatName } from './telemetry/tracing/inject.ts'
import type { RequestSink } from './telemetry/types.ts'

export const DEFAULT_ZIPKIN_URL = 'http://127.0.0.1:9411/api/v2/spans'
import { PoolRegistry } from './cluster/cluster.ts'
import { ProxyListener, type ListenerConfigSlice } from './listener/listener.ts'
import type { Logger } from './log.ts'

export interface ConfigRejection {
  at: string
  source: string
  errors: string[]
  /** set when a later config was accepted: the rejection no longer describes what is served */
  supersededBy?: { version: number; at: string }
}

/** A config change between prepare and commit or rollback. */
interface PendingConfig {
  readonly source: Bootstrap
  compiled: CompiledConfig | null
  /** listeners bound for it (closed again on rollback) */
  readonly opened: ProxyListener[]
  /** listeners whose access log it uses */
  readonly usedLogs: Set<string>
  readonly prevMetrics: ProxyMetrics | null
  readonly prevLogs: Map<string, { key: string; log: AccessLog }>
  readonly prevReporter: ZipkinReporter | null
  readonly prevReporterKey: string
}

const sameAddress = (a: Listener, b: Listener): boolean => a.port === b.port && (a.address ?? '127.0.0.1') === (b.address ?? '127.0.0.1')

let reporterModule: typeof import('./telemetry/tracing/reporter.ts') | undefined

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
  /** decision traces of the requests someone asked about (telemetry/explain.ts): admin /explain */
  readonly explain = new ExplainRecorder()
  /** span reporter, shared by every listener's tracer; null when tracing is off */
  reporter: ZipkinReporter | null = null
  private reporterKey = ''
  /** replaced reporters, kept so the span counters stay monotonic across config changes */
  private retiredReporters: ZipkinReporter[] = []
  private accessLogs = new Map<string, { key: string; log: AccessLog }>()
  /** listeners removed or moved by a config change, draining; swept until closed */
  private readonly drainingListeners = new Set<ProxyListener>()
  /** closings put off until the old config's requests are done */
  private readonly deferred = new Set<{ t: NodeJS.Timeout; f: () => void }>()
  private version = 0
  private sweeper: NodeJS.Timeout | null = null
  private coarseNow = performance.now()

  constructor(log: Logger) {
    this.log = log
  }

  /** Coarse clock for timeouts, advanced by the sweeper so the request path never reads a clock for them. */
  readonly now = (): number => this.coarseNow

  get ready(): boolean {
    return this.current !== null && !this.draining && (this.identity === null || this.identity.ready)
  }

  /** the proxy's identity (bootstrap `identity`); null: none (no mutual TLS) */
  get identity(): IdentityManager | null {
    return this.pools.identity.current
  }
  private identityKey = ''

  /**
   * A changed `identity` starts a new manager (its first certificate is asked for in the
   * background; the proxy is not ready until it has one); the old one stops, its certificate
   * still serving the connections made with it.
   */
  private async configureIdentity(b: Bootstrap): Promise<void> {
    const id = b.identity
    const key = id === undefined ? '' : JSON.stringify([id, b.node?.namespace])
    if (key === this.identityKey) return
    this.identityKey = key
    this.pools.identity.current?.stop()
    if (id === undefined) {
      this.pools.identity.current = null
      return
    }
    const { IdentityManager } = await import('./identity/identity.ts')
    const m = new IdentityManager({
      trustDomain: id.trustDomain ?? 'cluster.local',
      namespace: b.node?.namespace ?? 'default',
      serviceAccount: id.serviceAccount ?? 'default',
      caAddress: id.ca?.address,
      tokenFile: id.ca?.tokenFile,
      caRoot: id.ca?.root,
      ttlSeconds: id.ca?.ttl === undefined ? 0 : Math.round(parseDuration(id.ca.ttl) / 1000),
      certFile: id.certFile,
      keyFile: id.keyFile,
      trustBundleFile: id.trustBundleFile,
    }, this.log)
    m.onRenew = (s) => this.log.info({ spiffeId: s.spiffeId, notAfter: s.notAfter.toISOString(), renewAt: s.renewAt.toISOString() }, 'identity certificate installed')
    this.pools.identity.current = m
    m.run()
  }

  /**
   * Compile and swap in a validated config, in three steps: prepare (compile, bind new
   * listeners; nothing the running config uses is touched), then commit (the swap) or, when
   * preparing failed (a port in use), rollback (the proxy exactly as it was).
   */
  async apply(b: Bootstrap): Promise<CompiledConfig> {
    const p = this.begin(b)
    try {
      await this.prepare(p)
    } catch (err) {
      this.rollback(p)
      throw err
    }
    this.commit(p)
    return p.compiled!
  }

  /** What the running config was before a change, and what the change has made so far. */
  private begin(b: Bootstrap): PendingConfig {
    return {
      source: b,
      compiled: null,
      opened: [],
      usedLogs: new Set(),
      prevMetrics: this.metrics,
      prevLogs: new Map(this.accessLogs),
      prevReporter: this.reporter,
      prevReporterKey: this.reporterKey,
    }
  }

  /** Compile p's config and bind the listeners that are new (or moved). */
  private async prepare(p: PendingConfig): Promise<void> {
    const b = p.source
    // loaded when tracing is first on: zipkin and its HTTP transport
    if (b.telemetry?.tracing?.enabled === true) reporterModule ??= await import('./telemetry/tracing/reporter.ts')
    this.configureMetrics(b)
    await this.configureIdentity(b)
    this.explain.configure(b.telemetry?.explain)
    const tracing = this.configureTracing(b.telemetry?.tracing)
    const compiled = compileConfig(b, this.version + 1, this.pools, {
      metrics: this.metrics,
      tap: this.tap,
      explain: this.explain,
      sinks: (l): RequestSink[] => {
        const al = b.telemetry?.accessLog
        if (al?.enabled !== true) return []
        p.usedLogs.add(l.name)
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
              propagation: tracing.propagation,
            }),
    })
    p.compiled = compiled
    for (const spec of compiled.listeners) {
      const existing = this.listeners.get(spec.name)
      if (existing !== undefined && sameAddress(existing.spec, spec)) continue
      const l = new ProxyListener(spec, this.slice(compiled, spec), this.now)
      l.identityRef = this.pools.identity
      l.handoff = (direction, port, address) => this.virtualListener(direction, port, address)
      if (spec.interception !== undefined && !originalDstSupported()) {
        // said loudly: without it every redirected connection takes the listener's normal path
        this.log.error({ listener: spec.name, code: 'WEFT_ERR_NO_ORIGINAL_DST' }, 'interception needs getsockopt(SO_ORIGINAL_DST) (Linux, the koffi package): redirected connections cannot be told apart')
      }
      await l.listen()
      p.opened.push(l)
    }
  }

  /** The `bindToPort: false` listener of this direction for a redirected connection's original destination. */
  private virtualListener(direction: string, port: number, address: string): ProxyListener | undefined {
    const candidates = this.virtuals.get(`${direction}|${port}`)
    if (candidates === undefined) return undefined
    for (const l of candidates) {
      const a = l.spec.address ?? '127.0.0.1'
      if (a === '0.0.0.0' || a === '::' || a === address) return l
    }
    return undefined
  }

  /** `bindToPort: false` listeners by "direction|port", rebuilt at each commit (read per redirected connection) */
  private virtuals = new Map<string, ProxyListener[]>()

  /** Undo what prepare made: its listeners, pool settings and breakers, logs, reporter, metrics. */
  private rollback(p: PendingConfig): void {
    for (const l of p.opened) l.destroy()
    this.pools.rollback()
    for (const [name, e] of this.accessLogs) if (p.prevLogs.get(name)?.log !== e.log) void e.log.close()
    this.accessLogs = p.prevLogs
    if (this.reporter !== p.prevReporter && this.reporter !== null) void this.reporter.close()
    this.reporter = p.prevReporter
    this.reporterKey = p.prevReporterKey
    this.metrics = p.prevMetrics
  }

  /** The swap. Listeners that are gone or moved drain (and are still swept until closed). */
  private commit(p: PendingConfig): void {
    const compiled = p.compiled!
    this.version = compiled.version
    const wanted = new Map(compiled.listeners.map((l) => [l.name, l]))
    for (const [name, l] of this.listeners) {
      const w = wanted.get(name)
      if (w === undefined || !sameAddress(l.spec, w)) {
        this.listeners.delete(name)
        this.drainingListeners.add(l)
        void l.drain().then(() => this.drainingListeners.delete(l))
      }
    }
    // Each listener's slice is one reference assignment; requests in flight keep theirs.
    for (const spec of compiled.listeners) {
      const existing = this.listeners.get(spec.name)
      if (existing !== undefined) existing.config = this.slice(compiled, spec)
    }
    for (const l of p.opened) {
      this.listeners.set(l.name, l)
      this.log.info({ listener: l.name, direction: l.spec.direction, address: l.spec.address ?? '127.0.0.1', port: l.port }, 'listening')
    }
    this.current = compiled
    this.virtuals = new Map()
    for (const l of this.listeners.values()) {
      if (l.spec.bindToPort !== false) continue
      const key = `${l.spec.direction}|${l.spec.port}`
      this.virtuals.set(key, [...(this.virtuals.get(key) ?? []), l])
    }
    this.metrics?.configVersion.set(compiled.version)
    if (p.prevReporter !== null && p.prevReporter !== this.reporter) this.retire(p.prevReporter, compiled.drainTimeoutMs)
    // Access logs no longer used, or replaced, close once requests of the old config are done.
    for (const [name, e] of p.prevLogs) {
      if (this.accessLogs.get(name)?.log !== e.log || !p.usedLogs.has(name)) {
        if (!p.usedLogs.has(name)) this.accessLogs.delete(name)
        this.later(compiled.drainTimeoutMs, () => void e.log.close())
      }
    }
    this.pools.collect()
    this.ensureSweeper(compiled)
    if (this.lastRejection !== null && this.lastRejection.supersededBy === undefined) {
      // the fix of a bad edit: say so, and mark the rejection as history
      this.lastRejection.supersededBy = { version: compiled.version, at: new Date().toISOString() }
      this.log.info({ version: compiled.version, hash: compiled.hash, supersedes: this.lastRejection.at }, 'config accepted')
    } else if (compiled.version > 1) {
      this.log.info({ version: compiled.version, hash: compiled.hash }, 'config accepted')
    }
    this.log.info({ version: compiled.version, hash: compiled.hash }, 'config applied')
  }

  /** Run f after ms (not keeping the process alive), or at close(). */
  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.deferred.delete(entry)
      f()
    }, ms)
    t.unref()
    const entry = { t, f }
    this.deferred.add(entry)
  }


  /** Record a config that failed validation; the last good one keeps serving. */
  reject(source: string, errors: string[]): void {
    this.rejectedCount++
    this.metrics?.configRejected.inc()
    this.lastRejection = { at: new Date().toISOString(), source, errors }
    for (const e of errors) this.log.error({ code: 'WEFT_ERR_CONFIG_REJECTED' }, e)
  }

  private slice(c: CompiledConfig, spec: { name: string; routeTable: string }): ListenerConfigSlice {
    return {
      table: c.tables.get(spec.routeTable)!,
      clusters: c.clusters,
      limits: c.limits,
      telemetry: c.telemetry.get(spec.name) ?? NO_TELEMETRY,
      protocol: c.protocols.get(spec.name)!,
      filters: c.filters.get(spec.name) ?? null,
      forwardClientCert: c.protocols.get(spec.name)!.forwardClientCert,
    }
  }

  /** One access log per listener, reopened only when its settings change. */
  private accessLogFor(l: Listener, al: NonNullable<Telemetry['accessLog']>, peer: ReturnType<typeof listenerPeer>): AccessLog {
    const key = JSON.stringify([al, peer])
    const e = this.accessLogs.get(l.name)
    if (e !== undefined && e.key === key) return e.log
    // A replaced log is closed by apply() once the new config is committed.
    const log = createAccessLog({ path: al.path, statusClasses: al.statusClasses, sampling: al.sampling }, peer)
    this.accessLogs.set(l.name, { key, log })
    return log
  }

  /** The reporter for this config's tracing (kept when unchanged), or null when tracing is off. */
  private configureTracing(t: Telemetry['tracing']): { sampling: number; serviceName?: string; propagation?: FormatName[] } | null {
    if (t?.enabled !== true) {
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
      this.reporter = new reporterModule!.ZipkinReporter(opts)
      this.reporterKey = key
    }
    return { sampling: t.sampling ?? 1, serviceName: t.serviceName, propagation: t.propagation }
  }

  /** A replaced reporter keeps taking the old config's spans for a while, then closes. */
  private retire(r: ZipkinReporter, afterMs: number): void {
    this.retiredReporters.push(r)
    this.later(afterMs, () => void r.close())
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
    bindMetricsSources(metrics, {
      listeners: () => this.listeners.values(),
      clusters: () => this.current?.clusters.values() ?? [],
      reporters: () => [...this.retiredReporters, ...(this.reporter === null ? [] : [this.reporter])],
      accessLogs: () => [...this.accessLogs.values()].map((e) => e.log),
      tap: this.tap,
    })
    this.metrics = metrics
  }

  private ensureSweeper(c: CompiledConfig): void {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    // Fine enough for the shortest timeout, never busier than every 10 ms.
    let shortest = Math.min(c.limits.requestHeadTimeoutMs, c.limits.idleTimeoutMs, c.limits.firstByteTimeoutMs, c.limits.streamIdleTimeoutMs, 4000)
    for (const p of c.protocols.values()) if (p.tcp !== null) shortest = Math.min(shortest, p.tcp.idleTimeoutMs)
    const every = Math.max(10, Math.min(1000, Math.floor(shortest / 4)))
    this.sweeper = setInterval(() => this.sweep(), every)
    this.sweeper.unref()
  }

  private sweep(): void {
    this.coarseNow = performance.now()
    for (const l of this.listeners.values()) l.sweep(this.coarseNow)
    for (const l of this.drainingListeners) l.sweep(this.coarseNow)
    this.pools.sweep(this.coarseNow)
  }

  /**
   * Graceful drain, in two steps. At once: not ready (`/ready` 503); the listeners keep accepting
   * for `periodMs` (callers learn that the endpoint is gone only seconds later), and every
   * connection, old or new, is asked to close after its current exchange (HTTP/1 responses carry
   * Connection: close, HTTP/2 gets GOAWAY); idle keep-alive connections stay open, as a request may
   * be on its way on them. After the period: stop accepting, close idle connections, busy ones
   * after their response. Resolves when every connection is closed, or when `timeoutMs` (counted
   * from the start, the period included) passes, and then closes everything.
   */
  async drain(
    timeoutMs = this.current?.drainTimeoutMs ?? 30_000,
    periodMs = this.current?.drainPeriodMs ?? 0,
  ): Promise<{ timedOut: boolean }> {
    this.draining = true
    const listeners = [...this.listeners.values(), ...this.drainingListeners]
    for (const l of listeners) l.announceDrain()
    const timers: NodeJS.Timeout[] = []
    const after = (ms: number) => new Promise<void>((r) => timers.push(setTimeout(r, ms)))
    const steps = (Math.min(periodMs, timeoutMs) > 0 ? after(Math.min(periodMs, timeoutMs)) : Promise.resolve())
      .then(() => Promise.all(listeners.map((l) => l.drain())))
      .then(() => false)
    const timedOut = await Promise.race([steps, after(timeoutMs).then(() => true)])
    for (const t of timers) clearTimeout(t)
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
    for (const l of this.drainingListeners) l.destroy()
    this.drainingListeners.clear()
    for (const d of this.deferred) {
      clearTimeout(d.t)
      d.f()
    }
    this.deferred.clear()
    this.pools.identity.current?.stop()
    this.pools.drainAll()
  }
}
