// `weft control-plane`: the config server (control-plane/xds/) with its admin listener, fed by a
// source. For now the one source is the local mode (--local DIR): the resource files of a
// directory (Services, EndpointSlices, HTTPRoutes, TrafficPolicies), validated, translated per
// proxy namespace and published to the snapshot cache; the directory is watched, and a bad edit is
// logged while the last good snapshots stay published. The Kubernetes source will feed the same
// cache.
//
//   sources (this file's local mode) -> translate -> snapshot cache -> gRPC stream -> proxies
import type { Command } from 'commander'
import type { Server } from 'node:http'
import type { Logger } from 'pino'
import type { Node__Output } from '../protos/api.ts'
import { formatConfigError } from '../proxy/config/errors.ts'
import type { Listener } from '../proxy/config/schema.ts'
import { watchDirectory, type FileWatcher } from '../proxy/config/watch.ts'
import { createLogger } from '../proxy/log.ts'
import { loadResources } from '../control-plane/resources/validate.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import { formatSnapshotError } from '../control-plane/snapshot/consistency.ts'
import { snapshotFromConfig } from '../control-plane/snapshot/from-config.ts'
import { OUTBOUND_TABLE, resourcesOf, translate, type Resources } from '../control-plane/translate/translate.ts'
import { createControlPlaneAdmin, listenAdmin } from '../control-plane/xds/admin.ts'
import { DEFAULT_XDS_ADDRESS, startConfigServer, type ConfigServer } from '../control-plane/xds/server.ts'

export const DEFAULT_CP_ADMIN = '127.0.0.1:15011'
export const OUTBOUND_LISTENER = 'outbound'

export interface ControlPlaneOptions {
  /** gRPC listen address, host:port */
  listen?: string
  /** admin HTTP address, host:port */
  admin?: string
  /** local mode: the resource directory (or file) */
  local?: string
  /** the port of the "outbound" listener sent to every proxy; a proxy's bootstrap may override it */
  outboundPort?: number
  log?: Logger
  watchDebounceMs?: number
}

export interface RunningControlPlane {
  readonly server: ConfigServer
  readonly admin: Server
  readonly adminPort: number
  close(): Promise<void>
}

/**
 * The local source. Translation depends on the proxy's namespace only (its own Services answer
 * to their short names), so proxies of one namespace share one snapshot: the cache key is
 * "ns/<namespace>". TODO(control-plane/sources/): move this into control-plane/sources/local.ts
 * next to the Kubernetes source once that folder's owner settles its interface.
 */
class LocalSource {
  private resources: Resources | null = null
  private readonly namespaces = new Map<string, string>()
  private watcher: FileWatcher | null = null
  private readonly o: { dir: string; cache: SnapshotCache; log: Logger; outboundPort: number }

  constructor(o: { dir: string; cache: SnapshotCache; log: Logger; outboundPort: number }) {
    this.o = o
  }

  static key(node: Node__Output): string {
    return `ns/${node.namespace || 'default'}`
  }

  /** Read and validate; false (errors logged) keeps the last good resources. */
  async load(): Promise<boolean> {
    const r = await loadResources([this.o.dir])
    if (!r.ok) {
      for (const e of r.errors) this.o.log.error({ code: e.code }, formatConfigError(e))
      this.o.log.error({ dir: this.o.dir, errors: r.errors.length }, 'resources rejected; the last good snapshots stay published')
      return false
    }
    if (r.resources.bootstraps.length > 0) {
      this.o.log.warn({ files: r.resources.bootstraps.map((b) => b.file) }, 'proxy bootstraps among the resources are ignored (each proxy has its own --config)')
    }
    this.resources = resourcesOf(r.resources)
    return true
  }

  watch(debounceMs: number): void {
    this.watcher = watchDirectory(
      this.o.dir,
      () => {
        void this.load().then((ok) => {
          if (ok) for (const [key, ns] of this.namespaces) this.publish(key, ns)
        })
      },
      { debounceMs, persistent: false },
    )
  }

  /** A proxy said hello: publish its namespace's snapshot if nobody did yet. */
  onStreamOpen(key: string, node: Node__Output): void {
    if (this.namespaces.has(key)) return
    this.namespaces.set(key, node.namespace || 'default')
    this.publish(key, node.namespace || 'default')
  }

