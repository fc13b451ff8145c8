// The JSON access log: every field with its type and value, status-class filter, sampling with an
// injected random, flush/close, append, a destination that cannot be opened, standard output.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createAccessLog, isoTime } from '../proxy/telemetry/access-log.ts'
import type { PeerLabels, RequestRecord } from '../proxy/telemetry/types.ts'
import { RECORD_START, requestRecord } from './helpers/access-log.ts'

const OUTBOUND: PeerLabels = {
  reporter: 'source',
  sourceWorkload: 'productpage-v1',
  sourceNamespace: 'shop',
  destinationService: 'unknown',
  destinationWorkload: 'unknown',
  destinationNamespace: 'unknown',
  sourcePrincipal: 'unknown',
  destinationPrincipal: 'unknown',
  connectionSecurityPolicy: 'unknown',
}

const START = RECORD_START

/** the shared record with a path that has a character to escape */
const rec = (over: Partial<RequestRecord> = {}): RequestRecord => requestRecord({ path: '/reviews/1?x="y"', ...over })

function tmp(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-access-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

const FIELDS = [
  'start_time', 'reporter', 'source_workload', 'source_namespace', 'destination_workload', 'destination_namespace',
  'duration_ms', 'method', 'authority', 'path', 'protocol', 'response_code', 'response_flags', 'route_name',
  'upstream_cluster', 'upstream_host', 'bytes_received', 'bytes_sent', 'request_id', 'trace_id', 'downstream_remote_address', 'source_principal',
]

t.test('every field, in order, with its type and value', async (t) => {
  const file = join(tmp(t), 'access.log')
  const log = createAccessLog({ path: file }, OUTBOUND)
  t.teardown(() => log.close())
  log.onRequest(rec())
  // a local reply before routing: no route, cluster, endpoint or request id
  log.onRequest(rec({ status: 404, flags: 'NR', routeName: '', vhostName: '', clusterName: '', upstreamHost: '', requestId: '', bytesOut: 40, protocol: 'HTTP/1.0' }))
  // the client went away before any response; traced
  log.onRequest(rec({ status: 0, flags: 'DC', durationMs: 0.0004, bytesOut: 0, traceId: '4bf92f3577b34da6a3ce929d0e0e4736' }))
  await log.flush()

  const got = lines(file)
  t.equal(got.length, 3)
  for (const l of got) t.same(Object.keys(l), FIELDS, 'fixed field set, fixed order')

  t.same(got[0], {
    start_time: '2025-01-31T12:00:00.123Z',
    reporter: 'source',
    source_workload: 'productpage-v1',
    source_namespace: 'shop',
    destination_workload: 'unknown',
    destination_namespace: 'unknown',
    duration_ms: 1.235,
    method: 'GET',
    authority: 'reviews:9080',
    path: '/reviews/1?x="y"',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    route_name: 'reviews/0',
    upstream_cluster: 'reviews-v1',
    upstream_host: '10.0.0.7:9080',
    bytes_received: 12,
    bytes_sent: 3456,
    request_id: '0b7e1c0e-4a4b-4c5e-9a52-8d1f0c2f3a10',
    trace_id: null,
    downstream_remote_address: '127.0.0.1',
    source_principal: null,
  })
  t.match(got[1], {
    response_code: 404, response_flags: 'NR', route_name: null, upstream_cluster: null, upstream_host: null,
    request_id: null, bytes_sent: 40, protocol: 'HTTP/1.0',
  })
  t.match(got[2], { response_code: 0, response_flags: 'DC', duration_ms: 0, trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', bytes_sent: 0 })

  for (const l of got) {
    t.type(l.start_time, 'string')
    t.type(l.duration_ms, 'number')
    t.type(l.response_code, 'number')
    t.type(l.bytes_received, 'number')
    t.type(l.bytes_sent, 'number')
    t.type(l.response_flags, 'string')
  }
})

t.test('isoTime matches Date#toISOString (cached per second)', async (t) => {
  const base = Date.UTC(2025, 0, 31, 23, 59, 58)
  for (const ms of [0, base, base + 1, base + 9.99, base + 10, base + 99.5, base + 100, base + 999.999, base + 1000, base + 2001.25, 1e12 + 0.5]) {
    t.equal(isoTime(ms), new Date(Math.floor(ms)).toISOString(), String(ms))
  }
  let bad = 0
  for (let i = 0; i < 10000; i++) {
    const ms = base + Math.random() * 5000
    if (isoTime(ms) !== new Date(Math.floor(ms)).toISOString()) bad++
  }
  t.equal(bad, 0, 'random times')
})

t.test('JSON stays valid for any request bytes', async (t) => {
  const file = join(tmp(t), 'esc.log')
  const log = createAccessLog({ path: file }, { ...OUTBOUND, sourceWorkload: 'we"ird\\' })
  const nasty = 'a"b\\c\u0001\u007f\u00e9\ud800/'
  log.onRequest(rec({ path: nasty, authority: 'h\u00ff', method: 'M"', durationMs: NaN }))
  await log.close()
  const [l] = lines(file)
  t.equal(l.path, nasty)
  t.equal(l.authority, 'h\u00ff')
  t.equal(l.method, 'M"')
  t.equal(l.source_workload, 'we"ird\\')
  t.equal(l.duration_ms, null, 'a non-finite number becomes null, not invalid JSON')
})

t.test('inbound labels', async (t) => {
  const file = join(tmp(t), 'in.log')
  const log = createAccessLog({ path: file }, {
    reporter: 'destination', sourceWorkload: 'unknown', sourceNamespace: 'unknown',
    destinationService: 'reviews', destinationWorkload: 'reviews-v1', destinationNamespace: 'shop',
    sourcePrincipal: 'unknown', destinationPrincipal: 'unknown', connectionSecurityPolicy: 'none',
  })
  log.onRequest(rec())
  await log.close()
  t.match(lines(file)[0], { reporter: 'destination', source_workload: 'unknown', destination_workload: 'reviews-v1', destination_namespace: 'shop' })
})

t.test('status classes: only the listed ones; 0 is its own class 0xx', async (t) => {
  const dir = tmp(t)
  const a = createAccessLog({ path: join(dir, 'a.log'), statusClasses: ['5xx'] }, OUTBOUND)
  const b = createAccessLog({ path: join(dir, 'b.log'), statusClasses: ['4xx', '0xx'] }, OUTBOUND)
  for (const status of [200, 404, 503, 0, 502, 301, 101, 429]) {
    a.onRequest(rec({ status }))
    b.onRequest(rec({ status }))
  }
  await Promise.all([a.close(), b.close()])
  t.same(lines(join(dir, 'a.log')).map((l) => l.response_code), [503, 502])
  t.same(lines(join(dir, 'b.log')).map((l) => l.response_code), [404, 0, 429])

  t.throws(() => createAccessLog({ path: join(dir, 'c.log'), statusClasses: ['6xx'] }, OUTBOUND), /invalid status class/)
  t.throws(() => createAccessLog({ path: join(dir, 'c.log'), sampling: 101 }, OUTBOUND), /sampling/)
})

t.test('a filtered-out request reads only its status (nothing built)', async (t) => {
  const file = join(tmp(t), 'f.log')
  let randomCalls = 0
  const log = createAccessLog({ path: file, statusClasses: ['5xx'], sampling: 50, random: () => (randomCalls++, 0) }, OUTBOUND)
  t.teardown(() => log.close())
  const read: string[] = []
  const base = rec({ status: 200 })
  const spy = new Proxy(base, {
    get(target, prop, receiver) {
      read.push(String(prop))
      return Reflect.get(target, prop, receiver)
    },
  })
  log.onRequest(spy)
  t.same(read, ['status'])
  t.equal(randomCalls, 0, 'no random() for a request the status filter drops')
})

t.test('sampling with an injected random: logged when random() < sampling/100', async (t) => {
  const dir = tmp(t)
  const seq = [0.1, 0.3, 0.2, 0.9, 0.2499, 0.25, 0.0]
  let i = 0
  const log = createAccessLog({ path: join(dir, 's.log'), sampling: 25, random: () => seq[i++] }, OUTBOUND)
  for (let n = 0; n < seq.length; n++) log.onRequest(rec({ bytesOut: n }))
  await log.close()
  t.equal(i, seq.length, 'one random() per request')
  t.same(lines(join(dir, 's.log')).map((l) => l.bytes_sent), [0, 2, 4, 6])

  let calls = 0
  const all = createAccessLog({ path: join(dir, 'all.log'), random: () => (calls++, 0.99) }, OUTBOUND)
  const none = createAccessLog({ path: join(dir, 'none.log'), sampling: 0 }, OUTBOUND)
  for (let n = 0; n < 5; n++) {
    all.onRequest(rec())
    none.onRequest(rec())
  }
  await Promise.all([all.close(), none.close()])
  t.equal(calls, 0, 'sampling 100: random() never called')
  t.equal(lines(join(dir, 'all.log')).length, 5)
  t.equal(existsSync(join(dir, 'none.log')) ? lines(join(dir, 'none.log')).length : 0, 0)
})

t.test('flush waits for the lines; close appends, is idempotent, later requests are ignored', async (t) => {
  const file = join(tmp(t), 'c.log')
  writeFileSync(file, '{"earlier":true}\n')
  const log = createAccessLog({ path: file }, OUTBOUND)
  for (let n = 0; n < 2000; n++) log.onRequest(rec({ bytesOut: n }))
  await log.flush()
  let got = lines(file)
  t.equal(got.length, 2001, 'all lines written at flush, after the existing one')
  t.same(got[0], { earlier: true })
  t.equal(got[2000].bytes_sent, 1999, 'in order')
  await log.flush() // nothing pending: resolves at once
  log.onRequest(rec({ bytesOut: -1 }))
  await Promise.all([log.close(), log.close()])
  await log.close()
  log.onRequest(rec({ bytesOut: -2 })) // after close: ignored, no throw
  await log.flush()
  got = lines(file)
  t.equal(got.length, 2002)
  t.equal(got[2001].bytes_sent, -1)
  t.equal(log.dropped, 0)
})

t.test('a file that cannot be opened: onError once, flush/close resolve, requests dropped', async (t) => {
  const dir = tmp(t)
  const errors: Error[] = []
  const log = createAccessLog({ path: join(dir, 'missing', 'dir', 'a.log'), onError: (e) => errors.push(e) }, OUTBOUND)
  log.onRequest(rec())
  await log.flush()
  t.equal(errors.length, 1)
  t.match(errors[0], { code: 'ENOENT' })
  log.onRequest(rec())
  t.equal(log.dropped, 1)
  await log.close()
})

t.test('standard output when no path', async (t) => {
  const mod = fileURLToPath(new URL('../proxy/telemetry/access-log.ts', import.meta.url))
  const script = `
    import { createAccessLog } from ${JSON.stringify(mod)}
    const log = createAccessLog({}, ${JSON.stringify(OUTBOUND)})
    log.onRequest(${JSON.stringify(rec())})
    await log.close()
    process.stdout.write('done\\n')
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (d: string) => (out += d))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.equal(code, 0)
  const [first, second] = out.split('\n')
  t.match(JSON.parse(first), { start_time: '2025-01-31T12:00:00.123Z', response_code: 200, source_workload: 'productpage-v1' })
  t.equal(second, 'done', 'stdout stays usable after close')
})

t.test('a reader that cannot keep up: lines over maxBufferBytes are dropped and counted, the rest arrive whole and in order', async (t) => {
  const dir = tmp(t)
  const fifo = join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  // nobody reads the FIFO yet: the open waits, the lines queue up to the bound
  const log = createAccessLog({ path: fifo, maxBufferBytes: 512 * 1024 }, OUTBOUND)
  const N = 6000
  for (let n = 0; n < N; n++) log.onRequest(rec({ bytesOut: n }))
  const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  reader.stdout.setEncoding('utf8')
  reader.stdout.on('data', (d: string) => (out += d))
  const ended = new Promise((resolve) => reader.on('close', resolve))
  await log.close()
  await ended
  const got = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { bytes_sent: number })
  t.ok(log.dropped > 0, `some lines dropped (${log.dropped})`)
  t.ok(got.length > 0, `some lines written (${got.length})`)
  t.equal(got.length + log.dropped, N, 'every line written or counted as dropped')
  t.ok(got.every((l, i) => i === 0 || l.bytes_sent > got[i - 1].bytes_sent), 'in order')
  t.ok(out.length <= 512 * 1024, 'no more than the bound was kept')
})

t.test('standard output as a full non-blocking pipe: writes wait and retry, nothing lost', async (t) => {
  const mod = fileURLToPath(new URL('../proxy/telemetry/access-log.ts', import.meta.url))
  const N = 5000
  const script = `
    import { createAccessLog } from ${JSON.stringify(mod)}
    process.stdout.write('') // libuv makes the stdout pipe non-blocking: a full pipe answers EAGAIN
    let full = false
    const onWait = () => { if (!full) { full = true; process.stderr.write('full\\n') } }
    const log = createAccessLog({ onWait }, ${JSON.stringify(OUTBOUND)})
    for (let n = 0; n < ${N}; n++) log.onRequest({ ...${JSON.stringify(rec())}, bytesOut: n })
    await log.close()
    process.stderr.write('dropped ' + log.dropped + '\\n')
    process.stdout.write('done\\n')
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (d: string) => (err += d))
  // read nothing until the child has filled the pipe and met EAGAIN (it says so on stderr)
  child.stdout.pause()
  await new Promise<void>((resolve) => {
    const seen = (): void => {
      if (!err.includes('full\n')) return
      child.stderr.off('data', seen)
      resolve()
    }
    child.stderr.on('data', seen)
    child.on('close', () => resolve())
  })
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (d: string) => (out += d))
  child.stdout.resume()
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.equal(code, 0, err)
  const rows = out.split('\n').filter((l) => l !== '')
  t.equal(rows.pop(), 'done')
  t.equal(rows.length, N)
  t.ok(rows.every((l, i) => (JSON.parse(l) as { bytes_sent: number }).bytes_sent === i), 'every line whole, in order')
  t.match(err, /^full\ndropped 0\n/, 'the pipe was full before anything was read')
})
