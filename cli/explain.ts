// `weft explain`, two ways:
// - offline (--config / --resources): which listener, virtual host, route, backends and policies a
//   request would get from a config, without traffic. The config is compiled by the proxy's own
//   compileConfig and the route found by the proxy's own lookup and matchRoute; for each route
//   before the chosen one, the first condition that did not match (proxy/route/explain.ts);
// - live (--admin HOST:PORT <x-request-id>): the decision trace a proxy recorded for one request
//   it handled (proxy/telemetry/explain.ts, admin /explain/<id>); without an id, the recent ones.
import type { Command } from 'commander'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PoolRegistry } from '../proxy/cluster/cluster.ts'
import { compileConfig } from '../proxy/config/compile.ts'
import { formatConfigError } from '../api/errors.ts'
import { loadBootstrapFile, type LoadResult } from '../api/load.ts'
import type { Bootstrap, Listener } from '../api/schema.ts'
import { whyNotMatched } from '../proxy/route/explain.ts'
import { matchRoute, type MatchInput } from '../proxy/route/table.ts'
import { describeAdminError, EXIT } from './errors.ts'
import { adminBase } from './tap.ts'
import { formatTrace, type LiveTrace } from './trace-format.ts'
import { request as httpRequest, Agent } from 'undici'
import { emit, outputOption, type OutputFormat } from './output.ts'
import type { Out } from './tap.ts'

export interface ParsedRequest {
  method: string
  authority: string
  path: string
  query: string
  headers: [string, string][]
}

/** 'GET http://reviews.demo/api?x=1 -H x-canary:1 -H "a: b"' (the method may be left out: GET). */
export function parseRequestSpec(spec: string): ParsedRequest {
  const words = spec.trim().split(/\s+/).filter((w) => w !== '')
  let i = 0
  let method = 'GET'
  if (words.length > 0 && /^[A-Z]+$/.test(words[0])) method = words[i++]
  const target = words[i++]
  if (target === undefined) throw new RangeError('no URL in the request: expected e.g. \'GET http://reviews.demo/api -H x-canary:1\'')
  let u: URL
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(target) ? target : 'http://' + target)
  } catch {
    throw new RangeError(`invalid URL ${JSON.stringify(target)} in the request`)
  }
  const headers: [string, string][] = []
  const rest = words.slice(i).join(' ')
  const re = /-H\s+(?:"([^"]*)"|'([^']*)'|(\S+))/g
  let m: RegExpExecArray | null
  let seen = 0
  while ((m = re.exec(rest)) !== null) {
    seen += m[0].length
    const h = m[1] ?? m[2] ?? m[3]
    const colon = h.indexOf(':')
    if (colon <= 0) throw new RangeError(`invalid header ${JSON.stringify(h)}: expected name:value`)
    headers.push([h.slice(0, colon).trim().toLowerCase(), h.slice(colon + 1).trim()])
  }
  if (rest.replace(re, '').trim() !== '') throw new RangeError(`unexpected ${JSON.stringify(rest.replace(re, '').trim())} in the request: headers go as -H name:value`)
  void seen
  return { method, authority: u.host, path: u.pathname, query: u.search.replace(/^\?/, ''), headers }
}

export interface Explanation {
  request: { method: string; authority: string; path: string; query: string; headers: Record<string, string> }
  listener: { name: string; direction: string; address: string; port: number; routeTable: string }
  virtualHost: { name: string; domains: string[] } | null
  /** routes tried before the chosen one, with the first condition that failed */
  notMatched: { route: string; reason: string }[]
  route: { name: string; index: number } | null
  /** what the proxy would answer itself (no route, direct response, redirect); null: forwarded */
  localReply: { status: number; reason: string } | null
  backends: { cluster: string; weight: number; percent: number; service?: string; lbPolicy: string; endpoints: string[] }[]
  policies: {
    timeout?: string
    retry?: unknown
    rateLimit?: unknown
    fault?: unknown
    mirror?: unknown
    redirect?: unknown
    rewrite?: unknown
    circuitBreaker?: Record<string, unknown>
    outlierDetection?: Record<string, unknown>
  }
}

