// `weft proxy-status` (per proxy connected to a control plane: config versions published, sent,
// ACKed, NACKs, staleness; from the control plane's admin /debug/proxies and /debug/snapshots) and
// `weft proxy-config` (a proxy's listeners, routes, clusters, endpoints or policies, from its admin
// /config_dump and /clusters), in the manner of `istioctl proxy-status` / `proxy-config`.
import type { Command } from 'commander'
import { Agent, request } from 'undici'
import type { Bootstrap } from '../api/schema.ts'
import { AdminHttpError, describeAdminError, EXIT, type AdminKind } from './errors.ts'
import { emit, parseOutput, table, type OutputFormat } from './output.ts'
import { adminBase, type Out } from './tap.ts'
import { DEFAULT_CP_ADMIN } from '../control-plane/xds/defaults.ts'

async function getJson(agent: Agent, addr: string, path: string): Promise<any> {
  const url = adminBase(addr) + path
  const res = await request(url, { dispatcher: agent })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new AdminHttpError(url, res.statusCode, text)
  try {
    return JSON.parse(text)
  } catch {
    throw new AdminHttpError(url, res.statusCode, 'not JSON')
  }
}

class Failure extends Error {
  readonly code: number
  constructor(message: string, code: number) {
    super(message)
    this.code = code
  }
}

async function fetchAll(addr: string, kind: AdminKind, paths: string[]): Promise<any[]> {
  try {
    adminBase(addr)
  } catch (e) {
    throw new Failure((e as Error).message, EXIT.USAGE)
  }
  const agent = new Agent({ headersTimeout: 10_000, bodyTimeout: 10_000 })
  try {
    return await Promise.all(paths.map((p) => getJson(agent, addr, p)))
  } catch (e) {
    throw new Failure(e instanceof AdminHttpError ? e.message : describeAdminError(addr, kind, e), EXIT.UNREACHABLE)
  } finally {
    agent.destroy().catch(() => {})
  }
}

// ---- proxy-status ---------------------------------------------------------------------------

export interface ProxyStatusRow {
  node: string
  namespace: string
  adminAddress: string
  stream: number
  connectedAt: string
  /** per type: the version published for the proxy, the last sent (in flight) and the ACKed */
  types: Record<string, { published: string | null; sent: string | null; acked: string | null }>
  nacks: { type: string; version: string; message: string; at: string } | null
  /** SYNCED: every type ACKed at the published version; NOT SENT: published differs from ACKed, nothing in flight;
   * STALE: sent, not ACKed; NACKED: the last response of a type was rejected */
  status: 'SYNCED' | 'STALE' | 'NACKED' | 'NOT SENT'
  /** ms since the oldest unanswered send; 0 when none */
  staleMs: number
}

export function proxyStatusRows(proxies: any, snapshots: any, now = Date.now()): ProxyStatusRow[] {
  const published = new Map<string, Record<string, string>>()
  for (const s of snapshots?.snapshots ?? []) published.set(s.key, s.versions ?? {})
  const rows: ProxyStatusRow[] = []
  for (const p of proxies?.proxies ?? []) {
    const pub = published.get(p.key) ?? {}
    const types: ProxyStatusRow['types'] = {}
    const names = new Set([...Object.keys(pub), ...Object.keys(p.acked ?? {}), ...(p.inFlight ?? []).map((f: { type: string }) => f.type)])
    let staleSince = Infinity
    for (const t of [...names].sort()) {
      const f = (p.inFlight ?? []).find((x: { type: string }) => x.type === t)
      if (f !== undefined) staleSince = Math.min(staleSince, Date.parse(f.sentAt))
      types[t] = { published: pub[t] ?? null, sent: f?.version ?? null, acked: p.acked?.[t] ?? null }
    }
    const n = p.lastNack
    const nacked = n !== null && n !== undefined && types[n.type]?.acked !== n.version && types[n.type]?.sent === null
    const anyInFlight = Number.isFinite(staleSince)
    const allAcked = Object.values(types).every((v) => v.published === null || v.published === v.acked)
    rows.push({
      node: p.node?.id ?? '',
      namespace: p.node?.namespace || 'default',
      adminAddress: p.node?.adminAddress ?? '',
      stream: p.stream,
      connectedAt: p.connectedAt,
      types,
      nacks: n ? { type: n.type, version: n.version, message: n.error?.message ?? '', at: n.at } : null,
      status: nacked ? 'NACKED' : anyInFlight ? 'STALE' : allAcked ? 'SYNCED' : 'NOT SENT',
      staleMs: anyInFlight ? Math.max(0, now - staleSince) : 0,
    })
  }
  return rows
}

