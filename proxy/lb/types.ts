// Load balancer interface. A balancer is built once per cluster config (config time) over that
// cluster's endpoints and answers pick() per request; it never allocates per pick where avoidable.
import type { Clock } from '../../api/clock.ts'

/** What a balancer needs to know of an endpoint. The cluster owns these objects. */
export interface LbEndpoint {
  /** "address:port", unique within the cluster; also the hash identity for ringHash/maglev. */
  readonly key: string
  /** Relative weight, integer >= 1. */
  readonly weight: number
  /** Requests in flight to this endpoint, maintained by the caller (incremented before dispatch, decremented when done). */
  active: number
  /** false while the endpoint must not be picked (e.g. ejected); balancers skip it if any healthy one exists. */
  healthy: boolean
}

export interface Balancer<E extends LbEndpoint = LbEndpoint> {
  /**
   * Choose an endpoint. hashKey: the affinity key (value of the configured hash header) for
   * ringHash/maglev; other policies ignore it. avoid: an endpoint to avoid if another healthy one
   * exists (used by retries). Returns undefined only when there are no endpoints at all.
   */
  pick(hashKey?: string, avoid?: E): E | undefined
  /** Report the latency of a finished request to e (ms), used by peakEwma; others ignore it. */
  observe(e: E, latencyMs: number): void
  /**
   * Why the last pick() chose `picked`, for a request's decision trace (proxy/telemetry/explain.ts):
   * the candidates and their scores, or the hash. Called only right after pick() of a traced request.
   */
  explain?(picked: E, hashKey: string | undefined): Record<string, unknown>
}

export type { Clock }

export interface BalancerOptions {
  /** peakEwma decay window in ms (default 10000, as linkerd2-proxy). */
  decayMs?: number
  /** Injected clock in ms (default performance.now). */
  now?: Clock
  /** Injected random source in [0,1) (default Math.random). */
  random?: () => number
  /** peakEwma: RTT (ms) charged per in-flight request to endpoints not yet observed, while no endpoint has been observed (default 30, as linkerd2-proxy); afterwards the mean estimate of the observed ones is used. */
  defaultRttMs?: number
  /** ringHash: minimum number of ring entries (default 1024). */
  minRingSize?: number
  /** ringHash: maximum number of ring entries (default 8388608, as Envoy). */
  maxRingSize?: number
  /** maglev: lookup table size, must be a prime >= the number of endpoints (default 65537). */
  maglevTableSize?: number
}

export type BalancerPolicy = 'roundRobin' | 'leastRequest' | 'peakEwma' | 'ringHash' | 'maglev'
