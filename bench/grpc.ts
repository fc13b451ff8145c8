// gRPC unary benchmark (`npm run bench -- --grpc`): h2load (Debian's nghttp2-client) sends the
// same gRPC unary calls — POST /weft.bench.Echo/Unary, content-type application/grpc, te: trailers,
// a 5-byte-prefixed 12-byte message — directly to an h2c upstream, through Weft (a detecting
// listener → a `protocol: http2` cluster) and through HAProxy (`mode http`, `proto h2` on the bind
// and server lines: h2c both ways), in one run.
//
// The upstream is bench/peers/grpc-upstream.ts: a node:http2 server answering every call with a
// gRPC response (headers, one 17-byte DATA frame, trailers grpc-status 0), in its own process. It
// is the limit of the `direct` row, so `direct` is a ceiling, not a peer.
//
// Load per row: a warm-up, a throughput run at -c CLIENTS -m STREAMS (every client one HTTP/2
// connection with STREAMS calls in flight), and a latency run at -c1 -m1 (h2load prints the mean
// and sd of the request time, not percentiles). Proxy CPU from /proc during the two runs.
//
// Server-streaming rows: the same rows, h2load on /weft.bench.Echo/Stream, where the upstream
// answers each call with STREAM_MESSAGES messages of 1 KiB (then grpc-status 0): messages/s is
// h2load's calls/s times STREAM_MESSAGES (every call must come back whole: h2load counts a call
// whose stream was reset as failed), CPU per message from /proc.
import fs from 'node:fs'
import { connect } from 'node:http2'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import type { Bootstrap } from '../api/schema.ts'
import { freePorts, sleep } from './net.ts'
import { readCpuSeconds, readMem } from './proc.ts'
import { cleanupAll, runCapture, spawnGroup, trackTempDir, type Proc } from './spawn.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const WEFT_BIN = path.resolve(here, '../bin/weft.js')
const RESULTS_DIR = path.join(here, 'results')
export const GRPC_PATH = '/weft.bench.Echo/Unary'
export const GRPC_STREAM_PATH = '/weft.bench.Echo/Stream'
/** what bench/peers/grpc-upstream.ts sends per streaming call */
export const STREAM_MESSAGES = 100
export const STREAM_MESSAGE_BYTES = 1024

export interface H2loadResult {
  rps: number
  succeeded: number
  failed: number
  errored: number
  /** mean and sd of the request time, µs */
  meanUs: number
  sdUs: number
  raw: string
}

function toUs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v)
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n : m[2] === 'ms' ? n * 1000 : n * 1e6
}

/** Parse h2load's summary ("finished in …, N req/s", "requests: …", "time for request: min max mean sd"). */
export function parseH2load(out: string): H2loadResult {
  const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? NaN)
  const rq = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out)
  const tr = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out)
  return {
    rps,
    succeeded: Number(rq?.[1] ?? NaN),
    failed: Number(rq?.[2] ?? NaN),
    errored: Number(rq?.[3] ?? NaN),
    meanUs: tr === null ? NaN : toUs(tr[3]),
    sdUs: tr === null ? NaN : toUs(tr[4]),
    raw: out,
  }
}

