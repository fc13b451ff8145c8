// The /metrics endpoint against the real Prometheus tools: `promtool check metrics` lints the
// exposition of a sidecar under traffic (both naming modes), and a real Prometheus server scrapes a
// sidecar every second while a known traffic pattern goes through it; the PromQL a dashboard uses
// (request rate, 5xx share, p50 from the duration histogram) must give back what was sent. That
// Prometheus runs the scrape job of examples/observability/prometheus.yaml (its Kubernetes pod
// discovery swapped for file discovery of targets carrying the same __meta_kubernetes_* labels, so
// the annotation relabelling is what finds the sidecar), and every query of
// examples/observability/grafana-dashboard.json is evaluated against it.
// Needs /usr/bin/prometheus and /usr/bin/promtool (Debian package `prometheus`; .ci/run installs it).
//
// Duration metric names: weft naming uses the Prometheus base unit, weft_request_duration_seconds;
// istio naming keeps Istio's istio_request_duration_milliseconds, which dashboards and Kiali query by
// name, so promtool's base-unit lint on that one name is expected there and nothing else is.
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'
import type { Bootstrap } from '../api/schema.ts'
import { cluster, freePort, makeConfig, ROOT, sleep, startTestSidecar, tempDir, until, type TestSidecar, type Teardown } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

type Naming = 'weft' | 'istio'

const DURATION: Record<Naming, string> = {
  weft: 'weft_request_duration_seconds',
  istio: 'istio_request_duration_milliseconds',
}
/** The lint promtool must report for Istio's own metric name, and the only one allowed. */
const ISTIO_UNIT_LINT = 'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"'

const DEST_SERVICE = 'backend.shop.svc.cluster.local'
/** Bucket bounds of the request duration histogram, in ms. */
const DURATION_BUCKETS_MS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]
/** Upstream think time: every request takes ~2 ms, so the p50 lands in the 2.5 or 5 ms bucket. */
const UPSTREAM_DELAY_MS = 2

function installed(cmd: string): boolean {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore', timeout: 10_000 })
  return r.error === undefined && r.status === 0
}
const HAVE_PROMTOOL = installed('promtool')
const HAVE_PROMETHEUS = installed('prometheus')
const MISSING = 'not installed: the Debian package `prometheus` provides prometheus and promtool (apt-get install -y prometheus; .ci/run installs it)'

/**
 * One outbound listener; /app/* goes to cluster "backend" (labelled as DEST_SERVICE in workload
 * "backend" of namespace "shop"), anything else matches no route (404 NR).
 */
function metricsConfig(upstreamPort: number, naming: Naming): Bootstrap {
  const config = makeConfig({
    routes: [{ name: 'app', match: { path: { prefix: '/app' } }, backends: [{ cluster: 'backend' }] }],
    clusters: [cluster('backend', [upstreamPort], { destination: { service: DEST_SERVICE, workload: 'backend', namespace: 'shop' } })],
  })
  config.node = { id: 'frontend-1.shop', workload: 'frontend', namespace: 'shop' }
  config.telemetry = { metrics: { enabled: true, naming } }
  return config
}

/** An upstream answering after ~2 ms: 503 for /app/fail, else 200 with a small body. */
async function startMetricsSidecar(t: Teardown, naming: Naming): Promise<TestSidecar> {
  const up = await startHttpUpstream(t, {
    name: 'backend',
    handler: async (rec, res) => {
      await sleep(UPSTREAM_DELAY_MS) // kept: the latency the histograms must show
      const fail = rec.url.startsWith('/app/fail')
      const body = fail ? 'unavailable\n' : 'hello from backend\n'
      res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    },
  })
  return startTestSidecar(t, metricsConfig(up.port, naming))
}

/** GET /metrics once it serves request metrics (the first requests create the series). */
async function scrapeText(s: TestSidecar, prefix: string): Promise<string> {
  let last = { status: 0, body: '' }
  try {
    await until(
      `/metrics with ${prefix}_requests_total`,
      async () => {
        last = await s.admin('/metrics')
        return last.status === 200 && last.body.includes(`${prefix}_requests_total{`)
      },
      3000,
      50,
    )
  } catch (err) {
    throw new Error(`${(err as Error).message}; last answer: HTTP ${last.status} ${JSON.stringify(last.body.slice(0, 300))}`)
  }
  return last.body
}

