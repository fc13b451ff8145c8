// Webhook bench: p50/p99 latency of AdmissionReviews (a Pod with two containers and an HTTP
// probe, injected: a full patch each time) at 100 concurrent requests over HTTPS, against the
// webhook server in a process of its own (`node bench/webhook.ts`; --requests N, default 20000; --concurrency C, default 100).
// Each of the 100 workers keeps its own TLS connection (as kube-apiserver keeps a pool) and sends
// its next review when the last answer arrived (closed loop: at saturation the latency is queueing,
// 100 / throughput). --rate R instead sends R reviews a second on a fixed schedule (open loop, over
// the same 100 connections, at most 100 in flight) and measures each from its scheduled send time,
// and --burst sends the reviews in bursts of 100 at the same instant with a pause between bursts,
// so a slow answer delays nothing and hides nothing (no coordinated omission). Target: p99 < 10 ms.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'

const argC = process.argv.indexOf('--concurrency')
const CONCURRENCY = argC > 0 ? Number(process.argv[argC + 1]) : 100
const argR = process.argv.indexOf('--rate')
const RATE = argR > 0 ? Number(process.argv[argR + 1]) : 0
const BURST = process.argv.includes('--burst')

if (process.argv[2] === 'server') {
  const { createServingCert } = await import('../control-plane/webhook/certs.ts')
  const { startWebhookServer } = await import('../control-plane/webhook/server.ts')
  const { DEFAULT_MESH } = await import('../control-plane/inject/index.ts')
  const cert = await createServingCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] })
  const wh = await startWebhookServer({ certPem: cert.certPem, keyPem: cert.keyPem, mesh: DEFAULT_MESH })
  process.send!({ port: wh.port, ca: cert.caPem })
  process.on('disconnect', () => void wh.close().then(() => process.exit(0)))
} else {
  const argN = process.argv.indexOf('--requests')
  const total = argN > 0 ? Number(process.argv[argN + 1]) : 20_000
  const child = fork(fileURLToPath(import.meta.url), ['server'], { stdio: 'inherit' })
  const { port, ca } = await new Promise<{ port: number; ca: string }>((r) => child.once('message', (m) => r(m as { port: number; ca: string })))
  // keep idle connections as kube-apiserver's Go client does (90 s), not undici's default 4 s
  const pool = new Pool(`https://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1, keepAliveTimeout: 90_000, keepAliveMaxTimeout: 90_000, connect: { ca } })
  const body = (i: number) => JSON.stringify({
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
  child.disconnect()
}
