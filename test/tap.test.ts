// Tap: the hub's filters and lines, the admin /tap NDJSON stream on a real node:http server
// (order, filters, `active` as clients come and go, a slow client's drops), and `weft tap`.
import t from 'tap'
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { authorityHost, handleTapRequest, parseStatusFilter, TAP_MAX_QUEUED_BYTES, TapHub } from '../proxy/telemetry/tap.ts'
import { formatTapLine, runTap } from '../cli/tap.ts'
import type { RequestRecord } from '../proxy/telemetry/types.ts'
import { requestRecord } from './helpers/access-log.ts'

interface Teardown {
  teardown(fn: () => unknown): void
}

/** The shared record (test/helpers/access-log.ts) with this file's values: its assertions expect them. */
function rec(over: Partial<RequestRecord> = {}): RequestRecord {
  return requestRecord({ durationMs: 2.5, vhostName: 'reviews-vh', bytesIn: 0, bytesOut: 10, requestId: 'rid', ...over })
}

async function until(t: { fail(msg: string): void }, cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) {
      t.fail(`timed out waiting for ${what}`)
      return
    }
    await new Promise((r) => setTimeout(r, 5))
  }
}

interface TapServer {
  server: Server
  port: number
  /** the /tap responses, in order */
  responses: ServerResponse[]
}

async function startTapServer(t: Teardown, hub: TapHub): Promise<TapServer> {
  const responses: ServerResponse[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if ((req.url ?? '').startsWith('/tap')) {
      responses.push(res)
      return handleTapRequest(req, res, hub)
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { server, port: (server.address() as AddressInfo).port, responses }
}

interface Client {
  res: IncomingMessage
  lines: string[]
  /** the response body ended */
  ended: Promise<void>
  close(): void
}

/** GET path; resolves with the response once its head arrived (the subscription exists then). */
function tapClient(t: Teardown, port: number, path: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path }, (res) => {
      const lines: string[] = []
      let carry = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        const parts = (carry + d).split('\n')
        carry = parts.pop() ?? ''
        lines.push(...parts)
      })
      res.on('error', () => {})
      const ended = new Promise<void>((r) => res.on('end', () => r()))
      resolve({ res, lines, ended, close: () => req.destroy() })
    })
    req.on('error', reject)
    t.teardown(() => req.destroy())
  })
}

t.test('status filter and authority host parsing', async (t) => {
  t.same(parseStatusFilter('503'), { min: 503, max: 503 })
  t.same(parseStatusFilter('5xx'), { min: 500, max: 599 })
  t.same(parseStatusFilter('5XX'), { min: 500, max: 599 })
  t.same(parseStatusFilter('0xx'), { min: 0, max: 0 })
  t.same(parseStatusFilter('0'), { min: 0, max: 0 })
  for (const bad of ['', '50', '5x', '5xxx', 'abc', '099', '1000']) t.throws(() => parseStatusFilter(bad), /invalid status/, bad)
  t.equal(authorityHost('Reviews.Default:9080'), 'reviews.default')
  t.equal(authorityHost('reviews'), 'reviews')
  t.equal(authorityHost('[::1]:8080'), '[::1]')
  t.equal(authorityHost('[::1]'), '[::1]')
})

