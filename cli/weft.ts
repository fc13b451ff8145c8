// The `weft` command line. Each command is a small module; this file only wires them to commander.
// Command implementations are imported when the command runs, so each process loads only what its
// command needs (a sidecar does not load the Kubernetes client, nor the control plane gRPC).
import type { Command } from 'commander'
import { registerProxy, weftProgram } from './proxy-command.ts'

const program = weftProgram()
registerProxy(program)

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
