// The `weft` command line. Each command is a small module; this file only wires them to commander.
import { Command } from 'commander'
import { runSidecar } from '../proxy/main.ts'
import { registerStat } from './stat.ts'
import { registerTap } from './tap.ts'
import { registerValidate } from './validate.ts'

const program = new Command()
program
  .name('weft')
  .description('Weft service mesh: sidecar proxy and operator tools')
  .version('0.1.0')
  .showHelpAfterError()

program
  .command('proxy')
  .description('run a sidecar proxy from a static YAML bootstrap file, and resource files for its routing (all watched for changes)')
  .requiredOption('-c, --config <file>', 'bootstrap YAML file')
  .option('-r, --resources <paths...>', 'static mode: Service, EndpointSlice, HTTPRoute and TrafficPolicy files or directories, translated into the route table "outbound" and its clusters')
  .option('--log-level <level>', 'log level (trace, debug, info, warn, error); default $WEFT_LOG_LEVEL or info')
  .action(async (opts: { config: string; resources?: string[]; logLevel?: string }) => {
    if (opts.logLevel !== undefined) process.env.WEFT_LOG_LEVEL = opts.logLevel
    process.exitCode = await runSidecar(opts.config, opts.resources ?? [])
  })

registerStat(program)
registerTap(program)
registerValidate(program)

await program.parseAsync(process.argv)
