// Weft, the proxy under test: `node bin/weft.js proxy --config FILE` with WEFT_LOG_LEVEL=warn, ready
// when GET /ready on its admin port answers 200. The generated config has routing and load balancing
// active: an outbound listener whose route table tries a header route, an /api prefix route and a
// catch-all "/" route in order, each ending at a roundRobin cluster over both upstream ports.
//
// Telemetry variants (rows weft, weft+metrics, weft+tracing, weft+accesslog) run the same config with
// one telemetry feature on each: "plain" has metrics, tracing and the access log all off, and every
// other variant turns exactly one of them on, so each row's cost is read against the plain row.
import fs from 'node:fs'
import http from 'node:http'
import type net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import YAML from 'yaml'
import type { Bootstrap, Telemetry } from '../../api/schema.ts'
import { httpGet } from '../net.ts'
import { spawnGroup } from '../spawn.ts'
import { finishStart } from './common.ts'
import { CANARY_HEADER, type Peer, type PeerContext } from './types.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
export const WEFT_BIN = path.resolve(here, '../../bin/weft.js')

/**
 * Which telemetry a Weft row runs with ('policy': telemetry off, the bench policy on; 'tcp':
 * telemetry off, an opaque TCP listener instead of the HTTP routes).
 */
export type WeftVariant = 'plain' | 'metrics' | 'tracing' | 'accesslog' | 'explain' | 'policy' | 'tcp'

/** Bench rows that are Weft, and the telemetry each runs with. */
export const WEFT_ROWS = {
  weft: 'plain',
  'weft+metrics': 'metrics',
  'weft+tracing': 'tracing',
  'weft+accesslog': 'accesslog',
  'weft+explain': 'explain',
  'weft+policy': 'policy',
  'weft-tcp': 'tcp',
} as const satisfies Record<string, WeftVariant>
export type WeftRow = keyof typeof WEFT_ROWS

export function isWeftRow(name: string): name is WeftRow {
  return Object.hasOwn(WEFT_ROWS, name)
}

/** weft+explain records the decision trace of 1 % of the requests (telemetry.explain.sampling). */
export const EXPLAIN_SAMPLING_PERCENT = 1

/** Tracing samples 1 % of new traces (Istio's default), reported to the harness's Zipkin sink. */
export const TRACING_SAMPLING_PERCENT = 1

/**
 * The telemetry block of a variant: everything off except the variant's one feature.
 * tracing needs `zipkinUrl`; accesslog writes to `accessLogPath`.
 */
export function variantTelemetry(variant: WeftVariant, opts: { zipkinUrl?: string; accessLogPath?: string } = {}): Telemetry {
  const t: Telemetry = {
    metrics: { enabled: variant === 'metrics' },
    tracing: { enabled: false },
    accessLog: { enabled: false },
  }
  if (variant === 'tracing') {
    if (!opts.zipkinUrl) throw new Error('the tracing variant needs a zipkinUrl')
    t.tracing = { enabled: true, zipkinUrl: opts.zipkinUrl, sampling: TRACING_SAMPLING_PERCENT }
  }
  // decision traces of 1 % of the requests (issue 16's cost target: <= 5 %); the plain row has the
  // default (the x-weft-explain header honoured, nothing sampled)
  if (variant === 'explain') t.explain = { sampling: EXPLAIN_SAMPLING_PERCENT }
  if (variant === 'accesslog') {
    if (!opts.accessLogPath) throw new Error('the accesslog variant needs an access log path')
    t.accessLog = { enabled: true, path: opts.accessLogPath }
  }
  return t
}

/**
 * The policy of the weft+policy row (issue 3's speed check): on top of the route match of every
 * row, a weighted split (90/10 over two clusters with the same endpoints), retries (2, on gateway
 * errors, connect failures and resets, with the default retry budget), a rate limit too high to
 * ever trigger, and the error-rate circuit breaker on both clusters. Nothing in it fails a request
 * of the bench, so every row does the same work upstream.
 */
export function withBenchPolicy(config: Bootstrap): Bootstrap {
  const route = config.routeTables[0].virtualHosts[0].routes.find((r) => r.name === 'default')!
  route.backends = [
    { cluster: 'upstream', weight: 90 },
    { cluster: 'upstream-canary', weight: 10 },
  ]
  route.retry = { attempts: 2, on: ['gateway-error', 'connect-failure', 'reset'] }
  route.rateLimit = { requests: 100_000_000, interval: '1s' }
  for (const c of config.clusters) c.circuitBreaker = { errorThresholdPercentage: 50, volumeThreshold: 20, window: '10s', resetTimeout: '5s' }
  return config
}

