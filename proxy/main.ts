// Run a sidecar from a static bootstrap file: load, validate, serve, watch the file for changes
// (a bad edit is logged and shown on the admin API while the last good config keeps serving),
// drain on SIGTERM/SIGINT. Where the config comes from is a ConfigSource: the bootstrap file alone
// here; static mode (the bootstrap plus translated resources) is assembled by the CLI
// (cli/proxy-static.ts), so the proxy never imports the control plane.
import { statSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdminServer } from './admin/server.ts'
import { formatConfigError } from '../api/errors.ts'
import { loadBootstrapFile, type LoadResult } from '../api/load.ts'
import { watchDirectory, watchFile, type FileWatcher } from '../api/watch.ts'
import { createLogger, type Logger } from './log.ts'
import { Proxy } from './proxy.ts'

export interface Sidecar {
  readonly proxy: Proxy
  readonly admin: Server
  readonly adminPort: number
  /** bound port of a listener by name */
  port(listener: string): number
  /** re-read the config file now (the watcher calls this) */
  reload(): Promise<boolean>
  /** see Proxy.drain; defaults: the config's drainTimeout and drainPeriod */
  drain(timeoutMs?: number, periodMs?: number): Promise<{ timedOut: boolean }>
  close(): Promise<void>
}

export class ConfigLoadError extends Error {
  readonly errors: string[]
  constructor(errors: string[]) {
    super(errors.join('\n'))
    this.errors = errors
  }
}

/** Where a sidecar's config comes from: how to load it, its name in messages, the paths to watch. */
export interface ConfigSource {
  load(): Promise<LoadResult>
  readonly name: string
  readonly paths: readonly string[]
}

export interface StartOptions {
  configFile: string
  /** default: the bootstrap file alone (bootstrapSource) */
  source?: ConfigSource
  log?: Logger
  watch?: boolean
  watchDebounceMs?: number
}

/** The bootstrap file is the whole config. */
export function bootstrapSource(configFile: string): ConfigSource {
  return { load: () => loadBootstrapFile(configFile), name: configFile, paths: [configFile] }
}

/** A file or a directory (its entries), watched the way each needs. */
function watchPath(path: string, onChange: () => void, debounceMs: number): FileWatcher {
  let dir = false
  try {
    dir = statSync(path).isDirectory()
  } catch {
    // missing: watched as a file, which notices it coming back
  }
  const o = { debounceMs, persistent: false }
  return dir ? watchDirectory(path, onChange, o) : watchFile(path, onChange, o)
}

export async function startSidecar(opts: StartOptions): Promise<Sidecar> {
  const log = opts.log ?? createLogger()
  const src = opts.source ?? bootstrapSource(opts.configFile)
  const load = () => src.load()
  const source = src.name
  const first = await load()
  if (!first.ok) throw new ConfigLoadError(first.errors.map(formatConfigError))
  const proxy = new Proxy(log)
  await proxy.apply(first.config)
  const admin = createAdminServer(proxy)
  const a = first.config.admin
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject)
    admin.listen({ host: a?.address ?? '127.0.0.1', port: a?.port ?? 15000 }, () => resolve())
  })
  const adminPort = (admin.address() as AddressInfo).port
  log.info({ address: a?.address ?? '127.0.0.1', port: adminPort }, 'admin listening')

  let reloading: Promise<boolean> | null = null
  const reload = async (): Promise<boolean> => {
    const r = await load()
    if (!r.ok) {
      proxy.reject(source, r.errors.map(formatConfigError))
      return false
    }
    if (proxy.current !== null && JSON.stringify(r.config) === JSON.stringify(proxy.current.source)) return true
    try {
      await proxy.apply(r.config)
      return true
    } catch (err) {
      // e.g. a new listener port already in use: keep the last good config.
      proxy.reject(source, [`${source}: ${(err as Error).message}`])
      return false
    }
  }
  const watchers: FileWatcher[] = []
  if (opts.watch !== false) {
    const onChange = () => {
      reloading = (reloading ?? Promise.resolve(true)).then(reload)
    }
    for (const path of src.paths) watchers.push(watchPath(path, onChange, opts.watchDebounceMs ?? 100))
  }
  const watcher = { close: () => watchers.forEach((w) => w.close()) }
  const closeAdmin = () => new Promise<void>((r) => admin.close(() => r()))
  return {
    proxy,
    admin,
    adminPort,
    port: (name) => proxy.listeners.get(name)?.port ?? 0,
    reload,
    async drain(timeoutMs, periodMs) {
      watcher.close()
      const r = await proxy.drain(timeoutMs, periodMs)
      admin.closeAllConnections()
      await closeAdmin()
      return r
    },
    async close() {
      watcher.close()
      proxy.close()
      admin.closeAllConnections()
      await closeAdmin()
    },
  }
}

