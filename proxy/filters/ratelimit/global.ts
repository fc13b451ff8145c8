// The global rate limit filter (issue 17): a limit shared by every sidecar and every replica,
// decided by a rate limit service that speaks Envoy's protocol (envoy.service.ratelimit.v3
// ShouldRateLimit; `weft ratelimit-server`, or Envoy's own ratelimit service).
//
// Per request: the route's descriptors are built (each entry's value fixed, from a request header,
// the client's address or the route's name; a descriptor whose header is missing is not sent, as
// Envoy does) and the request is held (FilterExchange.hold) until the service answers:
//   OK          the request goes on; the service's request_headers_to_add are not applied (the
//               head is already built), its response headers neither (a relayed response);
//   OVER_LIMIT  429, flag RL, WEFT_ERR_RATE_LIMITED, with x-ratelimit-limit / -remaining / -reset
//               (Envoy's DRAFT_VERSION_03 headers) and the service's response_headers_to_add;
//   no answer   (down, refused, over `timeout`): failureMode allow (default) lets the request go,
//               counted as rate_limit_service_failed_open; deny answers 500, flag RLSE,
//               WEFT_ERR_RATE_LIMIT_SERVICE, counted as rate_limit_service_error.
// Batching keeps the service's load low: the requests with the same descriptor set that arrive in
// one turn of the event loop (often many under load) go in one call, sent at the end of that turn,
// which carries them all (hits_addend = their number) and whose answer they share; calls of
// successive turns may be in flight together. And the last answer is cached until its window resets
// (at most 1 s): while it said OK with more than headroom() requests remaining, requests go on at
// once and their hits are reported in one call every 50 ms (sooner past a quarter of the headroom);
// nearer the limit, each request waits for its answer. One gRPC channel per service address,
// shared by the proxy's routes and kept across configs. The gRPC client loads on first use.
import type { GlobalRateLimitPolicy } from '../../../api/schema.ts'
import { parseDuration } from '../../../api/duration.ts'
import { CONTINUE, type Filter, type FilterExchange, type FilterFactory, type FilterStatus, type RouteContext } from '../filter.ts'
import type { Client } from '@grpc/grpc-js'
import type { RlsEntry, RlsResponse, RlsStatus } from '../../../protos/ratelimit.ts'

const DEFAULT_TIMEOUT_MS = 20

type Rls = { client: Client; call: (req: unknown, deadline: number, cb: (err: Error | null, res?: RlsResponse) => void) => void }
const channels = new Map<string, Rls>()
let grpcModule: typeof import('@grpc/grpc-js') | null = null
let rlsModule: typeof import('../../../protos/ratelimit.ts') | null = null
let loading: Promise<void> | null = null

function loadGrpc(): Promise<void> {
  loading ??= Promise.all([import('@grpc/grpc-js'), import('../../../protos/ratelimit.ts')]).then(([g, r]) => {
    grpcModule = g
    rlsModule = r
  })
  return loading
}

function channel(address: string): Rls {
  let c = channels.get(address)
  if (c === undefined) {
    const { Client: C } = rlsModule!.rateLimitService()
    const client = new C(address, grpcModule!.credentials.createInsecure(), { 'grpc.service_config_disable_resolution': 1 })
    const fn = (client as unknown as Record<string, (req: unknown, md: unknown, opts: unknown, cb: unknown) => void>).ShouldRateLimit!.bind(client)
    c = { client, call: (req, deadline, cb) => fn(req, new grpcModule!.Metadata(), { deadline }, cb) }
    channels.set(address, c)
  }
  return c
}

interface Waiter { x: FilterExchange; resume: () => void; done: boolean; timer: NodeJS.Timeout | null }
interface Batch { key: string; waiters: Waiter[]; /** hits of requests let go ahead, not yet sent */ ahead: number; since: number; descriptors: { entries: RlsEntry[] }[] }
/** how long the hits of requests that went ahead may wait before they are reported */
const AHEAD_FLUSH_MS = 50
interface Known { ok: boolean; remaining: number; limit: number; resetAt: number; /** hits let go ahead, not yet answered */ pending: number }

/**
 * How far from its limit a descriptor set must be for requests to go ahead of the service's answer
 * (their hits still counted, in the next call): a tenth of the limit, at least 100. Nearer, every
 * request waits for its answer, so the limit is exact where it matters; far from it, the most the
 * sidecars can overshoot is what they let go ahead within one round trip to the service.
 */
function headroom(limit: number): number {
  return Math.max(100, limit / 10)
}

