// Helpers for the traffic-policy tests: a client that times each request, the decision counters
// and request counts as /metrics shows them, a held (never answering until released) upstream
// handler, binomial bounds for the statistical tests, and an endpoint whose connect hangs.
import { Pool } from 'undici'
import { Worker } from 'node:worker_threads'
import { connect, type Socket } from 'node:net'
import { connect as h2connect } from 'node:http2'
import type { Readable } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { Teardown, TestSidecar } from './sidecar.ts'

export interface Reply {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
  /** client-side latency, ms */
  ms: number
  /** first value of a response header */
  get(name: string): string | undefined
}

export interface RequestOptions {
  method?: string
  headers?: Record<string, string>
  /** a Readable is sent chunked */
  body?: string | Buffer | Readable
}

export interface Client {
  /** the undici pool (HTTP/1.1), null for an HTTP/2 client */
  pool: Pool | null
  request(path: string, o?: RequestOptions): Promise<Reply>
}

/** An undici pool to the proxy's listener, destroyed at teardown. Host defaults to "svc". */
export function client(t: Teardown, port: number, connections = 32): Client {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections, pipelining: 1, headersTimeout: 5000, bodyTimeout: 5000 })
  t.teardown(() => pool.destroy())
  return {
    pool,
    async request(path, o = {}) {
      const t0 = performance.now()
      const r = await pool.request({
        path,
        method: (o.method ?? 'GET') as 'GET',
        headers: { host: 'svc', ...o.headers },
        body: o.body,
      })
      const body = await r.body.text()
      const ms = performance.now() - t0
      const headers = r.headers
      return {
        status: r.statusCode,
        body,
        headers,
        ms,
        get(name) {
          const v = headers[name.toLowerCase()]
          return Array.isArray(v) ? v[0] : v
        },
      }
    },
  }
}

/**
 * The same as client(), over HTTP/2 (h2c with prior knowledge, one node:http2 session): Host
 * becomes :authority. For the tests that must hold for both codecs.
 */
export function h2client(t: Teardown, port: number): Client {
  const session = h2connect(`http://127.0.0.1:${port}`)
  session.on('error', () => {})
  t.teardown(() => session.destroy())
  return {
    pool: null,
    request(path, o = {}) {
      const t0 = performance.now()
      const { host, ...rest } = o.headers ?? {}
      const req = session.request({ ':method': o.method ?? 'GET', ':path': path, ':authority': host ?? 'svc', ...rest })
      return new Promise<Reply>((resolve, reject) => {
        let headers: Record<string, string | string[] | undefined> = {}
        const chunks: Buffer[] = []
        req.on('response', (h) => (headers = h as Record<string, string | string[] | undefined>))
        req.on('data', (b: Buffer) => chunks.push(b))
        req.on('error', reject)
        req.on('end', () => {
          const ms = performance.now() - t0
          resolve({
            status: Number(headers[':status']),
            body: Buffer.concat(chunks).toString(),
            headers,
            ms,
            get(name) {
              const v = headers[name.toLowerCase()]
              return Array.isArray(v) ? v[0] : v
            },
          })
        })
        const body = o.body
        if (body === undefined) req.end()
        else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body)
        else body.pipe(req)
      })
    },
  }
}

// ---- metrics ------------------------------------------------------------------------------------

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parse the Prometheus text format into samples (enough for these assertions). */
export function samples(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) throw new Error(`unparseable line: ${line}`)
    const labels: Record<string, string> = {}
    for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2]
    out.push({ name: m[1], labels, value: Number(m[4]) })
  }
  return out
}

/** Sum of the samples named `name` whose labels include `where`. */
export function sum(all: Sample[], name: string, where: Record<string, string> = {}): number {
  return all
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0)
}

export interface Metrics {
  /** weft_proxy_decisions_total of the "out" listener, by decision */
  decision(name: string): number
  /** weft_requests_total with these labels (e.g. response_flags, response_code) */
  requests(where: Record<string, string>): number
  /** weft_cluster_decisions_total of a cluster */
  clusterDecision(cluster: string, decision: string): number
  all: Sample[]
}