t.test('hub: active only while subscribed; filters; one line shared by subscribers', async (t) => {
  const hub = new TapHub()
  t.equal(hub.active, false)
  hub.onRequest(rec()) // nobody: nothing happens

  const got: Record<string, string[]> = { all: [], svc: [], vh: [], path: [], s5xx: [], s503: [], auth: [], combo: [] }
  const w = (k: string) => (line: string) => (got[k].push(line), true)
  const unsubs = [
    hub.subscribe({}, w('all')),
    hub.subscribe({ service: 'REVIEWS' }, w('svc')),
    hub.subscribe({ service: 'reviews-vh' }, w('vh')),
    hub.subscribe({ pathPrefix: '/api/' }, w('path')),
    hub.subscribe({ status: '5xx' }, w('s5xx')),
    hub.subscribe({ status: '503' }, w('s503')),
    hub.subscribe({ authority: 'Ratings:9080' }, w('auth')),
    hub.subscribe({ service: 'ratings', pathPrefix: '/api/', status: '5xx' }, w('combo')),
  ]
  t.equal(hub.active, true)
  t.equal(hub.subscribers, 8)

  hub.onRequest(rec({ requestId: 'a' }))
  hub.onRequest(rec({ requestId: 'b', authority: 'ratings:9080', vhostName: 'ratings', path: '/api/x', status: 503, flags: 'UF' }))
  hub.onRequest(rec({ requestId: 'c', authority: 'RATINGS', vhostName: 'ratings', path: '/api/y', status: 502 }))
  hub.onRequest(rec({ requestId: 'd', authority: 'other.example', vhostName: 'reviews-vh', status: 0, flags: 'DC' }))

  const ids = (k: string) => got[k].map((l) => (JSON.parse(l) as { requestId: string }).requestId)
  t.same(ids('all'), ['a', 'b', 'c', 'd'])
  t.same(ids('svc'), ['a'], 'service: authority host without port, case-insensitive')
  t.same(ids('vh'), ['a', 'd'], 'service: virtual host name')
  t.same(ids('path'), ['b', 'c'])
  t.same(ids('s5xx'), ['b', 'c'])
  t.same(ids('s503'), ['b'])
  t.same(ids('auth'), ['b'], 'authority: exact, case-insensitive')
  t.same(ids('combo'), ['b', 'c'])
  t.equal(got.all[1], got.s503[0], 'same line for every subscriber')

  t.same(JSON.parse(got.all[1]), {
    time: '2025-01-31T12:00:00.123Z', method: 'GET', authority: 'ratings:9080', path: '/api/x', status: 503,
    latencyMs: 2.5, flags: 'UF', route: 'reviews/0', cluster: 'reviews-v1', upstream: '10.0.0.7:9080', requestId: 'b', principal: '',
  })
  t.ok(got.all[0].endsWith('}\n'), 'NDJSON: one line each')

  const l = hub.forListener('outbound')
  l.onRequest(rec({ requestId: 'e' }))
  t.equal((JSON.parse(got.all[4]) as { listener: string }).listener, 'outbound')

  for (const u of unsubs) u()
  unsubs[0]() // idempotent
  t.equal(hub.active, false)
  t.equal(l.active, false)
  t.throws(() => hub.subscribe({ status: 'nope' }, () => true), /invalid status/)
  t.equal(hub.active, false)
})

t.test('GET /tap: NDJSON stream, in order, filtered; active follows the clients', async (t) => {
  const hub = new TapHub()
  const s = await startTapServer(t, hub)
  t.equal(hub.active, false)

  const all = await tapClient(t, s.port, '/tap')
  t.equal(all.res.statusCode, 200)
  t.equal(all.res.headers['content-type'], 'application/x-ndjson')
  t.equal(all.res.headers['transfer-encoding'], 'chunked')
  t.equal(hub.active, true, 'subscribed once the response head arrived')
  const errors = await tapClient(t, s.port, '/tap?service=ratings&path=/api/&status=5xx')
  t.equal(hub.subscribers, 2)

  for (let i = 0; i < 50; i++) {
    hub.onRequest(rec({ requestId: String(i), authority: i % 2 ? 'ratings:9080' : 'reviews:9080', path: '/api/' + i, status: i % 5 === 0 ? 503 : 200 }))
  }
  await until(t, () => all.lines.length === 50 && errors.lines.length === 5, 'lines')
  t.same(all.lines.map((l) => (JSON.parse(l) as { requestId: string }).requestId), Array.from({ length: 50 }, (_, i) => String(i)), 'in order')
  t.same(errors.lines.map((l) => (JSON.parse(l) as { requestId: string }).requestId), ['5', '15', '25', '35', '45'])

  errors.close()
  await until(t, () => hub.subscribers === 1, 'unsubscribe on disconnect')
  t.equal(hub.active, true)
  all.close()
  await until(t, () => !hub.active, 'inactive after the last client left')
  t.equal(hub.subscribers, 0)
  hub.onRequest(rec()) // no one: nothing written anywhere
})

