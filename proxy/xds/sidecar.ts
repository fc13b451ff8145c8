// `weft proxy --control-plane ADDR [--config bootstrap.yaml]`: a sidecar fed by the control
// plane. The bootstrap file provides the proxy's own settings (see ./assemble.ts for what comes
// from where); when it is a complete config it is also served at once, so the proxy is ready
// before the control plane answers. Otherwise the proxy serves nothing, and /ready says 503,
// until its first config.
import type { Server } from 'node:http'
import { createServer } from '../net/node-http.ts'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { createAdminServer } from '../admin/server.ts'
import { ConfigErrorCode, formatConfigError } from '../../api/errors.ts'
import { loadBootstrapFile } from '../../api/load.ts'
import type { Bootstrap } from '../../api/schema.ts'
import { createLogger, type Logger } from '../log.ts'
import { listenOn } from '../net/listen.ts'
import { drainOnSignal, holdSignals } from '../main.ts'
import { Proxy } from '../proxy.ts'
import type { BackoffOptions } from './backoff.ts'
import { startConfigClient, type ConfigClient, type NodeIdentity } from './client.ts'
import { closeConnection, openConnection, type EarlyConnection } from './grpc-stream.ts'

export interface XdsSidecarOptions {
  /** host:port of the control plane */
  controlPlane: string
  /** the environment read for an injected pod's listeners (default process.env) */
  env?: NodeJS.ProcessEnv
  /** bootstrap YAML file: local settings, and served until the first config */
  configFile?: string
  /** the same, as an object (tests); ignored when configFile is set */
  bootstrap?: Bootstrap
  /** serve the bootstrap's routes until the first config (default true); false: settings only */
  serveBootstrap?: boolean
  /** who the proxy is; default from the bootstrap's node, the environment and the host name */
  node?: Partial<NodeIdentity>
  log?: Logger
  backoff?: BackoffOptions
  /** overrides the bootstrap's admin port (tests: 0) */
  adminPort?: number
}

export interface XdsSidecar {
  readonly proxy: Proxy
  readonly client: ConfigClient
  readonly admin: Server
  readonly adminPort: number
  /** bound port of a listener by name (0 when it is not bound) */
  port(listener: string): number
  drain(timeoutMs?: number, periodMs?: number): Promise<{ timedOut: boolean }>
  close(): Promise<void>
}

export class BootstrapLoadError extends Error {
  readonly errors: string[]
  constructor(errors: string[]) {
    super(errors.join('\n'))
    this.errors = errors
  }
}

/** The node's identity: explicit fields, then the bootstrap's node, then the Kubernetes downward-API variables. */
export function nodeIdentity(given: Partial<NodeIdentity> = {}, b?: Bootstrap, env: NodeJS.ProcessEnv = process.env): NodeIdentity {
  const pod = given.pod ?? env.POD_NAME
  const namespace = given.namespace ?? b?.node?.namespace ?? env.POD_NAMESPACE
  const id = given.id ?? b?.node?.id ?? env.WEFT_NODE_ID ?? (pod !== undefined ? `${pod}.${namespace ?? 'default'}` : `${hostname()}-${process.pid}`)
  return {
    id,
    pod,
    namespace,
    serviceAccount: given.serviceAccount ?? env.SERVICE_ACCOUNT,
    workload: given.workload ?? b?.node?.workload ?? env.WEFT_WORKLOAD,
    adminAddress: given.adminAddress,
    labels: given.labels,
    proxyVersion: given.proxyVersion,
  }
}

/**
 * The bootstrap file. A complete one is also a static config; one whose only errors are
 * references to route tables or clusters it does not define (the control plane sends them, e.g.
 * a listener on the table "outbound") is settings only. Either way the assembled config is
 * checked again, whole, before anything from the control plane is applied.
 */
export async function loadLocalBootstrap(file: string): Promise<{ bootstrap: Bootstrap; complete: boolean }> {
  const r = await loadBootstrapFile(file)
  if (r.ok) return { bootstrap: r.config, complete: true }
  // the schema passed (references are checked after it), so the shape is a Bootstrap's
  if (r.schemaValid !== undefined && r.errors.every((e) => e.code === ConfigErrorCode.REF)) return { bootstrap: r.schemaValid, complete: false }
  throw new BootstrapLoadError(r.errors.map(formatConfigError))
}

