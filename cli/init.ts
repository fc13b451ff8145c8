// `weft init`: the init container's command (iptables for interception). Logic in proxy/intercept/init.ts,
// loaded only when this command runs.
import type { Command } from 'commander'

const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter((s) => s !== '')
const ports = (v: string): number[] => list(v).map((s) => {
  const n = Number(s)
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`invalid port ${s}`)
  return n
})

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('program iptables (nat) in this network namespace so TCP goes through the sidecar (init container)')
    .option('--proxy-uid <uid>', 'uid of the proxy (its traffic is not redirected)', '1337')
    .option('--outbound-port <port>', 'outbound listener port', '15001')
    .option('--inbound-port <port>', 'inbound listener port', '15006')
    .option('--exclude-inbound-ports <list>', 'inbound ports left alone (comma list)', '')
    .option('--exclude-outbound-ports <list>', 'outbound ports left alone (comma list)', '')
    .option('--exclude-outbound-cidrs <list>', 'outbound destinations left alone (comma list of CIDRs)', '')
    .option('--cleanup', 'remove exactly what weft init added')
    .option('--dry-run', 'print the rules, change nothing')
    .option('--json', 'report as JSON')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const started = process.hrtime.bigint()
      const { runInit } = await import('../proxy/intercept/init.ts')
      let opts
      try {
        opts = {
          proxyUid: ports(String(o.proxyUid))[0] ?? 1337,
          outboundPort: ports(String(o.outboundPort))[0] ?? 15001,
          inboundPort: ports(String(o.inboundPort))[0] ?? 15006,
          excludeInboundPorts: ports(String(o.excludeInboundPorts ?? '')),
          excludeOutboundPorts: ports(String(o.excludeOutboundPorts ?? '')),
          excludeOutboundCidrs: list(String(o.excludeOutboundCidrs ?? '')),
        }
      } catch (err) {
        process.stderr.write(`weft init: WEFT_ERR_INIT_FLAGS ${(err as Error).message}\n`)
        process.exitCode = 2
        return
      }
      const r = await runInit(opts, { dryRun: o.dryRun === true, cleanup: o.cleanup === true })
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      if (o.json === true) {
        process.stdout.write(JSON.stringify({ ...r, ms }) + '\n')
      } else if (r.ok) {
        for (const w of r.warnings) process.stderr.write(`weft init: warning: ${w}\n`)
        for (const l of r.rules) process.stdout.write(`${l}\n`)
        const v6 = r.ipv6
        if (v6 !== undefined && v6.action !== 'skipped') for (const l of v6.rules) process.stdout.write(`(ipv6) ${l}\n`)
        const six = v6 === undefined ? '' : v6.action === 'skipped' ? `; IPv6 skipped: ${v6.reason}` : `; IPv6 ${v6.action} (${v6.rules.length} rules)`
        process.stdout.write(`weft init: ${r.action} (${r.rules.length} rules${six}, ${ms.toFixed(1)} ms)\n`)
      } else {
        process.stderr.write(`weft init: ${r.code} ${r.message}\n`)
      }
      if (!r.ok) process.exitCode = 1
    })
}
