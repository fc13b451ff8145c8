// Webhook bench: p50/p99 latency of AdmissionReviews (a Pod with two containers and an HTTP
// probe, injected: a full patch each time) at 100 concurrent requests over HTTPS (target: p99 < 10 ms).
//
// Default (closed loop, the headline row): wrk -c100 (100 keep-alive TLS connections, each sends its
// next review when the last answer arrived, as the API server's pool does; wrk is C, so the load
// generator costs the 2-core machine little) against --replicas webhook servers (default 2, the
// install's control-plane Deployment; each a process of its own on one port with SO_REUSEPORT, so
// the kernel spreads the connections as a Service spreads them over the replicas). Rows for 1 and
// for --replicas. `--seconds S` (default 5) per row.
// --rate R / --burst (undici client, one replica): R reviews a second on a fixed schedule (open loop,
// over 100 connections, measured from each scheduled send) or bursts of 100 at the same instant with
// a pause between bursts (no coordinated omission). --client undici: the closed loop with undici.
import { fork, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { parseWrk } from './wrk.ts'

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name)
  return i > 0 ? Number(process.argv[i + 1]) : dflt
}
const CONCURRENCY = arg('--concurrency', 100)
const RATE = arg('--rate', 0)
const BURST = process.argv.includes('--burst')
const REPLICAS = arg('--replicas', 2)
const SECONDS = arg('--seconds', 5)
const UNDICI = RATE > 0 || BURST || process.argv.includes('--client') && process.argv[process.argv.indexOf('--client') + 1] === 'undici'

const review = (i: number) => JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: `bench-${i}`, kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'shop', operation: 'CREATE',
    object: {
      apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', namespace: 'shop', labels: { app: 'web' }, annotations: { 'weft.io/inject': 'true' } },
      spec: { containers: [
        { name: 'app', image: 'app:1', ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/ready', port: 'http' } } },
        { name: 'log', image: 'log:1' },
      ] },
    },
  },
})