export function weftBenchConfig(opts: { port: number; adminPort: number; upstreamPorts: number[]; telemetry?: Telemetry }): Bootstrap {
  // A fresh array per cluster, so the YAML has no anchors/aliases.
  const endpoints = () => opts.upstreamPorts.map((port) => ({ address: '127.0.0.1', port }))
  const config: Bootstrap = {
    node: { id: 'weft-bench', workload: 'bench', namespace: 'bench' },
    admin: { address: '127.0.0.1', port: opts.adminPort },
    listeners: [{ name: 'bench-outbound', direction: 'outbound', address: '127.0.0.1', port: opts.port, routeTable: 'bench' }],
    routeTables: [
      {
        name: 'bench',
        virtualHosts: [
          {
            name: 'bench',
            domains: ['*'],
            routes: [
              { name: 'canary', match: { headers: [{ name: CANARY_HEADER, exact: '1' }] }, backends: [{ cluster: 'upstream-canary' }] },
              { name: 'api', match: { path: { prefix: '/api' } }, backends: [{ cluster: 'upstream' }] },
              { name: 'default', match: { path: { prefix: '/' } }, backends: [{ cluster: 'upstream' }] },
            ],
          },
        ],
      },
    ],
    clusters: [
      { name: 'upstream', lb: { policy: 'roundRobin' }, endpoints: endpoints() },
      { name: 'upstream-canary', lb: { policy: 'roundRobin' }, endpoints: endpoints() },
    ],
  }
  if (opts.telemetry) config.telemetry = opts.telemetry
  return config
}

/**
 * The --tcp row: the same listener as `protocol: tcp` (opaque, no detection, no HTTP parsing) to a
 * roundRobin cluster over both upstream ports, so each wrk connection is one tunnel to one nginx.
 */
export function withTcpListener(config: Bootstrap): Bootstrap {
  config.listeners[0].protocol = 'tcp'
  config.listeners[0].tcp = { cluster: 'upstream' }
  return config
}

/** Placeholders a user-supplied --weft-config may contain; a file without them is used as is. */
export function fillPlaceholders(text: string, values: Record<string, number>): string {
  return text.replace(/\{\{\s*([A-Z0-9_]+)\s*\}\}/g, (all, key: string) => (key in values ? String(values[key]) : all))
}

/** Traffic port (first outbound listener, else first listener) and admin port of a Weft config. */
export function portsOfConfig(text: string): { port: number; adminPort: number } {
  const doc = YAML.parse(text) as Partial<Bootstrap> | null
  const listeners = doc?.listeners ?? []
  const listener = listeners.find((l) => l.direction === 'outbound') ?? listeners[0]
  if (!listener) throw new Error('the Weft config has no listener')
  if (!doc?.admin?.port) throw new Error('the Weft config has no admin.port (needed for GET /ready)')
  return { port: listener.port, adminPort: doc.admin.port }
}

/**
 * ctx.options: adminPort (string), configFile (optional user config), row (a WEFT_ROWS name, default
 * "weft"), zipkinUrl (for weft+tracing).
 *
 * Generated config: the row's variant telemetry (the plain row has metrics, tracing and the access
 * log off). A user config is used as it is for the plain row; the other rows get it with its
 * telemetry block replaced by theirs (so it needs the {{PORT}} and {{ADMIN_PORT}} placeholders: all
 * rows run at once).
 */
export async function startWeft(ctx: PeerContext): Promise<Peer> {
  if (!fs.existsSync(WEFT_BIN)) throw new Error(`${WEFT_BIN} does not exist (Weft not built yet?)`)
  const adminPort = Number(ctx.options?.adminPort)
  const userConfig = ctx.options?.configFile
  const row = ctx.options?.row ?? 'weft'
  if (!isWeftRow(row)) throw new Error(`unknown Weft row ${row}`)
  const variant = WEFT_ROWS[row]
  const accessLogPath = path.join(ctx.dir, 'access.log')
  const telemetry = variantTelemetry(variant, { zipkinUrl: ctx.options?.zipkinUrl, accessLogPath })
  const configFile = path.join(ctx.dir, 'weft.yaml')
  let text: string
  if (userConfig) {
    text = fillPlaceholders(fs.readFileSync(userConfig, 'utf8'), {
      UPSTREAM_PORT_1: ctx.upstreamPorts[0],
      UPSTREAM_PORT_2: ctx.upstreamPorts[1],
      PORT: ctx.port,
      ADMIN_PORT: adminPort,
    })
    if (variant === 'policy' || variant === 'tcp') throw new Error(`${row} runs the generated config only (not with --weft-config)`)
    if (variant !== 'plain') {
      const doc = YAML.parse(text) as Bootstrap
      doc.telemetry = telemetry
      text = `# ${userConfig} with the ${row} telemetry (bench/peers/weft.ts)\n${YAML.stringify(doc)}`
    }
  } else {
    const config = weftBenchConfig({ port: ctx.port, adminPort, upstreamPorts: ctx.upstreamPorts, telemetry })
    const shaped = variant === 'policy' ? withBenchPolicy(config) : variant === 'tcp' ? withTcpListener(config) : config
    text = `# generated by bench/peers/weft.ts (${row})\n${YAML.stringify(shaped)}`
  }
  fs.writeFileSync(configFile, text)
  const ports = portsOfConfig(text)
  const proc = spawnGroup(row, process.execPath, [WEFT_BIN, 'proxy', '--config', configFile], {
    logFile: path.join(ctx.dir, 'weft.log'),
    env: { ...process.env, WEFT_LOG_LEVEL: 'warn' },
    cwd: path.resolve(here, '../..'),
  })
  const info: Record<string, unknown> = { configSource: userConfig ?? 'generated', configText: text, variant, adminPort: ports.adminPort }
  if (variant === 'accesslog') info.accessLogPath = accessLogPath
  const peer = await finishStart({
    name: row,
    proc,
    port: ports.port,
    upstreamPorts: ctx.upstreamPorts,
    readyPort: ports.adminPort,
    readyPath: '/ready',
    readyTimeoutMs: 20000,
    info,
  })
  // The build is what runs: with a source file newer than dist/ (a comment edited after the
  // build), bin/weft.js runs the TypeScript sources, with a warning in the log: another program
  // (unbundled modules, other JIT choices) that a before/after comparison would silently measure.
  if (process.env.WEFT_FROM_SOURCE !== '1') {
    let head = ''
    try {
      head = fs.readFileSync(path.join(ctx.dir, 'weft.log'), 'utf8').slice(0, 4000)
    } catch {}
    const warning = /^weft: .* is newer than dist\/.*$/m.exec(head)
    if (warning !== null) {
      await peer.stop()
      throw new Error(`${warning[0]}: a bench measures the build (npm run build first, or WEFT_FROM_SOURCE=1 to measure the sources)`)
    }
  }
  // The telemetry really is as the row says: /metrics answers only where metrics are on.
  if (!userConfig || variant !== 'plain') {
    try {
      const m = await httpGet(ports.adminPort, '/metrics', 2000)
      const on = m.status === 200 && m.body.includes('_requests_total')
      if (on !== (variant === 'metrics')) {
        throw new Error(`GET /metrics answered HTTP ${m.status}: metrics are ${on ? 'on' : 'off'}, the ${row} row wants them ${variant === 'metrics' ? 'on' : 'off'}`)
      }
    } catch (err) {
      await peer.stop()
      throw err
    }
  }
  return peer
}

