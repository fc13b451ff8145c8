// `weft control-plane`: the config server (control-plane/xds/) with its admin listener, fed by one
// source: the local mode (--local DIR, the resource files of a directory, watched) or Kubernetes
// (--kubernetes, informers on the API server). Either way the resources are checked with
// `weft validate`'s checks, translated per proxy namespace and published to the snapshot cache;
// a bad state is logged and the last good snapshots stay published.
//
//   sources/{local,kubernetes}.ts -> (sources/admit.ts) -> snapshot/namespace-publisher.ts
//     -> translate/ -> snapshot/cache.ts -> xds/server.ts -> proxies
import { resolve } from 'node:path'
import type { Server } from 'node:http'
import { isIP } from 'node:net'
import type { Logger } from 'pino'
import { formatConfigError } from '../api/errors.ts'
import { createLogger } from '../proxy/log.ts'
import { admitResources, type Admission } from '../control-plane/sources/admit.ts'
import { loadKubeConfig, type KubeConfigOption } from '../control-plane/sources/kube-api.ts'
import { startKubernetesSource, type ClusterState, type KubernetesSource } from '../control-plane/sources/kubernetes.ts'
import { LocalSource } from '../control-plane/sources/local.ts'
import { SnapshotCache } from '../control-plane/snapshot/cache.ts'
import { NamespacePublisher } from '../control-plane/snapshot/namespace-publisher.ts'
import { resourcesOf } from '../control-plane/translate/translate.ts'
import { createControlPlaneAdmin, listenAdmin } from '../control-plane/xds/admin.ts'
import { DEFAULT_XDS_ADDRESS, startConfigServer, type ConfigServer } from '../control-plane/xds/server.ts'
import type { RunningWebhook, WebhookOptions } from '../control-plane/webhook/run.ts'
import type { RunningCa } from '../control-plane/ca/run.ts'

export { DEFAULT_CP_ADMIN } from '../control-plane/xds/defaults.ts'
import { DEFAULT_CP_ADMIN } from '../control-plane/xds/defaults.ts'
export { OUTBOUND_LISTENER } from '../control-plane/snapshot/namespace-publisher.ts'

export interface ControlPlaneOptions {
  /** gRPC listen address, host:port */
  listen?: string
  /** admin HTTP address, host:port */
  admin?: string
  /** local mode: the resource directory (or file) */
  local?: string
  /** Kubernetes mode: a KubeConfig, 'cluster' (in-cluster) or 'default' (kubeconfig, then in-cluster) */
  kubernetes?: KubeConfigOption
  /** the port of the "outbound" listener sent to every proxy; a proxy's bootstrap may override it */
  outboundPort?: number
  /** complete snapshots written to proxies at a time (control-plane/xds/budget.ts; default 2, 0: no limit) */
  pushThrottle?: number
  log?: Logger
  watchDebounceMs?: number
  /** Kubernetes: quiet time after a change, and the longest a change waits (defaults 100, 1000 ms) */
  debounceMs?: number
  maxDelayMs?: number
  /** Kubernetes: restarts of a failed list/watch (defaults 1 s doubling to 30 s) */
  kubeBackoff?: { initialMs?: number; maxMs?: number }
  /** serve the sidecar injection webhook over HTTPS (control-plane/webhook/) */
  webhook?: WebhookOptions
  /** workload security (control-plane/translate/security.ts): the mesh-wide policies' namespace (default weft-system); autoMtls (default true) needs `ca` */
  security?: { rootNamespace?: string; autoMtls?: boolean }
  /** serve the mesh's certificate service (control-plane/ca/) */
  ca?: { listen: string; trustDomain?: string; dir?: string; tokensFile?: string; namespace?: string; certFile?: string; keyFile?: string; chainFile?: string; /** serve TLS (default: in Kubernetes mode) */ tls?: boolean }
}

export interface RunningControlPlane {
  readonly server: ConfigServer
  readonly admin: Server
  readonly adminPort: number
  readonly webhook?: RunningWebhook
  readonly ca?: RunningCa
  close(): Promise<void>
}

interface RunningSource {
  status(): unknown
  close(): Promise<void>
}

async function startLocal(path: string, pub: NamespacePublisher, log: Logger, debounceMs: number): Promise<RunningSource> {
  const src = new LocalSource({ path, log, debounceMs, onChange: (r) => pub.setResources(r) })
  if (!(await src.load())) throw new Error(`${path}: invalid resources, not started`)
  log.info({ folder: resolve(path) }, 'serving resources from folder')
  src.watch()
  return {
    status: () => ({ source: 'local', path, ...src.counts }),
    async close() {
      src.close()
    },
  }
}

function startKube(kubeConfig: KubeConfigOption, pub: NamespacePublisher, log: Logger, o: ControlPlaneOptions): RunningSource {
  let excluded: string[] = []
  let reported = new Set<string>()
  let last: Admission | undefined
  const onChange = (state: ClusterState) => {
    const a = admitResources(state.resources, last)
    last = a
    const now = new Set([...a.errors, ...a.warnings].map(formatConfigError))
    for (const e of a.errors) {
      const line = formatConfigError(e)
      if (!reported.has(line)) log.error({ code: e.code }, `left out: ${line}`)
    }
    for (const e of a.warnings) {
      const line = formatConfigError(e)
      if (!reported.has(line)) log.warn({ code: e.code }, `admitted, but: ${line}`)
    }
    reported = now
    excluded = a.excluded
    pub.setResources({ ...resourcesOf(a.resources), pods: state.pods })
  }
  const src: KubernetesSource = startKubernetesSource({ kubeConfig, log, onChange, debounceMs: o.debounceMs, maxDelayMs: o.maxDelayMs, backoff: o.kubeBackoff })
  return {
    status: () => ({ source: 'kubernetes', ...src.status(), rejected: src.current()?.rejected ?? [], excluded, errors: [...reported] }),
    close: () => src.stop(),
  }
}

