// Global rate limiting (issue 17): `weft ratelimit-server` speaks Envoy's rate limit service protocol
// (a real @grpc/grpc-js client with the protos checks it), three sidecars share one limit through
// it, counters kept in Redis survive a restart of the server, and with Redis (or the server) gone
// each sidecar applies its failureMode. The server's clock is injected: a test never straddles a
// window.
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { credentials, Metadata, type Client } from '@grpc/grpc-js'
import { rateLimitService, type RlsResponse } from '../protos/ratelimit.ts'
import { parseLimits, type Domain } from '../control-plane/ratelimit/config.ts'
import { MemoryStore, redisStore, startRateLimitServer } from '../control-plane/ratelimit/server.ts'
import { cluster, freePort, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { client } from './helpers/policy.ts'
import type { GlobalRateLimitPolicy } from '../api/schema.ts'

const LIMITS = `domain: weft
descriptors:
  - key: route
    value: limited
    rate_limit: { unit: minute, requests_per_unit: 10 }
  - key: route
    value: small
    rate_limit: { unit: minute, requests_per_unit: 3 }
    descriptors:
      - key: user
        rate_limit: { unit: minute, requests_per_unit: 2 }
  - key: route
    value: free
    unlimited: true
  - key: route
    value: big
    rate_limit: { unit: minute, requests_per_unit: 1000000 }
  - key: source
    value: shop/frontend
    rate_limit: { unit: minute, requests_per_unit: 2 }
`
function domains(text = LIMITS): Map<string, Domain> {
  const m = new Map<string, Domain>()
  const r = parseLimits(text, 'limits.yaml', m)
  if (r.errors.length > 0) throw new Error(JSON.stringify(r.errors))
  return m
}
const NOW = Date.UTC(2026, 11, 5, 16, 0, 10) // ten seconds into a minute: no window ends during a test

function call(c: Client, req: unknown): Promise<RlsResponse> {
  return new Promise((resolve, reject) =>
    (c as any).ShouldRateLimit(req, new Metadata(), { deadline: Date.now() + 2000 }, (err: Error | null, res: RlsResponse) => (err ? reject(err) : resolve(res))))
}

t.test('limits as Envoy\'s ratelimit service writes them; errors with file:line:column and the field path', async (t) => {
  const m = new Map<string, Domain>()
  const bad = parseLimits('domain: weft\ndescriptors:\n  - key: route\n    rate_limit: { unit: fortnight, requests_per_unit: 5 }\n  - value: x\n', 'l.yaml', m)
  t.match(bad.errors, [
    { file: 'l.yaml', line: 4, column: 25, path: 'descriptors[0].rate_limit.unit', message: 'must be second, minute, hour or day' },
    { file: 'l.yaml', line: 5, column: 5, path: 'descriptors[1].key', message: 'must be a non-empty string' },
  ])
})

t.test('the protocol with a real grpc-js client: OK with what remains, then OVER_LIMIT; nested and wildcard descriptors; unknown domain', async (t) => {
  const s = await startRateLimitServer({ address: '127.0.0.1:0', domains: domains(), store: new MemoryStore(() => NOW), now: () => NOW })
  t.teardown(() => s.close())
  const { Client: C } = rateLimitService()
  const c = new C(`127.0.0.1:${s.port}`, credentials.createInsecure())
  t.teardown(() => c.close())
  const small = { domain: 'weft', descriptors: [{ entries: [{ key: 'route', value: 'small' }] }] }
  const seen: [string, number][] = []
  for (let i = 0; i < 4; i++) {
    const r = await call(c, small)
    seen.push([r.overallCode, r.statuses[0]!.limitRemaining])
  }
  t.same(seen, [['OK', 2], ['OK', 1], ['OK', 0], ['OVER_LIMIT', 0]])
  const r = await call(c, small)
  t.match(r.statuses[0], { code: 'OVER_LIMIT', currentLimit: { requestsPerUnit: 3, unit: 'MINUTE' }, durationUntilReset: { seconds: '50' } })
  // a wildcard entry counts each value on its own
  const user = (u: string) => ({ domain: 'weft', descriptors: [{ entries: [{ key: 'route', value: 'small' }, { key: 'user', value: u }] }] })
  t.same([(await call(c, user('a'))).overallCode, (await call(c, user('a'))).overallCode, (await call(c, user('a'))).overallCode, (await call(c, user('b'))).overallCode], ['OK', 'OK', 'OVER_LIMIT', 'OK'])
  // hits_addend counts several requests at once
  t.equal((await call(c, { domain: 'weft', descriptors: [{ entries: [{ key: 'route', value: 'limited' }] }], hitsAddend: 10 })).overallCode, 'OK')
  t.equal((await call(c, { domain: 'weft', descriptors: [{ entries: [{ key: 'route', value: 'limited' }] }] })).overallCode, 'OVER_LIMIT')
  // unlimited, and a descriptor no limit names: OK
  t.equal((await call(c, { domain: 'weft', descriptors: [{ entries: [{ key: 'route', value: 'free' }] }, { entries: [{ key: 'other', value: 'x' }] }] })).overallCode, 'OK')
  await t.rejects(call(c, { domain: 'nope', descriptors: [{ entries: [{ key: 'route', value: 'x' }] }] }), { code: 3, details: /unknown domain "nope"/ })
})

const policy = (port: number, extra: Partial<GlobalRateLimitPolicy> = {}): GlobalRateLimitPolicy => ({
  service: `127.0.0.1:${port}`,
  domain: 'weft',
  descriptors: [{ entries: [{ key: 'route', from: 'route' }] }],
  timeout: '500ms',
  ...extra,
})

t.test('three sidecars share one limit: of 24 requests exactly 10 pass', async (t) => {
  const s = await startRateLimitServer({ address: '127.0.0.1:0', domains: domains(), store: new MemoryStore(() => NOW), now: () => NOW })
  t.teardown(() => s.close())
  const up = await startHttpUpstream(t, { name: 'app' })
  const sidecars = await Promise.all([0, 1, 2].map(() => startTestSidecar(t, makeConfig({ routes: [{ ...routeTo('app'), name: 'limited', globalRateLimit: policy(s.port) }], clusters: [cluster('app', [up.port])] }))))
  const statuses: number[] = []
  let limitedReply: Record<string, string | undefined> = {}
  await Promise.all(sidecars.map(async (sc) => {
    const c = client(t, sc.port)
    for (let i = 0; i < 8; i++) {
      const r = await c.request('/x')
      statuses.push(r.status)
      if (r.status === 429) limitedReply = { flag: r.get('x-weft-response-flags'), error: r.get('x-weft-error'), limit: r.get('x-ratelimit-limit'), remaining: r.get('x-ratelimit-remaining'), reset: r.get('x-ratelimit-reset') }
    }
  }))
  t.equal(statuses.filter((x) => x === 200).length, 10, 'the limit holds across the three sidecars')
  t.equal(statuses.filter((x) => x === 429).length, 14)
  t.same(limitedReply, { flag: 'RL', error: 'WEFT_ERR_RATE_LIMITED', limit: '10, 10;w=60', remaining: '0', reset: '50' })
  t.equal(up.requests.length, 10, 'nothing refused reached the upstream')
  const m = (await sidecars[0]!.admin('/metrics')).body
  t.match(m, /weft_proxy_decisions_total\{listener="out",decision="global_rate_limited"\} [1-9]/)
})

t.test('the service away: failureMode allow lets requests go (counted), deny answers 500 RLSE', async (t) => {
  const dead = await freePort()
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(t, makeConfig({
    routes: [
      { ...routeTo('app'), name: 'open', match: { path: { prefix: '/open' } }, globalRateLimit: policy(dead, { timeout: '200ms' }) },
      { ...routeTo('app'), name: 'closed', match: { path: { prefix: '/closed' } }, globalRateLimit: policy(dead, { timeout: '200ms', failureMode: 'deny' }) },
    ],
    clusters: [cluster('app', [up.port])],
  }))
  const c = client(t, s.port)
  t.equal((await c.request('/open')).status, 200)
  const closed = await c.request('/closed')
  t.equal(closed.status, 500)
  t.equal(closed.get('x-weft-response-flags'), 'RLSE')
  t.equal(closed.get('x-weft-error'), 'WEFT_ERR_RATE_LIMIT_SERVICE')
  const m = (await s.admin('/metrics')).body
  t.match(m, /decision="rate_limit_service_failed_open"\} 1\b/)
  t.match(m, /decision="rate_limit_service_error"\} 1\b/)
})