/**
 * In an injected pod (`weft inject`: WEFT_OUTBOUND_PORT, WEFT_INBOUND_PORT, WEFT_ADMIN_PORT set,
 * and `weft init` redirecting the pod's TCP), the listeners the pod's iptables send to: the
 * outbound listener (the control plane's "outbound", on WEFT_OUTBOUND_PORT, intercepting), and
 * the proxy's own inbound listener on WEFT_INBOUND_PORT (all addresses, intercepting: each
 * connection to 127.0.0.1:<its original port>). A bootstrap that names these listeners wins.
 */
export function withPodListeners(b: Bootstrap | undefined, env: NodeJS.ProcessEnv): (Bootstrap & { podIp?: string }) | undefined {
  const port = (v: string | undefined): number | undefined => {
    const n = Number(v)
    return v !== undefined && v !== '' && Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined
  }
  const out = port(env.WEFT_OUTBOUND_PORT)
  const inb = port(env.WEFT_INBOUND_PORT)
  const adm = port(env.WEFT_ADMIN_PORT)
  if (out === undefined && inb === undefined && adm === undefined && !env.WEFT_CA_ADDRESS) return b
  const r: Bootstrap & { podIp?: string } = b === undefined ? { listeners: [], routeTables: [], clusters: [] } : { ...b, listeners: [...b.listeners], routeTables: [...b.routeTables] }
  const has = (name: string) => r.listeners.some((l) => l.name === name)
  if (out !== undefined && !has('outbound')) {
    r.listeners.push({ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: out, routeTable: 'outbound', interception: 'outbound' })
  }
  if (inb !== undefined && !has('inbound')) {
    // Connections made to the port itself (not redirected) are answered 404 by this table.
    // WEFT_INBOUND_MTLS (the pod's weft.io/inbound-mtls annotation): its mutual TLS mode, and its inbound hops'
    const mode = env.WEFT_INBOUND_MTLS
    const mtls = mode === 'strict' || mode === 'permissive' || mode === 'disable' ? { mtls: mode as 'strict' | 'permissive' | 'disable' } : {}
    r.listeners.push({ name: 'inbound', direction: 'inbound', address: '0.0.0.0', port: inb, routeTable: POD_INBOUND_TABLE, interception: 'inbound', ...mtls })
    if (!r.routeTables.some((t) => t.name === POD_INBOUND_TABLE)) {
      r.routeTables.push({
        name: POD_INBOUND_TABLE,
        virtualHosts: [{ name: 'any', domains: ['*'], routes: [{ match: { path: { prefix: '/' } }, directResponse: { status: 404, body: 'weft: the inbound listener serves redirected connections\n' } }] }],
      })
    }
  }
  // kubelet probes the pod's IP (the startupProbe on /ready, the rewritten app probes)
  if (adm !== undefined && r.admin === undefined) r.admin = { address: '0.0.0.0', port: adm }
  // the mesh CA (injected with mutual TLS on): the pod's identity from its ServiceAccount token
  if (env.WEFT_CA_ADDRESS !== undefined && env.WEFT_CA_ADDRESS !== '' && r.identity === undefined) {
    r.identity = {
      serviceAccount: env.SERVICE_ACCOUNT || 'default',
      ...(env.WEFT_TRUST_DOMAIN ? { trustDomain: env.WEFT_TRUST_DOMAIN } : {}),
      ca: {
        address: env.WEFT_CA_ADDRESS,
        tokenFile: env.WEFT_TOKEN_FILE || '/var/run/secrets/kubernetes.io/serviceaccount/token',
        // the mesh root, injected when the CA serves TLS
        ...(env.WEFT_CA_ROOT ? { root: env.WEFT_CA_ROOT } : {}),
      },
    }
    if (r.node?.namespace === undefined && env.POD_NAMESPACE) r.node = { ...r.node, namespace: env.POD_NAMESPACE }
  }
  // the app ports the control plane's endpoints place on this pod get inbound hops (assemble.ts)
  if (inb !== undefined && env.POD_IP !== undefined && env.POD_IP !== '') return { ...r, podIp: env.POD_IP }
  return r
}

const POD_INBOUND_TABLE = 'weft-pod-inbound'

export async function startXdsSidecar(opts: XdsSidecarOptions): Promise<XdsSidecar> {
  // The connection to the control plane is opened first, so its TCP and HTTP/2 handshakes overlap
  // reading the bootstrap and binding the admin listener, and the hello goes out on a connection
  // that is already up the moment the client is made (README, *Footprint*: the --control-plane
  // sidecar's ready time). An address that cannot even be connected to (a bad port) is left to
  // the client, which fails the start as before.
  let early: EarlyConnection | null = null
  try {
    early = openConnection(opts.controlPlane)
  } catch {
    // the client's first attempt reports it
  }
  try {
    return await start(opts, early)
  } catch (err) {
    if (early !== null) closeConnection(early)
    throw err
  }
}