const TYPE_COLS: [string, string][] = [['listener', 'LDS'], ['routeTable', 'RDS'], ['cluster', 'CDS'], ['endpoints', 'EDS']]

export function formatProxyStatus(rows: readonly ProxyStatusRow[]): string {
  if (rows.length === 0) return 'no proxies connected\n'
  const head = ['NAME', 'NAMESPACE', 'STATUS', ...TYPE_COLS.map((c) => c[1]), 'STALE', 'ADMIN']
  const body = rows.map((r) => [
    r.node,
    r.namespace,
    r.status,
    ...TYPE_COLS.map(([t]) => {
      const v = r.types[t]
      if (v === undefined) return '-'
      if (v.sent !== null) return `sent ${v.sent} (acked ${v.acked ?? '-'})`
      return v.acked === v.published || v.published === null ? `${v.acked ?? '-'}` : `${v.acked ?? '-'} (published ${v.published})`
    }),
    r.staleMs > 0 ? `${(r.staleMs / 1000).toFixed(1)}s` : '-',
    r.adminAddress || '-',
  ])
  let s = table(head, body)
  for (const r of rows) if (r.nacks !== null) s += `NACK ${r.node}: ${r.nacks.type} ${r.nacks.version}: ${r.nacks.message}\n`
  return s
}

export async function runProxyStatus(cpAdmin: string, output: OutputFormat, out: Out): Promise<number> {
  const [proxies, snapshots] = await fetchAll(cpAdmin, 'control-plane', ['/debug/proxies', '/debug/snapshots'])
  const rows = proxyStatusRows(proxies, snapshots)
  if (output === 'table') out.write(formatProxyStatus(rows))
  else emit(out, output, { proxies: rows })
  return EXIT.OK
}

// ---- proxy-config ---------------------------------------------------------------------------

export const PROXY_CONFIG_KINDS = ['listeners', 'routes', 'clusters', 'endpoints', 'policies'] as const
export type ProxyConfigKind = (typeof PROXY_CONFIG_KINDS)[number]

/** The rows of one kind, from /config_dump's config and /clusters; `name` filters (listener, route table, cluster). */
export function proxyConfigView(kind: ProxyConfigKind, dump: { version: number; config: Bootstrap | null }, clusters: any, name?: string): { version: number; items: any[] } {
  const b = dump.config
  const items: any[] = []
  if (b !== null) {
    if (kind === 'listeners') {
      for (const l of b.listeners) if (name === undefined || l.name === name) items.push({ name: l.name, direction: l.direction, address: l.address ?? '127.0.0.1', port: l.port, protocol: l.protocol ?? 'detect', routeTable: l.routeTable ?? null })
    } else if (kind === 'routes' || kind === 'policies') {
      for (const t of b.routeTables) {
        if (name !== undefined && t.name !== name && !t.virtualHosts.some((v) => v.name === name)) continue
        for (const v of t.virtualHosts) {
          if (name !== undefined && t.name !== name && v.name !== name) continue
          v.routes.forEach((r, i) => {
            const rname = r.name ?? `${v.name}/${i}`
            if (kind === 'routes') {
              items.push({ routeTable: t.name, virtualHost: v.name, domains: v.domains ?? [], route: rname, match: r.match ?? {}, backends: (r.backends ?? []).map((x) => ({ cluster: x.cluster, weight: x.weight ?? 1 })), directResponse: r.directResponse?.status ?? null })
            } else {
              const pol = { timeout: r.timeout, retry: r.retry, rateLimit: r.rateLimit, fault: r.fault, mirror: r.mirror, redirect: r.redirect }
              const set = Object.fromEntries(Object.entries(pol).filter(([, x]) => x !== undefined))
              if (Object.keys(set).length > 0) items.push({ scope: 'route', routeTable: t.name, virtualHost: v.name, route: rname, ...set })
            }
          })
        }
      }
      if (kind === 'policies') {
        for (const c of b.clusters) {
          if (name !== undefined && c.name !== name && !items.some((x) => x.routeTable === name || x.virtualHost === name)) continue
          const set = Object.fromEntries(Object.entries({ circuitBreaker: c.circuitBreaker, outlierDetection: c.outlierDetection, pool: c.pool }).filter(([, x]) => x !== undefined))
          if (Object.keys(set).length > 0) items.push({ scope: 'cluster', cluster: c.name, ...set })
        }
      }
    }
  }
  if (kind === 'clusters' || kind === 'endpoints') {
    for (const c of clusters?.clusters ?? []) {
      if (name !== undefined && c.name !== name) continue
      if (kind === 'clusters') {
        const src = b?.clusters.find((x) => x.name === c.name)
        items.push({ name: c.name, service: src?.destination?.service ?? null, lbPolicy: c.lbPolicy, protocol: c.protocol, endpoints: c.endpoints.length, healthy: c.endpoints.filter((e: any) => e.health === 'healthy').length, activeRequests: c.activeRequests, circuitBreaker: c.circuitBreaker?.state ?? null })
      } else {
        for (const e of c.endpoints) items.push({ cluster: c.name, address: e.address, weight: e.weight, health: e.health, activeRequests: e.activeRequests, requests: e.requests, responses5xx: e.responses5xx, ejections: e.ejections ?? 0 })
      }
    }
  }
  return { version: dump.version, items }
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return '-'
  if (typeof v === 'string') return v === '' ? '-' : v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.length === 0 ? '-' : v.join(',')
  return JSON.stringify(v)
}

