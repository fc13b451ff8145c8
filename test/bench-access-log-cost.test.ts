// The statistics of `bench --access-log-cost` (bench/access-log-cost.ts) and the schedstat reading it uses.
import t from 'tap'
import { medianCiRanks, quantile, roundOf, spread, summarizeCost, type CostRun } from '../bench/access-log-cost.ts'
import { parseSchedstatNs, readThreadsCpuNs } from '../bench/proc.ts'

t.test('quantiles and the median interval', async (t) => {
  t.equal(quantile([1, 2, 3, 4], 0.5), 2.5)
  t.equal(quantile([1, 2, 3, 4, 5], 0.25), 2)
  t.equal(quantile([10], 0.75), 10)
  t.ok(Number.isNaN(quantile([], 0.5)))
  // P(Binomial(n, 1/2) < k) <= 2.5 %: the usual table
  t.equal(medianCiRanks(5), null, 'too few values')
  t.same(medianCiRanks(6), [1, 6])
  t.same(medianCiRanks(10), [2, 9])
  t.same(medianCiRanks(20), [6, 15])
  t.same(medianCiRanks(21), [6, 16])
  const s = spread([5, 1, 4, 2, 3, 6, 7, 8, 9, 10])
  t.match(s, { median: 5.5, q1: 3.25, q3: 7.75, min: 1, max: 10, ciLow: 2, ciHigh: 9 })
})

t.test('round ratios and the summary', async (t) => {
  const run = (row: CostRun['row'], rps: number, cpu: number): CostRun => ({ row, rps, requests: rps * 2, errors: 0, cpuUsPerReq: cpu, mainUsPerReq: cpu * 0.9 })
  const rounds = [1, 2, 3, 4, 5, 6].map((i) => roundOf(i, run('weft', 1000 * i, 40), run('weft+accesslog', 900 * i, 44), 1 + (i % 2)))
  t.equal(rounds[0].rpsRatio, 0.9)
  t.equal(rounds[0].cpuRatio, 1.1)
  t.equal(rounds[0].pair, 2)
  const s = summarizeCost(rounds)
  t.equal(s.rounds, 6)
  t.equal(s.rpsRatio.median, 0.9)
  t.equal(Math.round(s.costPct.median * 1000) / 1000, 9.091, '1 − 1/1.1')
  t.equal(s.rps.weft.median, 3500)
})

t.test('schedstat: this process\'s threads, ns', async (t) => {
  t.equal(parseSchedstatNs('2961381 296058 2\n'), 2961381)
  const a = readThreadsCpuNs(process.pid)
  let x = 0
  for (let i = 0; i < 2e6; i++) x += Math.sqrt(i)
  const b = readThreadsCpuNs(process.pid)
  t.ok(x > 0)
  t.ok(b.mainNs > a.mainNs, 'the main thread ran')
  t.ok(b.totalNs >= b.mainNs, 'all threads include the main thread')
})
