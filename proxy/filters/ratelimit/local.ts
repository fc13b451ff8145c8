// Local rate limiting: token buckets, one per route or one per client key (a header's value or the
// client address), as Envoy's local_ratelimit filter. Built when the route is compiled; a request
// costs one bucket update (plus a Map lookup when keyed).
//
// Refill is continuous: `requests` tokens per `interval`, at most `burst` held. A rejected request
// gets 429 with Retry-After and the RateLimit-* fields of the IETF draft
// (draft-ietf-httpapi-ratelimit-headers): RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset
// (seconds until a token is back) and RateLimit-Policy ("<requests>;w=<interval seconds>").
import type { RateLimitPolicy } from '../../../api/schema.ts'
import { parseDuration } from '../../../api/duration.ts'
import { monotonic, type Clock } from '../../../api/clock.ts'

interface Bucket {
  tokens: number
  at: number
}

/** Where the key of a keyed limiter comes from. */
export const KEY_NONE = 0
export const KEY_HEADER = 1
export const KEY_CLIENT = 2

export class LocalRateLimiter {
  readonly keyFrom: number
  /** lower-case header name when keyFrom is KEY_HEADER */
  readonly keyHeader: string
  private readonly burst: number
  /** tokens per ms */
  private readonly rate: number
  private readonly maxKeys: number
  private readonly now: Clock
  private readonly single: Bucket
  private readonly keyed = new Map<string, Bucket>()
  /** the constant part of a 429's header fields */
  private readonly policyFields: string
  /** counters: allowed, limited */
  allowed = 0
  limited = 0

  constructor(p: RateLimitPolicy, now: Clock = monotonic) {
    const intervalMs = parseDuration(p.interval)
    this.burst = p.burst ?? p.requests
    this.rate = p.requests / intervalMs
    this.maxKeys = p.maxKeys ?? 10000
    this.now = now
    this.keyFrom = p.key?.header !== undefined ? KEY_HEADER : p.key?.clientAddress === true ? KEY_CLIENT : KEY_NONE
    this.keyHeader = p.key?.header?.toLowerCase() ?? ''
    this.single = { tokens: this.burst, at: now() }
    const w = intervalMs / 1000
    // the draft's window is whole seconds: a fractional interval is stated as the same rate over
    // the next whole number of seconds (5 per 500ms -> 10;w=1)
    const ws = Number.isInteger(w) ? w : Math.ceil(w)
    const quota = Number.isInteger(w) ? p.requests : Math.round((p.requests * ws) / w)
    this.policyFields = 'ratelimit-limit: ' + p.requests + '\r\nratelimit-policy: ' + quota + ';w=' + ws + '\r\n'
  }

  /** Take a token for `key` ("" for the shared bucket). 0: allowed; else ms until a token is back. */
  take(key: string): number {
    const now = this.now()
    let b: Bucket | undefined
    if (this.keyFrom === KEY_NONE) b = this.single
    else {
      b = this.keyed.get(key)
      if (b === undefined) {
        b = { tokens: this.burst, at: now }
        if (this.keyed.size >= this.maxKeys) {
          // least recently used first: Map keeps insertion order and hits are re-inserted
          const oldest = this.keyed.keys().next().value
          if (oldest !== undefined) this.keyed.delete(oldest)
        }
      } else {
        this.keyed.delete(key)
      }
      this.keyed.set(key, b)
    }
    let tokens = b.tokens + (now - b.at) * this.rate
    if (tokens > this.burst) tokens = this.burst
    b.at = now
    if (tokens >= 1) {
      b.tokens = tokens - 1
      this.allowed++
      return 0
    }
    b.tokens = tokens
    this.limited++
    return Math.max(1, Math.ceil((1 - tokens) / this.rate))
  }

  /** Header field lines of a 429 for a request that waited `waitMs` (from take). */
  rejectFields(waitMs: number): string {
    const s = Math.max(1, Math.ceil(waitMs / 1000))
    return this.policyFields + 'ratelimit-remaining: 0\r\nratelimit-reset: ' + s + '\r\nretry-after: ' + s + '\r\n'
  }

  /** keyed buckets held (for the admin view and tests) */
  get keys(): number {
    return this.keyed.size
  }
}