/** `weft proxy`: start, log where it listens, drain on signals. Returns the exit code promise. */
export async function runSidecar(configFile: string, source: ConfigSource = bootstrapSource(configFile)): Promise<number> {
  holdSignals()
  const log = createLogger()
  let sidecar: Sidecar
  try {
    sidecar = await startSidecar({ configFile, source, log })
  } catch (err) {
    if (err instanceof ConfigLoadError) {
      for (const e of err.errors) process.stderr.write(e + '\n')
      process.stderr.write(`weft: ${source.name}: invalid config, not started\n`)
    } else {
      process.stderr.write(`weft: ${(err as Error).message}\n`)
    }
    return 1
  }
  return drainOnSignal(sidecar, log)
}

/** The young generation's resident size at which it stops growing (two 4 MB semi-spaces). */
const YOUNG_GENERATION_CAP = 8 * 1024 * 1024

/**
 * Caps V8's young generation at about YOUNG_GENERATION_CAP. By default it grows from 1 MB
 * semi-spaces up to 16 MB ones (~48 MB resident) under allocation bursts (a load peak, thousands
 * of connections accepted at once) and never gives the memory back: much of a sidecar's RSS after
 * load and with 10,000 idle connections. The size limits are read only when the heap is made
 * (a command-line flag), but the growth factor is read at each growth: once the young generation
 * has reached the cap (checked after each garbage collection), the factor is set to 1 and
 * it grows no more. Measured (README, *Footprint*): GC share of the CPU under the headline load
 * ~2-5 % with V8's defaults, 6-10 % with the young generation held at 2 MB, hence a cap and not
 * "never grow". WEFT_V8_DEFAULTS=1 leaves V8's defaults.
 */
export function capYoungGeneration(): void {
  if (process.env.WEFT_V8_DEFAULTS === '1') return
  const v8 = process.getBuiltinModule('node:v8') as typeof import('node:v8')
  const young = (): number => {
    for (const s of v8.getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.physical_space_size
    return 0
  }
  const check = (): boolean => {
    if (young() < YOUNG_GENERATION_CAP) return false
    v8.setFlagsFromString('--semi-space-growth-factor=1')
    return true
  }
  if (check()) return
  // checked after each garbage collection (the young generation grows at one) until the cap is reached
  const { PerformanceObserver } = process.getBuiltinModule('node:perf_hooks') as typeof import('node:perf_hooks')
  const obs = new PerformanceObserver(() => {
    if (check()) obs.disconnect()
  })
  obs.observe({ entryTypes: ['gc'] })
}

/**
 * Until SIGTERM, SIGINT or SIGHUP (the terminal went away), then drain once; resolves with the
 * exit code 0. The process is a running sidecar now: its young generation is capped
 * (capYoungGeneration).
 */
export function drainOnSignal(sidecar: { readonly proxy: Proxy; drain(): Promise<{ timedOut: boolean }> }, log: Logger): Promise<number> {
  capYoungGeneration()
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      const c = sidecar.proxy.current
      log.info({ signal, drainPeriodMs: c?.drainPeriodMs, drainTimeoutMs: c?.drainTimeoutMs }, 'draining')
      void sidecar.drain().then(({ timedOut }) => {
        log.info({ timedOut }, 'drained, exiting')
        resolve(0)
      })
    }
    // Added before the holding listener goes: a signal's last listener removed closes Node's
    // handle for it, and a signal already received but not yet dispatched was lost with it.
    for (const s of SIGNALS) process.on(s, () => stop(s))
    for (const s of SIGNALS) process.removeListener(s, holdSignal)
    // a signal that came while the sidecar started: its drain begins now
    if (heldSignal !== null) stop(heldSignal)
  })
}

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const
let heldSignal: (typeof SIGNALS)[number] | null = null
function holdSignal(s: (typeof SIGNALS)[number]): void {
  heldSignal ??= s
}

/**
 * From the start of `weft proxy`: a signal that arrives before drainOnSignal takes over is held,
 * and the drain starts as soon as the sidecar is up. Without it, a SIGTERM sent as the admin
 * listener came up (its log line is written synchronously) killed the process undrained.
 */
export function holdSignals(): void {
  for (const s of SIGNALS) if (!process.listeners(s).includes(holdSignal)) process.on(s, holdSignal)
}