class GlobalRateLimitFilter implements Filter {
  private readonly p: GlobalRateLimitPolicy
  private readonly route: string
  private readonly timeoutMs: number
  private readonly deny: boolean
  /** per descriptor-set key: the requests of this turn of the event loop, sent together at its end */
  private readonly batches = new Map<string, Batch>()
  private flushing = false
  private timerPending = false
  /** per descriptor-set key: what the service said last (for requests far from the limit) */
  private readonly known = new Map<string, Known>()
  private readonly now: () => number = Date.now

  constructor(p: GlobalRateLimitPolicy, ctx: RouteContext) {
    this.p = p
    this.route = ctx.routeName ?? ''
    this.timeoutMs = p.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(p.timeout)
    this.deny = p.failureMode === 'deny'
  }

  onRequest(x: FilterExchange): FilterStatus {
    const descriptors: { entries: RlsEntry[] }[] = []
    let key = ''
    for (const d of this.p.descriptors) {
      const entries: RlsEntry[] = []
      let skip = false
      for (const e of d.entries) {
        let value: string | undefined
        if (e.from === 'value') value = e.value ?? ''
        else if (e.from === 'header') value = x.header(e.header!.toLowerCase())
        else if (e.from === 'remoteAddress') value = x.downstreamAddress
        else if (e.from === 'source') value = x.sourceIdentity
        else value = this.route
        if (value === undefined) {
          skip = true
          break
        }
        entries.push({ key: e.key, value })
      }
      if (skip) continue
      descriptors.push({ entries })
      for (const e of entries) key += e.key + '\u0000' + e.value + '\u0000'
      key += '\u0001'
    }
    if (descriptors.length === 0) return CONTINUE // nothing to ask about (every descriptor missed a header)
    let b = this.batches.get(key)
    if (b === undefined) {
      b = { key, waiters: [], ahead: 0, since: this.now(), descriptors }
      this.batches.set(key, b)
    }
    const k = this.known.get(key)
    if (k !== undefined && k.ok && this.now() < k.resetAt && k.remaining - k.pending > headroom(k.limit)) {
      // far from the limit: the request goes now, its hit is counted in this turn's call
      k.pending++
      b.ahead++
      x.counters.globalRateLimitAllowed++
      x.explain?.note('global-rate-limit', { domain: this.p.domain, code: 'OK', ahead: true, remaining: k.remaining - k.pending })
    } else {
      const w: Waiter = { x, resume: x.hold(), done: false, timer: null }
      // the request waits at most `timeout` for its answer, whatever batch it is in
      w.timer = setTimeout(() => this.failed(w, 'timeout'), this.timeoutMs)
      b.waiters.push(w)
    }
    if (!this.flushing) {
      this.flushing = true
      setImmediate(() => this.flush())
    }
    return CONTINUE
  }

  /**
   * End of the turn: one call per descriptor set with requests waiting. A set whose requests all
   * went ahead is reported less often: when its hits reach a quarter of the headroom, else after
   * AHEAD_FLUSH_MS (the service's load then no longer grows with the request rate).
   */
  private flush(): void {
    this.flushing = false
    const batches: Batch[] = []
    let later = false
    for (const b of this.batches.values()) {
      const k = this.known.get(b.key)
      if (b.waiters.length === 0 && k !== undefined && b.ahead < headroom(k.limit) / 4 && this.now() - b.since < AHEAD_FLUSH_MS) {
        later = true
        continue
      }
      batches.push(b)
      this.batches.delete(b.key)
    }
    if (later && !this.timerPending) {
      this.timerPending = true
      setTimeout(() => {
        this.timerPending = false
        this.flush()
      }, AHEAD_FLUSH_MS).unref()
    }
    const go = () => {
      for (const b of batches) {
        const waiters = b.waiters.filter((w) => !w.done)
        const hits = waiters.length + b.ahead
        if (hits === 0) continue
        channel(this.p.service).call({ domain: this.p.domain, descriptors: b.descriptors, hitsAddend: hits }, Date.now() + this.timeoutMs, (err, res) => {
          const k = this.known.get(b.key)
          if (k !== undefined) k.pending = Math.max(0, k.pending - b.ahead)
          if (err === null && res !== undefined) this.learn(b.key, res)
          else this.known.delete(b.key) // ask again before letting requests go ahead
          for (const w of waiters) {
            if (err !== null || res === undefined) this.failed(w, err?.message ?? 'no answer')
            else this.answer(w, res)
          }
        })
      }
    }
    if (grpcModule === null) {
      loadGrpc().then(go, (err: Error) => {
        for (const b of batches) for (const w of b.waiters) this.failed(w, err.message)
      })
    } else go()
  }

