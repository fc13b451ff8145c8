// A listening socket of the proxy (outbound, inbound). It owns its connections and the config
// slice they read; the proxy swaps `config` atomically on reload. Between accept and the HTTP/1
// connection sits protocol detection (detect.ts): HTTP/1 goes to the codec, opaque TCP to a
// tunnel (proxy/tcp/), the HTTP/2 preface to serveHttp2 (proxy/h2/). With mutual TLS on (an
// inbound listener of a proxy with an identity), a TLS ClientHello (first byte 0x16) is
// terminated here (./mesh-tls.ts): the client's SPIFFE ID is checked and kept for the connection
// (peerOf), and the inner protocol is served by ALPN (h2, http/1.1) or detected again inside.
import { createServer, type Server, type Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { MTLS_DISABLE, MTLS_STRICT } from './protocol.ts'
import { ALPN_TCP } from '../identity/spiffe.ts'
import { AUTHZ_DENY, type PeerIdentity } from '../identity/authz.ts'
import type { IdentityManager } from '../identity/identity.ts'
import { acceptMeshTls, newMtlsStats, type MtlsStats, type TlsOwner } from './mesh-tls.ts'
import type { ClusterRuntime } from '../cluster/cluster.ts'
import { PROTOCOL_HTTP, PROTOCOL_HTTP2, PROTOCOL_TCP, type Interception, type ListenerProtocol } from './protocol.ts'
import type { Listener as ListenerConfig } from '../../api/schema.ts'
import { listenOn } from '../net/listen.ts'
import { ReadBuffer, readIntoBuffer } from '../net/read-buffer.ts'
import type { CompiledRouteTable } from '../route/table.ts'
import type { ExchangeCounters } from '../router/exchange.ts'
import { newFilterCounters } from '../filters/index.ts'
import { passthroughTcp, proxyTcp, type TcpCounters } from '../tcp/connect.ts'
import { originalDst, type OriginalDestination } from '../intercept/original-dst.ts'
import { newTunnelStats, Tunnel, type TunnelOwner, type TunnelStats } from '../tcp/tunnel.ts'
import type { ListenerTelemetry } from '../telemetry/listener.ts'
import type { Filter } from '../filters/filter.ts'
import { H2Connection, newH2Stats, type H2Owner, type H2Stats } from '../h2/downstream.ts'
import { DETECT_HTTP1, DETECT_HTTP2, DETECT_TCP, DETECT_UNDECIDED, Detector, type DetectOwner } from './detect.ts'
import { DownstreamConnection, type ConnectionLimits, type ListenerContext } from './downstream.ts'

export interface ListenerConfigSlice {
  readonly table: CompiledRouteTable
  readonly clusters: ReadonlyMap<string, ClusterRuntime>
  readonly limits: ConnectionLimits
  readonly telemetry: ListenerTelemetry
  readonly protocol: ListenerProtocol
  /** listener-level request filters, before routing; null: none */
  readonly filters: readonly Filter[] | null
  readonly forwardClientCert: number
}

/** Outcomes of protocol detection (weft_proxy_protocol_detections_total). */
export interface DetectionCounters {
  http1: number
  http2: number
  /** the first bytes were not HTTP */
  tcp: number
  /** the client sent nothing within detectTimeout (server-speaks-first) */
  tcpServerFirst: number
  /** the client closed before its protocol was known */
  none: number
}

export interface ListenerCounters extends ExchangeCounters, TcpCounters {
  cxTotal: number
  cxActive: number
  downstreamProtocolErrors: number
  timeouts: number
  /** HTTP/2 connections refused (kept for the metric; HTTP/2 is served now, so it stays 0) */
  http2Refused: number
  detections: DetectionCounters
  tunnels: { tcp: TunnelStats; upgrade: TunnelStats }
  /** decisions of the HTTP/2 codec (proxy/h2/downstream.ts) */
  h2: H2Stats
  /** mutual TLS on accepted connections (./mesh-tls.ts) */
  mtls: MtlsStats
}

/** What the listener holds per accepted connection, whatever it turned out to speak. */
export interface ListenerConnection {
  readonly socket: Socket
  sweep(now: number): void
  /** closeIdle false: the drain's first step (finish the current exchange, then close); true: close idle ones now too */
  drain(closeIdle: boolean): void
}

export class ProxyListener implements ListenerContext, DetectOwner, TunnelOwner, H2Owner, TlsOwner {
  readonly name: string
  readonly spec: ListenerConfig
  config: ListenerConfigSlice
  readonly counters: ListenerCounters = {
    cxTotal: 0, cxActive: 0, noRoute: 0, localReplies: 0, upstreamErrors: 0, staleRetries: 0,
    downstreamProtocolErrors: 0, timeouts: 0,
    retries: 0, retryLimitExceeded: 0, retryBudgetExhausted: 0, requestTimeouts: 0, perTryTimeouts: 0,
    circuitOpen: 0, overflow: 0, concurrencyLimited: 0, ...newFilterCounters(),
    mirrored: 0, mirrorFailed: 0, mirrorAbandoned: 0,
    tcpConnectFailures: 0, tcpNoEndpoint: 0, passthrough: 0, http2Refused: 0,
    detections: { http1: 0, http2: 0, tcp: 0, tcpServerFirst: 0, none: 0 },
    tunnels: { tcp: newTunnelStats(), upgrade: newTunnelStats() },
    h2: newH2Stats(),
    mtls: newMtlsStats(),
  }
  /** the proxy's identity (the proxy's holder, shared with its pools); mutual TLS needs it */
  identityRef: { readonly current: IdentityManager | null } = { current: null }
  get identity(): IdentityManager | null {
    return this.identityRef.current
  }
  /** connections whose client proved an identity over mutual TLS: the decrypted socket -> who */
  private readonly peers = new WeakMap<Socket, PeerIdentity>()
  /** inbound intercepted connections passed through to the app after mTLS / detection: where to */
  private readonly inboundDsts = new WeakMap<Socket, OriginalDestination>()
  private readonly server: Server
  private readonly conns = new Set<ListenerConnection>()
  private readonly clock: () => number
  private closedResolve: (() => void) | null = null
  private drained: Promise<void> | null = null
  /** the drain's first step has begun: each new connection is drained (closeIdle false) too */
  private announced = false

  constructor(spec: ListenerConfig, config: ListenerConfigSlice, clock: () => number) {
    this.name = spec.name
    this.spec = spec
    this.config = config
    this.clock = clock
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (s: Socket) => this.onConnection(s))
  }

  /**
   * For an intercepting listener: the listener that takes a redirected connection to this original
   * destination (a `bindToPort: false` listener of the same direction), set by the proxy.
   */
  handoff: ((direction: string, port: number, address: string) => ProxyListener | undefined) | null = null
  /** intercepted connections on the normal path, by socket: where opaque TCP among them goes */
  private readonly originalDsts = new WeakMap<Socket, OriginalDestination>()

  listen(): Promise<number> {
    if (this.spec.bindToPort === false) return Promise.resolve(this.spec.port)
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      listenOn(this.server, this.spec.address ?? '127.0.0.1', this.spec.port, () => {
        this.server.off('error', reject)
        const a = this.server.address()
        resolve(typeof a === 'object' && a !== null ? a.port : this.spec.port)
      })
    })
  }

  get port(): number {
    if (this.spec.bindToPort === false) return this.spec.port
    const a = this.server.address()
    return typeof a === 'object' && a !== null ? a.port : 0
  }

  /** A connection an intercepting listener hands over (this listener does not bind its port). */
  adopt(s: Socket): void {
    this.onConnection(s)
  }

  get connections(): number {
    return this.conns.size
  }

  now(): number {
    return this.clock()
  }

  peerOf(s: Socket): PeerIdentity | null {
    return this.peers.get(s) ?? null
  }

  private onConnection(s: Socket): void {
    const ic = this.config.protocol.interception
    if (ic !== null && this.intercepted(s, ic)) return
    this.counters.cxTotal++
    this.counters.cxActive++
    const config = this.config
    const m = config.telemetry.metrics
    if (m !== null) m.tcp.opened++
    const p = config.protocol
    if (p.mtls !== MTLS_DISABLE) {
      // mesh TLS or not is told by the first byte, whatever the listener speaks inside
      this.track(new Detector(s, this, this.clock(), p.tcp === null ? 0 : p.detectTimeoutMs))
    } else if (p.mode === PROTOCOL_HTTP) {
      this.track(new DownstreamConnection(s, this))
    } else if (p.mode === PROTOCOL_HTTP2) {
      // HTTP/2 only (prior knowledge): straight to the session, which reads the preface itself
      s.setNoDelay(true)
      this.track(new H2Connection(s, this, null, this.clock()))
    } else if (p.mode === PROTOCOL_TCP && p.tcp !== null) {
      // Opaque: no detection, no byte waited for.
      s.setNoDelay(true)
      const rb = new ReadBuffer()
      const fast = readIntoBuffer(s, rb, () => {}) // the tunnel takes the reads over
      this.track(proxyTcp(this, s, fast ? rb : null, null, false, p.tcp, this.counters.tunnels.tcp, this.counters))
    } else {
      // a silent client is tunnelled after detectTimeout when there is somewhere to tunnel it: the
      // TCP target, or an intercepted connection's original destination (server-speaks-first)
      this.track(new Detector(s, this, this.clock(), p.tcp === null && !this.originalDsts.has(s) ? 0 : p.detectTimeoutMs))
    }
  }

  /**
   * An intercepting listener: a redirected connection goes to the `bindToPort: false` listener of
   * its original destination if there is one; else, when the normal path does not serve it, it is
   * passed through (outbound: to its original destination; inbound: to the app on loopback).
   * true: taken here (and counted here only when passed through).
   */
  private intercepted(s: Socket, ic: Interception): boolean {
    const dst = originalDst(s)
    // not readable, or not redirected (made to the listener's own address): the normal path
    if (dst === null || (dst.port === s.localPort && sameIp(dst.address, s.localAddress))) return false
    const v = this.handoff?.(this.spec.direction, dst.port, dst.address)
    if (v !== undefined && v !== this) {
      v.adopt(s)
      return true
    }
    if (!ic.inbound) {
      const host = dst.family === 6 ? `[${dst.address}]` : dst.address
      if (ic.services.has(`${host}:${dst.port}`)) {
        // the normal path; if detection finds opaque TCP, it goes on to this destination
        this.originalDsts.set(s, dst)
        return false
      }
    }
    this.counters.cxTotal++
    this.counters.cxActive++
    const m = this.config.telemetry.metrics
    if (m !== null) m.tcp.opened++
    s.setNoDelay(true)
    if (ic.inbound && this.config.protocol.mtls !== MTLS_DISABLE) {
      // the app's port without a listener of its own: mesh TLS is terminated first, then the
      // bytes go on to the app as they are
      this.inboundDsts.set(s, dst)
      this.track(new Detector(s, this, this.clock(), this.config.protocol.detectTimeoutMs))
      return true
    }
    const to = ic.inbound ? (dst.family === 6 ? '::1' : '127.0.0.1') : dst.address
    this.track(passthroughTcp(this, s, to, dst.port, ic.idleTimeoutMs, ic.connectTimeoutMs, this.counters.tunnels.tcp, this.counters))
    return true
  }

  firstByteTimeout(d: Detector): void {
    void d
    this.counters.timeouts++
  }

  /** The detector's verdict: the connection goes to its protocol's handler with the bytes read so far. */
  detected(d: Detector, protocol: number, first: Buffer | null, rb: ReadBuffer | null, ended: boolean): void {
    const c = this.counters.detections
    const s = d.socket
    const p0 = this.config.protocol
    if (p0.mtls !== MTLS_DISABLE && protocol !== DETECT_UNDECIDED && !this.peers.has(s)) {
      if (protocol === DETECT_TCP && first !== null && first[0] === 0x16) {
        this.conns.delete(d)
        acceptMeshTls(this, s, first)
        return
      }
      if (p0.mtls === MTLS_STRICT) {
        this.counters.mtls.plaintextRefused++
        s.destroy()
        this.connectionClosed(d)
        return
      }
      this.counters.mtls.plaintext++
      if (p0.mode === PROTOCOL_TCP && p0.tcp !== null && protocol !== DETECT_UNDECIDED) {
        // an opaque listener detected only to tell TLS apart: plain text goes on as TCP, whatever it looks like
        if (!this.tcpAllowed(s)) return this.connectionClosed(d)
        this.conns.delete(d)
        this.track(proxyTcp(this, s, rb, first, ended, p0.tcp, this.counters.tunnels.tcp, this.counters))
        return
      }
    }
    const ib = this.inboundDsts.get(s)
    if (ib !== undefined && protocol !== DETECT_UNDECIDED) {
      if (!this.tcpAllowed(s)) return this.connectionClosed(d)
      this.conns.delete(d)
      this.track(this.toApp(s, ib, rb, first, ended))
      return
    }
    if (protocol === DETECT_HTTP1) {
      c.http1++
    } else if (protocol === DETECT_HTTP2) {
      c.http2++
      this.serveHttp2(d, first!, rb)
      return
    } else if (protocol === DETECT_TCP) {
      if (first === null) c.tcpServerFirst++
      else c.tcp++
      const p = this.config.protocol
      const target = p.tcp
      if ((target !== null || this.originalDsts.has(s)) && !this.tcpAllowed(s)) return this.connectionClosed(d)
      if (target !== null) {
        this.conns.delete(d)
        this.track(proxyTcp(this, s, rb, first, ended, target, this.counters.tunnels.tcp, this.counters))
        return
      }
      // Intercepted, to a Service address, and not HTTP: on to the original destination (in a
      // cluster, kube-proxy balances the ClusterIP), as Istio's outbound TCP to a Service without
      // a TCP route.
      const dst = this.originalDsts.get(s)
      if (dst !== undefined && p.interception !== null) {
        this.conns.delete(d)
        this.track(passthroughTcp(this, s, dst.address, dst.port, p.interception.idleTimeoutMs, p.interception.connectTimeoutMs, this.counters.tunnels.tcp, this.counters, rb, first, ended))
        return
      }
      // No TCP target: the HTTP/1 codec answers it (400), as before detection existed.
    } else {
      c.none++
      this.connectionClosed(d)
      return
    }
    this.conns.delete(d)
    this.track(new DownstreamConnection(s, this, { rb, first, ended }))
  }

  /**
   * HTTP/2 with prior knowledge (h2c): the connection goes to the HTTP/2 codec
   * (proxy/h2/downstream.ts) with the bytes detection read (`first`, the preface and whatever
   * followed it in the same read; copied there, as it is only valid during this call) and the
   * detector's read buffer, whose reads the codec takes over.
   */
  private serveHttp2(d: Detector, first: Buffer, rb: ReadBuffer | null): void {
    this.conns.delete(d)
    this.track(new H2Connection(d.socket, this, first, this.clock(), rb))
  }

  /**
   * Authorization of an opaque TCP connection (only its source and port are known): a denied one
   * is closed and counted (authz_denied). true: it may go on.
   */
  private tcpAllowed(s: Socket): boolean {
    const a = this.config.protocol.authz
    if (a === null) return true
    const d = a.decide({ peer: this.peers.get(s) ?? null, port: this.inboundDsts.get(s)?.port ?? this.spec.port, http: false, method: '', path: '', header: () => undefined })
    if (d.audited.length > 0) this.counters.authzAudited++
    if (d.verdict !== AUTHZ_DENY) return true
    this.counters.authzDenied++
    s.destroy()
    return false
  }

  /** TlsOwner: a handshake in progress is a connection of the listener (swept, drained). */
  trackHandshake(c: ListenerConnection): void {
    this.track(c)
  }

  /** TlsOwner: the client proved `peer`; serve what runs inside, by ALPN or by detection. */
  secured(hs: ListenerConnection, t: TLSSocket, peer: PeerIdentity, alpn: string): void {
    this.peers.set(t, peer)
    const ib = this.inboundDsts.get(hs.socket)
    if (ib !== undefined) this.inboundDsts.set(t, ib)
    const p = this.config.protocol
    if (alpn === ALPN_TCP || p.mode === PROTOCOL_TCP) {
      // opaque inside: no detection (a short first message would look like an HTTP method)
      const target = p.tcp
      if ((ib !== undefined || target !== null) && !this.tcpAllowed(t)) return this.connectionClosed(hs)
      t.setNoDelay(true)
      const rb = new ReadBuffer()
      const fast = readIntoBuffer(t, rb, () => {})
      if (ib !== undefined) {
        this.replace(hs, this.toApp(t, ib, fast ? rb : null, null, false))
        return
      }
      if (target !== null) {
        this.replace(hs, proxyTcp(this, t, fast ? rb : null, null, false, target, this.counters.tunnels.tcp, this.counters))
        return
      }
    }
    if (ib === undefined && alpn === 'h2') this.replace(hs, new H2Connection(t, this, null, this.clock()))
    else if (ib === undefined && alpn === 'http/1.1') this.replace(hs, new DownstreamConnection(t, this))
    else this.replace(hs, new Detector(t, this, this.clock(), p.tcp === null && ib === undefined ? 0 : p.detectTimeoutMs))
  }

  /** An intercepted inbound connection, after mesh TLS and detection, on to the app's own port on loopback. */
  private toApp(s: Socket, dst: OriginalDestination, rb: ReadBuffer | null, first: Buffer | null, ended: boolean): Tunnel {
    const ic = this.config.protocol.interception
    return passthroughTcp(this, s, dst.family === 6 ? '::1' : '127.0.0.1', dst.port, ic?.idleTimeoutMs ?? DEFAULT_TUNNEL_IDLE_MS, ic?.connectTimeoutMs ?? DEFAULT_PASSTHROUGH_CONNECT_MS, this.counters.tunnels.tcp, this.counters, rb, first, ended)
  }

  /** `next` serves the connection `prev` held: one tracked connection, counted once */
  private replace(prev: ListenerConnection, next: ListenerConnection): void {
    this.conns.delete(prev)
    this.track(next)
  }

  /** An upgraded HTTP connection (101) becomes a tunnel, with the HTTP idle timeout. */
  upgraded(c: DownstreamConnection, rb: ReadBuffer | null, pending: Buffer | null, ended: boolean, upstream: Socket, upRb: ReadBuffer | null, fromUpstream: Buffer | null): void {
    this.conns.delete(c)
    const t = new Tunnel(this, c.socket, rb, this.counters.tunnels.upgrade, this.config.limits.idleTimeoutMs, ended)
    if (pending !== null) t.queue(pending)
    this.track(t)
    t.attach(upstream, upRb, fromUpstream)
  }

  connectionClosed(c: ListenerConnection): void {
    const m = this.config.telemetry.metrics
    if (m !== null) {
      m.tcp.closed++
      m.tcp.received += c.socket.bytesRead
      m.tcp.sent += c.socket.bytesWritten
    }
    if (this.conns.delete(c)) this.counters.cxActive--
    if (this.conns.size === 0 && this.closedResolve !== null) this.closedResolve()
  }

  sweep(now: number): void {
    for (const c of this.conns) c.sweep(now)
  }

  private track(c: ListenerConnection): void {
    this.conns.add(c)
    if (this.announced) c.drain(false)
  }

  /**
   * The drain's first step: keep accepting; every connection, and each one accepted from now on,
   * closes after its current exchange (HTTP/1: Connection: close; HTTP/2: GOAWAY). Idle ones stay.
   */
  announceDrain(): void {
    if (this.announced) return
    this.announced = true
    for (const c of this.conns) c.drain(false)
  }

  /** Stop accepting; drain every connection (idle ones close now); resolve when all are closed. */
  drain(): Promise<void> {
    if (this.drained !== null) return this.drained
    this.announced = true
    this.server.close()
    for (const c of this.conns) c.drain(true)
    this.drained = this.conns.size === 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          this.closedResolve = resolve
        })
    return this.drained
  }

  /** Close at once. */
  destroy(): void {
    this.server.close()
    for (const c of this.conns) c.socket.destroy()
  }
}

/** without an interception (never for an inbound intercepted connection): Envoy's tcp_proxy idle, the passthrough connect timeout */
const DEFAULT_TUNNEL_IDLE_MS = 3_600_000
const DEFAULT_PASSTHROUGH_CONNECT_MS = 5_000

/** The same IP, an IPv4 address and its IPv4-mapped IPv6 form alike. */
function sameIp(a: string, b: string | undefined): boolean {
  if (b === undefined) return false
  return a === b || `::ffff:${a}` === b
}