// ---- traffic ---------------------------------------------------------------------------------------

interface TrafficResult {
  sent: number
  byStatus: Map<number, number>
  /** each answered request's latency seen by the client, ms */
  latenciesMs: number[]
  errors: string[]
  /** wall clock (ms) of the first and last request sent */
  startMs: number
  endMs: number
}

function send(agent: Agent, port: number, method: string, path: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: 'backend.shop' }
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body))
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers, timeout: 5000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)))
    req.on('error', reject)
    req.end(body)
  })
}

/**
 * A steady open-loop pattern: `rps` requests per second for `durationMs`, paced against the clock (a
 * late timer sends the backlog at once, so the average rate is exact); every `failEvery`th request
 * goes to /app/fail (503), the others to /app/ok (200).
 */
async function steadyTraffic(port: number, rps: number, durationMs: number, failEvery: number): Promise<TrafficResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  const result: TrafficResult = { sent: 0, byStatus: new Map(), latenciesMs: [], errors: [], startMs: Date.now(), endMs: 0 }
  const inflight: Promise<void>[] = []
  const total = Math.round((rps * durationMs) / 1000)
  const start = performance.now()
  result.startMs = Date.now()
  while (result.sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * rps) / 1000) + 1)
    while (result.sent < due) {
      const i = result.sent++
      const path = i % failEvery === failEvery - 1 ? '/app/fail' : '/app/ok'
      const t0 = performance.now()
      inflight.push(
        send(agent, port, 'GET', path).then(
          (status) => {
            result.latenciesMs.push(performance.now() - t0)
            result.byStatus.set(status, (result.byStatus.get(status) ?? 0) + 1)
          },
          (err: Error) => void result.errors.push(err.message),
        ),
      )
    }
    result.endMs = Date.now()
    await sleep(5) // kept: the load generator's tick (requests at a fixed rate)
  }
  await Promise.all(inflight)
  agent.destroy()
  return result
}

// ---- promtool --------------------------------------------------------------------------------------

function promtoolCheck(text: string): { code: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 15_000 })
  if (r.error) throw r.error
  return { code: r.status, output: `${r.stdout}${r.stderr}`.trim() }
}

/** The exposition without one metric family (its HELP, TYPE and sample lines). */
function withoutFamily(text: string, family: string): string {
  const re = new RegExp(`^(# (HELP|TYPE) ${family} |${family}(_bucket|_sum|_count)?[{ ])`)
  return text.split('\n').filter((l) => !re.test(l)).join('\n')
}

for (const naming of ['weft', 'istio'] as const) {
  t.test(`promtool check metrics: the /metrics of a sidecar under traffic (naming: ${naming})`, { skip: HAVE_PROMTOOL ? false : `promtool ${MISSING}` }, async (t) => {
    const s = await startMetricsSidecar(t, naming)
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    // Every kind of series: relayed 200 and 503, a local 404 (no route, flag NR), request bodies.
    const statuses: number[] = []
    for (let i = 0; i < 20; i++) statuses.push(await send(agent, s.port, 'GET', '/app/ok'))
    for (let i = 0; i < 5; i++) statuses.push(await send(agent, s.port, 'GET', '/app/fail'))
    for (let i = 0; i < 5; i++) statuses.push(await send(agent, s.port, 'POST', '/app/ok', 'x'.repeat(100 * (i + 1))))
    for (let i = 0; i < 3; i++) statuses.push(await send(agent, s.port, 'GET', '/nowhere'))
    t.same(
      [...new Set(statuses)].sort(),
      [200, 404, 503],
      'the traffic got 200s, 503s and 404s',
    )

    const text = await scrapeText(s, naming)
    const other = naming === 'istio' ? 'weft' : 'istio'
    for (const m of ['requests_total', 'request_bytes_bucket', 'response_bytes_bucket', 'tcp_connections_opened_total']) {
      t.match(text, new RegExp(`^${naming}_${m}\\{`, 'm'), `${naming}_${m} is exposed`)
      t.notMatch(text, new RegExp(`^${other}_${m}\\{`, 'm'), `no ${other}_${m}`)
    }
    t.match(text, new RegExp(`^${DURATION[naming]}_bucket\\{`, 'm'), `${DURATION[naming]} is exposed`)
    t.notMatch(text, new RegExp(`^${DURATION[other]}_bucket\\{`, 'm'), `no ${DURATION[other]}`)
    t.match(text, /^weft_config_version /m, 'weft_config_version is exposed in both modes')
    t.match(text, new RegExp(`^${naming}_requests_total\\{[^}]*response_code="404"[^}]*response_flags="NR"`, 'm'), 'the no-route 404 carries flag NR')

    const check = promtoolCheck(text)
    if (naming === 'weft') {
      t.equal(check.code, 0, 'promtool check metrics exits 0')
      t.equal(check.output, '', 'promtool reports no lint problems')
    } else {
      // Exit 3 is "lint problems" (1 would be a parse error): exactly the Istio name's unit, nothing else.
      t.equal(check.code, 3, 'promtool check metrics: lint findings only, no parse error')
      t.same(check.output.split('\n'), [ISTIO_UNIT_LINT], "the only finding is Istio's own millisecond name")
      const rest = promtoolCheck(withoutFamily(text, DURATION.istio))
      t.equal(rest.code, 0, `promtool check metrics exits 0 without ${DURATION.istio}`)
      t.equal(rest.output, '', `no lint problems without ${DURATION.istio}`)
    }
  })
}