t.test('GET /tap with a bad status filter: 400, no subscription', async (t) => {
  const hub = new TapHub()
  const s = await startTapServer(t, hub)
  const c = await tapClient(t, s.port, '/tap?status=5x')
  t.equal(c.res.statusCode, 400)
  await c.ended
  t.match(c.lines.join('\n'), /invalid status filter/)
  t.equal(hub.active, false)
})

t.test('a client that does not read: lines are dropped and counted, memory stays bounded', async (t) => {
  const hub = new TapHub()
  const s = await startTapServer(t, hub)
  // A raw client that sends the request and then stops reading.
  const sock = connect({ host: '127.0.0.1', port: s.port })
  t.teardown(() => sock.destroy())
  await new Promise<void>((resolve) => sock.once('connect', resolve))
  sock.write('GET /tap HTTP/1.1\r\nHost: admin\r\n\r\n')
  await until(t, () => hub.active, 'subscription')
  sock.pause()

  const big = 'x'.repeat(400)
  const total = 60_000 // ~30 MB of lines: more than the socket buffers hold
  // In batches across event-loop turns, as requests complete, so the kernel buffers fill first.
  let maxQueued = 0
  const res = s.responses[0]
  for (let i = 0; i < total; i++) {
    hub.onRequest(rec({ path: '/' + big, requestId: String(i) }))
    if (i % 1000 === 999) {
      maxQueued = Math.max(maxQueued, res.writableLength)
      await new Promise((r) => setImmediate(r))
    }
  }
  t.ok(hub.dropped > 0, `dropped ${hub.dropped} of ${total}`)
  t.ok(maxQueued < TAP_MAX_QUEUED_BYTES + 4096, `bytes queued in the process stay small (at most ${maxQueued})`)
  const accepted = total - hub.dropped

  // Read everything now: the accepted lines arrive in order; each time the response drained,
  // a {"dropped":N} line told how many were missed.
  let buf = ''
  let records = 0
  let lastId = -1
  let inOrder = true
  let droppedSum = 0
  sock.setEncoding('utf8')
  sock.on('data', (d: string) => {
    buf += d
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '')
      buf = buf.slice(nl + 1)
      if (!line.startsWith('{')) continue // HTTP head and chunk sizes
      const j = JSON.parse(line) as { requestId?: string; dropped?: number }
      if (j.dropped !== undefined) droppedSum += j.dropped
      else {
        records++
        if (Number(j.requestId) <= lastId) inOrder = false
        lastId = Number(j.requestId)
      }
    }
  })
  sock.resume()
  await until(t, () => records + droppedSum === total, 'every line or its drop reported', 10_000)
  t.equal(records, accepted, 'every accepted line arrived')
  t.ok(inOrder, 'in order')
  t.equal(droppedSum, hub.dropped, '{"dropped":N} lines report every drop')

  // Flowing again: new lines go through.
  hub.onRequest(rec({ requestId: String(total) }))
  await until(t, () => lastId === total, 'a line after the drain')
  sock.destroy()
  await until(t, () => !hub.active, 'inactive after disconnect')
})

t.test('closeAll ends the streams', async (t) => {
  const hub = new TapHub()
  const s = await startTapServer(t, hub)
  const c = await tapClient(t, s.port, '/tap')
  hub.closeAll()
  t.equal(hub.active, false)
  await c.ended
  t.equal(c.res.complete, true, 'the client saw its stream end cleanly (the chunked body complete, not cut off)')
})

