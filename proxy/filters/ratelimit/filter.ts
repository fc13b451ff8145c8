// The rate limit filter: a token bucket per route or per client key (./local.ts); over the limit,
// 429 with Retry-After and RateLimit-* fields (gRPC: RESOURCE_EXHAUSTED), flag RL.
import { CONTINUE, STOP, type Filter, type FilterExchange, type FilterFactory, type FilterStatus } from '../filter.ts'
import { KEY_CLIENT, KEY_HEADER, LocalRateLimiter } from './local.ts'

class RateLimitFilter implements Filter {
  readonly limiter: LocalRateLimiter
  constructor(limiter: LocalRateLimiter) {
    this.limiter = limiter
  }

  onRequest(x: FilterExchange): FilterStatus {
    const rl = this.limiter
    const key = rl.keyFrom === KEY_HEADER ? (x.header(rl.keyHeader) ?? '') : rl.keyFrom === KEY_CLIENT ? x.downstreamAddress : ''
    const wait = rl.take(key)
    if (x.explain !== null) x.explain.note('rate-limit', { key: rl.keyFrom === KEY_HEADER ? `header ${rl.keyHeader}: ${key}` : rl.keyFrom === KEY_CLIENT ? `client ${key}` : 'route', allowed: wait === 0, ...(wait > 0 ? { retryAfterMs: Math.ceil(wait) } : {}) })
    if (wait === 0) return CONTINUE
    x.counters.rateLimited++
    x.localReply(429, 'RL', 'WEFT_ERR_RATE_LIMITED', 'local rate limit exceeded', rl.rejectFields(wait))
    return STOP
  }
}

export const rateLimit = {
  name: 'rateLimit',
  flags: { RateLimited: 'RL' },
  counters: { rateLimited: 'rate_limited' },
  compile: (config) => new RateLimitFilter(new LocalRateLimiter(config)),
} as const satisfies FilterFactory<'rateLimit'>