async function start(opts: XdsSidecarOptions, early: EarlyConnection | null): Promise<XdsSidecar> {
  const log = opts.log ?? createLogger()
  let bootstrap = opts.bootstrap
  let complete = bootstrap !== undefined
  if (opts.configFile !== undefined) {
    ;({ bootstrap, complete } = await loadLocalBootstrap(opts.configFile))
    if (!complete) log.info({ file: opts.configFile }, 'bootstrap names route tables it does not define: settings only, nothing served before the control plane answers')
  }
  // One turn of the event loop for the early connection: reading the file gave it none (fs/promises
  // completes without one), and a connection still "connecting" when the hello is written sends it
  // only once the loop runs again, after the rest of the start and the first admin requests.
  if (early !== null && early.session.socket.connecting) await new Promise<void>((resolve) => setImmediate(resolve))
  // the pod's listeners are local settings for the control plane's config; the bootstrap served
  // before the first answer stays the file's (the outbound listener needs the control plane's table)
  const local = withPodListeners(bootstrap, opts.env ?? process.env)
  const proxy = new Proxy(log)
  const node = nodeIdentity(opts.node, bootstrap)
  // The admin listener is bound first, so the hello can tell the control plane where it is
  // (operator tools find the proxies' /metrics through it: weft stat --control-plane).
  // TODO(admin hook): once proxy/admin/server.ts takes the client status, use createAdminServer
  // directly; until then /control_plane is answered here and the rest goes to the proxy's admin.
  let client: ConfigClient | null = null
  const base = createAdminServer(proxy)
  const admin = createServer((req, res) => {
    if ((req.url ?? '/').split('?')[0] === '/control_plane') {
      const body = JSON.stringify(client === null ? { connected: false } : client.status(), null, 2) + '\n'
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    base.emit('request', req, res)
  })
  const a = local?.admin
  const adminHost = a?.address ?? '127.0.0.1'
  try {
    await new Promise<void>((resolve, reject) => {
      admin.once('error', reject)
      // an IPv4 literal without Node's DNS step (see ../net/listen.ts)
      listenOn(admin, adminHost, opts.adminPort ?? a?.port ?? 15000, () => resolve())
    })
  } catch (err) {
    proxy.close()
    throw err
  }
  const adminPort = (admin.address() as AddressInfo).port
  if (node.adminAddress === undefined) node.adminAddress = `${adminHost.includes(':') ? `[${adminHost}]` : adminHost}:${adminPort}`
  log.info({ port: adminPort, node: node.id, controlPlane: opts.controlPlane }, 'admin listening')
  try {
    client = await startConfigClient(proxy, {
      address: opts.controlPlane,
      node,
      local,
      staticBootstrap: opts.serveBootstrap === false || !complete ? undefined : bootstrap,
      backoff: opts.backoff,
      log,
      connection: early,
    })
  } catch (err) {
    proxy.close()
    admin.closeAllConnections()
    admin.close()
    throw err
  }
  const started: ConfigClient = client
  const closeAdmin = () => {
    admin.closeAllConnections()
    return new Promise<void>((r) => admin.close(() => r()))
  }
  return {
    proxy,
    client: started,
    admin,
    adminPort,
    port: (name) => proxy.listeners.get(name)?.port ?? 0,
    async drain(timeoutMs, periodMs) {
      started.close()
      const r = await proxy.drain(timeoutMs, periodMs)
      await closeAdmin()
      return r
    },
    async close() {
      started.close()
      proxy.close()
      await closeAdmin()
    },
  }
}

/** `weft proxy --control-plane ADDR [--config FILE]`: start, drain on signals; the exit code. */
export async function runXdsSidecar(opts: { controlPlane: string; configFile?: string }): Promise<number> {
  holdSignals()
  const log = createLogger()
  let sidecar: XdsSidecar
  try {
    sidecar = await startXdsSidecar({ ...opts, log })
  } catch (err) {
    if (err instanceof BootstrapLoadError) {
      for (const e of err.errors) process.stderr.write(e + '\n')
      process.stderr.write(`weft: ${opts.configFile}: invalid config, not started\n`)
    } else {
      process.stderr.write(`weft: ${(err as Error).message}\n`)
    }
    return 1
  }
  return drainOnSignal(sidecar, log)
}
