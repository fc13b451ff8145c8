// The `weft` command line. Each command is a small module; this file only wires them to commander.
// Command implementations are imported when the command runs, so each process loads only what its
// command needs (a sidecar does not load the Kubernetes client, nor the control plane gRPC).
import { Command } from 'commander'
import { registerCheck } from './check-command.ts'
import { registerControlPlane } from './control-plane-command.ts'
import { registerAnalyze } from './analyze.ts'
import { registerExplain } from './explain.ts'
import { registerInit } from './init.ts'
import { registerInject } from './inject-command.ts'
import { registerInspect } from './inspect.ts'
import { registerInstall } from './install-command.ts'
import { registerStat } from './stat.ts'
import { registerTap } from './tap.ts'
import { registerValidate } from './validate.ts'
import { registerVersion } from './version.ts'
import { registerWaitReady } from './wait-ready.ts'
import { WEFT_VERSION } from '../protos/version.ts'

const program = new Command()
program
  .name('weft')
  .description('Weft service mesh: sidecar proxy and operator tools')
  .version(WEFT_VERSION)
  .showHelpAfterError()

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
      return
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
  })

registerCheck(program)
registerControlPlane(program)
registerInit(program)
registerInject(program)
registerInstall(program)
registerStat(program)
registerExplain(program)
registerAnalyze(program)
registerInspect(program)
registerTap(program)
registerValidate(program)
registerVersion(program)
registerWaitReady(program)

await program.parseAsync(process.argv)
