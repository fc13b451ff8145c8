// The control plane's admin listener (node:http, off the config path): who is connected and
// what they ACKed, the NACKs, the published snapshots' versions, and Prometheus metrics.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { TYPE, TYPE_URLS, typeName } from '../../protos/api.ts'
import { versionInfo } from '../../protos/version.ts'
import type { ConfigServer } from './server.ts'

export function snapshotsView(cp: ConfigServer): unknown {
  return {
    snapshots: cp.cache.nodes().sort().map((key) => {
      const s = cp.cache.getSnapshot(key)!
      return {
        key,
        seq: s.seq,
        publishedAt: s.publishedAt,
        versions: Object.fromEntries(TYPE_URLS.map((t) => [typeName(t), s.types[t].version])),
        resources: Object.fromEntries(TYPE_URLS.map((t) => [typeName(t), s.types[t].resources.size])),
      }
    }),
  }
}

/**
 * The push throttle and send budget (./budget.ts): complete snapshots being written now and the
 * most at once so far, proxies waiting for their turn, batches that waited, bytes being written.
 */
export function pushesView(cp: ConfigServer): unknown {
  const b = cp.budget
  if (b === undefined) return { throttle: 0, budgetBytes: 0 }
  return { throttle: b.throttle, budgetBytes: b.limit, sending: b.sending, mostSending: b.mostSending, waiting: b.queued, waited: b.waited, bytesInUse: b.inUse }
}

/**
 * The clusters (with their tls and inbound policy, as the control plane resolved them) and their
 * endpoints, of the snapshot of the proxies of `namespace` (clusters are the same in every
 * namespace's snapshot; default: the first published). null: nothing published.
 */
export function clustersView(cp: ConfigServer, namespace: string | null): unknown {
  const key = namespace !== null ? `ns/${namespace}` : cp.cache.nodes().sort()[0]
  const s = key === undefined ? undefined : cp.cache.getSnapshot(key)
  if (s === undefined) return null
  const endpoints = s.types[TYPE.endpoints].resources
  return {
    key,
    seq: s.seq,
    clusters: [...s.types[TYPE.cluster].resources.values()].map((r) => ({ ...(r.body as object), endpoints: endpoints.get(r.name)?.body ?? [] })),
  }
}

/**
 * `source`: what the source says of itself, for /debug/source (informer status, objects left
 * out). `ready`: /ready answers 200 only once it is true (the source has given its first state:
 * a replica whose informers have not synced would serve proxies nothing).
 */
export function createControlPlaneAdmin(cp: ConfigServer, source?: () => unknown, ready: () => boolean = () => true): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    const json = (body: unknown) => send(200, 'application/json', JSON.stringify(body, null, 2) + '\n')
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n')
    switch (path) {
      case '/debug/proxies':
        return json({ connected: cp.registry.connected, pushes: pushesView(cp), proxies: cp.registry.proxies() })
      case '/debug/nacks':
        return json({ nacks: cp.registry.nacks() })
      case '/debug/snapshots':
        return json(snapshotsView(cp))
      case '/debug/clusters': {
        const v = clustersView(cp, new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('namespace'))
        return v === null ? send(404, 'text/plain', 'nothing published yet (no proxy has connected)\n') : json(v)
      }
      case '/debug/source':
        return json(source === undefined ? { source: 'none' } : source())
      case '/version':
        return json(versionInfo('control-plane'))
      case '/ready':
        return ready() ? send(200, 'text/plain', 'ready\n') : send(503, 'text/plain', 'not ready: the source has not given its first state\n')
      case '/metrics': {
        const reg = cp.registry.metrics.registry
        void reg.metrics().then(
          (body) => send(200, reg.contentType, body),
          (err: Error) => send(500, 'text/plain', `metrics: ${err.message}\n`),
        )
        return
      }
      case '/':
        return send(200, 'text/plain', 'weft control plane admin: /ready /version /metrics /debug/proxies /debug/nacks /debug/snapshots /debug/clusters[?namespace=NS] /debug/source\n')
      default:
        return send(404, 'text/plain', 'not found\n')
    }
  })
}

/** Start the admin listener on host:port (port 0: any); resolves with the bound port. */
export async function listenAdmin(server: Server, address: string): Promise<number> {
  const i = address.lastIndexOf(':')
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: address.slice(0, i), port: Number(address.slice(i + 1)) }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return (server.address() as AddressInfo).port
}
