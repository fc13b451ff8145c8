// The live summary: every sidecar's /metrics scraped once a second, and per Service the golden
// metrics over the last window, computed by `weft stat`'s own functions (cli/stat.ts) twice:
//
//   as its callers see it   reporter="source": the callers' sidecars (outbound), so injected
//                           faults and retries are in it
//   at its own sidecar      reporter="destination": the Service's sidecar (inbound), what the
//                           application itself answered
import { Agent } from 'undici'
import { computeStats, formatMs, formatRps, formatSuccess, scrape, type Scrape, type StatRow } from '../../../cli/stat.ts'
import { NAMESPACE } from './layout.ts'

export interface ServiceStats {
  /** the Service's short name (destination_service without ".<ns>.svc.cluster.local") */
  readonly name: string
  readonly callers: StatRow | null
  readonly served: StatRow | null
}

export interface View {
  readonly windowSeconds: number
  readonly services: readonly ServiceStats[]
  /** share of the callers' reviews requests per version, 0–1; null without any */
  readonly split: { readonly v1: number; readonly v2: number } | null
  /** requests the sidecars served in the window, by connection_security_policy (mutual_tls, none) */
  readonly security: Readonly<Record<string, number>>
}

interface Tick {
  at: number
  scrapes: Map<string, Scrape>
}

const SUFFIX = `.${NAMESPACE}.svc.cluster.local`

export class LiveStats {
  private readonly agent = new Agent({ headersTimeout: 2000, bodyTimeout: 2000, connections: 2 })
  private history: Tick[] = []
  private readonly admins: readonly string[]
  private readonly windowMs: number
  private readonly order: readonly string[]

  /** admins: host:port of each sidecar's admin; order: Services listed first, in this order */
  constructor(admins: readonly string[], windowMs: number, order: readonly string[]) {
    this.admins = admins
    this.windowMs = windowMs
    this.order = order
  }

  /** Scrape every sidecar; the view over the window (null until two scrapes exist). */
  async tick(): Promise<View | null> {
    const at = performance.now()
    const results = await Promise.allSettled(this.admins.map((a) => scrape(this.agent, a)))
    const scrapes = new Map<string, Scrape>()
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') scrapes.set(this.admins[i], r.value)
    })
    this.history.push({ at, scrapes })
    // the newest tick at least a window old is the base; older ones are not needed again
    let base = 0
    for (let i = 0; i < this.history.length - 1; i++) if (this.history[i].at <= at - this.windowMs + 50) base = i
    this.history = this.history.slice(base)
    if (this.history.length < 2) return null
    return this.view(this.history[0], this.history[this.history.length - 1])
  }

  private view(from: Tick, to: Tick): View {
    const before = []
    const after = []
    let elapsed = 0
    let n = 0
    for (const [addr, b] of to.scrapes) {
      const a = from.scrapes.get(addr)
      if (a === undefined) continue
      before.push(...a.samples)
      after.push(...b.samples)
      elapsed += b.at - a.at
      n++
    }
    const windowSeconds = n === 0 ? 0 : elapsed / n / 1000
    const callers = computeStats(before, after, windowSeconds, 'service', 'source')
    const served = computeStats(before, after, windowSeconds, 'service', 'destination')
    const byName = new Map<string, { callers: StatRow | null; served: StatRow | null }>()
    const add = (rows: StatRow[], key: 'callers' | 'served') => {
      for (const r of rows) {
        const name = r.name.endsWith(SUFFIX) ? r.name.slice(0, -SUFFIX.length) : r.name === '' ? '(unknown)' : r.name
        if (r.requests === 0 && !this.order.includes(name)) continue
        const e = byName.get(name) ?? { callers: null, served: null }
        e[key] = r
        byName.set(name, e)
      }
    }
    add(callers, 'callers')
    add(served, 'served')
    for (const name of this.order) if (!byName.has(name)) byName.set(name, { callers: null, served: null })
    const rank = (s: string) => (this.order.includes(s) ? this.order.indexOf(s) : this.order.length)
    const services = [...byName].map(([name, e]) => ({ name, ...e })).sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name))
    const v1 = byName.get('reviews-v1')?.callers?.requests ?? 0
    const v2 = byName.get('reviews-v2')?.callers?.requests ?? 0
    // what the serving sidecars saw: over mutual TLS or in plain text (connection_security_policy)
    const security: Record<string, number> = {}
    const key = (s: { labels: Readonly<Record<string, string>> }) => `${s.labels.instance}|${Object.entries(s.labels).filter(([k]) => k !== 'instance').map(([k, v]) => `${k}=${v}`).join(',')}`
    const was = new Map(before.filter((s) => s.name === 'weft_requests_total' && s.labels.reporter === 'destination').map((s) => [key(s), s.value]))
    for (const s of after) {
      if (s.name !== 'weft_requests_total' || s.labels.reporter !== 'destination') continue
      const d = s.value - (was.get(key(s)) ?? 0)
      if (d > 0) security[s.labels.connection_security_policy ?? 'unknown'] = (security[s.labels.connection_security_policy ?? 'unknown'] ?? 0) + d
    }
    return { windowSeconds, services, split: v1 + v2 > 0 ? { v1: v1 / (v1 + v2), v2: v2 / (v1 + v2) } : null, security }
  }

  close(): void {
    this.agent.destroy().catch(() => {})
  }
}