t.test('weft tap: prints one line per request; --json; Ctrl-C and end of stream exit 0', async (t) => {
  const hub = new TapHub()
  const s = await startTapServer(t, hub)
  const capture = () => {
    const o = { text: '', write: (x: string) => ((o.text += x), true) }
    return o
  }

  // human-readable, filtered, stopped by the signal (Ctrl-C)
  const out = capture()
  const err = capture()
  const ac = new AbortController()
  const done = runTap({ admin: `127.0.0.1:${s.port}`, status: '5xx', pathPrefix: '/api' }, out, err, ac.signal)
  await until(t, () => hub.active, 'weft tap subscribed')
  hub.onRequest(rec({ status: 200, path: '/api/ok' }))
  hub.onRequest(rec({ status: 503, path: '/api/fail', flags: 'UF', durationMs: 1.5 }))
  await until(t, () => out.text.split('\n').length === 2, 'one printed line')
  ac.abort()
  t.equal(await done, 0, 'Ctrl-C: exit 0')
  t.equal(err.text, '')
  const line = out.text.trimEnd()
  t.equal(line, formatTapLine(JSON.stringify({
    time: '2025-01-31T12:00:00.123Z', method: 'GET', authority: 'reviews:9080', path: '/api/fail', status: 503, latencyMs: 1.5,
    flags: 'UF', route: 'reviews/0', cluster: 'reviews-v1', upstream: '10.0.0.7:9080', requestId: 'rid',
  })))
  t.match(line, /^12:00:00\.123 503 GET +1\.50ms reviews:9080\/api\/fail flags=UF route=reviews\/0 cluster=reviews-v1 upstream=10\.0\.0\.7:9080$/)
  await until(t, () => !hub.active, 'unsubscribed after Ctrl-C')

  // --json, ended by the proxy
  const jout = capture()
  const jdone = runTap({ admin: `http://127.0.0.1:${s.port}/`, json: true }, jout, err)
  await until(t, () => hub.active, 'weft tap --json subscribed')
  hub.onRequest(rec({ requestId: 'j1' }))
  hub.onRequest(rec({ requestId: 'j2' }))
  await until(t, () => jout.text.split('\n').length === 3, 'two raw lines')
  hub.closeAll()
  t.equal(await jdone, 0, 'end of stream: exit 0')
  t.same(jout.text.trimEnd().split('\n').map((l) => (JSON.parse(l) as { requestId: string }).requestId), ['j1', 'j2'])

  // errors: a bad filter (nothing sent), a refused connection
  const e1 = capture()
  t.equal(await runTap({ admin: `127.0.0.1:${s.port}`, status: "x" }, capture(), e1), 2, "bad usage: exit 2")
  t.match(e1.text, /invalid status filter/)
  const closed = createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const deadPort = (closed.address() as AddressInfo).port
  await new Promise((r) => closed.close(r))
  const e2 = capture()
  t.equal(await runTap({ admin: `127.0.0.1:${deadPort}` }, capture(), e2), 3, "nothing answers: exit 3")
  t.match(e2.text, /no Weft proxy admin API answers at 127\.0\.0\.1:\d+ \(connection refused\): is the proxy running/)
})

t.test('formatTapLine: listener column, dropped notice, non-JSON passthrough', async (t) => {
  t.match(formatTapLine('{"time":"2025-01-31T12:00:00.123Z","listener":"inbound","method":"POST","authority":"a","path":"/","status":0,"latencyMs":1234,"flags":"DC","route":"","cluster":"","upstream":""}'),
    /^12:00:00\.123 inbound {2}  0 POST +1\.23s a\/ flags=DC route=- cluster=- upstream=-$/)
  t.equal(formatTapLine('{"dropped":7}'), '… 7 requests not shown (tap client too slow)')
  t.equal(formatTapLine('garbage'), 'garbage')
})