async function h2load(url: string, body: string, clients: number, streams: number, durationSec: number): Promise<H2loadResult> {
  const args = ['-t1', `-c${clients}`, `-m${streams}`, `-D${durationSec}`, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', body, url]
  const r = await runCapture('h2load', args)
  if (r.error) throw r.error
  const res = parseH2load(r.stdout)
  if (!Number.isFinite(res.rps)) throw new Error(`h2load output not understood: ${(r.stdout + r.stderr).slice(-500)}`)
  return res
}

/** One gRPC call by node:http2: the proxy must pass headers, message(s) and grpc-status 0 through. */
async function check(port: number, grpcPath = GRPC_PATH, wantBytes = 17): Promise<void> {
  const s = connect(`http://127.0.0.1:${port}`)
  s.on('error', () => {})
  try {
    const r = await new Promise<{ status: string; grpc: string; n: number }>((resolve, reject) => {
      const st = s.request({ ':method': 'POST', ':path': grpcPath, 'content-type': 'application/grpc', te: 'trailers' })
      let status = ''
      let grpc = ''
      let n = 0
      st.on('response', (h) => (status = String(h[':status'])))
      st.on('trailers', (h) => (grpc = String(h['grpc-status'])))
      st.on('data', (b: Buffer) => (n += b.length))
      st.on('error', reject)
      st.on('close', () => resolve({ status, grpc, n }))
      st.end(message())
      setTimeout(() => reject(new Error('no answer in 2 s')), 2000).unref()
    })
    if (r.status !== '200' || r.grpc !== '0' || r.n !== wantBytes) throw new Error(`gRPC check of ${grpcPath} through port ${port}: ${JSON.stringify(r)}`)
  } finally {
    s.destroy()
  }
}

async function ready(port: number, proc: Proc): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const dead = proc.deadReason()
    if (dead !== null) throw new Error(dead)
    try {
      await check(port)
      await check(port, GRPC_STREAM_PATH, STREAM_MESSAGES * (5 + STREAM_MESSAGE_BYTES))
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(100)
    }
  }
}

/** The request message: 5-byte gRPC prefix + 12 bytes. */
function message(): Buffer {
  const m = Buffer.from('hello world\n')
  const f = Buffer.alloc(5 + m.length)
  f.writeUInt32BE(m.length, 1)
  m.copy(f, 5)
  return f
}

function weftConfig(port: number, adminPort: number, upstreamPort: number): Bootstrap {
  return {
    admin: { address: '127.0.0.1', port: adminPort },
    telemetry: { metrics: { enabled: false }, tracing: { enabled: false }, accessLog: { enabled: false } },
    listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port, routeTable: 'rt' }],
    routeTables: [{
      name: 'rt',
      virtualHosts: [{
        name: 'bench',
        domains: ['*'],
        routes: [
          { name: 'canary', match: { headers: [{ name: 'x-bench-canary', exact: '1' }] }, backends: [{ cluster: 'upstream' }] },
          { name: 'service', match: { path: { prefix: '/weft.bench.Echo/' } }, backends: [{ cluster: 'upstream' }] },
          { name: 'default', backends: [{ cluster: 'upstream' }] },
        ],
      }],
    }],
    clusters: [{ name: 'upstream', protocol: 'http2', endpoints: [{ address: '127.0.0.1', port: upstreamPort }] }],
  }
}

function haproxyConfig(dir: string, port: number, upstreamPort: number): string {
  return `# generated by bench/grpc.ts
global
  nbthread 1
  maxconn 4096
  pidfile ${path.join(dir, 'haproxy.pid')}

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend grpc
  bind 127.0.0.1:${port} proto h2
  acl is_canary req.hdr(x-bench-canary) -m str 1
  acl is_service path_beg /weft.bench.Echo/
  use_backend app if is_canary
  use_backend app if is_service
  default_backend app

backend app
  server u1 127.0.0.1:${upstreamPort} proto h2
`
}

