// The live decision trace (issue 16): a request sent with x-weft-explain: 1 by the local app gets an
// x-weft-explain-id, and the proxy's admin /explain/<id> (and `weft explain --admin`) tells why it got
// its answer: the routes tried before the one that matched and the condition each failed, the
// split's pick, each try's dispatch (the balancer's candidates, the endpoint avoided on a retry),
// the responses, the retry and its backoff, and the end. Over HTTP/1.1 and HTTP/2, with `weft tap
// --explain`, sampling, and the trust rule (the header is ignored on an inbound listener).
import t from 'tap'
import { request } from 'undici'
import { cluster, makeConfig, routeTo, startTestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { client, h2client } from './helpers/policy.ts'
import { runLiveExplain } from '../cli/explain.ts'
import type { Bootstrap } from '../api/schema.ts'

/** Two endpoints sharing one counter: the first request of all is answered 503, the rest 200. */
async function flaky(t: Parameters<typeof startHttpUpstream>[0]) {
  let n = 0
  const handler = (_rec: unknown, res: import('node:http').ServerResponse) => {
    const status = n++ === 0 ? 503 : 200
    res.writeHead(status, { 'content-length': '2' })
    res.end('ok')
  }
  const a = await startHttpUpstream(t, { name: 'a', handler })
  const b = await startHttpUpstream(t, { name: 'b', handler })
  return { ports: [a.port, b.port], reset: () => { n = 0 } }
}

function config(ports: number[], extra: Partial<Bootstrap> = {}): Bootstrap {
  const c = makeConfig({
    virtualHosts: [{
      name: 'svc',
      domains: ['*'],
      routes: [
        { name: 'admin-only', match: { path: { prefix: '/admin' } }, backends: [{ cluster: 'app' }] },
        { ...routeTo('app', { retry: { attempts: 2, backoff: { base: '1ms', max: '2ms' } } }), name: 'main', backends: [{ cluster: 'app', weight: 100 }, { cluster: 'spare', weight: 0 }] },
      ],
    }],
    clusters: [cluster('app', ports, { lb: { policy: 'leastRequest' } }), cluster('spare', [ports[0]!])],
  })
  return { ...c, ...extra }
}

type Step = { stage: string; atUs: number; [k: string]: any }

for (const proto of ['HTTP/1.1', 'HTTP/2'] as const) t.test(`${proto}: x-weft-explain from the app: the whole decision path, by its id`, async (t) => {
  const up = await flaky(t)
  const s = await startTestSidecar(t, config(up.ports))
  const c = proto === 'HTTP/1.1' ? client(t, s.port) : h2client(t, s.port)
  const r = await c.request('/items', { headers: { 'x-weft-explain': '1' } })
  t.equal(r.status, 200, 'the retry got the 200')
  const id = r.get('x-weft-explain-id')
  t.ok(id, 'the response names the trace')
  const e = await s.adminJson(`/explain/${encodeURIComponent(id!)}`)
  t.equal(e.requestId, id)
  t.equal(e.status, 200)
  t.equal(e.selectedBy, 'header')
  const steps = e.steps as Step[]
  const stages = steps.map((x) => x.stage)
  t.same(stages, ['request', 'route', 'split', 'dispatch', 'response', 'retry', 'backoff', 'dispatch', 'response', 'done'], stages.join(' '))
  const [req, route, split, d1, r1, retry, , d2, r2, done] = steps as Step[]
  t.match(req, { method: 'GET', path: '/items', direction: 'outbound', protocol: proto === 'HTTP/1.1' ? 'HTTP/1.1' : 'HTTP/2', selectedBy: 'header' })
  t.match(route, { virtualHost: 'svc', route: 'main', skipped: [{ route: 'admin-only', reason: 'path "/items" is not prefix "/admin"' }] })
  t.match(split, { backends: [{ cluster: 'app', weight: 100 }, { cluster: 'spare', weight: 0 }], picked: 'app' })
  t.match(d1, { try: 1, cluster: 'app', balancer: 'leastRequest', breaker: null, maxRequests: null, ejected: [] })
  t.equal(d1!.candidates.length, 2, 'the two candidates the balancer compared')
  t.match(r1, { try: 1, status: 503, endpoint: d1!.endpoint })
  t.match(retry, { reason: 'status 503 is retriable', nextTry: 2 })
  t.match(d2, { try: 2, avoided: d1!.endpoint })
  t.not(d2!.endpoint, d1!.endpoint, 'the retry went to the other endpoint')
  t.match(r2, { try: 2, status: 200, endpoint: d2!.endpoint })
  t.match(done, { status: 200, flags: '-' })
  for (let i = 1; i < steps.length; i++) t.ok(steps[i]!.atUs >= steps[i - 1]!.atUs, 'timings in order')

  // a request without the header: not traced, no id
  const before = (await s.adminJson('/explain')).recorded
  const plain = await c.request('/items')
  t.equal(plain.get('x-weft-explain-id'), undefined)
  t.equal((await s.adminJson('/explain')).recorded, before, 'nothing recorded')
})

t.test('a local reply is explained too; weft explain --admin prints it and says what to do for an unknown id', async (t) => {
  const up = await flaky(t)
  up.reset()
  const s = await startTestSidecar(t, makeConfig({ virtualHosts: [{ name: 'svc', domains: ['svc'], routes: [{ name: 'only-api', match: { path: { prefix: '/api' } }, backends: [{ cluster: 'app' }] }] }], clusters: [cluster('app', up.ports)] }))
  const c = client(t, s.port)
  const r = await c.request('/nope', { headers: { 'x-weft-explain': '1' } })
  t.equal(r.status, 404)
  const id = r.get('x-weft-explain-id')!
  const out: string[] = []
  const err: string[] = []
  const code = await runLiveExplain(`127.0.0.1:${s.adminPort}`, id, 'table', { write: (x: string) => out.push(x) }, { write: (x: string) => err.push(x) })
  t.equal(code, 0, err.join(''))
  const text = out.join('')
  t.match(text, new RegExp(`^REQUEST ${id} .* status 404 {2}flags NR`))
  t.match(text, /route +virtualHost=svc route=null skipped=\[\{"route":"only-api","reason":"path \\"\/nope\\" is not prefix \\"\/api\\""\}\]/)
  t.match(text, /local-reply +status=404 flag=NR code=WEFT_ERR_NO_ROUTE/)
  const json: string[] = []
  t.equal(await runLiveExplain(`127.0.0.1:${s.adminPort}`, id, 'json', { write: (x: string) => json.push(x) }, { write: () => {} }), 0)
  t.equal(JSON.parse(json.join('')).steps.at(-1).stage, 'done')
  const missing: string[] = []
  t.equal(await runLiveExplain(`127.0.0.1:${s.adminPort}`, 'no-such-id', 'table', { write: () => {} }, { write: (x: string) => missing.push(x) }), 1)
  t.match(missing.join(''), /no trace for request "no-such-id"[\s\S]*what to do: send the request again with the header x-weft-explain: 1/)
  const list: string[] = []
  t.equal(await runLiveExplain(`127.0.0.1:${s.adminPort}`, undefined, 'table', { write: (x: string) => list.push(x) }, { write: () => {} }), 0)
  t.match(list.join(''), new RegExp(`^1 traces kept \\(1 recorded since start\\)[\\s\\S]*${id} `))
})

t.test('trust: the header is ignored on an inbound listener; sampling traces requests on any listener', async (t) => {
  const up = await flaky(t)
  up.reset()
  const base = config(up.ports)
  const inbound: Bootstrap = { ...base, listeners: [{ ...base.listeners[0]!, direction: 'inbound' }] }
  const s = await startTestSidecar(t, inbound)
  const c = client(t, s.port)
  const r = await c.request('/items', { headers: { 'x-weft-explain': '1' } })
  t.equal(r.get('x-weft-explain-id'), undefined, 'a caller from another pod cannot ask for a trace')
  t.equal((await s.adminJson('/explain')).recorded, 0)

  const sampled = await startTestSidecar(t, { ...inbound, telemetry: { explain: { sampling: 100 } } })
  const c2 = client(t, sampled.port)
  await c2.request('/items')
  await c2.request('/items')
  const list = await sampled.adminJson('/explain')
  t.equal(list.recorded, 2, 'every request sampled at 100 %')
  t.same(list.traces.map((x: any) => x.selectedBy), ['sampling', 'sampling'])
  const e = await sampled.adminJson(`/explain/${encodeURIComponent(list.traces[0].requestId)}`)
  t.equal(e.steps[0].direction, 'inbound')
})

t.test('weft tap --explain: while it runs every request is traced and its line carries the steps', async (t) => {
  const up = await flaky(t)
  up.reset()
  const s = await startTestSidecar(t, config(up.ports))
  const c = client(t, s.port)
  await c.request('/warm') // the one 503 of the flaky pair is used up here (and retried)
  const res = await request(`http://127.0.0.1:${s.adminPort}/tap?explain=1`)
  t.equal(res.statusCode, 200)
  const lines: any[] = []
  let buf = ''
  const got = new Promise<void>((resolve) => {
    res.body.on('data', (d: Buffer) => {
      buf += d.toString()
      const parts = buf.split('\n')
      buf = parts.pop()!
      for (const p of parts) if (p !== '') lines.push(JSON.parse(p))
      if (lines.length > 0) resolve()
    })
  })
  const before = (await s.adminJson('/explain')).recorded
  await c.request('/items') // no header: traced because a tap asks
  await got
  t.equal(lines[0].path, '/items')
  t.same(lines[0].explain.map((x: Step) => x.stage), ['request', 'route', 'split', 'dispatch', 'response', 'done'])
  t.equal(lines[0].explain[0].selectedBy, 'tap')
  res.body.destroy()
  // once the tap is gone, requests are not traced any more
  for (let i = 0; i < 50 && (await s.admin('/stats')).status === 200; i++) {
    const n = (await s.adminJson('/explain')).recorded
    await c.request('/items')
    if ((await s.adminJson('/explain')).recorded === n) break
    await new Promise((r) => setTimeout(r, 10))
  }
  const after = (await s.adminJson('/explain')).recorded
  await c.request('/items')
  t.equal((await s.adminJson('/explain')).recorded, after, 'not traced after the tap left')
  t.ok(after >= before + 1)
})

t.test('the rate limit filter notes its decision; a refusal ends in its local reply', async (t) => {
  const up = await flaky(t)
  up.reset()
  const s = await startTestSidecar(t, makeConfig({ routes: [{ ...routeTo('app'), name: 'limited', rateLimit: { requests: 1, interval: '1m' } }], clusters: [cluster('app', up.ports)] }))
  const c = client(t, s.port)
  const ids: string[] = []
  for (let i = 0; i < 2; i++) ids.push((await c.request('/x', { headers: { 'x-weft-explain': '1' } })).get('x-weft-explain-id')!)
  const [first, second] = await Promise.all(ids.map((id) => s.adminJson(`/explain/${encodeURIComponent(id)}`)))
  t.match(first.steps.find((x: Step) => x.stage === 'rate-limit'), { key: 'route', allowed: true })
  t.match(second.steps.find((x: Step) => x.stage === 'rate-limit'), { key: 'route', allowed: false })
  t.match(second.steps.find((x: Step) => x.stage === 'local-reply'), { status: 429, flag: 'RL', code: 'WEFT_ERR_RATE_LIMITED' })
  t.equal(second.status, 429)
})
