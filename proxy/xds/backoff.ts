// Reconnection delays: exponential backoff with full jitter (random between 0 and the capped
// exponential), so a thousand proxies that lost the same control plane do not come back in step.
// The cap is short (1.5 s): a sidecar is back on a restarted control plane within 2 s of it (the
// cap plus one refused attempt), while a thousand of them still spread over 1.5 s. A failed attempt
// on a local network costs one refused connection, so a short cap is cheap for both sides.

export interface BackoffOptions {
  /** first cap, ms (default 250) */
  baseMs?: number
  /** largest cap, ms (default 1.5 s) */
  maxMs?: number
}

export const DEFAULT_BACKOFF = { baseMs: 250, maxMs: 1500 }

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
