// The ejection count of outlier detection decays while an endpoint stays healthy: one step per
// baseEjectionTime since it returned (an injected clock; the return itself is the real timer).
import t from 'tap'
import { newOutlierState, OutlierDetector, OUTCOME_5XX } from '../proxy/cluster/outlier.ts'
import { until } from './helpers/sidecar.ts'

t.test('ejection time: base x count, the count one lower per baseEjectionTime healthy', async (t) => {
  let now = 0
  const eps = [0, 1].map((i) => ({ key: `10.0.0.${i}:80`, outlier: newOutlierState() }))
  t.teardown(() => {
    for (const e of eps) if (e.outlier.timer !== null) clearTimeout(e.outlier.timer)
  })
  const d = new OutlierDetector({ consecutive5xx: 1, baseEjectionTime: '20ms', maxEjectionTime: '1s', maxEjectionPercent: 100 }, eps, undefined, () => now)
  const s = eps[0].outlier
  const ejectOnce = async () => {
    d.report(eps[0], OUTCOME_5XX)
    t.ok(d.isEjected(s))
    const length = s.ejectedUntil - now
    await until('back', () => !d.isEjected(s), 2000, 2)
    return length
  }
  t.equal(await ejectOnce(), 20, 'first: base x 1')
  t.equal(await ejectOnce(), 40, 'again at once: base x 2')
  t.equal(await ejectOnce(), 60, 'base x 3')
  now += 40 // healthy for two base times: two steps down
  t.equal(await ejectOnce(), 40, '3 - 2 + 1 = 2: base x 2')
  now += 1_000_000 // a long healthy time: back to the start
  t.equal(await ejectOnce(), 20, 'base x 1')
  t.equal(s.ejections, 1)
})
