// Two sidecars in a row, as in a mesh: the client's sidecar (outbound listener) sends to the
// server's sidecar (inbound listener), which sends to the app. Plus plain TCP servers and clients
// for the opaque TCP and protocol detection tests.
import { connect, createServer, type Server, type Socket } from 'node:net'
import type { Bootstrap, Cluster, Limits, Listener } from '../../api/schema.ts'
import { cluster, listenerStats, LISTENER, startTestSidecar, type Teardown, type TestSidecar } from './sidecar.ts'

export interface Mesh {
  /** the client's sidecar: its "out" listener is what the client connects to */
  client: TestSidecar
  /** the server's sidecar: inbound, in front of the app */
  server: TestSidecar
}

export interface MeshOptions {
  /** fields of the client sidecar's listener (default: detect, tcp to the server sidecar) */
  client?: Partial<Listener>
  /** fields of the server sidecar's listener (default: detect, tcp to the app) */
  server?: Partial<Listener>
  limits?: Limits
  /** extra fields of the app cluster on the server sidecar */
  app?: Partial<Omit<Cluster, 'name' | 'endpoints'>>
}

function sidecarConfig(direction: 'inbound' | 'outbound', clusterName: string, port: number, listener: Partial<Listener>, limits?: Limits, extra: Partial<Omit<Cluster, 'name' | 'endpoints'>> = {}): Bootstrap {
  const b: Bootstrap = {
    admin: { address: '127.0.0.1', port: 0 },
    listeners: [{ name: LISTENER, direction, address: '127.0.0.1', port: 0, routeTable: 'rt', tcp: { cluster: clusterName }, ...listener }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ backends: [{ cluster: clusterName }] }] }] }],
    clusters: [cluster(clusterName, [port], extra)],
  }
  if (limits !== undefined) b.limits = limits
  return b
}

/** client → client sidecar (outbound) → server sidecar (inbound) → app on appPort. */
export async function startMesh(t: Teardown, appPort: number, o: MeshOptions = {}): Promise<Mesh> {
  const server = await startTestSidecar(t, sidecarConfig('inbound', 'app', appPort, o.server ?? {}, o.limits, o.app))
  const client = await startTestSidecar(t, sidecarConfig('outbound', 'mesh', server.port, o.client ?? {}, o.limits))
  return { client, server }
}

export interface ProtocolStats {
  detections: { http1: number; http2: number; tcp: number; tcpServerFirst: number; none: number }
  tunnels: Record<'tcp' | 'upgrade', { opened: number; closed: number; bytesUp: number; bytesDown: number; idleTimeouts: number }>
  tcpConnectFailures: number
  tcpNoEndpoint: number
  http2Refused: number
}

/** The protocol counters of a sidecar's "out" listener (/stats). */
export async function protocolStats(s: TestSidecar): Promise<ProtocolStats> {
  return (await listenerStats(s)) as unknown as ProtocolStats
}

/** A TCP server on 127.0.0.1 (allowHalfOpen), closed with its connections at teardown. */
export async function startTcpServer(t: Teardown, onConn: (s: Socket) => void): Promise<{ port: number; server: Server; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>()
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    onConn(s)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const a = server.address()
  return { port: typeof a === 'object' && a !== null ? a.port : 0, server, sockets }
}

/** Echo everything back; FIN after the peer's FIN. */
export function echo(s: Socket): void {
  s.on('data', (b: Buffer) => s.write(b))
  s.on('end', () => s.end())
}

/** A TCP client collecting what it receives. */
export class TcpClient {
  readonly socket: Socket
  private chunks: Buffer[] = []
  received = 0
  ended = false
  closed = false
  hadError = false
  private waiters: (() => void)[] = []

  constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (b: Buffer) => {
      this.chunks.push(b)
      this.received += b.length
      this.wake()
    })
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', () => {
      this.hadError = true
    })
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  static open(t: Teardown, port: number): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true })
      t.teardown(() => s.destroy())
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new TcpClient(s))
      })
    })
  }

  get data(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)]
    return this.chunks[0] ?? Buffer.alloc(0)
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  /** Resolve when cond() holds; reject after timeoutMs with `what`. */
  wait(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
    if (cond()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what} (received ${this.received} bytes, ended ${this.ended}, closed ${this.closed})`)), timeoutMs)
      const check = (): void => {
        if (cond()) {
          clearTimeout(timer)
          resolve()
        } else this.waiters.push(check)
      }
      this.waiters.push(check)
    })
  }

  /** Resolve once `n` bytes have arrived. */
  bytes(n: number, timeoutMs?: number): Promise<Buffer> {
    return this.wait(`${n} bytes`, () => this.received >= n, timeoutMs).then(() => this.data)
  }

  /** Resolve when the peer's FIN arrived. */
  end(timeoutMs?: number): Promise<void> {
    return this.wait('FIN', () => this.ended || this.closed, timeoutMs)
  }

  /** Resolve when the socket closed. */
  close(timeoutMs?: number): Promise<void> {
    return this.wait('close', () => this.closed, timeoutMs)
  }
}
