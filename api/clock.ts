// Time, defined once for both sides: milliseconds on a monotonic clock, injected so that tests
// control time instead of sleeping (token refills, budget windows, ejection times, peak EWMA).
export type Clock = () => number

export const monotonic: Clock = () => performance.now()

/** A clock with timers, for code that waits (change coalescing, watch backoff). */
export interface Timers {
  now: Clock
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const realTimers: Timers = {
  now: monotonic,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}
