// `weft version`: this client's version, and the versions of a proxy (--admin) and of a control
// plane (--control-plane-admin, its admin address) when they answer on their admin /version.
import type { Command } from 'commander'
import { WEFT_VERSION, type VersionInfo } from '../protos/version.ts'
import { nextStep } from './errors.ts'
import { adminBase } from './tap.ts'

export interface VersionLine {
  what: string
  address?: string
  version?: string
  node?: string
  error?: string
  /** with error: what to try next */
  whatToDo?: string
}

async function fetchVersion(address: string, timeoutMs: number): Promise<VersionInfo | string> {
  try {
    const r = await fetch(`${adminBase(address)}/version`, { signal: AbortSignal.timeout(timeoutMs) })
    if (r.status !== 200) return `HTTP ${r.status} on /version (a Weft older than ${WEFT_VERSION}?)`
    return (await r.json()) as VersionInfo
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } }
    return e.cause?.code ?? e.name ?? e.message
  }
}

export async function versions(o: { admin?: string; controlPlane?: string; timeoutMs?: number }): Promise<VersionLine[]> {
  const lines: VersionLine[] = [{ what: 'client', version: WEFT_VERSION, node: process.version }]
  const remote: [string, string | undefined, 'proxy' | 'control-plane'][] = [['proxy', o.admin, 'proxy'], ['control plane', o.controlPlane, 'control-plane']]
  for (const [what, address, kind] of remote) {
    if (address === undefined) continue
    const v = await fetchVersion(address, o.timeoutMs ?? 2000)
    lines.push(typeof v === 'string' ? { what, address, error: v, whatToDo: nextStep(address, kind) } : { what, address, version: v.version, node: v.node })
  }
  return lines
}

export function formatVersions(lines: VersionLine[]): string {
  return lines
    .map((l) => {
      const where = l.address === undefined ? l.what : `${l.what} ${l.address}`
      return l.error !== undefined ? `${where}: unreachable (${l.error})${l.whatToDo !== undefined ? `: ${l.whatToDo}` : ''}` : `${where}: weft ${l.version} (node ${l.node})`
    })
    .join('\n') + '\n'
}

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print this client\'s version, and the versions of a proxy and a control plane that answer on their admin /version')
    .option('--admin <host:port>', 'admin address of a proxy')
    .option('--control-plane-admin <host:port>', 'admin address of a control plane (not its gRPC address)')
    .option('--control-plane <host:port>', 'deprecated spelling of --control-plane-admin (elsewhere --control-plane is the gRPC address)')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .option('--json', 'same as -o json')
    .action(async (opts: { admin?: string; controlPlaneAdmin?: string; controlPlane?: string; json?: boolean; output: string }) => {
      const { parseOutput, emit } = await import('./output.ts')
      let output
      try {
        output = opts.json === true ? 'json' as const : parseOutput(opts.output)
      } catch (e) {
        process.stderr.write(`weft version: ${(e as Error).message}\n`)
        process.exitCode = 2
        return
      }
      for (const a of [opts.admin, opts.controlPlaneAdmin ?? opts.controlPlane]) {
        if (a === undefined) continue
        try {
          adminBase(a)
        } catch (e) {
          process.stderr.write(`weft version: ${(e as Error).message}\n`)
          process.exitCode = 2
          return
        }
      }
      if (opts.controlPlane !== undefined) process.stderr.write('weft version: --control-plane is deprecated here (it means the gRPC address elsewhere); use --control-plane-admin\n')
      const lines = await versions({ admin: opts.admin, controlPlane: opts.controlPlaneAdmin ?? opts.controlPlane })
      if (output === 'table') process.stdout.write(formatVersions(lines))
      else if (opts.json === true) process.stdout.write(JSON.stringify(lines) + '\n')
      else emit(process.stdout, output, lines)
      // a remote that was asked for and did not answer
      if (lines.some((l) => l.error !== undefined)) process.exitCode = 1
    })
}
