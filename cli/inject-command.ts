// `weft inject` and `weft uninject`'s options (commander); the implementation (./inject.ts, with
// the yaml library and the injector) is imported when the command runs.
import type { Command } from 'commander'
import { DEFAULT_MESH } from '../control-plane/inject/types.ts'

export function registerInject(program: Command): void {
  for (const mode of ['inject', 'uninject'] as const) {
    program
      .command(mode)
      .description(mode === 'inject'
        ? 'add the Weft sidecar to the pod templates of a YAML stream (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, List); write it to stdout'
        : 'remove what `weft inject` added, exactly; write the stream to stdout')
      .requiredOption('-f, --filename <file>', 'YAML file, or - for standard input')
      .option('--proxy-image <image>', 'image of weft-init and weft-proxy', DEFAULT_MESH.image)
      .option('--control-plane <host:port>', 'address the proxies dial', DEFAULT_MESH.controlPlaneAddress)
      .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2))
      .action(async (opts: { filename: string; proxyImage: string; controlPlane: string }) => {
        const { runInject } = await import('./inject.ts')
        const mesh = { ...DEFAULT_MESH, image: opts.proxyImage, controlPlaneAddress: opts.controlPlane }
        process.exitCode = await runInject({ file: opts.filename, mode, mesh }, process.stdout, process.stderr)
      })
  }
}
