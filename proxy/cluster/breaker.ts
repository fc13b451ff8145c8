// The error-rate circuit breaker of a cluster. opossum holds the state machine and its timer:
// closed -> open; open -> half-open after resetTimeout, where one probe request goes through; the
// probe's success closes the breaker, its failure opens it again. While open (or half-open with
// the probe out), requests fail fast: 503, flag UO.
//
// The rolling window of outcomes while closed is counted here, not by opossum: a request is a
// success (a response below 500) or a failure (5xx, connect failure, reset, timeout); when at
// least volumeThreshold requests in the window failed errorThresholdPercentage % or more (as
// Hystrix and resilience4j, "or more", so 100 means every request failed), the breaker is opened
// through opossum's open(). Why: routing every closed-state request through opossum's fire()
// costs several promises, closures and events per request (measured: about +3 µs CPU per request
// and twice the GC time on the bench, most of the policy row's cost); counting is two array
// increments. Requests in the open and half-open states still go through fire(), so opossum's
// fail-fast, its single probe and its events are what decide there.
//
// opossum's fire() runs the action synchronously when it lets the call through, so admit()
// knows at once whether the request may go.
import CircuitBreaker from 'opossum'
import type { Cluster } from '../../api/schema.ts'
import { parseDuration } from '../../api/duration.ts'
import { monotonic, type Clock } from '../../api/clock.ts'

/** true: success; false: failure; null: neither (the client left, no endpoint): no proof either way */
type Settle = (ok: boolean | null) => void

const noop = (): void => {}
const FAILED = new Error('upstream failure')

/** The handle of an admitted request: call it once with the outcome. */
export type BreakerTicket = Settle

export class ClusterBreaker {
  readonly breaker: CircuitBreaker<[BreakerTicketBox], void>
  /** the config it was built from, to keep the breaker (and its window) across equal configs */
  readonly key: string
  rejected = 0
  private readonly buckets: number
  private readonly bucketMs: number
  private readonly threshold: number
  private readonly volume: number
  private readonly ok: Float64Array
  private readonly failed: Float64Array
  /** the bucket `now` fell in last (an absolute count of bucketMs since the clock's origin) */
  private bucket: number
  private readonly now: Clock
  /** the one ticket of every closed-state request: no allocation per request */
  private readonly closedTicket: Settle = (ok) => this.record(ok)

  constructor(cfg: NonNullable<Cluster['circuitBreaker']>, name: string, now: Clock = monotonic) {
    this.key = JSON.stringify(cfg)
    const windowMs = cfg.window === undefined ? 10_000 : parseDuration(cfg.window)
    this.buckets = cfg.buckets ?? 10
    this.bucketMs = windowMs / this.buckets
    this.threshold = cfg.errorThresholdPercentage ?? 50
    this.volume = cfg.volumeThreshold ?? 20
    this.ok = new Float64Array(this.buckets)
    this.failed = new Float64Array(this.buckets)
    this.now = now
    this.bucket = Math.floor(now() / this.bucketMs)
    this.breaker = new CircuitBreaker<[BreakerTicketBox], void>(action, {
      name,
      timeout: false,
      // opossum's own window only sees half-open probes (which decide by themselves): keep it
      // from opening on its own arithmetic
      errorThresholdPercentage: 100,
      volumeThreshold: Number.MAX_SAFE_INTEGER,
      resetTimeout: cfg.resetTimeout === undefined ? 30_000 : parseDuration(cfg.resetTimeout),
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
    })
    // the failures that opened it must not reopen it at the next error once closed again
    this.breaker.on('close', () => this.clear())
  }

  /** Admit a request: its ticket, or null when the breaker fails it fast. */
  admit(): BreakerTicket | null {
    if (this.breaker.closed) return this.closedTicket
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
    this.breaker.shutdown()
  }

  /** The outcome of a closed-state request. */
  private record(ok: boolean | null): void {
    // a request admitted before the breaker opened, ending after: the decision is made
    if (ok === null || !this.breaker.closed) return
    const k = this.index()
    if (ok) {
      this.ok[k]++
      return
    }
    this.failed[k]++
    let good = 0
    let bad = 0
    for (let i = 0; i < this.buckets; i++) {
      good += this.ok[i]
      bad += this.failed[i]
    }
    const total = good + bad
    if (total >= this.volume && bad * 100 >= this.threshold * total) this.breaker.open()
  }

  /** The current bucket's index, emptying the buckets that fell out of the window. */
  private index(): number {
    const b = Math.floor(this.now() / this.bucketMs)
    if (b !== this.bucket) {
      const n = Math.min(b - this.bucket, this.buckets)
      for (let i = 1; i <= n; i++) {
        const k = (this.bucket + i) % this.buckets
        this.ok[k] = 0
        this.failed[k] = 0
      }
      this.bucket = b
    }
    return b % this.buckets
  }

  private clear(): void {
    this.ok.fill(0)
    this.failed.fill(0)
    this.bucket = Math.floor(this.now() / this.bucketMs)
  }
}

interface BreakerTicketBox {
  settle: Settle | null
}

// A half-open probe that ends without an answer (its client left) proves nothing: the breaker
// opens again and probes anew after resetTimeout (opossum lets no second probe through, so
// leaving it unsettled would hold the breaker half-open for good).
function action(box: BreakerTicketBox): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    box.settle = (ok) => (ok === true ? resolve() : reject(FAILED))
  })
}