export async function startControlPlane(o: ControlPlaneOptions): Promise<RunningControlPlane> {
  const log = o.log ?? createLogger()
  if (o.local !== undefined && o.kubernetes !== undefined) throw new Error('--local and --kubernetes: choose one source')
  const cache = new SnapshotCache()
  const pub = new NamespacePublisher({
    cache,
    log,
    outboundPort: o.outboundPort ?? 15001,
    security: {
      rootNamespace: o.security?.rootNamespace,
      // with a CA, Services whose endpoints all have sidecars get mutual TLS (and secure naming)
      trustDomain: o.ca !== undefined && o.security?.autoMtls !== false ? (o.ca.trustDomain ?? 'cluster.local') : undefined,
    },
  })
  let source: RunningSource | null = null
  if (o.local !== undefined) source = await startLocal(o.local, pub, log, o.watchDebounceMs ?? 100)
  else if (o.kubernetes !== undefined) source = startKube(o.kubernetes, pub, log, o)
  else log.warn('no source (--local DIR or --kubernetes): proxies will connect and wait for snapshots')
  let server: ConfigServer
  try {
    server = await startConfigServer({
      cache,
      address: o.listen ?? DEFAULT_XDS_ADDRESS,
      log,
      nodeKey: NamespacePublisher.key,
      onStreamOpen: (key, node) => pub.onStreamOpen(key, node),
      pushThrottle: o.pushThrottle,
    })
  } catch (err) {
    await source?.close()
    throw err
  }
  const admin = createControlPlaneAdmin(server, source === null ? undefined : () => source.status(), () => source === null || pub.hasResources)
  let adminPort: number
  try {
    adminPort = await listenAdmin(admin, o.admin ?? DEFAULT_CP_ADMIN)
  } catch (err) {
    await source?.close()
    await server.stop()
    throw err
  }
  const stopAll = async () => {
    await source?.close()
    await server.stop()
    admin.closeAllConnections()
    admin.close()
  }
  // the CA first: the webhook gives injected pods its root when it serves TLS
  let ca: RunningCa | undefined
  if (o.ca !== undefined) {
    try {
      const { startCa } = await import('../control-plane/ca/run.ts')
      const c = o.ca
      const cpNs = c.namespace ?? process.env.POD_NAMESPACE ?? 'weft-system'
      const svc = o.webhook?.service ?? 'weft-control-plane'
      // TLS by default in Kubernetes mode (tokens cross the pod network), plain text in local mode
      const tls = c.tls ?? o.kubernetes !== undefined
      const host = c.listen.slice(0, c.listen.lastIndexOf(':')).replace(/^\[|\]$/g, '')
      const ips = ['127.0.0.1', '::1', ...(isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::' ? [host] : [])]
      ca = await startCa({
        listen: c.listen,
        trustDomain: c.trustDomain ?? 'cluster.local',
        log,
        registry: server.registry.metrics.registry,
        dir: c.dir,
        tokensFile: c.tokensFile,
        kube: o.kubernetes === undefined ? undefined : { config: loadKubeConfig(o.kubernetes), namespace: cpNs },
        plugin: c.certFile === undefined ? undefined : { certFile: c.certFile, keyFile: c.keyFile ?? '', chainFile: c.chainFile },
        tls: tls ? { dns: [`${svc}.${cpNs}.svc`, `${svc}.${cpNs}.svc.cluster.local`, 'localhost'], ips: [...new Set(ips)] } : undefined,
      })
    } catch (err) {
      await stopAll()
      throw err
    }
  }
  let webhook: RunningWebhook | undefined
  if (o.webhook !== undefined) {
    try {
      // loaded on use: the X.509 library only where the webhook runs
      const { startWebhook } = await import('../control-plane/webhook/run.ts')
      const kube = o.webhook.kube ?? (o.kubernetes !== undefined ? { config: loadKubeConfig(o.kubernetes) } : undefined)
      const caRoot = ca?.server.tls === true ? ca.ca.trustBundle().join('') : undefined
      webhook = await startWebhook({ log, ...o.webhook, kube, mesh: { ...o.webhook.mesh, ...(caRoot !== undefined ? { caRoot } : {}) } })
    } catch (err) {
      await ca?.close()
      await stopAll()
      throw err
    }
  }
  log.info({ grpc: server.address, adminPort, webhookPort: webhook?.server.port, ca: ca?.server.address }, 'control plane ready')
  return {
    server,
    admin,
    adminPort,
    webhook,
    ca,
    async close() {
      await ca?.close()
      await webhook?.close()
      await source?.close()
      await server.stop()
      admin.closeAllConnections()
      await new Promise<void>((r) => admin.close(() => r()))
    },
  }
}

/** Run until SIGTERM/SIGINT/SIGHUP; the exit code. */
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
    process.once('SIGHUP', () => stop('SIGHUP'))
  })
}