// ---- a real Prometheus server ------------------------------------------------------------------------

const EXAMPLES = join(ROOT, 'examples', 'observability')
const POD = { name: 'frontend-7d4b9c-x2x9q', namespace: 'shop', app: 'frontend' }

interface PromServer {
  port: number
  job: string
  child: ChildProcess
  log(): string
}

/**
 * The pods Kubernetes discovery would report, as file-discovery targets with the same meta labels:
 * the annotated sidecar (its container port is not the admin port: the annotation must win), a pod
 * without the scrape annotation, a Pending one, and one with an IPv6 pod IP (down, but addressed).
 */
function fakePods(adminPort: number): object[] {
  const pod = (name: string, ip: string, annotations: Record<string, string>, phase = 'Running') => {
    const labels: Record<string, string> = {
      __address__: `${ip.includes(':') ? `[${ip}]` : ip}:8080`,
      __meta_kubernetes_namespace: POD.namespace,
      __meta_kubernetes_pod_name: name,
      __meta_kubernetes_pod_ip: ip,
      __meta_kubernetes_pod_phase: phase,
      __meta_kubernetes_pod_node_name: 'node-1',
      __meta_kubernetes_pod_label_app: POD.app,
      __meta_kubernetes_pod_container_port_number: '8080',
    }
    for (const [k, v] of Object.entries(annotations)) labels[`__meta_kubernetes_pod_annotation_${k}`] = v
    return { targets: [labels.__address__], labels }
  }
  const scrape = { prometheus_io_scrape: 'true', prometheus_io_port: String(adminPort), prometheus_io_path: '/metrics' }
  return [
    pod(POD.name, '127.0.0.1', scrape),
    pod('no-annotation', '127.0.0.2', {}),
    pod('pending', '127.0.0.3', scrape, 'Pending'),
    pod('ipv6', 'fd00::1', scrape),
  ]
}

