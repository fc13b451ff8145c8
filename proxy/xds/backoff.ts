// Reconnection delays: exponential backoff with full jitter (random between 0 and the capped
// exponential), so a thousand proxies that lost the same control plane do not come back in step.

export interface BackoffOptions {
  /** first cap, ms (default 250) */
  baseMs?: number
  /** largest cap, ms (default 30 s) */
  maxMs?: number
}

export const DEFAULT_BACKOFF = { baseMs: 250, maxMs: 30_000 }

/** The delay before attempt `attempt` (0-based), for random() in [0, 1). */
export function backoffDelay(attempt: number, o: Required<BackoffOptions>, random: () => number): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * cap)
}

/** Timers, injectable so tests control time instead of sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const REAL_TIMERS: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms)
    // a reconnect timer alone must not keep the process alive (the listeners do)
    t.unref()
    return t
  },
  clearTimeout(h) {
    clearTimeout(h as NodeJS.Timeout)
  },
}
