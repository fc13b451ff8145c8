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
// nothing half-applied. The same rules go into the IPv6 nat table (ip6tables) when the pod has one
// (`ip6tables-restore` present): each CIDR goes to its family's table. The two tables are worked on
// at the same time (start-up of every pod waits on this); if one family's commit fails, the other
// family's change is undone: all or nothing.
import { spawn } from 'node:child_process'
import { isIPv4, isIPv6 } from 'node:net'

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

export type Family = 4 | 6

export type InitResult =
  | { readonly ok: true; readonly action: 'applied' | 'unchanged' | 'removed' | 'nothing-to-remove' | 'dry-run'; readonly rules: readonly string[]; readonly warnings: readonly string[]; readonly ipv6?: FamilyResult }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly rules: readonly string[] }

/** What happened in the IPv6 table: its action and rules, or why it was left alone. */
export type FamilyResult =
  | { readonly action: 'applied' | 'unchanged' | 'removed' | 'nothing-to-remove' | 'dry-run'; readonly rules: readonly string[] }
  | { readonly action: 'skipped'; readonly reason: string }

/**
 * Rules in iptables-save form (without *nat / COMMIT), in the order iptables-save prints them, for
 * the IPv4 (iptables) or IPv6 (ip6tables) nat table.
 */
export function planRules(o: InitOptions, family: Family = 4): { rules: string[]; warnings: string[] } {
  const warnings: string[] = []
  const rules: string[] = []
  for (const p of o.excludeInboundPorts) rules.push(`-A WEFT_INBOUND -p tcp -m tcp --dport ${p} -j RETURN`)
  rules.push('-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT')
  rules.push(`-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${o.inboundPort}`)
  rules.push(`-A WEFT_OUTBOUND -m owner --uid-owner ${o.proxyUid} -j RETURN`)
  rules.push('-A WEFT_OUTBOUND -o lo -j RETURN')
  rules.push(family === 4 ? '-A WEFT_OUTBOUND -d 127.0.0.0/8 -j RETURN' : '-A WEFT_OUTBOUND -d ::1/128 -j RETURN')
  for (const p of o.excludeOutboundPorts) rules.push(`-A WEFT_OUTBOUND -p tcp -m tcp --dport ${p} -j RETURN`)
  for (const c of o.excludeOutboundCidrs) {
    const addr = c.split('/')[0] ?? ''
    const f = isIPv4(addr) ? 4 : isIPv6(addr) ? 6 : 0
    if (f === 0) { warnings.push(`skipped ${c}: not an IP address or CIDR`); continue }
    if (f !== family) continue // the other family's table
    rules.push(`-A WEFT_OUTBOUND -d ${c.includes('/') ? c : `${c}/${f === 4 ? 32 : 128}`} -j RETURN`)
  }
  rules.push('-A WEFT_OUTBOUND -p tcp -j WEFT_REDIRECT')
  rules.push(`-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports ${o.outboundPort}`)
  return { rules: [...JUMPS, ...rules], warnings }
}

function restoreInput(body: readonly string[]): string {
  return ['*nat', ...body, 'COMMIT', ''].join('\n')
}

/** What Weft currently has in the nat table (iptables-save lines mentioning WEFT_ chains). */
async function currentWeftLines(run: Runner, family: Family): Promise<{ ok: true; lines: string[]; chains: Set<string> } | { ok: false; message: string }> {
  const r = await run(bin(family, 'save'), ['-t', 'nat'])
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

const bin = (family: Family, what: 'save' | 'restore'): string => `${family === 4 ? 'iptables' : 'ip6tables'}-${what}`

export interface RunResult { status: number | null; stdout: string; stderr: string }
/** Runs one iptables command; status null: it could not be started (not installed). */
export interface Runner {
  (cmd: string, args: readonly string[], input?: string): RunResult | Promise<RunResult>
}

export const spawnRunner: Runner = (cmd, args, input) => new Promise<RunResult>((resolve) => {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  child.stdin.on('error', () => {}) // a command that exits without reading its input: its status says what happened
  child.on('error', (err) => resolve({ status: null, stdout: '', stderr: err.message }))
  child.on('close', (status) => resolve({ status, stdout, stderr }))
  child.stdin.end(input ?? '')
})

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n')

/**
 * Apply (or with cleanup, remove) the rules in the IPv4 table and, when the pod has ip6tables, in
 * the IPv6 table, both at once. A failure in one family undoes the other family's change: all or
 * nothing.
 */
export async function runInit(o: InitOptions, mode: { dryRun?: boolean; cleanup?: boolean }, run: Runner = spawnRunner): Promise<InitResult> {
  const six = async (): Promise<InitResult | { skipped: string }> => {
    // the IPv6 table's state, read once: also the probe of whether the pod has one
    const probe = await run(bin(6, 'save'), ['-t', 'nat'])
    if (probe.status !== 0) {
      return { skipped: probe.status === null ? `${bin(6, 'save')} not found` : `no IPv6 nat table (${probe.stderr.trim().split('\n')[0] ?? ''})` }
    }
    return runFamily(o, mode, 6, (cmd, args, input) => (cmd === bin(6, 'save') ? probe : run(cmd, args, input)))
  }
  const [v4, v6] = await Promise.all([runFamily(o, mode, 4, run), six()])
  const undo = async (r: InitResult, family: Family): Promise<boolean> => {
    if (!r.ok || r.action !== 'applied' || mode.cleanup === true) return false
    await runFamily(o, { cleanup: true }, family, run)
    return true
  }
  if (!v4.ok) {
    const undone = 'skipped' in v6 ? false : await undo(v6, 6)
    return undone ? { ...v4, message: `${v4.message} (the IPv6 rules were removed again)` } : v4
  }
  if ('skipped' in v6) return { ...v4, ipv6: { action: 'skipped', reason: v6.skipped } }
  if (!v6.ok) {
    const undone = await undo(v4, 4)
    return { ...v6, message: `IPv6: ${v6.message}${undone ? ' (the IPv4 rules were removed again)' : ''}` }
  }
  return { ...v4, warnings: [...new Set([...v4.warnings, ...v6.warnings])], ipv6: { action: v6.action, rules: v6.rules } }
}

async function runFamily(o: InitOptions, mode: { dryRun?: boolean; cleanup?: boolean }, family: Family, run: Runner): Promise<InitResult> {
  const { rules, warnings } = planRules(o, family)
  if (mode.dryRun === true && mode.cleanup !== true) return { ok: true, action: 'dry-run', rules, warnings }
  const cur = await currentWeftLines(run, family)
  if (!cur.ok) return { ok: false, code: 'WEFT_ERR_INIT_IPTABLES', message: cur.message, rules: [] }
  const present = cur.chains
  if (mode.cleanup === true) {
    if (cur.lines.length === 0 && present.size === 0) return { ok: true, action: 'nothing-to-remove', rules: [], warnings }
    const mine = CHAINS.filter((c) => present.has(c))
    const lines = [...mine.map((c) => `:${c} - [0:0]`), ...removalLines(cur.lines), ...mine.map((c) => `-X ${c}`)]
    if (mode.dryRun === true) return { ok: true, action: 'dry-run', rules: lines, warnings }
    const r = await run(bin(family, 'restore'), ['--noflush'], restoreInput(lines))
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
  const r = await run(bin(family, 'restore'), ['--noflush'], restoreInput(body))
  if (r.status !== 0) return { ok: false, code: 'WEFT_ERR_INIT_IPTABLES', message: r.stderr.trim(), rules }
  return { ok: true, action: 'applied', rules, warnings }
}