/** Explain a request against a loaded config; `listenerName` defaults to the first outbound listener. */
export function explain(b: Bootstrap, req: ParsedRequest, listenerName?: string): Explanation {
  const compiled = compileConfig(b, 1, new PoolRegistry())
  let l: Listener | undefined
  if (listenerName !== undefined) {
    l = b.listeners.find((x) => x.name === listenerName)
    if (l === undefined) throw new RangeError(`no listener ${JSON.stringify(listenerName)} (listeners: ${b.listeners.map((x) => x.name).join(', ')})`)
  } else {
    l = b.listeners.find((x) => x.direction === 'outbound' && x.routeTable !== undefined) ?? b.listeners.find((x) => x.routeTable !== undefined)
    if (l === undefined) throw new RangeError('the config has no listener with a route table')
  }
  const out: Explanation = {
    request: { method: req.method, authority: req.authority, path: req.path, query: req.query, headers: Object.fromEntries(req.headers) },
    listener: { name: l.name, direction: l.direction, address: l.address ?? '127.0.0.1', port: l.port, routeTable: l.routeTable ?? '' },
    virtualHost: null,
    notMatched: [],
    route: null,
    localReply: null,
    backends: [],
    policies: {},
  }
  const table = compiled.tables.get(l.routeTable ?? '')
  if (table === undefined) {
    out.localReply = { status: 404, reason: `listener ${l.name} has no route table` }
    return out
  }
  const vh = table.lookup(req.authority)
  if (vh === undefined) {
    out.localReply = { status: 404, reason: `no virtual host of route table ${table.name} has the domain ${req.authority} (response flag NR)` }
    return out
  }
  const vhIndex = table.vhosts.indexOf(vh)
  const srcVh = b.routeTables.find((t) => t.name === table.name)!.virtualHosts[vhIndex]
  out.virtualHost = { name: vh.name, domains: srcVh.domains ?? [] }
  const input: MatchInput = { method: req.method, pathOnly: req.path, query: req.query, names: req.headers.map((h) => h[0]), values: req.headers.map((h) => h[1]) }
  const r = matchRoute(vh, input)
  const upto = r === undefined ? vh.routes.length : vh.routes.indexOf(r)
  for (let i = 0; i < upto; i++) {
    out.notMatched.push({ route: vh.routes[i].name, reason: whyNotMatched(srcVh.routes[i].match, input) ?? 'matches (a bug: report it)' })
  }
  if (r === undefined) {
    out.localReply = { status: 404, reason: `no route of virtual host ${vh.name} matches (response flag NR)` }
    return out
  }
  const src = srcVh.routes[upto]
  out.route = { name: r.name, index: upto }
  if (r.direct !== null) out.localReply = { status: r.direct.status, reason: 'the route answers directly (directResponse)' }
  const p = out.policies
  if (src.timeout !== undefined) p.timeout = src.timeout
  if (src.retry !== undefined) p.retry = src.retry
  if (src.rateLimit !== undefined) p.rateLimit = src.rateLimit
  if (src.fault !== undefined) p.fault = src.fault
  if (src.mirror !== undefined) p.mirror = src.mirror
  if (src.redirect !== undefined) {
    p.redirect = src.redirect
    out.localReply = { status: src.redirect.status ?? 302, reason: 'the route redirects' }
  }
  if (src.rewrite !== undefined) p.rewrite = src.rewrite
  for (const be of r.backends) {
    const c = b.clusters.find((x) => x.name === be.cluster)
    out.backends.push({
      cluster: be.cluster,
      weight: be.weight,
      percent: r.totalWeight > 0 ? Math.round((be.weight / r.totalWeight) * 10000) / 100 : 0,
      ...(c?.destination?.service === undefined ? {} : { service: c.destination.service }),
      lbPolicy: compiled.clusters.get(be.cluster)?.policy ?? 'round_robin',
      endpoints: (c?.endpoints ?? []).map((e) => `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`),
    })
    if (c?.circuitBreaker !== undefined) (p.circuitBreaker ??= {})[be.cluster] = c.circuitBreaker
    if (c?.outlierDetection !== undefined) (p.outlierDetection ??= {})[be.cluster] = c.outlierDetection
  }
  return out
}

