// The sidecar at run time: applies configs (compile, then one atomic swap), keeps listeners in
// step with the config, runs the sweeper (timeouts, idle upstream connections) and drains.
import type { Bootstrap } from './config/schema.ts'
import { compileConfig, type CompiledConfig } from './config/compile.ts'
import { NO_TELEMETRY } from './telemetry/listener.ts'
import { ProxyMetrics } from './telemetry/metrics.ts'
import type { RequestSink } from './telemetry/types.ts'
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
    const compiled = compileConfig(b, this.version + 1, this.pools, {
      metrics: this.metrics,
      sinks: (): RequestSink[] => [],
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

  /** Close everything now. */
  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.sweeper = null
    for (const l of this.listeners.values()) l.destroy()
    this.listeners.clear()
    this.pools.drainAll()
  }
}
