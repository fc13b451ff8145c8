// The breaker's closed-state window (proxy/cluster/breaker.ts) on an injected clock: what opens
// it, what has fallen out of the window, the "or more" threshold, and a clean window after close.
import t from 'tap'
import { ClusterBreaker } from '../proxy/cluster/breaker.ts'

function breaker(t: { teardown(fn: () => void): void }, cfg: ConstructorParameters<typeof ClusterBreaker>[0]) {
  let now = 0
  const b = new ClusterBreaker({ window: '10s', buckets: 10, resetTimeout: '1h', ...cfg }, 'test', () => now)
  t.teardown(() => b.shutdown())
  const run = (ok: boolean) => {
    const ticket = b.admit()
    if (ticket === null) return false
    ticket(ok)
    return true
  }
  return { b, run, advance: (ms: number) => void (now += ms) }
}

t.test('opens at the threshold ("or more") once the volume is reached, then fails fast', async (t) => {
  const { b, run } = breaker(t, { errorThresholdPercentage: 50, volumeThreshold: 4 })
  run(true)
  run(false)
  run(true)
  t.equal(b.state, 'closed', '1 of 3 failed, under the volume')
  run(false)
  t.equal(b.state, 'open', '2 of 4 failed: 50 % or more with the volume reached')
  t.equal(run(true), false, 'open: fails fast')
  t.equal(b.rejected, 1)
})

t.test('failures older than the window do not count', async (t) => {
  const { b, run, advance } = breaker(t, { errorThresholdPercentage: 50, volumeThreshold: 4 })
  for (let i = 0; i < 3; i++) run(false)
  advance(10_000) // the whole window later: those three are gone
  run(false)
  run(true)
  run(true)
  t.equal(b.state, 'closed', '1 of 3 in the window')
  advance(4_000) // still in the window
  run(true)
  run(false)
  t.equal(b.state, 'closed', '2 of 5 failed: 40 %')
  run(false)
  t.equal(b.state, 'open', '3 of 6 failed: 50 %')
})

t.test('100 % means every request failed; a success keeps it closed', async (t) => {
  const { b, run } = breaker(t, { errorThresholdPercentage: 100, volumeThreshold: 3 })
  run(false)
  run(true)
  run(false)
  run(false)
  t.equal(b.state, 'closed', '3 of 4 failed')
  const c = breaker(t, { errorThresholdPercentage: 100, volumeThreshold: 3 })
  for (let i = 0; i < 3; i++) c.run(false)
  t.equal(c.b.state, 'open')
})

t.test('outcomes that end while the breaker is open are not counted', async (t) => {
  const { b, run } = breaker(t, { errorThresholdPercentage: 50, volumeThreshold: 2 })
  const late = b.admit()!
  run(false)
  run(false)
  t.equal(b.state, 'open')
  late(false) // admitted while closed, ended while open
  b.breaker.close()
  run(false)
  t.equal(b.state, 'closed', 'the late failure is not in the new window')
})

t.test('after a close the window starts empty', async (t) => {
  const { b, run } = breaker(t, { errorThresholdPercentage: 50, volumeThreshold: 2 })
  run(false)
  run(false)
  t.equal(b.state, 'open')
  b.breaker.close() // what a successful half-open probe does
  t.equal(b.state, 'closed')
  run(false)
  t.equal(b.state, 'closed', 'one failure after the close: under the volume again')
  run(false)
  t.equal(b.state, 'open')
})