export function formatProxyConfig(kind: ProxyConfigKind, v: { items: any[] }): string {
  if (v.items.length === 0) return `no ${kind}\n`
  if (kind === 'routes') {
    return table(['ROUTE TABLE', 'VIRTUAL HOST', 'ROUTE', 'MATCH', 'BACKENDS'], v.items.map((r) => [r.routeTable, r.virtualHost, r.route, cell(r.match), r.directResponse !== null ? `direct ${r.directResponse}` : r.backends.map((b: any) => `${b.cluster}:${b.weight}`).join(' ') || '-']))
  }
  if (kind === 'policies') {
    return table(['SCOPE', 'NAME', 'POLICIES'], v.items.map((p) => {
      const { scope, routeTable, virtualHost, route, cluster, ...rest } = p
      void routeTable
      return [scope, scope === 'route' ? `${virtualHost}/${route}` : cluster, Object.entries(rest).map(([k, x]) => `${k}=${cell(x)}`).join(' ')]
    }))
  }
  const keys = Object.keys(v.items[0])
  return table(keys.map((k) => k.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()), v.items.map((i) => keys.map((k) => cell(i[k]))))
}

export async function runProxyConfig(kind: ProxyConfigKind, admin: string, name: string | undefined, output: OutputFormat, out: Out, err: Out): Promise<number> {
  const [dump, clusters] = await fetchAll(admin, 'proxy', ['/config_dump', '/clusters'])
  const v = proxyConfigView(kind, dump, clusters, name)
  if (name !== undefined && v.items.length === 0) {
    err.write(`weft proxy-config ${kind}: nothing named ${JSON.stringify(name)} at ${admin}\n`)
    return EXIT.FAILED
  }
  if (output === 'table') out.write(formatProxyConfig(kind, v))
  else emit(out, output, { kind, version: v.version, items: v.items })
  return EXIT.OK
}

async function act(cmd: string, out: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await out()
  } catch (e) {
    process.stderr.write(`weft ${cmd}: ${(e as Error).message}\n`)
    process.exitCode = e instanceof Failure ? e.code : EXIT.FAILED
  }
}

function outputOf(cmd: string, s: string): OutputFormat {
  try {
    return parseOutput(s)
  } catch (e) {
    throw new Failure((e as Error).message, EXIT.USAGE)
  }
}

export function registerInspect(program: Command): void {
  program
    .command('proxy-config')
    .description("a proxy's active config, from its admin API: listeners, routes, clusters, endpoints (with health and counters) or policies")
    .argument('<kind>', PROXY_CONFIG_KINDS.join('|'))
    .argument('[name]', 'only this listener, route table or virtual host, or cluster')
    .option('--admin <host:port>', 'admin address of the proxy', '127.0.0.1:15000')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (kind: string, name: string | undefined, opts: { admin: string; output: string }) => {
      await act('proxy-config', async () => {
        const k = PROXY_CONFIG_KINDS.find((x) => x === kind || x === kind + 's')
        if (k === undefined) throw new Failure(`unknown kind ${JSON.stringify(kind)}: expected ${PROXY_CONFIG_KINDS.join(', ')}`, EXIT.USAGE)
        return runProxyConfig(k, opts.admin, name, outputOf('proxy-config', opts.output), process.stdout, process.stderr)
      })
    })
  program
    .command('proxy-status')
    .description('every proxy connected to a control plane: config versions published, sent and ACKed per type, NACKs, staleness')
    .option('--control-plane-admin <host:port>', "the control plane's admin address (not its gRPC address)", DEFAULT_CP_ADMIN)
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (opts: { controlPlaneAdmin: string; output: string }) => {
      await act('proxy-status', () => runProxyStatus(opts.controlPlaneAdmin, outputOf('proxy-status', opts.output), process.stdout))
    })
}