async function startPrometheus(t: Teardown, adminPort: number): Promise<PromServer> {
  const dir = tempDir(t)
  const data = join(dir, 'data')
  mkdirSync(data)
  const podsFile = join(dir, 'pods.json')
  writeFileSync(podsFile, JSON.stringify(fakePods(adminPort)))
  const example = parseYaml(readFileSync(join(EXAMPLES, 'prometheus.yaml'), 'utf8')) as { scrape_configs: Record<string, unknown>[] }
  const job = { ...example.scrape_configs[0] }
  if (!('kubernetes_sd_configs' in job)) throw new Error('examples/observability/prometheus.yaml: the first job has no kubernetes_sd_configs')
  delete job.kubernetes_sd_configs
  job.file_sd_configs = [{ files: [podsFile] }]
  job.scrape_interval = '1s'
  job.scrape_timeout = '1s'
  const configFile = join(dir, 'prometheus.yml')
  writeFileSync(configFile, stringifyYaml({ global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' }, scrape_configs: [job] }))
  const port = await freePort()
  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${data}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  const keep = (d: string) => {
    out = (out + d).slice(-8000)
  }
  child.stdout!.setEncoding('utf8').on('data', keep)
  child.stderr!.setEncoding('utf8').on('data', keep)
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    await Promise.race([exited, sleep(3000)])
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await Promise.race([exited, sleep(1000)])
    }
  })
  try {
    await until(
      `prometheus on 127.0.0.1:${port} ready`,
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with code ${child.exitCode}`)
        try {
          const r = await fetch(`http://127.0.0.1:${port}/-/ready`)
          await r.text()
          return r.status === 200
        } catch {
          return false
        }
      },
      15_000,
      100,
    )
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${out}`)
  }
  return { port, job: String(job.job_name), child, log: () => out }
}

interface Sample {
  metric: Record<string, string>
  value: number
}

async function api<T>(prom: PromServer, path: string, params: Record<string, string> = {}): Promise<T> {
  const u = new URL(`http://127.0.0.1:${prom.port}${path}`)
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v)
  const res = await fetch(u)
  const body = (await res.json()) as { status: string; error?: string; data?: T }
  if (body.status !== 'success' || body.data === undefined) throw new Error(`${path} ${JSON.stringify(params)}: ${res.status} ${body.error ?? JSON.stringify(body)}`)
  return body.data
}

/** GET /api/v1/query (an instant vector), evaluated at `timeSec` if given. */
async function query(prom: PromServer, promql: string, timeSec?: number): Promise<Sample[]> {
  const params: Record<string, string> = { query: promql }
  if (timeSec !== undefined) params.time = timeSec.toFixed(3)
  const data = await api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(prom, '/api/v1/query', params)
  if (data.resultType !== 'vector') throw new Error(`query ${promql}: result type ${data.resultType}, want vector`)
  return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
}

/** The single value of a query that sums to one sample (NaN when empty). */
async function scalar(prom: PromServer, promql: string, timeSec?: number): Promise<number> {
  const r = await query(prom, promql, timeSec)
  return r.length === 1 ? r[0].value : NaN
}

interface Target {
  labels: Record<string, string>
  discoveredLabels: Record<string, string>
  scrapeUrl: string
  health: string
}

// ---- the Grafana dashboard ---------------------------------------------------------------------------

interface DashboardPanel {
  id: number
  type: string
  title: string
  datasource?: { type: string; uid: string }
  gridPos: { x: number; y: number; w: number; h: number }
  targets?: { expr: string; refId: string; datasource?: { type: string; uid: string } }[]
}
interface Dashboard {
  uid: string
  title: string
  panels: DashboardPanel[]
  templating: { list: { name: string; type: string; definition?: string; query?: unknown }[] }
}

function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(join(EXAMPLES, 'grafana-dashboard.json'), 'utf8')) as Dashboard
}

/** A dashboard expression with Grafana's variables filled in as Grafana would for "All". */
function expand(expr: string, reporter: string): string {
  return expr
    .replaceAll('$__rate_interval', '5s')
    .replaceAll('$__interval', '1s')
    .replaceAll('$reporter', reporter)
    .replaceAll('$service', '.*')
}

t.test('the Grafana dashboard is well-formed', async (t) => {
  const d = loadDashboard()
  t.equal(d.uid, 'weft-golden-signals')
  const vars = d.templating.list.map((v) => v.name)
  t.same(vars, ['datasource', 'reporter', 'service'], 'template variables: datasource, reporter, service')
  const service = d.templating.list.find((v) => v.name === 'service')!
  t.match(service.definition ?? '', /^label_values\(weft_requests_total\{[^}]*\}, destination_service\)$/, '$service lists destination_service')
  const ids = d.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  // No two panels overlap on the 24-column grid.
  const cells = new Set<string>()
  let overlap = ''
  for (const p of d.panels) {
    for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        const k = `${x},${y}`
        if (cells.has(k) && overlap === '') overlap = `${p.title} at ${k}`
        cells.add(k)
      }
    }
  }
  t.equal(overlap, '', 'no panels overlap')
  t.same(d.panels.filter((p) => p.gridPos.x + p.gridPos.w > 24).map((p) => p.title), [], 'every panel fits the 24-column grid')
  const exprs = d.panels.flatMap((p) => p.targets ?? [])
  t.ok(exprs.length >= 20, `${exprs.length} queries`)
  const otherSource = d.panels.filter((p) => p.type !== 'row' && (p.datasource?.type !== 'prometheus' || p.datasource.uid !== '${datasource}'))
  t.same(otherSource.map((p) => p.title), [], 'every panel queries the $datasource variable')
  const all = exprs.map((e) => e.expr).join('\n')
  for (const m of ['weft_requests_total', 'weft_request_duration_seconds_bucket', 'weft_request_bytes', 'weft_response_bytes', 'weft_tcp_connections_opened_total']) {
    t.ok(all.includes(m), `the dashboard uses ${m}`)
  }
  t.notOk(/istio_|_milliseconds/.test(all), 'weft_* names only')
})

