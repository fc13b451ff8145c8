// Connection pool of one endpoint: idle keep-alive connections (used LIFO, so warm ones stay
// warm), a cap on open connections and a bounded queue of requests waiting for one.
import { connect, type Socket } from 'node:net'
import { connectMeshTls, type UpstreamTls } from '../identity/upstream-tls.ts'
import { HttpError } from '../../api/http1/head.ts'
import { ReadBuffer, onreadOptions } from '../net/read-buffer.ts'
import { UpstreamConn, type PoolHooks } from './upstream.ts'
import { H1Try } from './h1-try.ts'
import type { TryDispatcher, TryHandler, UpstreamTry } from './try.ts'

export interface PoolWaiter {
  onPoolConnection(conn: UpstreamConn): void
  /** flag: UF (connect failure), UO (overflow), UT (connect timeout) */
  onPoolFailure(err: HttpError, flag: string): void
}

export interface PoolSettings {
  /** mesh TLS to the endpoint's sidecar (proxy/identity/upstream-tls.ts); null: plain text */
  tls: UpstreamTls | null
  maxConnections: number
  maxPending: number
  idleTimeoutMs: number
  connectTimeoutMs: number
  maxHeaderBytes: number
  maxHeaders: number
}

interface Connecting {
  w: PoolWaiter | null
  /** give the connect up (its waiter left and no other waits) */
  abort: (() => void) | null
}

export interface PoolStats {
  cxTotal: number
  cxConnectFail: number
  cxConnectTimeout: number
  cxDestroyed: number
  rqPendingOverflow: number
}

/** Something else kept with the endpoint's pool across config swaps (its HTTP/2 session), closed with it. */
export interface PoolAttachment {
  close(): void
  /** a waiter gave up (see cancel) */
  cancel(w: unknown): void
}

export class EndpointPool implements PoolHooks, TryDispatcher {
  readonly host: string
  readonly port: number
  /** replaced in place when a new config changes them (the queue and warm connections stay) */
  settings: PoolSettings
  private readonly idle: UpstreamConn[] = []
  private readonly waiters: PoolWaiter[] = []
  /** connections being opened, each for one waiter (null once it gave up) */
  private readonly connecting: Connecting[] = []
  /** open or connecting */
  private open = 0
  private draining = false
  /** the endpoint's HTTP/2 connection when its cluster speaks HTTP/2 (proxy/h2/upstream.ts) */
  h2: PoolAttachment | null = null
  /** the last mesh TLS session with this endpoint, for resumption */
  tlsSession: Buffer | null = null
  readonly stats: PoolStats = { cxTotal: 0, cxConnectFail: 0, cxConnectTimeout: 0, cxDestroyed: 0, rqPendingOverflow: 0 }

  constructor(host: string, port: number, settings: PoolSettings) {
    this.host = host
    this.port = port
    this.settings = settings
  }

  get openConnections(): number {
    return this.open
  }
  get idleConnections(): number {
    return this.idle.length
  }
  get pendingRequests(): number {
    return this.waiters.length
  }

  /**
   * A try for h on a connection of this pool (TryDispatcher; not started: its start() acquires
   * the connection). queued: the request body so far (kept by the try); ended: it is whole.
   */
  dispatch(h: TryHandler, queued: Buffer[] | null, ended: boolean): UpstreamTry {
    return new H1Try(this, h, queued, ended)
  }

  /**
   * Get a connection for w: an idle one at once, a new one when under the cap, else queue.
   * `fresh` skips idle connections (a retry after a stale keep-alive failure).
   */
  acquire(w: PoolWaiter, fresh = false): void {
    if (this.draining) {
      w.onPoolFailure(new HttpError(503, 'WEFT_ERR_UPSTREAM_REMOVED', 'endpoint removed from config'), 'UH')
      return
    }
    if (!fresh) {
      while (this.idle.length > 0) {
        const c = this.idle.pop()!
        if (c.alive) {
          w.onPoolConnection(c)
          return
        }
      }
    }
    if (this.open < this.settings.maxConnections) {
      this.connectFor(w)
      return
    }
    if (this.waiters.length >= this.settings.maxPending) {
      this.stats.rqPendingOverflow++
      w.onPoolFailure(new HttpError(503, 'WEFT_ERR_UPSTREAM_OVERFLOW', 'upstream connection pool overflow'), 'UO')
      return
    }
    this.waiters.push(w)
  }

