// Coalescing of change bursts: a rollout touches hundreds of Pods and EndpointSlices within a
// second, and each translation and push of snapshots costs far more than waiting a little. A
// burst becomes one flush debounceMs after its last change, but never later than maxDelayMs after
// its first, so a cluster that never goes quiet still gets its updates.
//
// Time comes from Timers (api/clock.ts) so that tests move it by hand instead of sleeping.
import { realTimers, type Timers } from '../../api/clock.ts'

/** Resolves after ms on the clock, or at once when the signal aborts (never rejects). */
export function sleep(clock: Timers, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve()
      return
    }
    const done = (): void => {
      clock.clearTimeout(handle)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const handle = clock.setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

export interface CoalescerOptions {
  debounceMs: number
  maxDelayMs: number
  clock?: Timers
}

export class Coalescer {
  #flush: () => void
  #debounceMs: number
  #maxDelayMs: number
  #clock: Timers
  /** when the first change of the pending burst came; undefined when nothing is pending */
  #first: number | undefined
  #timer: unknown

  constructor(flush: () => void, opts: CoalescerOptions) {
    if (!(opts.debounceMs >= 0) || !(opts.maxDelayMs >= opts.debounceMs)) {
      throw new RangeError(`need 0 <= debounceMs (${opts.debounceMs}) <= maxDelayMs (${opts.maxDelayMs})`)
    }
    this.#flush = flush
    this.#debounceMs = opts.debounceMs
    this.#maxDelayMs = opts.maxDelayMs
    this.#clock = opts.clock ?? realTimers
  }

  get pending(): boolean {
    return this.#first !== undefined
  }

  /** A change happened: flush debounceMs from now, or at the burst's deadline if that is sooner. */
  schedule(): void {
    const now = this.#clock.now()
    this.#first ??= now
    const at = Math.min(now + this.#debounceMs, this.#first + this.#maxDelayMs)
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = this.#clock.setTimeout(() => this.#fire(), Math.max(0, at - now))
  }

  /** Drop the pending flush, if any. */
  cancel(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer)
    this.#timer = undefined
    this.#first = undefined
  }

  #fire(): void {
    this.#timer = undefined
    this.#first = undefined
    this.#flush()
  }
}
