// `weft identity --admin HOST:PORT`: a proxy's SPIFFE ID, certificate chain, expiry, next renewal
// and trust bundle (admin /identity).
// `weft authz check --from WHO --to WHERE [--method M --path P --port N] (-c FILE|DIR | --admin HOST:PORT)`:
// which authorization policy and rule decide a request, and why, with the proxy's own compiled
// decision (proxy/identity/authz.ts), against bootstrap files or a running proxy's config.
import type { Command } from 'commander'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { request as httpRequest, Agent } from 'undici'
import { formatConfigError } from '../api/errors.ts'
import { loadBootstrapFile } from '../api/load.ts'
import type { Bootstrap, Listener } from '../api/schema.ts'
import { AUTHZ_DENY, CompiledAuthorization, peerIdentity } from '../proxy/identity/authz.ts'
import { describeAdminError, EXIT } from './errors.ts'
import { emit, outputOption, table, type OutputFormat } from './output.ts'
import { adminBase, type Out } from './tap.ts'

async function getJson(admin: string, path: string): Promise<{ status: number; body: unknown }> {
  const agent = new Agent({ headersTimeout: 10_000, bodyTimeout: 10_000, connections: 1 })
  try {
    const res = await httpRequest(adminBase(admin) + path, { dispatcher: agent })
    const text = await res.body.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {}
    return { status: res.statusCode, body }
  } finally {
    await agent.close()
  }
}

export async function runIdentity(admin: string, output: OutputFormat, out: Out, err: Out): Promise<number> {
  let r: { status: number; body: unknown }
  try {
    r = await getJson(admin, '/identity')
  } catch (e) {
    err.write(`weft identity: ${e instanceof RangeError ? e.message : describeAdminError(admin, 'proxy', e)}\n`)
    return e instanceof RangeError ? EXIT.USAGE : EXIT.UNREACHABLE
  }
  if (r.status === 404) {
    err.write(`weft identity: ${String(r.body).trim()}\n  what to do: give the proxy an \`identity\` (README "Identity"), or inject it with the mesh CA on\n`)
    return EXIT.FAILED
  }
  const b = r.body as Record<string, unknown>
  if (output !== 'table') {
    emit(out, output, b)
    return r.status === 200 ? EXIT.OK : EXIT.FAILED
  }
  if (r.status !== 200) {
    err.write(`weft identity: ${String(b.spiffeId ?? '')} has no certificate yet${b.lastError ? `: ${String(b.lastError)}` : ''}\n`)
    return EXIT.FAILED
  }
  const left = (iso: string): string => {
    const s = Math.round((Date.parse(iso) - Date.now()) / 1000)
    return s < 0 ? `${-s}s ago` : s < 120 ? `in ${s}s` : s < 7200 ? `in ${Math.round(s / 60)}m` : `in ${(s / 3600).toFixed(1)}h`
  }
  out.write(`SPIFFE ID      ${String(b.spiffeId)}\n`)
  out.write(`source         ${String(b.source)} (serial ${String(b.serial)})\n`)
  out.write(`valid          ${String(b.notBefore)} .. ${String(b.notAfter)} (expires ${left(String(b.notAfter))})\n`)
  out.write(`next renewal   ${b.nextRenewal === null ? 'none (certificate files)' : `${String(b.nextRenewal)} (${left(String(b.nextRenewal))})`}\n`)
  out.write(`renewals       ${String(b.renewals)} (${String(b.renewalFailures)} failed${b.lastError ? `; last error: ${String(b.lastError)}` : ''})\n`)
  out.write('\nchain\n')
  out.write(table(['SUBJECT', 'ISSUER', 'SAN', 'NOT AFTER'], (b.chain as { subject: string; issuer: string; san: string; notAfter: string }[]).map((c) => [(c.subject ?? '').replaceAll('\n', ', ') || '(none)', (c.issuer ?? '').replaceAll('\n', ', '), c.san, c.notAfter])))
  out.write('\ntrust bundle\n')
  out.write(table(['SUBJECT', 'NOT AFTER', 'SHA-256'], (b.trustBundle as { subject: string; notAfter: string; fingerprint256: string }[]).map((c) => [c.subject.replaceAll('\n', ', '), c.notAfter, c.fingerprint256.slice(0, 23) + '…'])))
  return EXIT.OK
}

export interface AuthzCheckOptions {
  from: string
  to: string
  method: string
  path: string
  port?: number
  config?: string
  admin?: string
}

/** "spiffe://td/ns/x/sa/y", "td/ns/x/sa/y", "ns/sa" (trust domain cluster.local), or "none" (plain text) */
export function principalOf(from: string): string | null {
  if (from === 'none' || from === '') return null
  if (from.startsWith('spiffe://')) return from
  const parts = from.split('/')
  if (parts.length === 2) return `spiffe://cluster.local/ns/${parts[0]}/sa/${parts[1]}`
  if (/\/ns\/[^/]+\/sa\/[^/]+$/.test(from)) return `spiffe://${from}`
  throw new RangeError(`--from ${JSON.stringify(from)}: expected a SPIFFE ID (spiffe://cluster.local/ns/NS/sa/SA), NS/SA, or none`)
}

interface Candidate { source: string; bootstrap: Bootstrap; listener: Listener }

async function bootstrapsOf(path: string): Promise<{ file: string; b: Bootstrap }[] | string> {
  const files = statSync(path).isDirectory()
    ? readdirSync(path).filter((f) => /\.ya?ml$|\.json$/.test(f)).sort().map((f) => join(path, f))
    : [path]
  const out: { file: string; b: Bootstrap }[] = []
  for (const f of files) {
    const r = await loadBootstrapFile(f)
    if (!r.ok) return r.errors.map(formatConfigError).join('\n')
    out.push({ file: f, b: r.config })
  }
  return out
}

