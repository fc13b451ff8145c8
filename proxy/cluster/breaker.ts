// The error-rate circuit breaker of a cluster, on opossum. Each request to the cluster is one
// opossum "fire" whose action settles when the exchange ends: a success (a response below 500)
// or a failure (5xx, connect failure, reset, timeout). opossum keeps the rolling window and the
// state machine: closed -> open when at least volumeThreshold requests in the window failed
// errorThresholdPercentage % or more; open -> half-open after resetTimeout, where one probe
// request goes through; the probe's success closes the breaker, its failure opens it again.
// While open (or half-open with the probe out), requests fail fast: 503, flag UO.
//
// opossum's fire() runs the action synchronously when it lets the call through, so admit()
// knows at once whether the request may go.
import { EventEmitter } from 'node:events'
import CircuitBreaker from 'opossum'
import type { Cluster } from '../config/schema.ts'
import { parseDuration } from '../config/duration.ts'

type Settle = (ok: boolean) => void

const noop = (): void => {}
const FAILED = new Error('upstream failure')

/** The handle of an admitted request: call it once with the outcome. */
export type BreakerTicket = Settle

export class ClusterBreaker {
  readonly breaker: CircuitBreaker<[BreakerTicketBox], void>
  /** the config it was built from, to keep the breaker (and its window) across equal configs */
  readonly key: string
  rejected = 0
  /**
   * The rolling window turns on our signal (opossum's rotateBucketController) so that it can be
   * emptied when the breaker closes: the failures that opened it must not reopen it at the next
   * error (Hystrix and resilience4j start afresh too), nor dilute the rate with the requests
   * opossum counted while rejecting them.
   */
  private readonly rotation = new EventEmitter()
  private readonly rotator: ReturnType<typeof setInterval>

  constructor(cfg: NonNullable<Cluster['circuitBreaker']>, name: string) {
    this.key = JSON.stringify(cfg)
    const windowMs = cfg.window === undefined ? 10_000 : parseDuration(cfg.window)
    const buckets = cfg.buckets ?? 10
    this.breaker = new CircuitBreaker<[BreakerTicketBox], void>(action, {
      name,
      timeout: false,
      // opossum opens when the error rate is strictly above its threshold; ours is "or more"
      // (as Hystrix and resilience4j), which also lets 100 mean "every request failed"
      errorThresholdPercentage: Math.max(0, (cfg.errorThresholdPercentage ?? 50) - 1e-9),
      volumeThreshold: cfg.volumeThreshold ?? 20,
      rollingCountTimeout: windowMs,
      rollingCountBuckets: buckets,
      rotateBucketController: this.rotation,
      resetTimeout: cfg.resetTimeout === undefined ? 30_000 : parseDuration(cfg.resetTimeout),
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    })
    this.rotator = setInterval(() => this.rotation.emit('rotate'), Math.max(1, Math.floor(windowMs / buckets)))
    this.rotator.unref()
    this.breaker.on('close', () => {
      for (let i = 0; i < buckets; i++) this.rotation.emit('rotate')
    })
  }

  /** Admit a request: its ticket, or null when the breaker fails it fast. */
  admit(): BreakerTicket | null {
    const box: BreakerTicketBox = { settle: null }
    this.breaker.fire(box).catch(noop)
    if (box.settle === null) {
      this.rejected++
      return null
    }
    return box.settle
  }

  get state(): 'closed' | 'open' | 'half-open' {
    return this.breaker.halfOpen ? 'half-open' : this.breaker.opened ? 'open' : 'closed'
  }

  shutdown(): void {
    clearInterval(this.rotator)
    this.breaker.shutdown()
  }
}

interface BreakerTicketBox {
  settle: Settle | null
}

function action(box: BreakerTicketBox): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    box.settle = (ok) => (ok ? resolve() : reject(FAILED))
  })
}