  /**
   * A waiter gave up (its client left, its try timed out). A connection being opened for it is
   * not told to it any more: it serves the queue or goes idle, and a failure is only counted.
   * closeExcess (Envoy's CloseExcess): unless requests wait for it, that connect is given up
   * instead, so that a client opening and resetting HTTP/2 streams cannot leave one upstream
   * connection per stream.
   */
  cancel(w: PoolWaiter, closeExcess = false): void {
    if (this.h2 !== null) this.h2.cancel(w)
    const i = this.waiters.indexOf(w)
    if (i !== -1) {
      this.waiters.splice(i, 1)
      return
    }
    for (let j = 0; j < this.connecting.length; j++) {
      const p = this.connecting[j]
      if (p.w === w) {
        p.w = null
        this.connecting.splice(j, 1)
        if (closeExcess && this.waiters.length === 0 && p.abort !== null) p.abort()
        return
      }
    }
  }

  private connectFor(w: PoolWaiter): void {
    this.open++
    this.stats.cxTotal++
    const pending: Connecting = { w, abort: null }
    this.connecting.push(pending)
    const settle = (): PoolWaiter | null => {
      const i = this.connecting.indexOf(pending)
      if (i !== -1) this.connecting.splice(i, 1)
      return pending.w
    }
    const rb = new ReadBuffer()
    let conn: UpstreamConn | null = null
    const onread = onreadOptions(rb, (buf, n) => conn?.onBytes(buf, n))
    const tls = this.settings.tls
    let socket: Socket
    if (tls === null) {
      socket = connect({ host: this.host, port: this.port, noDelay: true, onread })
    } else {
      try {
        socket = connectMeshTls(this.host, this.port, tls, tls.alpn, this, onread)
      } catch (e) {
        this.open--
        this.stats.cxConnectFail++
        settle()?.onPoolFailure(new HttpError(503, 'WEFT_ERR_NO_IDENTITY', (e as Error).message), 'UF')
        return
      }
    }
    let settled = false
    const timer = setTimeout(() => {
      if (settled) return
      settled = true
      this.stats.cxConnectTimeout++
      socket.destroy()
      settle()?.onPoolFailure(new HttpError(503, 'WEFT_ERR_UPSTREAM_CONNECT_TIMEOUT', 'upstream connect timeout'), 'UF')
    }, this.settings.connectTimeoutMs)
    const c = new UpstreamConn(socket, this, rb, this.settings.maxHeaderBytes, this.settings.maxHeaders)
    conn = c
    pending.abort = () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // 'close' follows: the connection's onClose frees the slot (closed())
      socket.destroy()
    }
    socket.once(tls === null ? 'connect' : 'secureConnect', () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const waiter = settle()
      if (waiter !== null) waiter.onPoolConnection(c)
      else this.release(c)
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      this.stats.cxConnectFail++
      settle()?.onPoolFailure(
        new HttpError(503, 'WEFT_ERR_UPSTREAM_CONNECT', `upstream connect error: ${err.code ?? err.message}`),
        'UF',
      )
    })
  }

  release(conn: UpstreamConn): void {
    if (this.draining) {
      conn.destroy()
      return
    }
    const w = this.waiters.shift()
    if (w !== undefined) {
      w.onPoolConnection(conn)
      return
    }
    conn.idleSince = performance.now()
    this.idle.push(conn)
  }

  closed(conn: UpstreamConn): void {
    this.open--
    this.stats.cxDestroyed++
    const i = this.idle.indexOf(conn)
    if (i !== -1) this.idle.splice(i, 1)
    // A slot opened: start a connection for the next waiter.
    if (!this.draining && this.waiters.length > 0 && this.open < this.settings.maxConnections) {
      this.connectFor(this.waiters.shift()!)
    }
  }

  /** Close idle connections older than the idle timeout. Called by the proxy's sweeper. */
  sweep(now: number): void {
    const limit = now - this.settings.idleTimeoutMs
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const c = this.idle[i]
      if (c.idleSince < limit) c.destroy()
    }
  }

  get isDraining(): boolean {
    return this.draining
  }

  /** No longer in the config: close idle connections now, in-use ones when released. */
  drain(): void {
    this.draining = true
    // kept, closed: a stream dispatched to it later (a retry of the old config) gets 503 UH
    // instead of a fresh session to an endpoint that left the config
    this.h2?.close()
    for (const c of this.idle.slice()) c.destroy()
    for (const w of this.waiters.splice(0)) {
      w.onPoolFailure(new HttpError(503, 'WEFT_ERR_UPSTREAM_REMOVED', 'endpoint removed from config'), 'UH')
    }
  }
}