const hasRedis = spawnSync('redis-server', ['--version']).status === 0
t.test('counters in Redis: shared by two server replicas, kept when the server restarts; Redis down: each sidecar\'s failure mode', { skip: hasRedis ? false : 'redis-server not installed (apt-get install -y redis-server)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-redis-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const rport = await freePort()
  let redis: ChildProcess | null = spawn('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' })
  t.teardown(() => { redis?.kill('SIGKILL') })
  const url = `redis://127.0.0.1:${rport}`
  await until('redis up', async () => {
    const r = spawnSync('redis-cli', ['-p', String(rport), 'ping'], { encoding: 'utf8' })
    return r.stdout.trim() === 'PONG'
  }, 5000, 25)
  const rlsPort = await freePort()
  const start = async () => startRateLimitServer({ address: `127.0.0.1:${rlsPort}`, domains: domains(), store: await redisStore(url), now: () => NOW })
  let s = await start()
  const up = await startHttpUpstream(t, { name: 'app' })
  const sc = await startTestSidecar(t, makeConfig({ routes: [{ ...routeTo('app'), name: 'small', globalRateLimit: policy(rlsPort) }], clusters: [cluster('app', [up.port])] }))
  const c = client(t, sc.port)
  t.same([(await c.request('/x')).status, (await c.request('/x')).status], [200, 200])
  t.same(s.stats, { calls: 2, overLimit: 0, errors: 0 }, 'the first server answered both')
  t.match(spawnSync('redis-cli', ['-p', String(rport), '--scan'], { encoding: 'utf8' }).stdout, /^weft_rl_weft_route_small_\d+\n$/, 'the counter is in Redis')
  // the server restarts: the count is in Redis
  await s.close()
  s = await start()
  t.teardown(() => s.close())
  t.equal((await c.request('/x')).status, 200, `the third passes: the count survived the restart (server: ${JSON.stringify(s.stats)})`)
  // a second replica of the server on the same Redis, and a second sidecar that asks it: one limit
  const rlsPort2 = await freePort()
  const s2 = await startRateLimitServer({ address: `127.0.0.1:${rlsPort2}`, domains: domains(), store: await redisStore(url), now: () => NOW })
  t.teardown(() => s2.close())
  const sc2 = await startTestSidecar(t, makeConfig({ routes: [{ ...routeTo('app'), name: 'small', globalRateLimit: policy(rlsPort2) }], clusters: [cluster('app', [up.port])] }))
  const c2 = client(t, sc2.port)
  t.equal((await c2.request('/x')).status, 429, 'the fourth, through another sidecar and another replica of the server, is over the limit of 3')
  t.same(s2.stats, { calls: 1, overLimit: 1, errors: 0 }, 'the replica answered it from the counter in Redis')
  t.equal((await c.request('/x')).status, 429, 'and the first sidecar\'s next one too')
  // a sidecar whose route fails closed, on the same server
  const sc3 = await startTestSidecar(t, makeConfig({ routes: [{ ...routeTo('app'), name: 'small', globalRateLimit: policy(rlsPort, { failureMode: 'deny' }) }], clusters: [cluster('app', [up.port])] }))
  const c3 = client(t, sc3.port)
  // Redis goes away: the server answers UNAVAILABLE at once, the sidecar fails open
  redis.kill('SIGKILL')
  await new Promise((r) => redis!.once('exit', r))
  redis = null
  t.equal((await c.request('/x')).status, 200, 'failureMode allow: the request goes')
  const closed = await c3.request('/x')
  t.same([closed.status, closed.get('x-weft-response-flags'), closed.get('x-weft-error')], [500, 'RLSE', 'WEFT_ERR_RATE_LIMIT_SERVICE'], 'failureMode deny: refused')
  t.match((await sc3.admin('/metrics')).body, /decision="rate_limit_service_error"\} 1\b/, 'and counted')
  t.match((await sc.admin('/metrics')).body, /decision="rate_limit_service_failed_open"\} 1\b/, 'the failed-open one counted too')
  t.ok(s.stats.errors >= 1, 'the server counted the failed call')
})