interface Row {
  name: string
  pid: number
  port: number
  error?: string
  samples: { throughput: H2loadResult; latency: H2loadResult; cpuSec: number; rssMB: number; stream: H2loadResult; streamCpuSec: number }[]
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

export async function runGrpcBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      repeat: { type: 'string', default: '1' },
      clients: { type: 'string', default: '10' },
      streams: { type: 'string', default: '10' },
      quick: { type: 'boolean', default: false },
      'no-save': { type: 'boolean', default: false },
    },
    strict: true,
  })
  const quick = values.quick ?? false
  const durationSec = quick ? 4 : Number(values.duration)
  const warmupSec = quick ? 1 : Number(values.warmup)
  const repeat = Number(values.repeat)
  const clients = Number(values.clients)
  const streams = Number(values.streams)
  const haVer = await runCapture('haproxy', ['-v'])
  const h2Ver = await runCapture('h2load', ['--version'])
  if (h2Ver.error) throw new Error('h2load is not installed: apt-get install -y nghttp2-client')
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-grpc-'))
  trackTempDir(tmp)
  const [upPort, directPort, weftPort, weftAdmin, haPort] = await freePorts(5)
  void directPort
  const log = (m: string): void => void process.stderr.write(`[bench grpc] ${m}\n`)
  const rows: Row[] = []
  try {
    const up = spawnGroup('grpc-upstream', process.execPath, [path.join(here, 'peers', 'grpc-upstream.ts'), String(upPort)], { logFile: path.join(tmp, 'upstream.log') })
    await ready(upPort, up)
    rows.push({ name: 'direct', pid: up.pid, port: upPort, samples: [] })
    const cfg = path.join(tmp, 'weft.yaml')
    fs.writeFileSync(cfg, stringify(weftConfig(weftPort, weftAdmin, upPort)))
    const weft = spawnGroup('weft', process.execPath, [WEFT_BIN, 'proxy', '--config', cfg], { logFile: path.join(tmp, 'weft.log'), env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
    try {
      await ready(weftPort, weft)
      rows.push({ name: 'weft', pid: weft.pid, port: weftPort, samples: [] })
    } catch (err) {
      rows.push({ name: 'weft', pid: 0, port: weftPort, samples: [], error: (err as Error).message })
    }
    if (!haVer.error) {
      const conf = path.join(tmp, 'haproxy.cfg')
      fs.writeFileSync(conf, haproxyConfig(tmp, haPort, upPort))
      const ha = spawnGroup('haproxy', 'haproxy', ['-db', '-f', conf], { logFile: path.join(tmp, 'haproxy.log') })
      try {
        await ready(haPort, ha)
        rows.push({ name: 'haproxy', pid: ha.pid, port: haPort, samples: [] })
      } catch (err) {
        rows.push({ name: 'haproxy', pid: 0, port: haPort, samples: [], error: (err as Error).message })
      }
    }
    const body = path.join(tmp, 'message.bin')
    fs.writeFileSync(body, message())
    for (let r = 1; r <= repeat; r++) {
      const order = r % 2 === 1 ? rows : [...rows].reverse()
      for (const row of order) {
        if (row.error !== undefined) continue
        const url = `http://127.0.0.1:${row.port}${GRPC_PATH}`
        log(`round ${r}/${repeat}: ${row.name}`)
        if (warmupSec > 0) await h2load(url, body, clients, streams, warmupSec)
        const c0 = readCpuSeconds(row.pid)
        const throughput = await h2load(url, body, clients, streams, durationSec)
        const latency = await h2load(url, body, 1, 1, durationSec)
        const c1 = readCpuSeconds(row.pid)
        const streamUrl = `http://127.0.0.1:${row.port}${GRPC_STREAM_PATH}`
        if (warmupSec > 0) await h2load(streamUrl, body, clients, streams, warmupSec)
        const c2 = readCpuSeconds(row.pid)
        const stream = await h2load(streamUrl, body, clients, streams, durationSec)
        const c3 = readCpuSeconds(row.pid)
        const rssMB = readMem(row.pid).rssBytes / 1024 / 1024
        row.samples.push({ throughput, latency, cpuSec: Math.round((c1 - c0) * 100) / 100, rssMB, stream, streamCpuSec: Math.round((c3 - c2) * 100) / 100 })
        log(`  ${row.name}: ${throughput.rps.toFixed(0)} calls/s, mean ${latency.meanUs} µs @1, failed ${throughput.failed + throughput.errored}; streaming ${(stream.rps * STREAM_MESSAGES).toFixed(0)} messages/s, failed ${stream.failed + stream.errored}`)
      }
    }
  } finally {
    await cleanupAll()
  }
  const ha = rows.find((r) => r.name === 'haproxy')
  const haRps = ha === undefined ? NaN : median(ha.samples.map((s) => s.throughput.rps))
  const direct = rows.find((r) => r.name === 'direct')!
  const directMean = median(direct.samples.map((s) => s.latency.meanUs))
  const haAdded = ha === undefined ? NaN : median(ha.samples.map((s) => s.latency.meanUs)) - directMean
  const summary = rows.map((r) => {
    const rps = median(r.samples.map((s) => s.throughput.rps))
    const mean = median(r.samples.map((s) => s.latency.meanUs))
    const calls = median(r.samples.map((s) => s.throughput.succeeded + s.latency.succeeded))
    const cpu = median(r.samples.map((s) => s.cpuSec))
    return {
      name: r.name,
      error: r.error ?? null,
      rps: Math.round(rps),
      rpsVsHaproxy: Math.round((rps / haRps) * 100) / 100,
      meanUs: Math.round(mean),
      addedMeanUs: r.name === 'direct' ? null : Math.round(mean - directMean),
      addedVsHaproxy: r.name === 'direct' ? null : Math.round(((mean - directMean) / haAdded) * 100) / 100,
      cpuUsPerCall: r.name === 'direct' ? null : Math.round((cpu / calls) * 1e7) / 10,
      rssMB: Math.round(median(r.samples.map((s) => s.rssMB))),
      failed: r.samples.reduce((a, s) => a + s.throughput.failed + s.throughput.errored + s.latency.failed + s.latency.errored, 0),
    }
  })
  const haMsgs = ha === undefined ? NaN : median(ha.samples.map((s) => s.stream.rps)) * STREAM_MESSAGES
  const streaming = rows.map((r) => {
    const msgs = median(r.samples.map((s) => s.stream.rps)) * STREAM_MESSAGES
    const cpu = median(r.samples.map((s) => s.streamCpuSec / Math.max(1, s.stream.succeeded * STREAM_MESSAGES)))
    return {
      name: r.name,
      error: r.error ?? null,
      messagesPerSec: Math.round(msgs),
      msgsVsHaproxy: Math.round((msgs / haMsgs) * 100) / 100,
      mbPerSec: Math.round((msgs * (5 + STREAM_MESSAGE_BYTES)) / 1e5) / 10,
      cpuUsPerMessage: r.name === 'direct' ? null : Math.round(cpu * 1e7) / 10,
      failed: r.samples.reduce((a, s) => a + s.stream.failed + s.stream.errored, 0),
    }
  })
  console.log('')
  console.log(`Weft gRPC unary bench: h2load -t1, -c${clients} -m${streams} -D${durationSec} (calls/s) and -c1 -m1 (mean latency); ${repeat} round(s); ${h2Ver.stdout.trim()}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  console.log('| row | calls/s | ×HAProxy | mean µs @1 | added µs | ×HAProxy | CPU µs/call | RSS MB | failed |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const s of summary) {
    if (s.error !== null) {
      console.log(`| ${s.name} | error: ${s.error.slice(0, 200)} |`)
      continue
    }
    console.log(`| ${s.name} | ${s.rps} | ${s.rpsVsHaproxy} | ${s.meanUs} | ${s.addedMeanUs ?? '–'} | ${s.addedVsHaproxy ?? '–'} | ${s.cpuUsPerCall ?? '–'} | ${s.rssMB} | ${s.failed} |`)
  }
  console.log('')
  console.log(`gRPC server-streaming: ${STREAM_MESSAGES} messages of ${STREAM_MESSAGE_BYTES} B per call, h2load -c${clients} -m${streams} -D${durationSec}`)
  console.log('| row | messages/s | ×HAProxy | MB/s | CPU µs/message | failed |')
  console.log('|---|---|---|---|---|---|')
  for (const s of streaming) {
    if (s.error !== null) continue
    console.log(`| ${s.name} | ${s.messagesPerSec} | ${s.msgsVsHaproxy} | ${s.mbPerSec} | ${s.cpuUsPerMessage ?? '–'} | ${s.failed} |`)
  }
  if (!values['no-save']) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true })
    const file = path.join(RESULTS_DIR, `grpc-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
    fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), mode: 'grpc', clients, streams, durationSec, repeat, summary, streaming, rows: rows.map((r) => ({ ...r, samples: r.samples.map((s) => ({ ...s, throughput: { ...s.throughput, raw: undefined }, latency: { ...s.latency, raw: undefined }, stream: { ...s.stream, raw: undefined } })) })) }, null, 2) + '\n')
    console.log(`results: ${path.relative(process.cwd(), file)}`)
  }
  console.log(JSON.stringify({ mode: 'grpc', summary, streaming }))
  return summary.some((s) => s.error !== null || s.failed > 0) || streaming.some((s) => s.failed > 0) ? 2 : 0
}
