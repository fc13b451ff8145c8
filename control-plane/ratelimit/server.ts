// `weft ratelimit-server`: Envoy's rate limit service protocol (envoy.service.ratelimit.v3
// ShouldRateLimit, protos/envoy/...) over gRPC, with the limits of ./config.ts. Counters are fixed
// windows of the limit's unit (the second, minute, hour or day the request falls in), one per
// domain, descriptor path and window:
//   - in Redis (--redis redis://host:port): INCRBY and PEXPIRE (the rest of the window) in one MULTI, so every replica of
//     the server and every sidecar share them and they survive a restart of the server; Redis
//     unreachable: the call fails with UNAVAILABLE at once (no queueing), and each sidecar applies
//     its failureMode;
//   - in memory without --redis: one instance only.
// A request over a limit is still counted (as Envoy's service does: the hits were made).
import { Server, ServerCredentials, status as grpcStatus, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js'
import type { Logger } from 'pino'
import type { RlsRequest, RlsResponse, RlsStatus } from '../../protos/ratelimit.ts'
import { rateLimitService } from '../../protos/ratelimit.ts'
import { findLimit, UNIT_MS, type Domain } from './config.ts'

export interface CounterStore {
  /** add `hits` to `key` (gone `ttlMs` from now: the rest of its window) and return the new count */
  incr(key: string, hits: number, ttlMs: number): Promise<number>
  close(): Promise<void>
}

export class MemoryStore implements CounterStore {
  private readonly counts = new Map<string, { n: number; expiresAt: number }>()
  private readonly now: () => number
  constructor(now: () => number = Date.now) {
    this.now = now
  }
  async incr(key: string, hits: number, ttlMs: number): Promise<number> {
    const now = this.now()
    const expiresAt = now + ttlMs
    if (this.counts.size > 10_000) for (const [k, v] of this.counts) if (v.expiresAt <= now) this.counts.delete(k)
    let c = this.counts.get(key)
    if (c === undefined || c.expiresAt <= now) {
      c = { n: 0, expiresAt }
      this.counts.set(key, c)
    }
    c.n += hits
    return c.n
  }
  async close(): Promise<void> {}
}

export async function redisStore(url: string, log?: Logger): Promise<CounterStore> {
  const { Redis } = await import('ioredis')
  // no offline queue and no retries per command: with Redis away a call fails now, not later
  // enableReadyCheck off: connect() resolves when commands can go (no INFO round first)
  const r = new Redis(url, { enableOfflineQueue: false, enableReadyCheck: false, maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: (n) => Math.min(1000, n * 100) })
  r.on('error', (err: Error) => log?.warn({ code: 'WEFT_ERR_RATELIMIT_REDIS', err: err.message }, 'redis unavailable'))
  try {
    await r.connect()
  } catch (err) {
    log?.warn({ code: 'WEFT_ERR_RATELIMIT_REDIS', err: (err as Error).message }, 'redis not reachable at start; retrying in the background')
  }
  return {
    async incr(key, hits, ttlMs) {
      const res = await r.multi().incrby(key, hits).pexpire(key, Math.max(1, Math.ceil(ttlMs))).exec()
      const [err, n] = res?.[0] ?? [new Error('no answer from redis'), 0]
      if (err) throw err
      return Number(n)
    },
    async close() {
      r.disconnect()
    },
  }
}

export interface RateLimitServer {
  readonly port: number
  /** replace the limits (a config reload) */
  setDomains(d: Map<string, Domain>): void
  readonly stats: { calls: number; overLimit: number; errors: number }
  close(): Promise<void>
}

const UNIT_NAME = { second: 'SECOND', minute: 'MINUTE', hour: 'HOUR', day: 'DAY' } as const

export async function startRateLimitServer(o: { address: string; domains: Map<string, Domain>; store: CounterStore; log?: Logger; now?: () => number }): Promise<RateLimitServer> {
  let domains = o.domains
  const now = o.now ?? Date.now
  const stats = { calls: 0, overLimit: 0, errors: 0 }
  const server = new Server()
  const answer = async (req: RlsRequest): Promise<RlsResponse> => {
    const d = domains.get(req.domain)
    if (d === undefined) throw Object.assign(new Error(`unknown domain "${req.domain}" (configured: ${[...domains.keys()].join(', ') || 'none'})`), { code: grpcStatus.INVALID_ARGUMENT })
    if (req.descriptors.length === 0) throw Object.assign(new Error('no descriptors'), { code: grpcStatus.INVALID_ARGUMENT })
    const hits = req.hitsAddend && req.hitsAddend > 0 ? req.hitsAddend : 1
    const t = now()
    const statuses: RlsStatus[] = await Promise.all(req.descriptors.map(async (desc) => {
      const found = findLimit(d, desc.entries)
      if (found === null) return { code: 'OK' as const, limitRemaining: 0 }
      const unitMs = UNIT_MS[found.limit.unit]
      const start = Math.floor(t / unitMs) * unitMs
      const left = start + unitMs - t
      const n = await o.store.incr(`weft_rl_${req.domain}_${found.path}${start}`, hits, left)
      return {
        code: n > found.limit.requestsPerUnit ? 'OVER_LIMIT' as const : 'OK' as const,
        currentLimit: { requestsPerUnit: found.limit.requestsPerUnit, unit: UNIT_NAME[found.limit.unit] },
        limitRemaining: Math.max(0, found.limit.requestsPerUnit - n),
        durationUntilReset: { seconds: Math.floor(left / 1000), nanos: (left % 1000) * 1e6 },
      }
    }))
    const over = statuses.some((s) => s.code === 'OVER_LIMIT')
    return { overallCode: over ? 'OVER_LIMIT' : 'OK', statuses }
  }
  server.addService(rateLimitService().service, {
    ShouldRateLimit: (call: ServerUnaryCall<RlsRequest, RlsResponse>, cb: sendUnaryData<RlsResponse>) => {
      stats.calls++
      answer(call.request).then(
        (res) => {
          if (res.overallCode === 'OVER_LIMIT') stats.overLimit++
          cb(null, res)
        },
        (err: Error & { code?: number }) => {
          stats.errors++
          o.log?.warn({ code: 'WEFT_ERR_RATELIMIT', domain: call.request.domain, err: err.message }, 'rate limit call failed')
          cb({ code: err.code ?? grpcStatus.UNAVAILABLE, details: err.message })
        },
      )
    },
  })
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(o.address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
  return {
    port,
    stats,
    setDomains: (d) => { domains = d },
    async close() {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()))
      await o.store.close()
    },
  }
}
