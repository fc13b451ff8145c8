// Fault injection as a client sees it: aborts with the configured status and flag FI, delays
// (flag DI), each for the configured share of requests within binomial bounds (mean ± 4.5
// standard deviations: a false failure about once in 150 000 runs).
import t from 'tap'
import { cluster, makeConfig, routeTo, startTestSidecar } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import { binomialBounds, client, metrics, parallel } from './helpers/policy.ts'
import { CompiledFault } from '../proxy/filters/fault/fault.ts'

t.test('abort: 30 % of requests get the configured status, flag FI', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app', { name: 'faulty', fault: { abort: { percent: 30, status: 418 } } })], clusters: [cluster('app', [up.port])] }),
  )
  const c = client(t, s.port, 16)
  const N = 400
  const replies = await parallel(N, 16, (i) => c.request(`/r${i}`))
  const aborted = replies.filter((r) => r.status === 418)
  const passed = replies.filter((r) => r.status === 200)
  t.equal(aborted.length + passed.length, N, 'every reply is an abort or the upstream answer')
  const { lo, hi } = binomialBounds(N, 0.3)
  t.ok(aborted.length >= lo && aborted.length <= hi, `${aborted.length} aborts of ${N}, expected ${lo}..${hi}`)
  t.ok(aborted.every((r) => r.get('x-weft-response-flags') === 'FI'), 'aborts carry flag FI')
  t.ok(aborted.every((r) => r.get('x-weft-error') === 'WEFT_ERR_FAULT_ABORT'), 'and WEFT_ERR_FAULT_ABORT')
  t.ok(passed.every((r) => r.get('x-weft-response-flags') === undefined), 'the others are relayed as they are')
  t.equal(up.requests.length, passed.length, 'aborted requests never reach the upstream')
  const m = await metrics(s)
  t.equal(m.decision('fault_abort'), aborted.length)
  t.equal(m.requests({ route: 'faulty', response_code: '418', response_flags: 'FI' }), aborted.length)
  t.equal(m.requests({ route: 'faulty', response_code: '200', response_flags: '-' }), passed.length)
})

t.test('delay: 50 % of requests wait the fixed delay, flag DI', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const DELAY = 40
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [routeTo('app', { name: 'slowed', fault: { delay: { percent: 50, fixedDelay: `${DELAY}ms` } } })],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = client(t, s.port, 25)
  const N = 200
  const replies = await parallel(N, 25, (i) => c.request(`/r${i}`))
  t.ok(replies.every((r) => r.status === 200), 'every request is answered by the upstream')
  t.equal(up.requests.length, N)
  const m = await metrics(s)
  const delayed = m.decision('fault_delay')
  const { lo, hi } = binomialBounds(N, 0.5)
  t.ok(delayed >= lo && delayed <= hi, `${delayed} delays of ${N}, expected ${lo}..${hi}`)
  t.equal(m.requests({ route: 'slowed', response_code: '200', response_flags: 'DI' }), delayed, 'delayed requests are flagged DI')
  t.equal(m.requests({ route: 'slowed', response_code: '200', response_flags: '-' }), N - delayed)
  // Loose latency check: every delayed request took the delay (timers may fire a ms early).
  const slow = replies.filter((r) => r.ms >= DELAY - 2).length
  t.ok(slow >= delayed, `${slow} replies took >= ${DELAY - 2} ms, at least the ${delayed} delayed ones`)
})

t.test('abort and delay together; 100 % abort never reaches the upstream', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const s = await startTestSidecar(
    t,
    makeConfig({
      routes: [
        routeTo('app', { name: 'down', match: { path: { prefix: '/down' } }, fault: { abort: { percent: 100, status: 503 } } }),
        routeTo('app', { name: 'both', fault: { abort: { percent: 50, status: 500 }, delay: { percent: 100, fixedDelay: '20ms' } } }),
      ],
      clusters: [cluster('app', [up.port])],
    }),
  )
  const c = client(t, s.port, 8)
  for (let i = 0; i < 5; i++) {
    const r = await c.request('/down')
    t.equal(r.status, 503)
    t.equal(r.get('x-weft-response-flags'), 'FI')
  }
  t.equal(up.requests.length, 0)
  const N = 100
  const replies = await parallel(N, 8, () => c.request('/both'))
  const aborted = replies.filter((r) => r.status === 500).length
  t.equal(replies.filter((r) => r.status === 200).length, N - aborted)
  const { lo, hi } = binomialBounds(N, 0.5)
  t.ok(aborted >= lo && aborted <= hi, `${aborted} aborts of ${N}, expected ${lo}..${hi}`)
  const m = await metrics(s)
  t.equal(m.decision('fault_abort'), 5 + aborted)
  t.equal(m.decision('fault_delay'), N - aborted, 'an aborted request is not also delayed (abort is decided first)')
  t.ok(replies.filter((r) => r.status === 200).every((r) => r.ms >= 18), 'every forwarded request was delayed')
})

t.test('the decision (injected random): below the percent faults, at or above it does not', async (t) => {
  const draws: number[] = []
  const f = new CompiledFault({ abort: { percent: 30, status: 418 }, delay: { percent: 50, fixedDelay: '1.5s' } }, () => draws.shift()!)
  draws.push(0, 0.2999, 0.3, 0.9999)
  t.same([f.abort(), f.abort(), f.abort(), f.abort()], [418, 418, 0, 0])
  draws.push(0.4999, 0.5)
  t.same([f.delay(), f.delay()], [1500, 0])
  t.same([f.aborts, f.delays], [2, 1], 'its counters')
  const never = new CompiledFault({ abort: { percent: 0, status: 500 } }, () => {
    throw new Error('percent 0 draws no random number')
  })
  t.equal(never.abort(), 0)
  t.equal(never.delay(), 0, 'no delay configured')
  const always = new CompiledFault({ abort: { percent: 100, status: 503 } }, () => 0.9999999)
  t.equal(always.abort(), 503)
})