t.test('far from the limit requests go ahead of the answer (their hits counted in the next call); near it each waits', async (t) => {
  const s = await startRateLimitServer({ address: '127.0.0.1:0', domains: domains(), store: new MemoryStore(() => NOW), now: () => NOW })
  t.teardown(() => s.close())
  const up = await startHttpUpstream(t, { name: 'app' })
  const sc = await startTestSidecar(t, makeConfig({ routes: [{ ...routeTo('app'), name: 'big', globalRateLimit: policy(s.port) }], clusters: [cluster('app', [up.port])] }))
  const c = client(t, sc.port)
  const notes: any[] = []
  for (let i = 0; i < 5; i++) {
    const r = await c.request('/x', { headers: { 'x-weft-explain': '1' } })
    t.equal(r.status, 200)
    const e = await sc.adminJson(`/explain/${encodeURIComponent(r.get('x-weft-explain-id')!)}`)
    notes.push(e.steps.find((x: any) => x.stage === 'global-rate-limit'))
  }
  t.notOk(notes[0].ahead, 'the first request waits: nothing is known yet')
  t.ok(notes.slice(1).every((n) => n.ahead === true), 'then they go at once')
  await until('every hit reached the service', async () => {
    const { Client: C } = rateLimitService()
    const cl = new C(`127.0.0.1:${s.port}`, credentials.createInsecure())
    const r = await call(cl, { domain: 'weft', descriptors: [{ entries: [{ key: 'route', value: 'big' }] }] })
    cl.close()
    return r.statuses[0]!.limitRemaining <= 1_000_000 - 6
  })
})

t.test('a descriptor from the calling workload (source): the pod\'s own on an outbound listener', async (t) => {
  const s = await startRateLimitServer({ address: '127.0.0.1:0', domains: domains(), store: new MemoryStore(() => NOW), now: () => NOW })
  t.teardown(() => s.close())
  const up = await startHttpUpstream(t, { name: 'app' })
  const config = makeConfig({ routes: [{ ...routeTo('app'), name: 'any', globalRateLimit: policy(s.port, { descriptors: [{ entries: [{ key: 'source', from: 'source' }] }] }) }], clusters: [cluster('app', [up.port])] })
  const sc = await startTestSidecar(t, { ...config, node: { workload: 'frontend', namespace: 'shop' } })
  const c = client(t, sc.port)
  t.same([(await c.request('/x')).status, (await c.request('/x')).status, (await c.request('/x')).status], [200, 200, 429], 'shop/frontend may make 2 a minute')
})