  private publish(key: string, namespace: string): void {
    if (this.resources === null) return
    const t = translate(this.resources, { namespace })
    const listener: Listener = { name: OUTBOUND_LISTENER, direction: 'outbound', address: '127.0.0.1', port: this.o.outboundPort, routeTable: OUTBOUND_TABLE }
    const r = this.o.cache.setSnapshot(key, snapshotFromConfig({ listeners: [listener], routeTables: t.routeTables, clusters: t.clusters }))
    if (!r.ok) {
      // translate of valid resources should be consistent: a bug, reported, never published
      for (const e of r.errors) this.o.log.error({ code: e.code, key }, formatSnapshotError(e))
      return
    }
    if (r.changed.length > 0) this.o.log.info({ key, seq: r.snapshot.seq, changed: r.changed }, 'snapshot published')
  }

  close(): void {
    this.watcher?.close()
  }
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<RunningControlPlane> {
  const log = o.log ?? createLogger()
  const cache = new SnapshotCache()
  let source: LocalSource | null = null
  if (o.local !== undefined) {
    source = new LocalSource({ dir: o.local, cache, log, outboundPort: o.outboundPort ?? 15001 })
    if (!(await source.load())) throw new Error(`${o.local}: invalid resources, not started`)
  } else {
    log.warn('no source (--local DIR): proxies will connect and wait for snapshots')
  }
  const server = await startConfigServer({
    cache,
    address: o.listen ?? DEFAULT_XDS_ADDRESS,
    log,
    nodeKey: source === null ? undefined : LocalSource.key,
    onStreamOpen: source === null ? undefined : (key, node) => source.onStreamOpen(key, node),
  })
  const admin = createControlPlaneAdmin(server)
  let adminPort: number
  try {
    adminPort = await listenAdmin(admin, o.admin ?? DEFAULT_CP_ADMIN)
  } catch (err) {
    await server.stop()
    throw err
  }
  source?.watch(o.watchDebounceMs ?? 100)
  log.info({ grpc: server.address, adminPort }, 'control plane ready')
  return {
    server,
    admin,
    adminPort,
    async close() {
      source?.close()
      await server.stop()
      admin.closeAllConnections()
      await new Promise<void>((r) => admin.close(() => r()))
    },
  }
}

/** Run until SIGTERM/SIGINT; the exit code. */
export async function runControlPlane(o: ControlPlaneOptions): Promise<number> {
  const log = o.log ?? createLogger()
  let cp: RunningControlPlane
  try {
    cp = await startControlPlane({ ...o, log })
  } catch (err) {
    process.stderr.write(`weft: ${(err as Error).message}\n`)
    return 1
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping')
      void cp.close().then(() => resolve(0))
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}

export function registerControlPlane(program: Command): void {
  program
    .command('control-plane')
    .description('run the control plane: serve proxies their config over gRPC (local mode: from resource files)')
    .option('--listen <host:port>', 'gRPC address for proxies', DEFAULT_XDS_ADDRESS)
    .option('--admin <host:port>', 'admin HTTP address (/debug/proxies, /debug/nacks, /debug/snapshots, /metrics)', DEFAULT_CP_ADMIN)
    .option('--local <dir>', 'local mode: Service, EndpointSlice, HTTPRoute and TrafficPolicy files (watched)')
    .option('--outbound-port <port>', 'port of the "outbound" listener sent to proxies (a proxy bootstrap listener "outbound" overrides it)', '15001')
    .option('--log-level <level>', 'log level (trace, debug, info, warn, error); default $WEFT_LOG_LEVEL or info')
    .action(async (opts: { listen: string; admin: string; local?: string; outboundPort: string; logLevel?: string }) => {
      if (opts.logLevel !== undefined) process.env.WEFT_LOG_LEVEL = opts.logLevel
      const port = Number(opts.outboundPort)
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        process.stderr.write(`weft: --outbound-port: expected a port number, got "${opts.outboundPort}"\n`)
        process.exitCode = 2
        return
      }
      process.exitCode = await runControlPlane({ listen: opts.listen, admin: opts.admin, local: opts.local, outboundPort: port })
    })
}