// ---- presentation ---------------------------------------------------------------------------

const cells = (r: StatRow | null): [string, string, string] =>
  r === null || r.requests === 0 ? ['0rps', '-', '-'] : [formatRps(r.rps), formatSuccess(r.successRate), formatMs(r.latencyMsP99)]

const percent = (x: number) => `${Math.round(x * 100)}%`

/** "mTLS: 100% of the requests the sidecars served came over mutual TLS, 412/412" */
export function securityLine(v: View): string {
  const total = Object.values(v.security).reduce((a, b) => a + b, 0)
  if (total === 0) return 'mTLS: no requests served in the window'
  const m = v.security.mutual_tls ?? 0
  return `mTLS: ${percent(m / total)} of the requests the sidecars served came over mutual TLS, ${Math.round(m)}/${Math.round(total)}`
}

export function splitLine(v: View): string {
  return v.split === null ? 'canary: no reviews traffic yet' : `canary: reviews-v1 ${percent(v.split.v1)} / reviews-v2 ${percent(v.split.v2)} (reviews-canary.yaml)`
}

/** The table redrawn in a terminal. */
export function formatTable(v: View): string[] {
  const head = ['SERVICE', 'RPS', 'SUCCESS', 'P99', 'SUCCESS', 'P99']
  const body = v.services.map((s) => [s.name, ...cells(s.callers), ...cells(s.served).slice(1)])
  const all = [head, ...body]
  const w = head.map((_, i) => Math.max(...all.map((row) => row[i].length)))
  const pad = (row: string[], from: number, to: number) => row.slice(from, to).map((c, i) => (from + i === 0 ? c.padEnd(w[0]) : c.padStart(w[from + i]))).join('   ')
  const line = (row: string[]) => `${pad(row, 0, 4)}   │ ${pad(row, 4, 6)}`
  const left = w[0] + w[1] + w[2] + w[3] + 9
  return [`${'as its callers see it'.padStart(left)}   │ at its own sidecar`, ...all.map(line), splitLine(v), securityLine(v)]
}

/** Plain lines, one per Service, for a log or CI (stdout not a terminal). */
export function formatPlain(v: View, elapsedSeconds: number): string[] {
  const t = `[${String(Math.round(elapsedSeconds)).padStart(3)}s]`
  const nameWidth = Math.max(...v.services.map((s) => s.name.length))
  const lines = v.services.map((s) => {
    const c = cells(s.callers)
    const d = cells(s.served)
    return `${t} ${s.name.padEnd(nameWidth)} ${c[0].padStart(8)}  success ${c[1].padStart(7)}  p99 ${c[2].padStart(6)}  (own sidecar: success ${d[1]}, p99 ${d[2]})`
  })
  return [...lines, `${t} ${splitLine(v)}`, `${t} ${securityLine(v)}`]
}