// ---- Prometheus against a sidecar under traffic -----------------------------------------------------

t.test('Prometheus scrapes the sidecar: rate, 5xx share and p50 match the traffic sent', { skip: HAVE_PROMETHEUS ? false : `prometheus ${MISSING}` }, async (t) => {
  const RPS = 50
  const DURATION_MS = 7000
  const FAIL_EVERY = 5 // 20 % 503s
  const WINDOW = '5s'

  const s = await startMetricsSidecar(t, 'weft')
  const prom = await startPrometheus(t, s.adminPort)
  const fail = (msg: string) => `${msg}\nprometheus log:\n${prom.log()}`
  const UP = `up{job="${prom.job}", pod="${POD.name}"}`

  // The annotated pod is up (a first scrape happened) before the traffic starts.
  await until(`prometheus scraped the sidecar (${UP} == 1)`, async () => (await scalar(prom, UP)) === 1, 10_000, 200).catch((err: Error) => {
    throw new Error(fail(err.message))
  })

  // The example's relabelling: only annotated, running pods, at the annotated port and path, with
  // namespace, pod and pod-label target labels.
  const targets = await api<{ activeTargets: Target[]; droppedTargets: Target[] }>(prom, '/api/v1/targets')
  const active = targets.activeTargets.map((x) => x.labels.pod).sort()
  t.same(active, [POD.name, 'ipv6'].sort(), 'active targets: the annotated running pods')
  const sidecarTarget = targets.activeTargets.find((x) => x.labels.pod === POD.name)!
  t.equal(sidecarTarget.scrapeUrl, `http://127.0.0.1:${s.adminPort}/metrics`, 'scraped at the prometheus.io/port and prometheus.io/path annotations')
  t.match(sidecarTarget.labels, { namespace: POD.namespace, pod: POD.name, app: POD.app, node: 'node-1', instance: `127.0.0.1:${s.adminPort}` }, 'target labels')
  t.equal(targets.activeTargets.find((x) => x.labels.pod === 'ipv6')!.labels.instance, `[fd00::1]:${s.adminPort}`, 'an IPv6 pod IP is bracketed')
  t.equal(targets.droppedTargets.length, 2, 'the pod without the annotation and the pending pod are dropped')

  const traffic = await steadyTraffic(s.port, RPS, DURATION_MS, FAIL_EVERY)
  t.same(traffic.errors, [], 'no request failed')
  const sentRate = (traffic.sent * 1000) / (traffic.endMs - traffic.startMs)
  const sent5xx = (traffic.byStatus.get(503) ?? 0) / traffic.sent
  t.equal((traffic.byStatus.get(200) ?? 0) + (traffic.byStatus.get(503) ?? 0), traffic.sent, 'every request got 200 or 503')
  t.ok(Math.abs(sentRate - RPS) / RPS < 0.1, `the client kept its pace (${sentRate.toFixed(1)} rps)`)

  // Evaluate at half a second before the last request: the 5 s window then lies inside the
  // steady part of the traffic. Wait until Prometheus has ingested a scrape past that moment.
  const evalSec = (traffic.endMs - 500) / 1000
  await until(
    'a scrape after the evaluation time',
    async () => (await scalar(prom, `max(timestamp(weft_requests_total{pod="${POD.name}"}))`)) >= evalSec,
    5000,
    200,
  ).catch((err: Error) => {
    throw new Error(fail(err.message))
  })

  const rate = await scalar(prom, `sum(rate(weft_requests_total[${WINDOW}]))`, evalSec)
  t.ok(Math.abs(rate - sentRate) / sentRate <= 0.3, `sum(rate(weft_requests_total[${WINDOW}])) = ${rate.toFixed(2)} rps, sent ${sentRate.toFixed(2)} rps (±30 %)`)

  const share5xx = await scalar(
    prom,
    `sum(rate(weft_requests_total{response_code=~"5.."}[${WINDOW}])) / sum(rate(weft_requests_total[${WINDOW}]))`,
    evalSec,
  )
  t.ok(Math.abs(share5xx - sent5xx) <= 0.07, `5xx share ${share5xx.toFixed(3)}, sent ${sent5xx.toFixed(3)} (±0.07)`)

  const p50 = await scalar(prom, `histogram_quantile(0.5, sum by (le) (rate(weft_request_duration_seconds_bucket[${WINDOW}])))`, evalSec)
  // The upstream takes >= 2 ms, so every duration lies above the 1 ms bound: the interpolated median
  // is > 1 ms. The proxy's duration of a request lies inside the client's (same clock, nested in
  // time), so its median is at most the client's median, and the interpolated p50 at most the upper
  // bound of the bucket holding the client's median: (2.5 or) 5 ms on an idle machine. Milliseconds
  // or microseconds recorded as seconds would land far outside.
  const lat = [...traffic.latenciesMs].sort((a, b) => a - b)
  const clientMedianMs = lat[Math.floor(lat.length / 2)]
  const upperMs = DURATION_BUCKETS_MS.find((b) => b >= clientMedianMs) ?? Infinity
  t.ok(
    p50 > 0.001 && p50 <= upperMs / 1000,
    `p50 from the histogram = ${(p50 * 1000).toFixed(3)} ms, want in (1 ms, ${upperMs} ms] (the client's median was ${clientMedianMs.toFixed(2)} ms)`,
  )
  t.ok(upperMs <= 25, `the client's median latency (${clientMedianMs.toFixed(2)} ms) is in a bucket up to 25 ms (an upstream answering in ~2 ms)`)

  const histRate = await scalar(prom, `sum(rate(weft_request_duration_seconds_count[${WINDOW}]))`, evalSec)
  t.ok(Math.abs(histRate - rate) / rate <= 0.05, `the histogram's _count rate (${histRate.toFixed(2)}) matches the counter's (${rate.toFixed(2)})`)

  // The labels a dashboard groups by: the outbound listener reports as the source.
  const byDest = await query(prom, `sum by (reporter, source_workload, destination_service, response_code) (rate(weft_requests_total[${WINDOW}]))`, evalSec)
  const keys = byDest.map((r) => `${r.metric.reporter} ${r.metric.source_workload} ${r.metric.destination_service} ${r.metric.response_code}`).sort()
  t.same(keys, [`source frontend ${DEST_SERVICE} 200`, `source frontend ${DEST_SERVICE} 503`], 'series by reporter, source workload, destination service and code')

  // Every query of the Grafana dashboard parses and has data for this traffic (reporter "source").
  const d = loadDashboard()
  for (const v of d.templating.list) {
    const m = v.definition === undefined ? null : /^label_values\((.*), (\w+)\)$/.exec(v.definition)
    if (m === null) continue
    const values = await query(prom, `group by (${m[2]}) (${expand(m[1], 'source')})`, evalSec)
    t.same(values.map((x) => x.metric[m[2]]), [DEST_SERVICE], `variable $${v.name} lists ${DEST_SERVICE}`)
  }
  for (const p of d.panels) {
    for (const target of p.targets ?? []) {
      const expr = expand(target.expr, 'source')
      const r = await query(prom, expr, evalSec).catch((err: Error) => err)
      if (r instanceof Error) {
        t.fail(`dashboard "${p.title}" ${target.refId}: ${r.message}`)
        continue
      }
      t.ok(r.length > 0 && r.every((x) => Number.isFinite(x.value)), `dashboard "${p.title}" ${target.refId} has data (${r.map((x) => x.value.toPrecision(3)).join(', ')})`)
    }
  }
})