function yamlish(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v)
}

export function formatExplanation(e: Explanation): string {
  const lines: string[] = []
  const q = e.request.query === '' ? '' : '?' + e.request.query
  const hs = Object.entries(e.request.headers).map(([n, v]) => ` -H ${n}:${v}`).join('')
  lines.push(`REQUEST      ${e.request.method} ${e.request.authority}${e.request.path}${q}${hs}`)
  lines.push(`LISTENER     ${e.listener.name} (${e.listener.direction}, ${e.listener.address}:${e.listener.port}, route table ${e.listener.routeTable})`)
  lines.push(`VIRTUAL HOST ${e.virtualHost === null ? '-' : `${e.virtualHost.name} (domains ${e.virtualHost.domains.join(', ')})`}`)
  for (const n of e.notMatched) lines.push(`  not ${n.route}: ${n.reason}`)
  lines.push(`ROUTE        ${e.route === null ? '-' : `${e.route.name} (#${e.route.index})`}`)
  if (e.localReply !== null) lines.push(`LOCAL REPLY  ${e.localReply.status}: ${e.localReply.reason}`)
  if (e.backends.length > 0) {
    lines.push('BACKENDS')
    for (const b of e.backends) {
      lines.push(`  ${b.cluster}  weight ${b.weight} (${b.percent}%)  ${b.lbPolicy}  endpoints ${b.endpoints.length === 0 ? '(none)' : b.endpoints.join(' ')}${b.service === undefined ? '' : `  service ${b.service}`}`)
    }
  }
  const pol = Object.entries(e.policies)
  lines.push(`POLICIES     ${pol.length === 0 ? '(none)' : ''}`.trimEnd())
  for (const [k, v] of pol) lines.push(`  ${k}: ${yamlish(v)}`)
  return lines.join('\n') + '\n'
}

const MINIMAL_BOOTSTRAP = 'listeners:\n  - { name: outbound, direction: outbound, address: 127.0.0.1, port: 15001, routeTable: outbound }\nrouteTables: []\nclusters: []\n'

/** Load --config and/or --resources the way `weft proxy` does (static mode when resources are given). */
export async function loadForExplain(config: string | undefined, resources: string[]): Promise<LoadResult> {
  if (resources.length === 0) return loadBootstrapFile(config!)
  const { loadStaticConfig } = await import('../control-plane/sources/static.ts')
  if (config !== undefined) return loadStaticConfig(config, resources)
  const dir = mkdtempSync(join(tmpdir(), 'weft-explain-'))
  try {
    const file = join(dir, 'bootstrap.yaml')
    writeFileSync(file, MINIMAL_BOOTSTRAP)
    return await loadStaticConfig(file, resources)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** `weft explain --admin HOST:PORT [id]`: one recorded trace, or the list of recent ones. */
export async function runLiveExplain(admin: string, id: string | undefined, output: OutputFormat, out: Out, err: Out): Promise<number> {
  let url: string
  try {
    url = adminBase(admin) + '/explain' + (id === undefined ? '' : '/' + encodeURIComponent(id))
  } catch (e) {
    err.write(`weft explain: ${(e as Error).message}\n`)
    return EXIT.USAGE
  }
  const agent = new Agent({ headersTimeout: 10_000, bodyTimeout: 10_000, connections: 1 })
  try {
    const res = await httpRequest(url, { dispatcher: agent })
    const text = await res.body.text()
    if (res.statusCode === 404) {
      err.write(`weft explain: ${text.trim()}\n  what to do: send the request again with the header x-weft-explain: 1 (from the app in the proxy's pod), or run weft tap --admin ${admin} --explain while it happens; weft explain --admin ${admin} lists the traces kept\n`)
      return EXIT.FAILED
    }
    if (res.statusCode !== 200) {
      err.write(`weft explain: ${url}: HTTP ${res.statusCode}: ${text.trim()}\n`)
      return EXIT.UNREACHABLE
    }
    const body = JSON.parse(text) as LiveTrace | { kept: number; recorded: number; traces: Omit<LiveTrace, 'steps'>[] }
    if (output !== 'table') emit(out, output, body)
    else if ('steps' in body) out.write(formatTrace(body))
    else {
      out.write(`${body.kept} traces kept (${body.recorded} recorded since start), newest first\n`)
      for (const t of body.traces) out.write(`${t.requestId}  ${t.time}  ${t.listener}  ${t.status}  ${t.flags}  ${t.durationMs} ms  (${t.selectedBy})\n`)
    }
    return EXIT.OK
  } catch (e) {
    err.write(`weft explain: ${describeAdminError(admin, 'proxy', e)}\n`)
    return EXIT.UNREACHABLE
  } finally {
    agent.destroy().catch(() => {})
  }
}

export interface ExplainCliOptions {
  config?: string
  resources?: string[]
  listener?: string
  output: OutputFormat
}

export async function runExplain(spec: string, o: ExplainCliOptions, out: Out, err: Out): Promise<number> {
  let req: ParsedRequest
  try {
    req = parseRequestSpec(spec)
  } catch (e) {
    err.write(`weft explain: ${(e as Error).message}\n`)
    return EXIT.USAGE
  }
  if (o.config === undefined && (o.resources ?? []).length === 0) {
    err.write('weft explain: give --config FILE (a proxy bootstrap) and/or --resources DIR (Services, HTTPRoutes, TrafficPolicies), or --admin HOST:PORT <x-request-id> for a request a proxy handled\n')
    return EXIT.USAGE
  }
  const loaded = await loadForExplain(o.config, o.resources ?? [])
  if (!loaded.ok) {
    for (const e of loaded.errors) err.write(`weft explain: ${formatConfigError(e)}\n`)
    err.write('weft explain: the config is invalid (see `weft validate`); nothing explained\n')
    return EXIT.FAILED
  }
  let e: Explanation
  try {
    e = explain(loaded.config, req, o.listener)
  } catch (x) {
    err.write(`weft explain: ${(x as Error).message}\n`)
    return EXIT.USAGE
  }
  if (o.output === 'table') out.write(formatExplanation(e))
  else emit(out, o.output, e)
  return EXIT.OK
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description("why a request got its answer: live, the decision trace a proxy recorded (--admin HOST:PORT <x-request-id>); offline, which listener, route, backends and policies a request would get from a config (e.g. 'GET http://reviews.demo/api -H x-canary:1')")
    .argument('[request]', "offline: '[METHOD] URL [-H name:value]...' as one argument; with --admin: the request's x-request-id (none: list the traces kept)")
    .option('--admin <host:port>', 'live: the admin address of the proxy that handled the request')
    .option('-c, --config <file>', 'a proxy bootstrap file (with --resources: the bootstrap of static mode)')
    .option('-r, --resources <path>', 'a Service, EndpointSlice, HTTPRoute and TrafficPolicy file or folder, translated as the control plane does (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--listener <name>', 'the listener the request arrives on (default: the first outbound listener)')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (spec: string | undefined, opts: { admin?: string; config?: string; resources?: string[]; listener?: string; output: string }) => {
      const output = outputOption('explain', opts.output)
      if (output === null) return
      if (opts.admin !== undefined) {
        if (opts.config !== undefined || (opts.resources ?? []).length > 0) {
          process.stderr.write('weft explain: --admin (a request a proxy handled) and --config/--resources (a request against a config) do not go together\n')
          process.exitCode = EXIT.USAGE
          return
        }
        process.exitCode = await runLiveExplain(opts.admin, spec, output, process.stdout, process.stderr)
        return
      }
      if (spec === undefined) {
        process.stderr.write("weft explain: which request? e.g. weft explain --config proxy.yaml 'GET http://reviews.demo/api', or weft explain --admin 127.0.0.1:15000 <x-request-id>\n")
        process.exitCode = EXIT.USAGE
        return
      }
      process.exitCode = await runExplain(spec, { config: opts.config, resources: opts.resources, listener: opts.listener, output }, process.stdout, process.stderr)
      // compiled clusters may hold timers: this command is done
      process.exit()
    })
}
