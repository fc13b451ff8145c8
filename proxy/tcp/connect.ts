// Opaque TCP to a cluster: the balancer picks an endpoint (hash policies hash the client's
// address: source affinity), one connection is opened for the tunnel (never pooled: its bytes
// are the client's), bounded by the cluster's pool.connectTimeout. A connect failure or timeout
// counts for outlier detection like an HTTP connect failure, and closes the client: a tunnel has
// no way to answer with an error, and nothing was sent upstream that a retry could repeat safely
// (Envoy's tcp_proxy closes the same way).
import { connectMeshTls } from '../identity/upstream-tls.ts'
import { ALPN_TCP } from '../identity/spiffe.ts'
import { connect, type Socket } from 'node:net'
import type { ClusterRuntime } from '../cluster/cluster.ts'
import { OUTCOME_CONNECT, OUTCOME_OK } from '../cluster/outlier.ts'
import { onreadOptions, ReadBuffer } from '../net/read-buffer.ts'
import { Tunnel, type TunnelOwner, type TunnelStats } from './tunnel.ts'

export interface TcpTarget {
  readonly cluster: ClusterRuntime
  readonly idleTimeoutMs: number
}

/** Decisions of the TCP path (weft_proxy_decisions_total). */
export interface TcpCounters {
  tcpConnectFailures: number
  tcpNoEndpoint: number
  /** intercepted connections passed through to their original destination */
  passthrough: number
}

/**
 * Tunnel `client` to an endpoint of target.cluster. `first`: bytes the client already sent (the
 * detector's; copied here); `clientEnded`: its FIN was seen. The client is paused until the
 * upstream is connected. The tunnel is returned at once (the listener tracks it while it connects).
 */
export function proxyTcp(
  owner: TunnelOwner,
  client: Socket,
  clientRb: ReadBuffer | null,
  first: Buffer | null,
  clientEnded: boolean,
  target: TcpTarget,
  stats: TunnelStats,
  counters: TcpCounters,
): Tunnel {
  client.pause()
  const t = new Tunnel(owner, client, clientRb, stats, target.idleTimeoutMs, clientEnded)
  if (first !== null) t.queue(first)
  const cluster = target.cluster
  const ep = cluster.balancer.pick(client.remoteAddress)
  if (ep === undefined) {
    counters.tcpNoEndpoint++
    t.fail()
    return t
  }
  ep.active++
  ep.counters.rqTotal++
  const pool = ep.pool
  const rb = new ReadBuffer()
  const startedAt = performance.now()
  let connected = false
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    ep.active--
  }
  // The tunnel takes the reads over in attach() (retargetReads); none arrive before 'connect'.
  const onread = onreadOptions(rb, () => {})
  const tls = pool.settings.tls
  let upstream: Socket
  try {
    upstream = tls === null
      ? connect({ host: pool.host, port: pool.port, noDelay: true, allowHalfOpen: true, onread })
      // mesh TLS, ALPN weft-tcp: the peer sidecar tunnels what is inside
      : connectMeshTls(pool.host, pool.port, tls, ALPN_TCP, pool, onread)
  } catch {
    counters.tcpConnectFailures++
    release()
    t.fail()
    return t
  }
  const failed = (timeout: boolean): void => {
    if (connected) return
    connected = true
    clearTimeout(timer)
    if (timeout) pool.stats.cxConnectTimeout++
    else pool.stats.cxConnectFail++
    counters.tcpConnectFailures++
    ep.counters.rqError++
    cluster.outlier?.report(ep, OUTCOME_CONNECT)
    upstream.destroy()
    release()
    t.fail()
  }
  const timer = setTimeout(() => failed(true), pool.settings.connectTimeoutMs)
  upstream.once('error', () => failed(false))
  upstream.once(tls === null ? 'connect' : 'secureConnect', () => {
    if (connected) return
    connected = true
    clearTimeout(timer)
    cluster.outlier?.report(ep, OUTCOME_OK)
    cluster.balancer.observe(ep, performance.now() - startedAt)
    upstream.once('close', release)
    t.attach(upstream, rb, null)
  })
  // The client left while connecting: give up the connect.
  client.once('close', () => {
    if (!connected) {
      connected = true
      clearTimeout(timer)
      upstream.destroy()
      release()
    }
  })
  return t
}

/**
 * Tunnel an intercepted `client` to a fixed address, its original destination (outbound) or the
 * app's port on loopback (inbound): no cluster, no balancer. A failed connect closes the client
 * (counted in tcpConnectFailures), as a refused connection would have.
 */
export function passthroughTcp(
  owner: TunnelOwner,
  client: Socket,
  host: string,
  port: number,
  idleTimeoutMs: number,
  connectTimeoutMs: number,
  stats: TunnelStats,
  counters: TcpCounters,
  clientRb: ReadBuffer | null = null,
  first: Buffer | null = null,
  clientEnded = false,
): Tunnel {
  client.pause()
  counters.passthrough++
  const t = new Tunnel(owner, client, clientRb, stats, idleTimeoutMs, clientEnded)
  if (first !== null) t.queue(first)
  const rb = new ReadBuffer()
  let settled = false
  const upstream = connect({ host, port, noDelay: true, allowHalfOpen: true, onread: onreadOptions(rb, () => {}) })
  const failed = (): void => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    counters.tcpConnectFailures++
    upstream.destroy()
    t.fail()
  }
  const timer = setTimeout(failed, connectTimeoutMs)
  upstream.once('error', failed)
  upstream.once('connect', () => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    t.attach(upstream, rb, null)
  })
  client.once('close', () => {
    if (!settled) {
      settled = true
      clearTimeout(timer)
      upstream.destroy()
    }
  })
  return t
}
