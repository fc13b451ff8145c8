// Retry budget (Linkerd's, after tower's TPS budget): retries may be at most `percent` % of the
// requests seen in the last `ttl`, plus `minRetriesPerSecond` so that low-traffic services can
// still retry. When it is spent, a failure is returned as it is instead of being retried: a
// failing upstream sees at most (1 + percent/100) times its normal load, never a retry storm.
//
// The window is `ttl` cut into SLOTS slots; each slot counts the requests (deposits) and retries
// (withdrawals) made in it. Per request: one slot check and one increment.
import { monotonic, type Clock } from '../../../api/clock.ts'

const SLOTS = 10

export interface RetryBudgetOptions {
  /** retries as a percent of requests; default 20 (Linkerd's retryRatio 0.2) */
  percent?: number
  /** default 10 (Linkerd) */
  minRetriesPerSecond?: number
  /** window in ms; default 10000 (Linkerd) */
  ttlMs?: number
}

export class RetryBudget {
  private readonly ratio: number
  private readonly reserve: number
  private readonly slotMs: number
  private readonly deposits = new Float64Array(SLOTS)
  private readonly withdrawals = new Float64Array(SLOTS)
  private slot = 0
  private readonly now: Clock
  /** counters: retries allowed, retries refused */
  spent = 0
  exhausted = 0

  constructor(o: RetryBudgetOptions = {}, now: Clock = monotonic) {
    const ttlMs = o.ttlMs ?? 10_000
    this.ratio = (o.percent ?? 20) / 100
    this.reserve = (o.minRetriesPerSecond ?? 10) * (ttlMs / 1000)
    this.slotMs = ttlMs / SLOTS
    this.now = now
    this.slot = Math.floor(now() / this.slotMs)
  }

  /** The current slot's index into the arrays, clearing slots that fell out of the window. */
  private index(): number {
    const s = Math.floor(this.now() / this.slotMs)
    let cur = this.slot
    if (s !== cur) {
      const n = Math.min(s - cur, SLOTS)
      for (let i = 1; i <= n; i++) {
        const k = (cur + i) % SLOTS
        this.deposits[k] = 0
        this.withdrawals[k] = 0
      }
      this.slot = cur = s
    }
    return cur % SLOTS
  }

  /** An original request (not a retry). */
  deposit(): void {
    this.deposits[this.index()]++
  }

  /** May one more retry go out? Takes it from the budget when so. */
  withdraw(): boolean {
    const k = this.index()
    let d = 0
    let w = 0
    for (let i = 0; i < SLOTS; i++) {
      d += this.deposits[i]
      w += this.withdrawals[i]
    }
    if (w + 1 > this.reserve + d * this.ratio) {
      this.exhausted++
      return false
    }
    this.withdrawals[k]++
    this.spent++
    return true
  }
}
