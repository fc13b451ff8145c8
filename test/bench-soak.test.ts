// The soak bench's pure parts: h2load's summary (captured real h2load 1.52 output in
// bench/fixtures/h2load/) and the RSS drift from minute 1 to the end.
import t from 'tap'
import fs from 'node:fs'
import { h2loadErrors, parseH2loadCounts, rssDrift } from '../bench/soak.ts'

const fixture = (name: string): string => fs.readFileSync(new URL(`../bench/fixtures/h2load/${name}`, import.meta.url), 'utf8')

t.test('h2load --h1 --rps run: rate, counts, no errors', async (t) => {
  const c = parseH2loadCounts(fixture('h1-rps-ok.txt'))
  t.same(c, { rps: 192, done: 384, succeeded: 384, failed: 0, errored: 0, timeout: 0, status: [384, 0, 0, 0] })
  t.equal(h2loadErrors(c), 0)
})

t.test('5xx answers and refused connections are errors, each counted once', async (t) => {
  const bad = parseH2loadCounts(fixture('h1-503.txt'))
  t.same(bad.status, [0, 0, 0, 10])
  t.equal(h2loadErrors(bad), 10)
  const refused = parseH2loadCounts(fixture('h1-refused.txt'))
  t.equal(refused.errored, 3)
  t.equal(h2loadErrors(refused), 3)
  t.throws(() => parseH2loadCounts('h2load: command not found'), /not understood/)
})

t.test('drift: the sample nearest the start time against the last one; slope over those samples', async (t) => {
  const MB = 1024 * 1024
  const flat = [0, 5, 10, 15, 20, 25, 30].map((s) => ({ t: s, rssBytes: 100 * MB }))
  t.match(rssDrift(flat, 12), { startT: 10, driftPct: 0, slopeMbPerMin: 0 })
  // 1 MB per 10 s from t=10: 100 MB at 10 s, 110 MB at 110 s
  const growing = Array.from({ length: 23 }, (_, i) => ({ t: i * 5, rssBytes: (i < 2 ? 95 : 100 + (i * 5 - 10) / 10) * MB }))
  const d = rssDrift(growing, 10)
  t.equal(d.startT, 10)
  t.equal(d.startBytes, 100 * MB)
  t.equal(d.endBytes, 110 * MB)
  t.equal(d.driftPct, 10)
  t.equal(d.slopeMbPerMin, 6)
  // the start sample is never the last one
  t.equal(rssDrift(flat.slice(0, 2), 60).startT, 0)
  t.throws(() => rssDrift(flat.slice(0, 1), 0))
})