  /** Remember the tightest limit of the answer (none: unlimited) until its window resets. */
  private learn(key: string, res: RlsResponse): void {
    let remaining = Infinity
    let limit = Infinity
    let resetMs = 1000
    for (const st of res.statuses) {
      if (!st.currentLimit) continue
      if (st.limitRemaining < remaining) {
        remaining = st.limitRemaining
        limit = st.currentLimit.requestsPerUnit
        resetMs = st.durationUntilReset ? Number(st.durationUntilReset.seconds) * 1000 + st.durationUntilReset.nanos / 1e6 : 1000
      }
    }
    const prev = this.known.get(key)
    this.known.set(key, { ok: res.overallCode === 'OK', remaining, limit, resetAt: this.now() + Math.min(resetMs, 1000), pending: prev?.pending ?? 0 })
    if (this.known.size > 10_000) this.known.delete(this.known.keys().next().value!)
  }

  private settle(w: Waiter): boolean {
    if (w.done) return false
    w.done = true
    if (w.timer !== null) clearTimeout(w.timer)
    return true
  }

  private answer(w: Waiter, res: RlsResponse): void {
    if (!this.settle(w)) return
    const x = w.x
    const over = res.overallCode === 'OVER_LIMIT'
    x.explain?.note('global-rate-limit', { domain: this.p.domain, code: res.overallCode, statuses: res.statuses.map(statusView) })
    if (!over) {
      x.counters.globalRateLimitAllowed++
      return w.resume()
    }
    x.counters.globalRateLimited++
    x.localReply(429, 'RL', 'WEFT_ERR_RATE_LIMITED', 'global rate limit exceeded', limitHeaders(res))
  }

  private failed(w: Waiter, why: string): void {
    if (!this.settle(w)) return
    const x = w.x
    x.explain?.note('global-rate-limit', { domain: this.p.domain, error: why, failureMode: this.deny ? 'deny' : 'allow' })
    if (!this.deny) {
      x.counters.rateLimitServiceFailedOpen++
      return w.resume()
    }
    x.counters.rateLimitServiceError++
    x.localReply(500, 'RLSE', 'WEFT_ERR_RATE_LIMIT_SERVICE', `rate limit service ${this.p.service} did not answer: ${why}`)
  }
}

function statusView(s: RlsStatus): Record<string, unknown> {
  return { code: s.code, limit: s.currentLimit ? `${s.currentLimit.requestsPerUnit}/${s.currentLimit.unit.toLowerCase()}` : null, remaining: s.limitRemaining }
}

const UNIT_SECONDS: Record<string, number> = { SECOND: 1, MINUTE: 60, HOUR: 3600, DAY: 86400, MONTH: 2592000, YEAR: 31536000 }

/** x-ratelimit-* of the most restrictive status over its limit (Envoy's DRAFT_VERSION_03), and the service's own headers. */
function limitHeaders(res: RlsResponse): string {
  let h = ''
  const s = res.statuses.find((x) => x.code === 'OVER_LIMIT' && x.currentLimit) ?? res.statuses.find((x) => x.currentLimit)
  if (s?.currentLimit) {
    const window = UNIT_SECONDS[s.currentLimit.unit] ?? 1
    const reset = s.durationUntilReset ? Math.ceil(Number(s.durationUntilReset.seconds) + s.durationUntilReset.nanos / 1e9) : window
    h += `x-ratelimit-limit: ${s.currentLimit.requestsPerUnit}, ${s.currentLimit.requestsPerUnit};w=${window}\r\n`
    h += `x-ratelimit-remaining: ${s.limitRemaining}\r\nx-ratelimit-reset: ${reset}\r\n`
  }
  for (const a of res.responseHeadersToAdd ?? []) {
    if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(a.key) && !/[\r\n\0]/.test(a.value)) h += `${a.key.toLowerCase()}: ${a.value}\r\n`
  }
  return h
}

export const globalRateLimit = {
  name: 'globalRateLimit',
  flags: { RateLimitServiceError: 'RLSE' },
  counters: {
    globalRateLimitAllowed: 'global_rate_limit_allowed',
    globalRateLimited: 'global_rate_limited',
    rateLimitServiceFailedOpen: 'rate_limit_service_failed_open',
    rateLimitServiceError: 'rate_limit_service_error',
  },
  compile: (config, ctx) => new GlobalRateLimitFilter(config, ctx),
} as const satisfies FilterFactory<'globalRateLimit'>
