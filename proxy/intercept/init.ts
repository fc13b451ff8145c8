// `weft init`: the init container's work. Programs the nat table of the current network namespace
// so the pod's TCP goes through the sidecar:
//
//   OUTPUT     -p tcp -j WEFT_OUTBOUND      outbound: proxy uid, loopback, excluded ports/CIDRs
//                                          RETURN; the rest -> WEFT_REDIRECT (REDIRECT to outbound port)
//   PREROUTING -p tcp -j WEFT_INBOUND       inbound: excluded ports RETURN; the rest -> WEFT_IN_REDIRECT
//
// Everything Weft adds lives in its own chains (plus one jump from each built-in chain), so:
// a second run with the same flags changes nothing; `--cleanup` removes exactly those; the rules go
// in with one `iptables-restore --noflush` (one atomic commit of the table), so a failure leaves
// nothing half-applied. IPv4 only for now (IPv6 CIDRs in the exclusions are reported and skipped).
import { spawnSync } from 'node:child_process'
import { isIPv4 } from 'node:net'

export interface InitOptions {
  readonly proxyUid: number
  readonly outboundPort: number
  readonly inboundPort: number
  readonly excludeInboundPorts: readonly number[]
  readonly excludeOutboundPorts: readonly number[]
  readonly excludeOutboundCidrs: readonly string[]
}

export const CHAINS = ['WEFT_INBOUND', 'WEFT_IN_REDIRECT', 'WEFT_OUTBOUND', 'WEFT_REDIRECT'] as const
const JUMPS = ['-A PREROUTING -p tcp -j WEFT_INBOUND', '-A OUTPUT -p tcp -j WEFT_OUTBOUND'] as const

export type InitResult =
  | { readonly ok: true; readonly action: 'applied' | 'unchanged' | 'removed' | 'nothing-to-remove' | 'dry-run'; readonly rules: readonly string[]; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly rules: readonly string[] }

/** Rules in iptables-save form (without *nat / COMMIT), in the order iptables-save prints them. */
export function planRules(o: InitOptions): { rules: string[]; warnings: string[] } {
  const warnings: string[] = []
  const rules: string[] = []
  for (const p of o.excludeInboundPorts) rules.push(`-A WEFT_INBOUND -p tcp -m tcp --dport ${p} -j RETURN`)
  rules.push('-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT')
  rules.push(`-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${o.inboundPort}`)
  rules.push(`-A WEFT_OUTBOUND -m owner --uid-owner ${o.proxyUid} -j RETURN`)
  rules.push('-A WEFT_OUTBOUND -o lo -j RETURN')
  rules.push('-A WEFT_OUTBOUND -d 127.0.0.0/8 -j RETURN')
  for (const p of o.excludeOutboundPorts) rules.push(`-A WEFT_OUTBOUND -p tcp -m tcp --dport ${p} -j RETURN`)
  for (const c of o.excludeOutboundCidrs) {
    const addr = c.split('/')[0] ?? ''
    if (!isIPv4(addr)) { warnings.push(`skipped non-IPv4 CIDR ${c} (IPv4 nat table only)`); continue }
    rules.push(`-A WEFT_OUTBOUND -d ${c.includes('/') ? c : `${c}/32`} -j RETURN`)
  }
  rules.push('-A WEFT_OUTBOUND -p tcp -j WEFT_REDIRECT')
  rules.push(`-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports ${o.outboundPort}`)
  return { rules: [...JUMPS, ...rules], warnings }
}

function restoreInput(body: readonly string[]): string {
  return ['*nat', ...body, 'COMMIT', ''].join('\n')
}

/** What Weft currently has in the nat table (iptables-save lines mentioning WEFT_ chains). */
function currentWeftLines(run: Runner): { ok: true; lines: string[]; chains: Set<string> } | { ok: false; message: string } {
  const r = run('iptables-save', ['-t', 'nat'])
  if (r.status !== 0) return { ok: false, message: r.stderr || 'iptables-save failed' }
  const all = r.stdout.split('\n')
  const chains = new Set(all.filter((l) => l.startsWith(':WEFT_')).map((l) => l.slice(1).split(' ')[0] ?? ''))
  return { ok: true, lines: all.filter((l) => l.startsWith('-A ') && /WEFT_/.test(l)), chains }
}

function removalLines(current: readonly string[]): string[] {
  const out: string[] = []
  for (const l of current) {
    const chain = l.split(' ')[1] ?? ''
    if (!chain.startsWith('WEFT_')) out.push(l.replace(/^-A /, '-D '))
  }
  return out
}

export interface Runner {
  (cmd: string, args: readonly string[], input?: string): { status: number | null; stdout: string; stderr: string }
}

export const spawnRunner: Runner = (cmd, args, input) => {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8' })
  if (r.error !== undefined) return { status: null, stdout: '', stderr: r.error.message }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n')

export function runInit(o: InitOptions, mode: { dryRun?: boolean; cleanup?: boolean }, run: Runner = spawnRunner): InitResult {
  const { rules, warnings } = planRules(o)
  if (mode.dryRun === true && mode.cleanup !== true) return { ok: true, action: 'dry-run', rules, warnings }
  const cur = currentWeftLines(run)
  if (!cur.ok) return { ok: false, code: 'WEFT_ERR_INIT_IPTABLES', message: cur.message, rules: [] }
  const present = cur.chains
  if (mode.cleanup === true) {
    if (cur.lines.length === 0 && present.size === 0) return { ok: true, action: 'nothing-to-remove', rules: [], warnings }
    const mine = CHAINS.filter((c) => present.has(c))
    const lines = [...mine.map((c) => `:${c} - [0:0]`), ...removalLines(cur.lines), ...mine.map((c) => `-X ${c}`)]
    if (mode.dryRun === true) return { ok: true, action: 'dry-run', rules: lines, warnings }
    const r = run('iptables-restore', ['--noflush'], restoreInput(lines))
    if (r.status !== 0) return { ok: false, code: 'WEFT_ERR_INIT_IPTABLES', message: r.stderr.trim(), rules: lines }
    return { ok: true, action: 'removed', rules: cur.lines, warnings }
  }
  if (sameSet(cur.lines, rules)) return { ok: true, action: 'unchanged', rules, warnings }
  // one atomic commit: remove whatever Weft had (other flags), declare our chains, add the rules
  const body = [
    ...CHAINS.map((c) => `:${c} - [0:0]`),
    ...cur.lines.filter((l) => !(l.split(' ')[1] ?? '').startsWith('WEFT_')).map((l) => l.replace(/^-A /, '-D ')),
    ...rules,
  ]
  const r = run('iptables-restore', ['--noflush'], restoreInput(body))
  if (r.status !== 0) return { ok: false, code: 'WEFT_ERR_INIT_IPTABLES', message: r.stderr.trim(), rules }
  return { ok: true, action: 'applied', rules, warnings }
}
