// Telemetry through a real sidecar, as an operator meets it: the access log file, `weft tap`'s
// admin stream while requests pass, and tracing with the collector down.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { request } from 'node:http'
import { cluster, getStatus as get, makeConfig, routeTo, startTestSidecar, until } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'
import type { Bootstrap } from '../api/schema.ts'

function config(up: number): Bootstrap {
  const b = makeConfig({
    virtualHosts: [{ name: 'shop', service: { name: 'shop', namespace: 'prod' }, routes: [routeTo('shop', { name: 'all' })] }],
    clusters: [cluster('shop', [up])],
  })
  b.node = { workload: 'web', namespace: 'prod' }
  return b
}

t.test('access log: one JSON line per request with every field', async (t) => {
  const up = await startHttpUpstream(t, { name: 'shop' })
  const b = config(up.port)
  const s0 = await startTestSidecar(t, b) // to get a temp dir for the log file
  const logFile = join(s0.dir, 'access.log')
  await s0.sidecar.close()
  b.telemetry = { accessLog: { enabled: true, path: logFile } }
  const s = await startTestSidecar(t, b)
  t.equal(await get(s.port, 'shop', '/a?x=1'), 200)
  t.equal(await get(s.port, 'nowhere', '/b'), 404)
  await s.sidecar.close() // flushes the log
  const lines = await until('two log lines', () => {
    const text = readFileSync(logFile, 'utf8')
    const l = text.split('\n').filter((x) => x !== '')
    return l.length >= 2 ? l : undefined
  })
  const [ok, nr] = lines!.map((l) => JSON.parse(l))
  t.match(ok, {
    reporter: 'source',
    source_workload: 'web',
    source_namespace: 'prod',
    method: 'GET',
    authority: 'shop',
    path: '/a?x=1',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    route_name: 'all',
    upstream_cluster: 'shop',
    upstream_host: `127.0.0.1:${up.port}`,
    bytes_received: 0,
    downstream_remote_address: '127.0.0.1',
  })
  t.ok(ok.bytes_sent > 0, 'response bytes')
  t.ok(typeof ok.duration_ms === 'number' && ok.duration_ms > 0, 'duration')
  t.match(ok.request_id, /^[0-9a-f-]{36}$/, 'the generated x-request-id')
  t.equal(ok.request_id, up.requests[0].header('x-request-id'), 'same id the upstream saw')
  t.ok(!Number.isNaN(Date.parse(ok.start_time)), 'start time')
  t.match(nr, { response_code: 404, response_flags: 'NR', route_name: null, upstream_cluster: null })
})

t.test('tap: requests appear on the admin stream as they happen', async (t) => {
  const up = await startHttpUpstream(t, { name: 'shop' })
  const s = await startTestSidecar(t, config(up.port))
  const lines: string[] = []
  const req = request({ host: '127.0.0.1', port: s.adminPort, path: '/tap?path=/tapped' })
  t.teardown(() => req.destroy())
  const opened = new Promise<void>((resolve) => {
    req.on('response', (res) => {
      res.setEncoding('utf8')
      let buf = ''
      res.on('data', (d: string) => {
        buf += d
        let i
        while ((i = buf.indexOf('\n')) !== -1) {
          lines.push(buf.slice(0, i))
          buf = buf.slice(i + 1)
        }
      })
      resolve()
    })
  })
  req.end()
  await opened
  await until('subscribed', async () => (await s.adminJson('/stats')) && true)
  await get(s.port, 'shop', '/not-this-one')
  await get(s.port, 'shop', '/tapped/1')
  const got = await until('tap line', () => (lines.length > 0 ? lines : undefined))
  const first = JSON.parse(got![0])
  t.match(first, { method: 'GET', authority: 'shop', path: '/tapped/1', status: 200, route: 'all', cluster: 'shop', listener: 'out' })
  t.equal(lines.length, 1, 'the filter kept the other request out')
})

t.test('tracing with the collector down: requests unaffected, spans dropped and counted', async (t) => {
  const up = await startHttpUpstream(t, { name: 'shop' })
  const b = config(up.port)
  // Port 1 on loopback: nothing listens there.
  b.telemetry = { tracing: { enabled: true, zipkinUrl: 'http://127.0.0.1:1/api/v2/spans', sampling: 100, batchInterval: '20ms' } }
  const s = await startTestSidecar(t, b)
  for (let i = 0; i < 5; i++) t.equal(await get(s.port, 'shop', `/t${i}`), 200)
  const seen = up.requests[0]
  t.match(seen.header('x-b3-traceid'), /^[0-9a-f]{32}$/, 'trace context sent upstream')
  t.equal(seen.header('x-b3-sampled'), '1')
  t.match(seen.header('x-b3-spanid'), /^[0-9a-f]{16}$/)
  const dropped = await until('spans dropped', async () => {
    const text = (await s.admin('/metrics')).body
    const m = /^weft_tracing_spans_dropped_total (\d+)/m.exec(text)
    return m !== null && Number(m[1]) >= 5 ? Number(m[1]) : undefined
  })
  t.equal(dropped, 5, 'every span of the 5 requests dropped')
  t.match((await s.admin('/metrics')).body, /^weft_tracing_spans_reported_total 5$/m)
})
