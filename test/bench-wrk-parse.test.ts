// The benchmark's wrk report parser, on captured real wrk 4.1.0 output (bench/fixtures/wrk/).
import t from 'tap'
import fs from 'node:fs'
import { parseDurationUs, parseSizeBytes, parseWrk, wrkArgs, wrkErrorCount } from '../bench/wrk.ts'
import { parseStatCpuSeconds, parseStatus } from '../bench/proc.ts'

const fixture = (name: string): string =>
  fs.readFileSync(new URL(`../bench/fixtures/wrk/${name}`, import.meta.url), 'utf8')

t.test('duration and size units', async (t) => {
  t.equal(parseDurationUs('516.04us'), 516.04)
  t.equal(parseDurationUs('1.05ms'), 1050)
  t.equal(parseDurationUs('2.00s'), 2_000_000)
  t.equal(parseDurationUs('1.50m'), 90_000_000)
  t.equal(parseDurationUs('0.00us'), 0)
  t.ok(Number.isNaN(parseDurationUs('-nan%')))
  t.equal(parseSizeBytes('0.00B'), 0)
  t.equal(parseSizeBytes('473.81KB'), 473.81 * 1024)
  t.equal(parseSizeBytes('58.57MB'), 58.57 * 1024 * 1024)
})

t.test('50 connections with --latency, mixed us/ms percentiles', async (t) => {
  const r = parseWrk(fixture('direct-c50.txt'))
  t.equal(r.url, 'http://127.0.0.1:34677/')
  t.equal(r.threads, 1)
  t.equal(r.connections, 50)
  t.equal(r.requests, 346955)
  t.equal(r.durationSec, 3.1)
  t.equal(r.rps, 111878.71)
  t.equal(r.latencyAvgUs, 426.67)
  t.equal(r.latencyStdevUs, 401.99)
  t.equal(r.latencyMaxUs, 7910)
  t.same(r.percentilesUs, { '50': 334, '75': 473, '90': 545, '99': 2380 })
  t.same(r.errors, { connect: 0, read: 0, write: 0, timeout: 0 })
  t.equal(r.non2xx3xx, 0)
  t.equal(r.transferBytesPerSec, 18.89 * 1024 * 1024)
  t.equal(wrkErrorCount(r), 0)
})

t.test('1 connection with --latency', async (t) => {
  const r = parseWrk(fixture('nginx-c1.txt'))
  t.equal(r.connections, 1)
  t.equal(r.requests, 27445)
  t.equal(r.durationSec, 3)
  t.equal(r.rps, 9141.04)
  t.same(r.percentilesUs, { '50': 88, '75': 110, '90': 445, '99': 3110 })
})

t.test('without --latency there is no distribution', async (t) => {
  const r = parseWrk(fixture('nolatency.txt'))
  t.equal(r.rps, 37707.56)
  t.equal(r.latencyAvgUs, 1300)
  t.same(r.percentilesUs, {})
})

t.test('socket errors and non-2xx responses are counted', async (t) => {
  const r = parseWrk(fixture('errors.txt'))
  t.same(r.errors, { connect: 0, read: 219, write: 0, timeout: 0 })
  t.equal(r.non2xx3xx, 1535)
  t.equal(r.percentilesUs['90'], 850)
  t.equal(r.transferBytesPerSec, 473.81 * 1024)
  t.equal(wrkErrorCount(r), 1754)
})

t.test('a run where every request failed', async (t) => {
  const r = parseWrk(fixture('allfail.txt'))
  t.equal(r.requests, 0)
  t.equal(r.rps, 0)
  t.equal(r.latencyAvgUs, 0)
  t.equal(r.percentilesUs['50'], 0)
  t.equal(r.errors.read, 32994)
  t.ok(wrkErrorCount(r) > 0)
})

t.test('wrk that could not connect is an error, not a result', async (t) => {
  t.throws(() => parseWrk(fixture('refused.txt')), /not a complete wrk report: unable to connect/)
  t.throws(() => parseWrk(''), /not a complete wrk report/)
})

t.test('wrk command line', async (t) => {
  t.same(wrkArgs({ url: 'http://127.0.0.1:1/', connections: 50, durationSec: 10 }), ['-t1', '-c50', '-d10s', 'http://127.0.0.1:1/'])
  t.same(wrkArgs({ url: 'http://127.0.0.1:1/', connections: 1, durationSec: 4, latency: true }), [
    '-t1',
    '-c1',
    '-d4s',
    '--latency',
    'http://127.0.0.1:1/',
  ])
})

t.test('/proc parsers', async (t) => {
  const status = 'Name:\tnginx\nVmPeak:\t   20000 kB\nVmHWM:\t    6000 kB\nVmRSS:\t    5000 kB\n'
  t.same(parseStatus(status), { hwmBytes: 6000 * 1024, rssBytes: 5000 * 1024 })
  // comm with spaces and parentheses; utime=150 stime=50 ticks -> 2 s
  const stat = '1234 (node (main) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 7 0 100 1000 200'
  t.equal(parseStatCpuSeconds(stat), 2)
})
