// `weft proxy`: the sidecar's command. Registered by cli/weft.ts (every command line) and by
// cli/proxy-main.ts, the entry of the static sidecar's single-file bundle (build/bundle.ts,
// bin/weft.js): the two run the same definition.
import { Command } from 'commander'
import { WEFT_VERSION } from '../protos/version.ts'

/** The `weft` program, without its commands. */
export function weftProgram(): Command {
  return new Command()
    .name('weft')
    .description('Weft service mesh: sidecar proxy and operator tools')
    .version(WEFT_VERSION)
    .showHelpAfterError()
}

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run a sidecar proxy: fed by the control plane (--control-plane), or static from a YAML bootstrap file and resource files (all watched for changes)')
    .option('-c, --config <file>', 'bootstrap YAML file (static mode: required; with --control-plane: the proxy\'s own settings, and served until the first config when complete)')
    .option('--control-plane <host:port>', 'take listeners, routes, clusters and endpoints from the control plane over gRPC')
    .option('-r, --resources <paths...>', 'static mode: Service, EndpointSlice, HTTPRoute and TrafficPolicy files or directories, translated into the route table "outbound" and its clusters')
    .option('--log-level <level>', 'log level (trace, debug, info, warn, error); default $WEFT_LOG_LEVEL or info')
    .action(async (opts: { config?: string; controlPlane?: string; resources?: string[]; logLevel?: string }) => {
      if (opts.logLevel !== undefined) process.env.WEFT_LOG_LEVEL = opts.logLevel
      if (opts.controlPlane !== undefined) {
        if (opts.resources !== undefined) {
          process.stderr.write('weft: --resources is static mode; with --control-plane the resources come from the control plane\n')
          process.exitCode = 2
          return
        }
        // loaded on use: a static sidecar does not carry gRPC and the protobuf loader
        const { runXdsSidecar } = await import('../proxy/xds/sidecar.ts')
        process.exitCode = await runXdsSidecar({ controlPlane: opts.controlPlane, configFile: opts.config })
        // Drained (or never started): exit now rather than when the event loop empties. In a pod's
        // network namespace an injected sidecar with an identity was seen staying alive after its
        // drain with only its stdio pipes referenced, and a Job whose sidecar never exits never
        // completes (the logs are written synchronously: nothing is lost).
        process.exit()
      }
      if (opts.config === undefined) {
        process.stderr.write('weft: proxy needs --config FILE (static mode) or --control-plane HOST:PORT\n')
        process.exitCode = 2
        return
      }
      const { runSidecar } = await import('../proxy/main.ts')
      const resources = opts.resources ?? []
      // static mode loads the control plane's translation only when there are resources
      const source = resources.length === 0 ? undefined : (await import('./proxy-static.ts')).staticSource(opts.config, resources)
      process.exitCode = await runSidecar(opts.config, source)
      process.exit()
    })
}