/**
 * What a Weft row's telemetry produced during the run, for the results and as a check that the
 * feature was really on: the requests counted in /metrics, the spans the Zipkin sink received, the
 * size of the access log. Returns the facts and a warning when the feature produced nothing.
 */
export async function telemetryFacts(
  row: WeftRow,
  info: Record<string, unknown>,
  zipkin: ZipkinSink | null,
): Promise<{ facts: Record<string, unknown>; warning?: string }> {
  const variant = WEFT_ROWS[row]
  if (variant === 'metrics') {
    const m = await httpGet(Number(info.adminPort), '/metrics', 5000).catch(() => null)
    let requests = 0
    for (const line of m?.body.split('\n') ?? []) {
      const hit = /^\w+_requests_total\{[^}]*\} ([0-9.e+]+)$/.exec(line)
      if (hit) requests += Number(hit[1])
    }
    return requests > 0 ? { facts: { metricsRequestsTotal: requests } } : { facts: {}, warning: 'metrics on, but /metrics counted no requests' }
  }
  if (variant === 'tracing') {
    const stats = zipkin?.stats() ?? { posts: 0, spans: 0, bytes: 0 }
    return stats.posts > 0 ? { facts: { zipkin: stats } } : { facts: { zipkin: stats }, warning: 'tracing on, but the Zipkin sink received no spans' }
  }
  if (variant === 'accesslog') {
    let bytes = 0
    try {
      bytes = fs.statSync(String(info.accessLogPath)).size
    } catch {
      // not written
    }
    return bytes > 0 ? { facts: { accessLogBytes: bytes } } : { facts: { accessLogBytes: 0 }, warning: 'access log on, but the file stayed empty' }
  }
  return { facts: {} }
}

// ---- a Zipkin sink ---------------------------------------------------------------------------------

export interface ZipkinSink {
  /** e.g. http://127.0.0.1:PORT/api/v2/spans */
  url: string
  stats(): { posts: number; spans: number; bytes: number }
  close(): Promise<void>
}

/**
 * A stand-in Zipkin collector on 127.0.0.1: accepts POST /api/v2/spans (202) and discards the spans,
 * counting posts, spans (JSON arrays) and bytes. It runs in the harness process, which is idle while
 * wrk runs; at 1 % sampling it sees a few batches per second.
 */
export async function startZipkinSink(): Promise<ZipkinSink> {
  let posts = 0
  let spans = 0
  let bytes = 0
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || req.url?.split('?')[0] !== '/api/v2/spans') {
      res.writeHead(404).end()
      req.resume()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      posts++
      bytes += body.length
      if (!req.headers['content-encoding'] && (req.headers['content-type'] ?? 'application/json').includes('json')) {
        try {
          const v: unknown = JSON.parse(body.toString('utf8'))
          if (Array.isArray(v)) spans += v.length
        } catch {
          // not JSON: counted as a post only
        }
      }
      res.writeHead(202, { 'content-length': '0' }).end()
    })
  })
  server.on('connection', (s: net.Socket) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as net.AddressInfo).port
  let closed = false
  return {
    url: `http://127.0.0.1:${port}/api/v2/spans`,
    stats: () => ({ posts, spans, bytes }),
    close: () => {
      if (closed) return Promise.resolve()
      closed = true
      for (const s of sockets) s.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
