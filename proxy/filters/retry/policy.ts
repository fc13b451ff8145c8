// A route's retry policy compiled once: the conditions as bits, the status codes as a table,
// the timers in ms, and the retry budget the route's requests share.
import type { RetryPolicy } from '../../../api/schema.ts'
import { parseDuration } from '../../../api/duration.ts'
import { monotonic, type Clock } from '../../../api/clock.ts'
import { RetryBudget } from './budget.ts'

export const ON_5XX = 1
export const ON_GATEWAY = 2
export const ON_CONNECT = 4
export const ON_RESET = 8
export const ON_CODES = 16

const BITS: Record<string, number> = {
  '5xx': ON_5XX,
  'gateway-error': ON_GATEWAY,
  'connect-failure': ON_CONNECT,
  reset: ON_RESET,
  'retriable-status-codes': ON_CODES,
}

/** gRPC retry conditions: the grpc-status code each stands for (Envoy's retry_on names). */
const GRPC_CODES: Record<string, number> = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
}

/** Why a try failed, for the retry decision. */
export const FAIL_CONNECT = 1
export const FAIL_RESET = 2
export const FAIL_TIMEOUT = 3

/** Request bodies up to this size are kept for a retry; a larger one is never retried. */
export const RETRY_BODY_LIMIT = 64 * 1024

export class CompiledRetry {
  readonly attempts: number
  readonly on: number
  /** bit n set: grpc-status n is retried (trailers-only responses of HTTP/2 requests) */
  readonly grpcOn: number
  private readonly codes: Uint8Array
  readonly perTryTimeoutMs: number
  readonly backoffBaseMs: number
  readonly backoffMaxMs: number
  readonly budget: RetryBudget | null
  private readonly random: () => number


  /**
   * May another try go after `tries`? The attempts left, then the budget (which this takes from).
   * A refusal is counted in `counters` (retryLimitExceeded / retryBudgetExhausted).
   */
  /** Why no further try may go (for a request's decision trace), once mayRetry said no. */
  refusal(tries: number, responseStarted: boolean, bodyKept: boolean): string {
    if (this.attempts === 0) return 'the policy allows no retries (per-try timeout only)'
    if (responseStarted) return 'the response has started'
    if (!bodyKept) return 'the request body is not kept whole'
    if (tries >= this.attempts) return `all ${this.attempts} retries used`
    return 'the retry budget is exhausted'
  }

  allowAnother(tries: number, counters: { retryLimitExceeded: number; retryBudgetExhausted: number }): boolean {
    if (tries >= this.attempts) {
      counters.retryLimitExceeded++
      return false
    }
    if (this.budget !== null && !this.budget.withdraw()) {
      counters.retryBudgetExhausted++
      return false
    }
    return true
  }
  constructor(p: RetryPolicy, now: Clock = monotonic, random: () => number = Math.random) {
    this.attempts = p.attempts
    let on = 0
    let grpc = 0
    for (const c of p.on ?? ['connect-failure', 'reset', 'gateway-error']) {
      const g = GRPC_CODES[c]
      if (g !== undefined) grpc |= 1 << g
      else on |= BITS[c]
    }
    this.on = on
    this.grpcOn = grpc
    this.codes = new Uint8Array(600)
    for (const c of p.retriableStatusCodes ?? []) this.codes[c] = 1
    this.perTryTimeoutMs = p.perTryTimeout === undefined ? 0 : parseDuration(p.perTryTimeout)
    this.backoffBaseMs = p.backoff?.base === undefined ? 25 : parseDuration(p.backoff.base)
    this.backoffMaxMs = p.backoff?.max === undefined ? this.backoffBaseMs * 10 : parseDuration(p.backoff.max)
    // Linkerd's defaults: 20 % plus 10 per second over 10 s
    const b = p.budget
    this.budget = new RetryBudget(
      { percent: b?.percent, minRetriesPerSecond: b?.minRetriesPerSecond, ttlMs: b?.ttl === undefined ? undefined : parseDuration(b.ttl) },
      now,
    )
    this.random = random
  }

  /** Is a response with this status worth another try? */
  retriableStatus(status: number): boolean {
    const on = this.on
    if ((on & ON_5XX) !== 0 && status >= 500) return true
    if ((on & ON_GATEWAY) !== 0 && (status === 502 || status === 503 || status === 504)) return true
    return (on & ON_CODES) !== 0 && status < 600 && this.codes[status] === 1
  }

  /** Is a gRPC response (trailers-only) with this grpc-status worth another try? */
  retriableGrpc(code: number): boolean {
    return code > 0 && code < 31 && (this.grpcOn & (1 << code)) !== 0
  }

  /** Is a try that failed this way (FAIL_*) worth another? */
  retriableFailure(kind: number): boolean {
    const on = this.on
    if (kind === FAIL_CONNECT) return (on & (ON_CONNECT | ON_5XX | ON_GATEWAY)) !== 0
    if (kind === FAIL_RESET) return (on & (ON_RESET | ON_5XX)) !== 0
    return (on & (ON_5XX | ON_GATEWAY | ON_RESET)) !== 0 // per-try timeout
  }

  /** Backoff before retry number `n` (1-based): full jitter over base * 2^(n-1), capped at max. */
  backoffMs(n: number): number {
    const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** (n - 1))
    return this.random() * cap
  }
}
