// The bytes of config being written to proxies, over all streams. Each response is serialized
// into its own buffer per stream (its nonce differs) and held until the proxy has read it: a
// complete snapshot of a 10,000-Service mesh is ~10 MB, so 1,000 proxies that connect at once
// would hold 10 GB, and the freed buffers leave the allocator's heap fragmented (RSS that is not
// given back). A stream whose batch does not fit waits its turn (first come, first served), holding
// nothing: when its turn comes it is sent the then-latest state.
//
// Small batches (endpoint updates) never wait: they are counted, and the change-to-ACK latency of
// a push does not depend on who is syncing in full.

/** A stream that waits for room. */
export interface BudgetWaiter {
  /** try again (ConfigStream.pump): take() or wait again */
  resume(): void
}

/** Default: room for a few complete snapshots of a large mesh at a time. */
export const DEFAULT_SEND_BUDGET_BYTES = 64 * 1024 * 1024
/** Batches up to this size never wait. */
export const SMALL_BATCH_BYTES = 256 * 1024

export class SendBudget {
  readonly limit: number
  private used = 0
  /** waiter -> the bytes it asked for, in arrival order */
  private readonly waiting = new Map<BudgetWaiter, number>()
  private waking = false

  constructor(limit = DEFAULT_SEND_BUDGET_BYTES) {
    this.limit = limit
  }

  /** Bytes written and not yet handed to the socket. */
  get inUse(): number {
    return this.used
  }

  /** Streams waiting for room. */
  get queued(): number {
    return this.waiting.size
  }

  /**
   * Count `bytes` and return true (send now), or queue the waiter and return false. With nothing
   * in use, any batch fits (a snapshot larger than the limit is still sent, alone).
   */
  take(bytes: number, w: BudgetWaiter): boolean {
    const queued = this.waiting.has(w)
    // first come, first served: a new large batch does not pass the ones already waiting
    if (bytes <= SMALL_BATCH_BYTES || (this.fits(bytes) && (queued ? this.first() === w : this.waiting.size === 0))) {
      this.waiting.delete(w)
      this.used += bytes
      return true
    }
    this.waiting.set(w, bytes) // a waiter already queued keeps its place
    return false
  }

  /** `bytes` were written (or their stream ended): let waiters in. */
  give(bytes: number): void {
    this.used -= bytes
    if (this.used < 0) this.used = 0
    this.wake()
  }

  /** The waiter's stream ended, or it has nothing to send any more. */
  leave(w: BudgetWaiter): void {
    if (this.waiting.delete(w)) this.wake()
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit
  }

  private first(): BudgetWaiter | undefined {
    return this.waiting.keys().next().value
  }

  private wake(): void {
    if (this.waking) return // resume() -> ... -> give() on this stack: the loop below goes on
    this.waking = true
    try {
      // in arrival order, while the first one fits; it asks again with its then-current batch
      for (let w = this.first(); w !== undefined && this.fits(this.waiting.get(w)!); w = this.first()) {
        w.resume()
        if (this.first() === w) {
          // it asked for more than it had (a newer snapshot) and still waits, first in line
          if (!this.fits(this.waiting.get(w)!)) break
          this.waiting.delete(w) // sent nothing at all (no longer anything to send): out of the line
        }
      }
    } finally {
      this.waking = false
    }
  }
}