export async function runAuthzCheck(o: AuthzCheckOptions, output: OutputFormat, out: Out, err: Out): Promise<number> {
  let principal: string | null
  try {
    principal = principalOf(o.from)
  } catch (e) {
    err.write(`weft authz check: ${(e as Error).message}\n`)
    return EXIT.USAGE
  }
  const candidates: Candidate[] = []
  if (o.admin !== undefined) {
    try {
      const r = await getJson(o.admin, '/config_dump')
      const b = (r.body as { config?: Bootstrap | null })?.config
      if (b === undefined || b === null) throw new Error('the proxy has no config')
      for (const l of b.listeners) candidates.push({ source: o.admin, bootstrap: b, listener: l })
    } catch (e) {
      err.write(`weft authz check: ${describeAdminError(o.admin, 'proxy', e)}\n`)
      return EXIT.UNREACHABLE
    }
  } else if (o.config !== undefined) {
    const bs = await bootstrapsOf(o.config)
    if (typeof bs === 'string') {
      err.write(`weft authz check: ${bs}\n`)
      return EXIT.USAGE
    }
    for (const { file, b } of bs) for (const l of b.listeners) candidates.push({ source: file, bootstrap: b, listener: l })
  } else {
    err.write('weft authz check: give -c FILE|DIR (bootstrap files) or --admin HOST:PORT (a running proxy)\n')
    return EXIT.USAGE
  }
  // --to: a workload (node.workload), a listener name, or "workload/listener"
  const matches = candidates.filter((c) => c.listener.direction === 'inbound' && (
    c.listener.name === o.to || c.bootstrap.node?.workload === o.to || `${c.bootstrap.node?.workload}/${c.listener.name}` === o.to) &&
    (o.port === undefined || c.listener.port === o.port))
  if (matches.length === 0) {
    err.write(`weft authz check: no inbound listener for --to ${JSON.stringify(o.to)}; inbound listeners: ${candidates.filter((c) => c.listener.direction === 'inbound').map((c) => `${c.bootstrap.node?.workload ?? '?'}/${c.listener.name}`).join(', ') || 'none'}\n`)
    return EXIT.FAILED
  }
  const q = o.path.indexOf('?')
  const rows = matches.map((c) => {
    const policies = c.listener.authorization ?? []
    const a = new CompiledAuthorization(policies)
    const peer = principal === null ? null : peerIdentity(principal, '', '')
    const d = a.decide({ peer, port: o.port ?? c.listener.port, http: true, method: o.method.toUpperCase(), path: q === -1 ? o.path : o.path.slice(0, q), header: () => undefined })
    return {
      workload: c.bootstrap.node?.workload ?? '',
      listener: c.listener.name,
      source: c.source,
      mtls: c.listener.mtls ?? (c.bootstrap.identity !== undefined ? 'permissive' : 'disable'),
      decision: d.verdict === AUTHZ_DENY ? 'DENY' : 'ALLOW',
      policy: d.policy,
      rule: d.rule,
      reason: d.reason,
      audited: d.audited,
      policies: policies.length,
    }
  })
  if (output !== 'table') emit(out, output, { from: principal, method: o.method.toUpperCase(), path: o.path, results: rows })
  else {
    out.write(`from ${principal ?? 'a plain-text caller (no identity)'}: ${o.method.toUpperCase()} ${o.path}\n`)
    out.write(table(['WORKLOAD', 'LISTENER', 'DECISION', 'POLICY', 'RULE', 'WHY'], rows.map((r) => [r.workload, r.listener, r.decision, r.policy || '-', r.rule < 0 ? '-' : String(r.rule), r.reason + (r.audited.length > 0 ? `; audited by ${r.audited.join(', ')}` : '')])))
    for (const r of rows) if (principal === null && r.mtls === 'strict') out.write(`note: ${r.workload}/${r.listener} is strict mTLS: a plain-text caller is refused before authorization\n`)
  }
  return rows.every((r) => r.decision === 'ALLOW') ? EXIT.OK : EXIT.FAILED
}

export function registerIdentity(program: Command): void {
  program
    .command('identity')
    .description("a proxy's SPIFFE ID, certificate chain, expiry, next renewal and trust bundle")
    .requiredOption('--admin <host:port>', 'the admin address of the proxy')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (opts: { admin: string; output: string }) => {
      const output = outputOption('identity', opts.output)
      if (output === null) return
      process.exitCode = await runIdentity(opts.admin, output, process.stdout, process.stderr)
    })
}

export function registerAuthz(program: Command): void {
  const authz = program.command('authz').description('authorization policies')
  authz
    .command('check')
    .description('which authorization policy and rule decide a request to a workload, and why (exit 0: allowed, 1: denied)')
    .requiredOption('--from <who>', 'the caller: a SPIFFE ID, NS/SA, or none (plain text)')
    .requiredOption('--to <workload>', "the callee: a workload (node.workload), an inbound listener's name, or WORKLOAD/LISTENER")
    .option('--method <method>', 'request method', 'GET')
    .option('--path <path>', 'request path', '/')
    .option('--port <port>', 'destination port (default: the listener port)', (v: string) => Number(v))
    .option('-c, --config <file|dir>', 'bootstrap files (a file, or a folder of .yaml files)')
    .option('--admin <host:port>', "a running proxy's admin address (its applied config)")
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (opts: AuthzCheckOptions & { output: string }) => {
      const output = outputOption('authz check', opts.output)
      if (output === null) return
      process.exitCode = await runAuthzCheck(opts, output, process.stdout, process.stderr)
    })
}
