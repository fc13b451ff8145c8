// `weft check`'s options (commander); the implementation (./check.ts) loads when it runs.
import type { Command } from 'commander'
import { DEFAULT_CP_ADMIN } from '../control-plane/xds/defaults.ts'

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check a Weft installation (as linkerd check): Kubernetes API, CRDs, webhook and its certificate, control plane, proxies; exit 0 when all pass, 1 otherwise')
    .option('--pre', 'before installing: the API is reachable and Weft\'s CRDs are not there yet (or current)')
    .option('--namespace <ns>', 'the control plane\'s namespace', 'weft-system')
    .option('--webhook-url <url>', 'where the webhook answers (e.g. after kubectl -n weft-system port-forward deploy/weft-control-plane 8443 15011)', 'https://127.0.0.1:8443')
    .option('--control-plane-admin <host:port>', 'the control plane\'s admin address, HOST:PORT as in every command (a URL works too)', DEFAULT_CP_ADMIN)
    .option('--kubeconfig <file>', 'this kubeconfig file (default $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'this kubeconfig context (default its current-context)')
    .option('-o, --output <format>', 'table (√/× lines), json or yaml', 'table')
    .action(async (opts: { pre?: boolean; namespace: string; webhookUrl: string; controlPlaneAdmin: string; kubeconfig?: string; context?: string; output: string }) => {
      const { outputOption } = await import('./output.ts')
      const output = outputOption('check', opts.output)
      if (output === null) return
      const { loadKubeConfig } = await import('../control-plane/sources/kube-api.ts')
      const { runCheck } = await import('./check.ts')
      let kube
      try {
        kube = loadKubeConfig(opts.kubeconfig !== undefined || opts.context !== undefined ? { kubeconfig: opts.kubeconfig, context: opts.context } : 'default')
      } catch (err) {
        process.stdout.write(`× can load a kubeconfig (${(err as Error).message})\n    what to do: set KUBECONFIG, create ~/.kube/config, or give --kubeconfig FILE [--context NAME]\n`)
        process.exitCode = 1
        return
      }
      process.exitCode = await runCheck({ kube, pre: opts.pre === true, namespace: opts.namespace, webhookUrl: opts.webhookUrl, controlPlaneAdmin: opts.controlPlaneAdmin, output }, process.stdout)
    })
}
