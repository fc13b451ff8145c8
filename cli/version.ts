// `weft version`: this client's version, and the versions of a proxy (--admin) and of a control
// plane (--control-plane, its admin address) when they answer on their admin /version.
import type { Command } from 'commander'
import { WEFT_VERSION, type VersionInfo } from '../protos/version.ts'

export interface VersionLine {
  what: string
  address?: string
  version?: string
  node?: string
  error?: string
}

async function fetchVersion(address: string, timeoutMs: number): Promise<VersionInfo | string> {
  try {
    const r = await fetch(`http://${address}/version`, { signal: AbortSignal.timeout(timeoutMs) })
    if (r.status !== 200) return `HTTP ${r.status} on /version (a Weft older than ${WEFT_VERSION}?)`
    return (await r.json()) as VersionInfo
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } }
    return e.cause?.code ?? e.name ?? e.message
  }
}

export async function versions(o: { admin?: string; controlPlane?: string; timeoutMs?: number }): Promise<VersionLine[]> {
  const lines: VersionLine[] = [{ what: 'client', version: WEFT_VERSION, node: process.version }]
  const remote: [string, string | undefined][] = [['proxy', o.admin], ['control plane', o.controlPlane]]
  for (const [what, address] of remote) {
    if (address === undefined) continue
    const v = await fetchVersion(address, o.timeoutMs ?? 2000)
    lines.push(typeof v === 'string' ? { what, address, error: v } : { what, address, version: v.version, node: v.node })
  }
  return lines
}

export function formatVersions(lines: VersionLine[]): string {
  return lines
    .map((l) => {
      const where = l.address === undefined ? l.what : `${l.what} ${l.address}`
      return l.error !== undefined ? `${where}: unreachable (${l.error})` : `${where}: weft ${l.version} (node ${l.node})`
    })
    .join('\n') + '\n'
}

export function registerVersion(program: Command): void {
  program
    .command('version')
    .description('print this client\'s version, and the versions of a proxy and a control plane that answer on their admin /version')
    .option('--admin <host:port>', 'admin address of a proxy')
    .option('--control-plane <host:port>', 'admin address of a control plane')
    .option('--json', 'print the lines as JSON')
    .action(async (opts: { admin?: string; controlPlane?: string; json?: boolean }) => {
      const lines = await versions(opts)
      process.stdout.write(opts.json === true ? JSON.stringify(lines) + '\n' : formatVersions(lines))
      // a remote that was asked for and did not answer
      if (lines.some((l) => l.error !== undefined)) process.exitCode = 1
    })
}
