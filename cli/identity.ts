// `weft identity --admin HOST:PORT`: a proxy's SPIFFE ID, certificate chain, expiry, next renewal
// and trust bundle (admin /identity).
// `weft authz check --from WHO --to WHERE [--method M --path P --port N] (-c FILE|DIR | --admin HOST:PORT |
// --control-plane HOST:PORT | -r FILE|DIR)`: which authorization policy and rule decide a request, and why, with
// the proxy's own compiled decision (proxy/identity/authz.ts), against bootstrap files, a running proxy's
// config, a running control plane's resolved policies, or resource files.
import type { Command } from 'commander'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { request as httpRequest, Agent } from 'undici'
import { formatConfigError } from '../api/errors.ts'
import { loadBootstrapFile } from '../api/load.ts'
import type { AuthorizationPolicy, Bootstrap, ClusterSpec, Listener } from '../api/schema.ts'
import { loadResources } from '../control-plane/resources/validate.ts'
import { Translator } from '../control-plane/translate/incremental.ts'
import { resourcesOf } from '../control-plane/translate/translate.ts'
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
  controlPlane?: string
  resources?: string[]
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

/** One inbound policy that may decide: a proxy's inbound listener, or a Service's pods' (control plane). */
interface Target {
  source: string
  workload: string
  /** the listener, or the Service port's cluster (and which of its pods) */
  listener: string
  port: number
  mtls: string
  authorization: readonly AuthorizationPolicy[]
}

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

/** A proxy's inbound listeners matching --to: a workload (node.workload), a listener name, or "workload/listener". */
function listenerTargets(source: string, b: Bootstrap, o: AuthzCheckOptions): { all: Target[]; matching: Target[] } {
  const all = b.listeners.filter((l) => l.direction === 'inbound').map((l: Listener): Target => ({
    source,
    workload: b.node?.workload ?? '',
    listener: l.name,
    port: l.port,
    mtls: l.mtls ?? (b.identity !== undefined ? 'permissive' : 'disable'),
    authorization: l.authorization ?? [],
  }))
  const matching = all.filter((x) => (x.listener === o.to || x.workload === o.to || `${x.workload}/${x.listener}` === o.to) && (o.port === undefined || x.port === o.port))
  return { all, matching }
}

/**
 * The inbound policy of a Service's pods as the control plane resolved it (Cluster.inbound): one
 * target per policy group (all the pods, or the pods a selector treats apart). --to: the Service
 * as NAME, NAME.NAMESPACE or its FQDN; --port: its port (the cluster's) or the pods' port.
 */
function clusterTargets(source: string, clusters: readonly (ClusterSpec & { endpoints?: readonly { address: string; port: number }[] })[], o: AuthzCheckOptions): { all: Target[]; matching: Target[] } {
  const all: Target[] = []
  const matching: Target[] = []
  for (const c of clusters) {
    const svc = c.destination?.service
    if (svc === undefined) continue
    const svcPort = Number(c.name.split('|')[1])
    const podPort = c.endpoints?.[0]?.port ?? svcPort
    const groups = [{ label: 'pods', inb: c.inbound }, ...(c.inbound?.workloads ?? []).map((w) => ({ label: w.addresses.join(','), inb: w }))]
    for (const g of groups) {
      const t: Target = { source, workload: svc, listener: `${c.name} ${g.label}`, port: o.port ?? podPort, mtls: g.inb?.mtls ?? 'permissive', authorization: g.inb?.authorization ?? [] }
      all.push(t)
      const named = svc === o.to || (o.to.split('.').length <= 2 && svc.startsWith(`${o.to}.`))
      if (named && (o.port === undefined || o.port === svcPort || o.port === podPort)) matching.push(t)
    }
  }
  return { all, matching }
}

