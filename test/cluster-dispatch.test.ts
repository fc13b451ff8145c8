// cluster.dispatch / cluster.endTry, the one place both exchanges admit a try: max requests, then
// the breaker, then the balancer's pick (avoiding the try's last endpoint); active counts held
// until endTry, which reports the outcome once. Built from a config as the proxy builds it.
import t from 'tap'
import { buildCluster, DISPATCHED, PoolRegistry, REJECT_CIRCUIT_OPEN, REJECT_NO_ENDPOINT, REJECT_OVERFLOW, REJECTIONS, type ClusterTry } from '../proxy/cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_OK } from '../proxy/cluster/outlier.ts'

const LIMITS = { maxHeaderBytes: 65536, maxHeaders: 100 }
const newTry = (): ClusterTry => ({ endpoint: undefined, lastEndpoint: undefined, ticket: null, acStart: -1 })

t.test('admission, pick, accounting and release', async (t) => {
  const registry = new PoolRegistry()
  t.teardown(() => registry.drainAll())
  const c = buildCluster({ name: 'c', pool: { maxRequests: 2 }, endpoints: [{ address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }] }, registry, LIMITS)
  const a = newTry()
  const b = newTry()
  t.equal(c.dispatch(a, undefined), DISPATCHED)
  t.equal(c.dispatch(b, undefined), DISPATCHED)
  t.not(a.endpoint, b.endpoint, 'round robin: two endpoints')
  t.equal(c.active, 2)
  t.same(c.endpoints.map((e) => e.active), [1, 1])
  t.equal(c.dispatch(newTry(), undefined), REJECT_OVERFLOW, 'max requests reached')
  t.equal(c.counters.overflow, 1)
  t.match(REJECTIONS[REJECT_OVERFLOW], { status: 503, flag: 'UO', code: 'WEFT_ERR_UPSTREAM_OVERFLOW', counter: 'overflow' })

  const first = a.endpoint
  c.endTry(a, OUTCOME_5XX, false)
  t.equal(a.endpoint, undefined)
  t.equal(a.lastEndpoint, first, 'the next pick avoids it')
  t.equal(c.active, 1)
  t.equal(first?.counters.rqError, 1)
  c.endTry(a, OUTCOME_5XX, false)
  t.equal(c.active, 1, 'a second endTry does nothing')
  t.equal(first?.counters.rqError, 1)

  t.equal(c.dispatch(a, undefined), DISPATCHED, 'a retry')
  t.not(a.endpoint, first, 'on the other endpoint')
  c.endTry(a, OUTCOME_OK, false)
  c.endTry(b, OUTCOME_OK, true)
  t.equal(c.active, 0)
  const other = c.endpoints.find((e) => e !== first)!
  t.same([first?.active, first?.counters.rqTotal], [0, 1], 'the first endpoint: one try')
  t.same([other.active, other.counters.rqTotal], [0, 2], 'the other: b and the retry')
})

t.test('an open breaker refuses before any pick; no endpoint at all is its own refusal', async (t) => {
  const registry = new PoolRegistry()
  t.teardown(() => registry.drainAll())
  const c = buildCluster(
    { name: 'b', circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 2, window: '10s', resetTimeout: '30s' }, endpoints: [{ address: '127.0.0.1', port: 1 }] },
    registry,
    LIMITS,
  )
  for (let i = 0; i < 2; i++) {
    const x = newTry()
    t.equal(c.dispatch(x, undefined), DISPATCHED)
    c.endTry(x, OUTCOME_5XX, false)
  }
  const refused = newTry()
  t.equal(c.dispatch(refused, undefined), REJECT_CIRCUIT_OPEN, 'two failures of two: open')
  t.equal(refused.endpoint, undefined)
  t.equal(c.counters.circuitOpen, 1)
  t.equal(c.endpoints[0].counters.rqTotal, 2, 'no pick for the refused try')
  t.equal(REJECTIONS[REJECT_CIRCUIT_OPEN]?.code, 'WEFT_ERR_CIRCUIT_OPEN')

  const empty = buildCluster({ name: 'e', endpoints: [] }, registry, LIMITS)
  t.equal(empty.dispatch(newTry(), undefined), REJECT_NO_ENDPOINT)
  t.equal(empty.active, 0)
  t.match(REJECTIONS[REJECT_NO_ENDPOINT], { status: 503, flag: 'UH', code: 'WEFT_ERR_NO_HEALTHY_UPSTREAM', counter: null })
})
