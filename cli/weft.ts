// The `weft` command line. Each command is a small module; this file only wires them to commander.
// Command implementations are imported when the command runs, so each process loads only what its
// command needs (a sidecar does not load the Kubernetes client, nor the control plane gRPC).
import { Command } from 'commander'
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

// Each command's module, by command name. A process registers only the command it runs (a
// sidecar loads none of the operator commands' modules: undici, the resource schemas, the config
// compiler: ~40 MB, ~0.2 s; `weft init` in an init container starts in a fraction of the time);
// `weft --help`, `weft help` and an unknown command register them all.
type Registrar = (program: Command) => void
const COMMANDS: Record<string, () => Promise<Registrar>> = {
  check: () => import('./check-command.ts').then((m) => m.registerCheck),
  'control-plane': () => import('./control-plane-command.ts').then((m) => m.registerControlPlane),
  init: () => import('./init.ts').then((m) => m.registerInit),
  inject: () => import('./inject-command.ts').then((m) => m.registerInject),
  uninject: () => import('./inject-command.ts').then((m) => m.registerInject),
  install: () => import('./install-command.ts').then((m) => m.registerInstall),
  stat: () => import('./stat.ts').then((m) => m.registerStat),
  explain: () => import('./explain.ts').then((m) => m.registerExplain),
  identity: () => import('./identity.ts').then((m) => m.registerIdentity),
  authz: () => import('./identity.ts').then((m) => m.registerAuthz),
  analyze: () => import('./analyze.ts').then((m) => m.registerAnalyze),
  'proxy-config': () => import('./inspect.ts').then((m) => m.registerInspect),
  'proxy-status': () => import('./inspect.ts').then((m) => m.registerInspect),
  tap: () => import('./tap.ts').then((m) => m.registerTap),
  validate: () => import('./validate.ts').then((m) => m.registerValidate),
  'ratelimit-server': () => import('./ratelimit-server.ts').then((m) => m.registerRateLimitServer),
  version: () => import('./version.ts').then((m) => m.registerVersion),
  'wait-ready': () => import('./wait-ready.ts').then((m) => m.registerWaitReady),
}
const wanted = process.argv[2]
if (wanted !== 'proxy') {
  const one = wanted === undefined ? undefined : COMMANDS[wanted]
  const loaders = one !== undefined ? [one] : [...new Set(Object.values(COMMANDS))]
  const registrars = new Set(await Promise.all(loaders.map((l) => l())))
  for (const register of registrars) register(program)
}

await program.parseAsync(process.argv)
