// Clusters at run time: the endpoints of one logical backend with their pools, counters and the
// load balancer built over them. Built when a config is compiled; pools are looked up in the
// PoolRegistry so that unchanged endpoints keep their warm connections across config swaps.
import type { Cluster } from '../config/schema.ts'
import { parseDuration } from '../config/duration.ts'
import { createBalancer } from '../lb/index.ts'
import type { Balancer, LbEndpoint } from '../lb/types.ts'
import { EndpointPool, type PoolSettings } from './pool.ts'

export interface EndpointCounters {
  rqTotal: number
  rqError: number
  rq5xx: number
}

export class EndpointState implements LbEndpoint {
  readonly key: string
  readonly weight: number
  active = 0
  healthy = true
  readonly pool: EndpointPool
  readonly counters: EndpointCounters
  constructor(key: string, weight: number, pool: EndpointPool, counters: EndpointCounters) {
    this.key = key
    this.weight = weight
    this.pool = pool
    this.counters = counters
  }
}

export interface ClusterRuntime {
  readonly name: string
  readonly endpoints: readonly EndpointState[]
  readonly balancer: Balancer<EndpointState>
  /** lower-case header whose value is the affinity key, or "" */
  readonly hashHeader: string
  readonly policy: string
}

export interface ProxyLimits {
  maxHeaderBytes: number
  maxHeaders: number
}

/**
 * Pools and counters keyed by cluster and endpoint, kept across config swaps.
 * `retain` marks what the new config uses; `collect` drains the rest.
 */
export class PoolRegistry {
  private pools = new Map<string, { pool: EndpointPool; counters: EndpointCounters }>()
  private marked = new Set<string>()

  get(key: string, host: string, port: number, settings: PoolSettings): { pool: EndpointPool; counters: EndpointCounters } {
    this.marked.add(key)
    let e = this.pools.get(key)
    if (e === undefined) {
      e = { pool: new EndpointPool(host, port, settings), counters: { rqTotal: 0, rqError: 0, rq5xx: 0 } }
      this.pools.set(key, e)
    } else {
      e.pool.settings = settings
    }
    return e
  }

  /** Start marking for a new config. */
  begin(): void {
    this.marked = new Set()
  }

  /** Drain pools the new config does not use. */
  collect(): void {
    for (const [k, e] of this.pools) {
      if (!this.marked.has(k)) {
        e.pool.drain()
        this.pools.delete(k)
      }
    }
  }

  sweep(now: number): void {
    for (const e of this.pools.values()) e.pool.sweep(now)
  }

  drainAll(): void {
    for (const e of this.pools.values()) e.pool.drain()
    this.pools.clear()
  }
}

export function buildCluster(c: Cluster, registry: PoolRegistry, limits: ProxyLimits): ClusterRuntime {
  const settings: PoolSettings = {
    maxConnections: c.pool?.maxConnections ?? 1024,
    maxPending: c.pool?.maxPending ?? 1024,
    idleTimeoutMs: c.pool?.idleTimeout === undefined ? 30_000 : parseDuration(c.pool.idleTimeout),
    connectTimeoutMs: c.pool?.connectTimeout === undefined ? 1_000 : parseDuration(c.pool.connectTimeout),
    maxHeaderBytes: limits.maxHeaderBytes,
    maxHeaders: limits.maxHeaders,
  }
  const endpoints = c.endpoints.map((e) => {
    const key = `${e.address}:${e.port}`
    // Keyed by cluster and endpoint only: a settings change keeps the queue and warm connections.
    const { pool, counters } = registry.get(`${c.name}|${key}`, e.address, e.port, settings)
    return new EndpointState(key, e.weight ?? 1, pool, counters)
  })
  const policy = c.lb?.policy ?? 'roundRobin'
  const balancer = createBalancer<EndpointState>(policy, endpoints, {
    decayMs: c.lb?.decay === undefined ? undefined : parseDuration(c.lb.decay),
  })
  return { name: c.name, endpoints, balancer, hashHeader: c.lb?.hashHeader?.toLowerCase() ?? '', policy }
}
