// loadgen: the demo's users. A steady --rps of GET / to the frontend, sent through the loadgen's
// own sidecar (--outbound) like every other caller in the mesh, so the frontend's success rate
// and latency are measured by a caller's sidecar too. On SIGTERM it stops sending, waits for the
// requests in flight and prints what it got.
import { Agent, request } from 'node:http'
import { options, required } from './serve.ts'

const o = options(['outbound', 'host', 'rps'])
const [outHost, outPort] = required('outbound', o.outbound).split(':')
const host = o.host ?? 'frontend'
const rps = Number(o.rps ?? 20)
if (!(rps > 0 && rps <= 1000)) throw new Error(`--rps must be in (0, 1000], got ${o.rps}`)

const agent = new Agent({ keepAlive: true, maxSockets: 64 })
const MAX_IN_FLIGHT = 200
const statuses = new Map<number, number>()
let inFlight = 0
let sent = 0
let skipped = 0

function send(): void {
  if (inFlight >= MAX_IN_FLIGHT) {
    skipped++
    return
  }
  inFlight++
  const done = (status: number) => {
    inFlight--
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
    if (stopping && inFlight === 0) finish()
  }
  const req = request({ host: outHost, port: Number(outPort), path: '/', headers: { host }, agent, timeout: 10_000 }, (res) => {
    res.resume()
    res.on('end', () => done(res.statusCode ?? 0))
    res.on('error', () => done(0))
  })
  req.on('timeout', () => req.destroy(new Error('timeout')))
  req.on('error', () => done(0))
  req.end()
}

// Paced by the clock, not by the timer's count: a late tick sends what is due (at most 50).
const start = performance.now()
const interval = 1000 / rps
const timer = setInterval(() => {
  const due = Math.floor((performance.now() - start) / interval) + 1
  for (let n = Math.min(due - sent, 50); n > 0; n--, sent++) send()
  if (due - sent > 0) sent = due
}, Math.max(5, Math.min(interval, 50)))

process.stdout.write(`loadgen: ${rps} rps to http://${host}/ via ${outHost}:${outPort}\n`)

let stopping = false
function finish(): void {
  agent.destroy()
  const counts = [...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s === 0 ? 'failed' : s}: ${n}`).join(', ')
  process.stdout.write(`loadgen: stopped; responses ${counts || 'none'}${skipped > 0 ? `; ${skipped} not sent (${MAX_IN_FLIGHT} in flight)` : ''}\n`)
  process.exit(0)
}
const stop = () => {
  if (stopping) return
  stopping = true
  clearInterval(timer)
  if (inFlight === 0) finish()
  setTimeout(finish, 5000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