/** Read /metrics once. */
export async function metrics(s: TestSidecar): Promise<Metrics> {
  const r = await s.admin('/metrics')
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`)
  const all = samples(r.body)
  return {
    all,
    decision: (d) => sum(all, 'weft_proxy_decisions_total', { listener: 'out', decision: d }),
    requests: (where) => sum(all, 'weft_requests_total', where),
    clusterDecision: (c, d) => sum(all, 'weft_cluster_decisions_total', { cluster: c, decision: d }),
  }
}

/** The /clusters view of one cluster. */
export async function clusterView(s: TestSidecar, name: string): Promise<any> {
  const v = await s.adminJson('/clusters')
  const c = v.clusters.find((x: { name: string }) => x.name === name)
  if (c === undefined) throw new Error(`no cluster ${name} in /clusters`)
  return c
}

// ---- statistics ---------------------------------------------------------------------------------

/**
 * Bounds for the count of successes in n Bernoulli(p) trials: mean ± k standard deviations of the
 * binomial distribution (k = 4.5: a false failure about once in 150 000 runs, two-sided).
 */
export function binomialBounds(n: number, p: number, k = 4.5): { lo: number; hi: number } {
  const mean = n * p
  const sd = Math.sqrt(n * p * (1 - p))
  return { lo: Math.max(0, Math.floor(mean - k * sd)), hi: Math.min(n, Math.ceil(mean + k * sd)) }
}

/** Run `n` calls of `fn` with at most `concurrency` in flight; results in call order. */
export async function parallel<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n)
  let next = 0
  const worker = async () => {
    while (next < n) {
      const i = next++
      out[i] = await fn(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker))
  return out
}

// ---- upstream behaviours -------------------------------------------------------------------------

/** Responses held by an upstream handler until the test releases them. */
export class Held {
  private readonly held: { res: ServerResponse; status: number; body: string }[] = []
  private waiters: (() => void)[] = []
  private total = 0

  /** Keep `res` (answered with status/body on release). */
  hold(res: ServerResponse, status = 200, body = 'released'): void {
    this.held.push({ res, status, body })
    this.total++
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  /** responses held so far, released or not */
  get count(): number {
    return this.total
  }

  /** Answer every held response. */
  releaseAll(): void {
    for (const h of this.held.splice(0)) {
      if (h.res.destroyed) continue
      h.res.writeHead(h.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(h.body) })
      h.res.end(h.body)
    }
  }

  /** Resolves once at least n responses were held in all. */
  async waitFor(n: number, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (this.total < n) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`only ${this.total} of ${n} requests reached the upstream`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }
}

// ---- an endpoint whose connect hangs -------------------------------------------------------------

/**
 * A 127.0.0.1 port where TCP connects hang (as with a black-holed host): a listening socket with
 * a backlog of 1 whose owner never accepts (its thread is blocked), its accept queue filled by
 * the helper, so the kernel drops further SYNs. Released at teardown.
 */
export async function startBlackhole(t: Teardown): Promise<number> {
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(
    `
    const { workerData, parentPort } = require('node:worker_threads')
    const net = require('node:net')
    const server = net.createServer()
    server.listen({ port: 0, backlog: 1 }) // no host: no lookup, bound at once
    parentPort.postMessage(server.address().port)
    // Block this thread's event loop: nothing ever calls accept().
    while (Atomics.load(workerData, 0) === 0) Atomics.wait(workerData, 0, 0, 100)
    server.close()
    `,
    { eval: true, workerData: flag },
  )
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  const fillers: Socket[] = []
  t.teardown(async () => {
    for (const s of fillers) s.destroy()
    Atomics.store(flag, 0, 1)
    Atomics.notify(flag, 0)
    await worker.terminate()
  })
  // Fill the accept queue: connect until one attempt does not complete.
  for (let i = 0; i < 16; i++) {
    const s = connect({ host: '127.0.0.1', port })
    s.on('error', () => {})
    fillers.push(s)
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 150)
      s.once('connect', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
    if (!connected) return port
  }
  throw new Error('blackhole: connects kept completing')
}
