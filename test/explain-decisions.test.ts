// The live decision trace (issue 16), the decisions explain-live.test.ts does not reach: the
// hash-based balancer's key and hash, an ejected endpoint listed and skipped, the cluster's
// max-requests refusal with its flag, and a retry the budget refused. Real sidecar, real upstreams,
// traces read from the admin /explain/<id> as `weft explain --admin` reads them.
import t from 'tap'
import type { ServerResponse } from 'node:http'
import { cluster, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { client } from './helpers/policy.ts'
import { hash32 } from '../proxy/lb/index.ts'

type Step = { stage: string; atUs: number; [k: string]: any }

function answer(status: number) {
  return (_rec: unknown, res: ServerResponse) => {
    res.writeHead(status, { 'content-length': '2' })
    res.end('ok')
  }
}

async function trace(s: Awaited<ReturnType<typeof startTestSidecar>>, id: string | undefined): Promise<{ status: number; flags: string; steps: Step[] }> {
  if (id === undefined) throw new Error('no x-weft-explain-id')
  return (await s.adminJson(`/explain/${encodeURIComponent(id)}`)) as { status: number; flags: string; steps: Step[] }
}

t.test('ringHash: the key, its hash and the endpoint; an ejected endpoint is listed and skipped', async (t) => {
  const bad = await startHttpUpstream(t, { name: 'bad', handler: answer(503) })
  const good = await startHttpUpstream(t, { name: 'good', handler: answer(200) })
  const s = await startTestSidecar(t, makeConfig({
    routes: [routeTo('app', { retry: { attempts: 0 } })],
    clusters: [cluster('app', [bad.port, good.port], {
      lb: { policy: 'ringHash', hashHeader: 'x-user' },
      outlierDetection: { consecutive5xx: 1, baseEjectionTime: '60s', maxEjectionPercent: 50 },
    })],
  }))
  const c = client(t, s.port)
  // before any ejection: the traced pick is the ring owner of the key's hash
  const first = await c.request('/', { headers: { 'x-weft-explain': '1', 'x-user': 'alice' } })
  const d0 = (await trace(s, first.get('x-weft-explain-id'))).steps.find((x) => x.stage === 'dispatch')!
  t.match(d0, { balancer: 'ringHash', hashKey: 'alice', hash: hash32('alice'), ejected: [] })
  // send keys until one lands on the failing endpoint: it is ejected after its first 503
  for (let i = 0; i < 200 && bad.requests.length === 0; i++) await c.request('/', { headers: { 'x-user': `u${i}` } })
  t.equal(bad.requests.length, 1, 'one request reached the failing endpoint')
  const badKey = `127.0.0.1:${bad.port}`
  await until('the endpoint ejected', async () => {
    const r = await c.request('/', { headers: { 'x-weft-explain': '1', 'x-user': 'bob' } })
    const d = (await trace(s, r.get('x-weft-explain-id'))).steps.find((x) => x.stage === 'dispatch')!
    return Array.isArray(d.ejected) && d.ejected.includes(badKey)
  }, 3000, 20)
  // now every key goes to the healthy endpoint, and the trace says which one was skipped
  for (const user of ['carol', 'dave', 'erin']) {
    const r = await c.request('/', { headers: { 'x-weft-explain': '1', 'x-user': user } })
    t.equal(r.status, 200, user)
    const e = await trace(s, r.get('x-weft-explain-id'))
    const d = e.steps.find((x) => x.stage === 'dispatch')!
    t.match(d, { hashKey: user, hash: hash32(user), endpoint: `127.0.0.1:${good.port}`, ejected: [badKey] }, user)
  }
  t.equal(bad.requests.length, 1, 'nothing more reached the ejected endpoint')
})

t.test('maxRequests: the refusal, its flag and the requests in flight; the end says 503 UO', async (t) => {
  const held: ServerResponse[] = []
  const up = await startHttpUpstream(t, { name: 'slow', handler: (_rec, res) => { held.push(res) } })
  t.teardown(() => { for (const r of held) r.destroy() })
  const s = await startTestSidecar(t, makeConfig({
    routes: [routeTo('app', { retry: { attempts: 0 } })],
    clusters: [cluster('app', [up.port], { pool: { maxRequests: 1 } })],
  }))
  const c = client(t, s.port)
  const pending = c.request('/held')
  await until('the first request at the upstream', () => held.length === 1, 3000, 5)
  const r = await c.request('/over', { headers: { 'x-weft-explain': '1' } })
  t.equal(r.status, 503)
  const e = await trace(s, r.get('x-weft-explain-id'))
  t.equal(e.status, 503)
  t.equal(e.flags, 'UO')
  const d = e.steps.find((x) => x.stage === 'dispatch')!
  t.match(d, { try: 1, cluster: 'app', inFlight: 1, maxRequests: 1, flag: 'UO' })
  t.type(d.refused, 'string', `refused: ${d.refused}`)
  t.equal(d.endpoint, undefined, 'no endpoint was picked')
  t.match(e.steps.at(-1), { stage: 'done', status: 503, flags: 'UO' })
  held[0]!.writeHead(200, { 'content-length': '0' }).end()
  t.equal((await pending).status, 200)
})

t.test('retry budget spent: the failure is returned, and the trace says the budget refused the retry', async (t) => {
  const up = await startHttpUpstream(t, { name: 'failing', handler: answer(503) })
  const s = await startTestSidecar(t, makeConfig({
    routes: [routeTo('app', { retry: { attempts: 2, backoff: { base: '1ms', max: '2ms' }, budget: { percent: 0, minRetriesPerSecond: 0 } } })],
    clusters: [cluster('app', [up.port])],
  }))
  const c = client(t, s.port)
  const r = await c.request('/', { headers: { 'x-weft-explain': '1' } })
  t.equal(r.status, 503)
  const e = await trace(s, r.get('x-weft-explain-id'))
  const stages = e.steps.map((x) => x.stage)
  t.same(stages, ['request', 'route', 'dispatch', 'response', 'no-retry', 'done'], stages.join(' '))
  t.match(e.steps.find((x) => x.stage === 'no-retry'), { reason: 'the retry budget is exhausted' })
  t.equal(up.requests.length, 1, 'one try only')
  t.match(e.flags, /URX/)
})
