// Webhook bench: p50/p99 latency of AdmissionReviews (a Pod with two containers and an HTTP
// probe, injected: a full patch each time) at 100 concurrent requests over HTTPS, against the
// webhook server in a process of its own (`node bench/webhook.ts`; --requests N, default 20000; --concurrency C, default 100).
// Each of the 100 workers keeps its own TLS connection (as kube-apiserver keeps a pool) and sends
// its next review when the last answer arrived. Target: p99 < 10 ms.
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'

const argC = process.argv.indexOf('--concurrency')
const CONCURRENCY = argC > 0 ? Number(process.argv[argC + 1]) : 100

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
  const pool = new Pool(`https://127.0.0.1:${port}`, { connections: CONCURRENCY, pipelining: 1, connect: { ca } })
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
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next < total) lat.push(await one(next++)) }))
  const secs = (performance.now() - t0) / 1000
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(2)
  console.log(`webhook: ${total} AdmissionReviews at ${CONCURRENCY} concurrent over HTTPS: ${(total / secs).toFixed(0)} reviews/s, p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${lat.at(-1)!.toFixed(2)} ms (target p99 < 10 ms)`)
  await pool.close()
  child.disconnect()
}
