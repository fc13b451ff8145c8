// The fuzz oracles can fail: the strict upstream checker flags what a smuggling proxy would write,
// and the engine saves a failing input and replays it.
import t from 'tap'
import { rmSync } from 'node:fs'
import { checkStream } from './strict.ts'
import { runTarget, loadRegressions, type Target } from './engine.ts'

const B = (s: string) => Buffer.from(s, 'latin1')

t.test('strict checker flags malformed upstream bytes', async (t) => {
  t.same(checkStream(B('GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n'), 'request').violations, [])
  t.equal(checkStream(B('GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n'), 'request').messages, 2)
  t.match(checkStream(B('GET /a HTTP/1.1\r\nHost: a\r\n\r\nhello'), 'request').violations.join(), /incomplete head/, 'unframed body')
  t.match(checkStream(B('POST /a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), 'request').violations.join(), /both content-length/)
  t.match(checkStream(B('GET /a HTTP/1.1\r\nX: a\rb\r\n\r\n'), 'request').violations.join(), /bad field value/)
  t.match(checkStream(B('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x\r\na\r\n0\r\n\r\n'), 'response').violations.join(), /non-canonical chunk size/)
  t.same(checkStream(B('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'), 'response').violations, [])
})

t.test('the engine reports, saves and replays a failing input', async (t) => {
  const target: Target = {
    name: 'selftest-nul',
    corpus: [B('abc')],
    tokens: ['\0'],
    check: (_c, i) => (i.bytes.includes(0) ? 'NUL seen' : null),
  }
  t.teardown(() => { for (const r of loadRegressions('selftest-nul')) rmSync(r.file) })
  const r = await runTarget(target, { seed: 1, numRuns: 2000, timeMs: 5000, save: true })
  t.ok(r.failures.length >= 1, 'failure found')
  t.match(r.failures[0]!.message, /NUL seen/)
  t.ok(loadRegressions('selftest-nul').length >= 1, 'saved')
  const again = await runTarget(target, { seed: 1, numRuns: 1, timeMs: 1000, save: false })
  t.ok(again.regressions >= 1 && again.failures.some((f) => f.message.startsWith('regression')), 'replayed')
})
