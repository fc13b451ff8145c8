// Run a sidecar from a static bootstrap file: load, validate, serve, watch the file for changes
// (a bad edit is logged and shown on the admin API while the last good config keeps serving),
// drain on SIGTERM/SIGINT.
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdminServer } from './admin/server.ts'
import { formatConfigError } from './config/errors.ts'
import { loadBootstrapFile } from './config/load.ts'
import { watchFile, type FileWatcher } from './config/watch.ts'
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
  drain(timeoutMs?: number): Promise<{ timedOut: boolean }>
  close(): Promise<void>
}

export class ConfigLoadError extends Error {
  readonly errors: string[]
  constructor(errors: string[]) {
    super(errors.join('\n'))
    this.errors = errors
  }
}

export interface StartOptions {
  configFile: string
  log?: Logger
  watch?: boolean
  watchDebounceMs?: number
}

export async function startSidecar(opts: StartOptions): Promise<Sidecar> {
  const log = opts.log ?? createLogger()
  const first = await loadBootstrapFile(opts.configFile)
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
    const r = await loadBootstrapFile(opts.configFile)
    if (!r.ok) {
      proxy.reject(opts.configFile, r.errors.map(formatConfigError))
      return false
    }
    if (proxy.current !== null && JSON.stringify(r.config) === JSON.stringify(proxy.current.source)) return true
    try {
      await proxy.apply(r.config)
      return true
    } catch (err) {
      // e.g. a new listener port already in use: keep the last good config.
      proxy.reject(opts.configFile, [`${opts.configFile}: ${(err as Error).message}`])
      return false
    }
  }
  let watcher: FileWatcher | null = null
  if (opts.watch !== false) {
    watcher = watchFile(
      opts.configFile,
      () => {
        reloading = (reloading ?? Promise.resolve(true)).then(reload)
      },
      { debounceMs: opts.watchDebounceMs ?? 100, persistent: false },
    )
  }
  const closeAdmin = () => new Promise<void>((r) => admin.close(() => r()))
  return {
    proxy,
    admin,
    adminPort,
    port: (name) => proxy.listeners.get(name)?.port ?? 0,
    reload,
    async drain(timeoutMs) {
      watcher?.close()
      const r = await proxy.drain(timeoutMs)
      admin.closeAllConnections()
      await closeAdmin()
      return r
    },
    async close() {
      watcher?.close()
      proxy.close()
      admin.closeAllConnections()
      await closeAdmin()
    },
  }
}

/** `weft proxy`: start, log where it listens, drain on signals. Returns the exit code promise. */
export async function runSidecar(configFile: string): Promise<number> {
  const log = createLogger()
  let sidecar: Sidecar
  try {
    sidecar = await startSidecar({ configFile, log })
  } catch (err) {
    if (err instanceof ConfigLoadError) {
      for (const e of err.errors) process.stderr.write(e + '\n')
      process.stderr.write(`weft: ${configFile}: invalid config, not started\n`)
    } else {
      process.stderr.write(`weft: ${(err as Error).message}\n`)
    }
    return 1
  }
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      log.info({ signal }, 'draining')
      void sidecar.drain().then(({ timedOut }) => {
        log.info({ timedOut }, 'drained, exiting')
        resolve(0)
      })
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
  })
}
