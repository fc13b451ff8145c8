// The bytes of config being written to proxies, over all streams, and the number of complete
// snapshots among them (the push throttle, istiod's PILOT_PUSH_THROTTLE). Each response is
// serialized into its own buffer per stream (its nonce differs; grpc-js frames it in a copy) and
// held until it is handed to the socket: a complete snapshot of a 10,000-Service mesh is ~10 MB, so
// 1,000 proxies that connect at once would hold 10 GB. A stream whose batch does not fit waits its
// turn (first come, first served), holding nothing: when its turn comes it is sent the then-latest
// state.
//
// The throttle is what sets the control plane's peak RSS while proxies sync (bench:cp, 1,000
// proxies: each complete snapshot being written is ~10 MB of live buffers; with the previous
// 64 MB byte budget alone, six at a time took the peak to 430-450 MB). Written, not ACKed, frees a
// slot: the memory is the send buffers, and the proxies' decoding goes on in parallel.
//
// Small batches (endpoint updates) never wait: they are counted, and the change-to-ACK latency of
// a push does not depend on who is syncing in full.

/** Told when complete snapshots are written and when the queue empties (./compact.ts). */
export interface BurstObserver {
  /** a complete snapshot (batch over SMALL_BATCH_BYTES) of `bytes` is being written */
  wrote(bytes: number): void
  /** nothing is being written and nobody waits */
  idle(): void
}

/** A stream that waits for room. */
export interface BudgetWaiter {
  /** try again (ConfigStream.pump): take() or wait again */
  resume(): void
}

/** Default: room for a few complete snapshots of a large mesh at a time. */
export const DEFAULT_SEND_BUDGET_BYTES = 64 * 1024 * 1024
/** Batches up to this size never wait. */
export const SMALL_BATCH_BYTES = 256 * 1024
/** Default push throttle: complete snapshots (batches larger than SMALL_BATCH_BYTES) being written at a time. */
export const DEFAULT_PUSH_THROTTLE = 2

export class SendBudget {
  readonly limit: number
  /** large batches being written at a time, at most (0: no count limit, bytes only) */
  readonly throttle: number
  private used = 0
  private large = 0
  private highest = 0
  private waitedCount = 0
  /** waiter -> the bytes it asked for, in arrival order */
  private readonly waiting = new Map<BudgetWaiter, number>()
  private waking = false

  private readonly onWait: () => void
  /** ./compact.ts: the heap is compacted once a burst of complete snapshots is over */
  observer: BurstObserver | null = null

  /** `onWait`: a batch starts waiting its turn (a metric). */
  constructor(limit = DEFAULT_SEND_BUDGET_BYTES, throttle = DEFAULT_PUSH_THROTTLE, onWait: () => void = () => {}) {
    this.limit = limit
    this.throttle = throttle
    this.onWait = onWait
  }

  /** Large batches (complete snapshots) being written now. */
  get sending(): number {
    return this.large
  }

  /** The most large batches written at once so far. */
  get mostSending(): number {
    return this.highest
  }

  /** Batches that had to wait their turn so far (each counted once, however long it waited). */
  get waited(): number {
    return this.waitedCount
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
   * in use, any batch fits (a snapshot larger than the limit is still sent, alone). Give the same
   * `bytes` back with give() once written.
   */
  take(bytes: number, w: BudgetWaiter): boolean {
    const queued = this.waiting.has(w)
    // first come, first served: a new large batch does not pass the ones already waiting
    if (bytes <= SMALL_BATCH_BYTES || (this.fits(bytes) && (queued ? this.first() === w : this.waiting.size === 0))) {
      this.waiting.delete(w)
      this.used += bytes
      if (bytes > SMALL_BATCH_BYTES) {
        this.large++
        if (this.large > this.highest) this.highest = this.large
        this.observer?.wrote(bytes)
      }
      return true
    }
    if (!queued) {
      this.waitedCount++
      this.onWait()
    }
    this.waiting.set(w, bytes) // a waiter already queued keeps its place
    return false
  }

  /** The `bytes` of one take() were written (or their stream ended): let waiters in. */
  give(bytes: number): void {
    this.used -= bytes
    if (this.used < 0) this.used = 0
    if (bytes > SMALL_BATCH_BYTES && this.large > 0) this.large--
    this.wake()
    this.checkIdle()
  }

  /** Nothing being written, nobody waiting. */
  get idle(): boolean {
    return this.used === 0 && this.waiting.size === 0
  }

  private checkIdle(): void {
    if (this.observer !== null && !this.waking && this.idle) this.observer.idle()
  }

  /** The waiter's stream ended, or it has nothing to send any more. */
  leave(w: BudgetWaiter): void {
    if (this.waiting.delete(w)) {
      this.wake()
      this.checkIdle()
    }
  }

  private fits(bytes: number): boolean {
    if (this.used === 0) return true
    if (this.throttle > 0 && bytes > SMALL_BATCH_BYTES && this.large >= this.throttle) return false
    return this.limit <= 0 || this.used + bytes <= this.limit
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
    this.checkIdle() // a give() on the loop's stack (a write handed over at once) could not tell
  }
}