if (process.argv[2] === 'server') {
  const { startWebhookServer } = await import('../control-plane/webhook/server.ts')
  const { DEFAULT_MESH } = await import('../control-plane/inject/index.ts')
  const [port, certPem, keyPem] = [Number(process.argv[3]), process.env.CERT!, process.env.KEY!]
  const wh = await startWebhookServer({ certPem, keyPem, mesh: DEFAULT_MESH, port, reusePort: true })
  process.send!({ port: wh.port })
  process.on('disconnect', () => void wh.close().then(() => process.exit(0)))
} else {
  const { createServingCert } = await import('../control-plane/webhook/certs.ts')
  const cert = await createServingCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] })
  const servers: ReturnType<typeof fork>[] = []
  /** n replicas on one port (the first picks it) */
  const start = async (n: number): Promise<number> => {
    let port = 0
    for (let k = 0; k < n; k++) {
      const child = fork(fileURLToPath(import.meta.url), ['server', String(port)], { stdio: 'inherit', env: { ...process.env, CERT: cert.certPem, KEY: cert.keyPem } })
      servers.push(child)
      port = await new Promise<number>((r) => child.once('message', (m) => r((m as { port: number }).port)))
    }
    return port
  }
  /** CPU seconds (user + system) the server processes have used so far (Linux /proc, clock ticks of 10 ms) */
  const serverCpu = (): number => servers.reduce((sum, c) => {
    const stat = readFileSync(`/proc/${c.pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields from the 3rd: utime is the 14th, stime the 15th
    return sum + (Number(f[11]) + Number(f[12])) / 100
  }, 0)
  const stop = async () => {
    await Promise.all(servers.splice(0).map((c) => new Promise((r) => { c.once('exit', r); c.disconnect() })))
  }
  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  if (!UNDICI) {
    const dir = mkdtempSync(join(tmpdir(), 'weft-webhook-bench-'))
    const lua = join(dir, 'review.lua')
    writeFileSync(lua, `wrk.method = "POST"\nwrk.headers["content-type"] = "application/json"\nwrk.body = [==[${review(1)}]==]\n`)
    const rows: Record<string, { rps: number; p50: number; p99: number; cpuUs: number }> = {}
    for (const n of [...new Set([1, REPLICAS])]) {
      const port = await start(n)
      const url = `https://127.0.0.1:${port}/inject`
      // one review checked by hand (wrk counts only statuses): the answer carries a patch
      const pool = new Pool(`https://127.0.0.1:${port}`, { connect: { ca: cert.caPem } })
      const r = await pool.request({ path: '/inject', method: 'POST', body: review(0), headers: { 'content-type': 'application/json' } })
      const out = await r.body.json() as { response?: { patch?: string } }
      await pool.close()
      if (r.statusCode !== 200 || out.response?.patch === undefined) throw new Error(`unexpected answer ${r.statusCode}`)
      const wrk = (secs: number) => spawnSync('wrk', ['-t1', `-c${CONCURRENCY}`, `-d${secs}s`, '--latency', '-s', lua, url], { encoding: 'utf8' })
      wrk(2) // warm-up: opens the connections, lets the JIT settle
      const cpu0 = serverCpu()
      const w = parseWrk(wrk(SECONDS).stdout)
      // the servers' CPU per review (all replicas): what the throughput and, at saturation, the latency follow
      const cpuUs = (serverCpu() - cpu0) * 1e6 / w.requests
      if (w.non2xx3xx > 0 || w.errors.connect + w.errors.read + w.errors.write + w.errors.timeout > 0) throw new Error(`wrk saw errors: ${JSON.stringify(w.errors)}, non-2xx ${w.non2xx3xx}`)
      rows[n] = { rps: w.rps, p50: w.percentilesUs['50']! / 1000, p99: w.percentilesUs['99']! / 1000, cpuUs }
      console.log(`webhook: ${n} replica${n > 1 ? 's' : ''}, ${CONCURRENCY} concurrent AdmissionReviews (wrk closed loop, HTTPS, ${SECONDS} s): ${w.rps.toFixed(0)} reviews/s, p50 ${rows[n].p50.toFixed(2)} ms, p99 ${rows[n].p99.toFixed(2)} ms, server CPU ${cpuUs.toFixed(0)} us/review (target p99 < 10 ms; load average ${loadavg()})`)
      await stop()
    }
    rmSync(dir, { recursive: true, force: true })
    const main = rows[REPLICAS]!
    console.log(JSON.stringify({ webhook_concurrency: CONCURRENCY, webhook_replicas: REPLICAS, webhook_rps: Math.round(main.rps), webhook_p50_ms: Number(main.p50.toFixed(2)), webhook_p99_ms: Number(main.p99.toFixed(2)), webhook_server_cpu_us: Math.round(main.cpuUs), webhook_1replica_rps: Math.round(rows[1]!.rps), webhook_1replica_p99_ms: Number(rows[1]!.p99.toFixed(2)), webhook_1replica_server_cpu_us: Math.round(rows[1]!.cpuUs) }))
    process.exit(0)
  }
  const argN = process.argv.indexOf('--requests')
  const total = argN > 0 ? Number(process.argv[argN + 1]) : 20_000
  const port = await start(1)
  const ca = cert.caPem
  // keep idle connections as kube-apiserver's Go client does (90 s), not undici's default 4 s
  const pool = new Pool(`https://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1, keepAliveTimeout: 90_000, keepAliveMaxTimeout: 90_000, connect: { ca } })
  const body = review
  const one = async (i: number): Promise<number> => {
    const t0 = performance.now()
    const r = await pool.request({ path: '/inject', method: 'POST', body: body(i), headers: { 'content-type': 'application/json' } })
    const out = await r.body.json() as { response?: { patch?: string } }
    if (r.statusCode !== 200 || out.response?.patch === undefined) throw new Error(`unexpected answer ${r.statusCode}`)
    return performance.now() - t0
  }
  // warm-up: open the 100 TLS connections and let the JIT settle; not counted
  let next = 0
  const warm = 2_000
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next < warm) await one(next++) }))
  const lat: number[] = []
  next = 0
  const t0 = performance.now()
  if (BURST) {
    // bursts: C reviews sent at the same instant (a Deployment scaled up by C), then a 50 ms pause
    while (next < total) {
      const start = next
      next = Math.min(total, next + CONCURRENCY)
      await Promise.all(Array.from({ length: next - start }, async (_, k) => { lat.push(await one(start + k)) }))
      await new Promise((r) => setTimeout(r, 50))
    }
  } else if (RATE > 0) {
    // open loop: review i is due at t0 + i / RATE; a free worker takes the next due one
    const period = 1000 / RATE
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        const i = next++
        const due = t0 + i * period
        const wait = due - performance.now()
        if (wait > 0) await new Promise((r) => setTimeout(r, wait))
        // a timer may fire up to a millisecond early (libuv's clock is in whole ms): count from the
        // send when it came before the due time
        const sent = Math.min(due, performance.now())
        await one(i)
        lat.push(performance.now() - sent)
      }
    }))
  } else {
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next < total) lat.push(await one(next++)) }))
  }
  const secs = (performance.now() - t0) / 1000
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(2)
  const mode = BURST ? `bursts of ${CONCURRENCY} at once` : RATE > 0 ? `open loop at ${RATE}/s over ${CONCURRENCY} connections` : `${CONCURRENCY} concurrent (closed loop)`
  console.log(`webhook: ${total} AdmissionReviews, ${mode}, HTTPS: ${(total / secs).toFixed(0)} reviews/s, p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${lat.at(-1)!.toFixed(2)} ms (target p99 < 10 ms)`)
  console.log(JSON.stringify({ webhook_reviews: total, webhook_concurrency: CONCURRENCY, webhook_rate: RATE, webhook_burst: BURST, webhook_rps: Math.round(total / secs), webhook_p50_ms: Number(q(0.5)), webhook_p99_ms: Number(q(0.99)) }))
  await pool.close()
  await stop()
}
