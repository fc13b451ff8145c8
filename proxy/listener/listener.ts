// A listening socket of the proxy (outbound, inbound). It owns its connections and the config
// slice they read; the proxy swaps `config` atomically on reload. Room is left here for protocol
// detection (HTTP/2 preface, opaque TCP) and TLS: they sit between accept and the HTTP/1 connection.
import { createServer, type Server, type Socket } from 'node:net'
import type { ClusterRuntime } from '../cluster/cluster.ts'
import type { Listener as ListenerConfig } from '../config/schema.ts'
import type { CompiledRouteTable } from '../route/table.ts'
import type { ExchangeCounters } from '../router/exchange.ts'
import type { ListenerTelemetry } from '../telemetry/listener.ts'
import { DownstreamConnection, type ConnectionLimits, type ListenerContext } from './downstream.ts'

export interface ListenerConfigSlice {
  readonly table: CompiledRouteTable
  readonly clusters: ReadonlyMap<string, ClusterRuntime>
  readonly limits: ConnectionLimits
  readonly telemetry: ListenerTelemetry
}

export interface ListenerCounters extends ExchangeCounters {
  cxTotal: number
  cxActive: number
  downstreamProtocolErrors: number
  timeouts: number
}

export class ProxyListener implements ListenerContext {
  readonly name: string
  readonly spec: ListenerConfig
  config: ListenerConfigSlice
  readonly counters: ListenerCounters = {
    cxTotal: 0, cxActive: 0, noRoute: 0, localReplies: 0, upstreamErrors: 0, staleRetries: 0,
    downstreamProtocolErrors: 0, timeouts: 0,
    retries: 0, retryLimitExceeded: 0, retryBudgetExhausted: 0, requestTimeouts: 0, perTryTimeouts: 0,
    rateLimited: 0, circuitOpen: 0, overflow: 0, faultDelays: 0, faultAborts: 0,
    mirrored: 0, mirrorFailed: 0, mirrorAbandoned: 0,
  }
  private readonly server: Server
  private readonly conns = new Set<DownstreamConnection>()
  private readonly clock: () => number
  private closedResolve: (() => void) | null = null
  private drained: Promise<void> | null = null

  constructor(spec: ListenerConfig, config: ListenerConfigSlice, clock: () => number) {
    this.name = spec.name
    this.spec = spec
    this.config = config
    this.clock = clock
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (s: Socket) => this.onConnection(s))
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen({ host: this.spec.address ?? '127.0.0.1', port: this.spec.port }, () => {
        this.server.off('error', reject)
        const a = this.server.address()
        resolve(typeof a === 'object' && a !== null ? a.port : this.spec.port)
      })
    })
  }

  get port(): number {
    const a = this.server.address()
    return typeof a === 'object' && a !== null ? a.port : 0
  }

  get connections(): number {
    return this.conns.size
  }

  now(): number {
    return this.clock()
  }

  private onConnection(s: Socket): void {
    this.counters.cxTotal++
    this.counters.cxActive++
    const m = this.config.telemetry.metrics
    if (m !== null) m.tcp.opened++
    this.conns.add(new DownstreamConnection(s, this))
  }

  connectionClosed(c: DownstreamConnection): void {
    const m = this.config.telemetry.metrics
    if (m !== null) {
      m.tcp.closed++
      m.tcp.received += c.socket.bytesRead
      m.tcp.sent += c.socket.bytesWritten
    }
    if (this.conns.delete(c)) this.counters.cxActive--
    if (this.conns.size === 0 && this.closedResolve !== null) this.closedResolve()
  }

  sweep(now: number): void {
    for (const c of this.conns) c.sweep(now)
  }

  /** Stop accepting; drain every connection; resolve when all are closed. */
  drain(): Promise<void> {
    if (this.drained !== null) return this.drained
    this.server.close()
    for (const c of this.conns) c.drain()
    this.drained = this.conns.size === 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          this.closedResolve = resolve
        })
    return this.drained
  }

  /** Close at once. */
  destroy(): void {
    this.server.close()
    for (const c of this.conns) c.socket.destroy()
  }
}
