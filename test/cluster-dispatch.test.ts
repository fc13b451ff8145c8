// cluster.dispatch / cluster.endTry, the one call every exchange and mirror makes for a try: max
// requests, then the breaker, then the balancer's pick (avoiding the try's last endpoint), the
// handler told its endpoint, then the try opened on the endpoint's HTTP/1 pool or HTTP/2 session
// (returned, not started) -- or the refusal as a number. Active counts held until endTry, which
// reports the outcome once. Built from a config as the proxy builds it; the tries are never
// started here (the proxy tests start them against real upstreams).
import t from 'tap'
import { buildCluster, PoolRegistry, REJECT_CIRCUIT_OPEN, REJECT_NO_ENDPOINT, REJECT_OVERFLOW, REJECTIONS, type ClusterRuntime, type DispatchHandler, type EndpointState } from '../proxy/cluster/cluster.ts'
import { H1Try } from '../proxy/cluster/h1-try.ts'
import { OUTCOME_5XX, OUTCOME_OK } from '../proxy/cluster/outlier.ts'
import type { UpstreamTry } from '../proxy/cluster/try.ts'
import { H2Try } from '../proxy/h2/stream-try.ts'

const LIMITS = { maxHeaderBytes: 65536, maxHeaders: 100 }

/** A handler that records what dispatch told it (the try's events are never called: it is not started). */
interface Recorder extends DispatchHandler {
  told: { cluster: string; endpoint: string; hashKey: string | undefined; endpointSet: boolean }[]
}
const newTry = (headers: Record<string, string> = {}): Recorder => {
  const r = {
    endpoint: undefined as EndpointState | undefined,
    lastEndpoint: undefined as EndpointState | undefined,
    ticket: null,
    acStart: -1,
    told: [] as Recorder['told'],
    header: (name: string) => headers[name],
    dispatched(c: ClusterRuntime, ep: EndpointState, hashKey: string | undefined) {
      r.told.push({ cluster: c.name, endpoint: ep.key, hashKey, endpointSet: r.endpoint === ep })
    },
  }
  return r as unknown as Recorder
}
/** dispatch's answer as a try (it failed the test if it was a refusal) */
const opened = (d: UpstreamTry | number): UpstreamTry => {
  if (typeof d === 'number') throw new Error(`refused: ${REJECTIONS[d]?.code}`)
  return d
}

t.test('admission, pick, accounting and release', async (t) => {
  const registry = new PoolRegistry()
  t.teardown(() => registry.drainAll())
  const c = buildCluster({ name: 'c', pool: { maxRequests: 2 }, endpoints: [{ address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }] }, registry, LIMITS)
  const a = newTry()
  const b = newTry()
  const ta = opened(c.dispatch(a, null, true))
  const tb = opened(c.dispatch(b, [Buffer.from('body')], false))
  t.ok(ta instanceof H1Try && tb instanceof H1Try, 'an HTTP/1 cluster opens a try on the endpoint pool')
  t.equal(tb.buffered, 4, 'the body so far is queued on the try')
  t.same(a.told, [{ cluster: 'c', endpoint: a.endpoint?.key, hashKey: undefined, endpointSet: true }], 'the handler is told its endpoint once, before the try opens')
  t.not(a.endpoint, b.endpoint, 'round robin: two endpoints')
  t.equal(c.active, 2)
  t.same(c.endpoints.map((e) => e.active), [1, 1])
  const over = newTry()
  t.equal(c.dispatch(over, null, true), REJECT_OVERFLOW, 'max requests reached')
  t.same([over.told, over.endpoint], [[], undefined], 'a refused try is not told an endpoint')
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

  opened(c.dispatch(a, null, true))
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
    opened(c.dispatch(x, null, true))
    c.endTry(x, OUTCOME_5XX, false)
  }
  const refused = newTry()
  t.equal(c.dispatch(refused, null, true), REJECT_CIRCUIT_OPEN, 'two failures of two: open')
  t.equal(refused.endpoint, undefined)
  t.equal(c.counters.circuitOpen, 1)
  t.equal(c.endpoints[0].counters.rqTotal, 2, 'no pick for the refused try')
  t.equal(REJECTIONS[REJECT_CIRCUIT_OPEN]?.code, 'WEFT_ERR_CIRCUIT_OPEN')

  const empty = buildCluster({ name: 'e', endpoints: [] }, registry, LIMITS)
  t.equal(empty.dispatch(newTry(), null, true), REJECT_NO_ENDPOINT)
  t.equal(empty.active, 0)
  t.match(REJECTIONS[REJECT_NO_ENDPOINT], { status: 503, flag: 'UH', code: 'WEFT_ERR_NO_HEALTHY_UPSTREAM', counter: null })
})

t.test('an HTTP/2 cluster opens the try as a stream of the endpoint session; the affinity header is the hash key', async (t) => {
  const registry = new PoolRegistry()
  t.teardown(() => registry.drainAll())
  const c = buildCluster(
    { name: 'h2', protocol: 'http2', lb: { policy: 'ringHash', hashHeader: 'X-User' }, endpoints: [{ address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }, { address: '127.0.0.1', port: 3 }] },
    registry,
    LIMITS,
  )
  const keys: string[] = []
  for (let i = 0; i < 5; i++) {
    const x = newTry({ 'x-user': 'alice' })
    const tr = opened(c.dispatch(x, null, true))
    t.ok(tr instanceof H2Try, 'a stream try')
    t.equal(x.told[0]?.hashKey, 'alice', 'the balancer hashed on the header, as the handler is told')
    keys.push(x.endpoint!.key)
    c.endTry(x, OUTCOME_OK, false)
  }
  t.equal(new Set(keys).size, 1, 'one user, one endpoint')
  t.equal(c.active, 0)
})