export async function runAuthzCheck(o: AuthzCheckOptions, output: OutputFormat, out: Out, err: Out): Promise<number> {
  let principal: string | null
  try {
    principal = principalOf(o.from)
  } catch (e) {
    err.write(`weft authz check: ${(e as Error).message}\n`)
    return EXIT.USAGE
  }
  const all: Target[] = []
  const matches: Target[] = []
  const add = (r: { all: Target[]; matching: Target[] }) => {
    all.push(...r.all)
    matches.push(...r.matching)
  }
  if ([o.admin, o.config, o.controlPlane, o.resources?.length ? o.resources : undefined].filter((x) => x !== undefined).length !== 1) {
    err.write('weft authz check: give one of -c FILE|DIR (bootstrap files), --admin HOST:PORT (a running proxy), --control-plane HOST:PORT (a running control plane\'s admin) or -r FILE|DIR (resources)\n')
    return EXIT.USAGE
  }
  if (o.admin !== undefined) {
    try {
      const r = await getJson(o.admin, '/config_dump')
      const b = (r.body as { config?: Bootstrap | null })?.config
      if (b === undefined || b === null) throw new Error('the proxy has no config')
      add(listenerTargets(o.admin, b, o))
    } catch (e) {
      err.write(`weft authz check: ${describeAdminError(o.admin, 'proxy', e)}\n`)
      return EXIT.UNREACHABLE
    }
  } else if (o.controlPlane !== undefined) {
    try {
      const r = await getJson(o.controlPlane, '/debug/clusters')
      if (r.status !== 200) throw new Error(`/debug/clusters answered ${r.status}: ${typeof r.body === 'string' ? r.body.trim() : JSON.stringify(r.body)}`)
      add(clusterTargets(o.controlPlane, (r.body as { clusters: ClusterSpec[] }).clusters, o))
    } catch (e) {
      err.write(`weft authz check: ${describeAdminError(o.controlPlane, 'control-plane', e)}\n`)
      return EXIT.UNREACHABLE
    }
  } else if (o.resources !== undefined && o.resources.length > 0) {
    const loaded = await loadResources(o.resources)
    if (!loaded.ok) {
      err.write(`weft authz check: ${loaded.errors.map(formatConfigError).join('\n')}\n`)
      return EXIT.USAGE
    }
    // translated as the control plane does (without Pods: selectors match no pod, as in local mode)
    const t = new Translator({}).translate(resourcesOf(loaded.resources), [])
    add(clusterTargets(o.resources.join(','), t.clusters.map((c) => ({ ...c, endpoints: t.endpoints.get(c.name) ?? [] })), o))
  } else {
    const bs = await bootstrapsOf(o.config!)
    if (typeof bs === 'string') {
      err.write(`weft authz check: ${bs}\n`)
      return EXIT.USAGE
    }
    for (const { file, b } of bs) add(listenerTargets(file, b, o))
  }
  if (matches.length === 0) {
    err.write(`weft authz check: no inbound policy for --to ${JSON.stringify(o.to)}${o.port === undefined ? '' : ` port ${o.port}`}; there are: ${all.map((c) => `${c.workload}/${c.listener}`).join(', ') || 'none'}\n`)
    return EXIT.FAILED
  }
  const q = o.path.indexOf('?')
  const rows = matches.map((c) => {
    const a = new CompiledAuthorization(c.authorization)
    const peer = principal === null ? null : peerIdentity(principal, '', '')
    const d = a.decide({ peer, port: c.port, http: true, method: o.method.toUpperCase(), path: q === -1 ? o.path : o.path.slice(0, q), header: () => undefined })
    return {
      workload: c.workload,
      listener: c.listener,
      source: c.source,
      mtls: c.mtls,
      decision: d.verdict === AUTHZ_DENY ? 'DENY' : 'ALLOW',
      policy: d.policy,
      rule: d.rule,
      reason: d.reason,
      audited: d.audited,
      policies: c.authorization.length,
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
    .requiredOption('--to <workload>', "the callee: a workload (node.workload), an inbound listener's name, or WORKLOAD/LISTENER; with --control-plane or -r: a Service (NAME.NAMESPACE or its FQDN)")
    .option('--method <method>', 'request method', 'GET')
    .option('--path <path>', 'request path', '/')
    .option('--port <port>', 'destination port (default: the listener port)', (v: string) => Number(v))
    .option('-c, --config <file|dir>', 'bootstrap files (a file, or a folder of .yaml files)')
    .option('--admin <host:port>', "a running proxy's admin address (its applied config)")
    .option('--control-plane <host:port>', "a running control plane's admin address (the Services' inbound policies as it resolved them from PeerAuthentication, AuthorizationPolicy and TrafficPolicy)")
    .option('-r, --resources <paths...>', 'resource files or folders (Service, EndpointSlice, PeerAuthentication, AuthorizationPolicy, TrafficPolicy), resolved as the control plane does without Pods')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (opts: AuthzCheckOptions & { output: string }) => {
      const output = outputOption('authz check', opts.output)
      if (output === null) return
      process.exitCode = await runAuthzCheck(opts, output, process.stdout, process.stderr)
    })
}
