// A byte tunnel between a client socket and an upstream socket: opaque TCP after protocol
// detection (proxy/tcp/connect.ts), or an HTTP/1.1 connection after 101 Switching Protocols
// (WebSocket; proxy/router/exchange.ts). Bytes are copied by hand, not with stream.pipe: both
// sockets read into reused buffers (proxy/net/read-buffer.ts), so there are no 'data' events to
// pipe, and a write that does not flush at once marks the buffer as retained instead of copying.
//
// - Backpressure: a write that returns false pauses the other socket until 'drain'.
// - Half-close: a FIN from one side ends the other (both sockets are allowHalfOpen where we own
//   them), so request/response protocols that close their sending side keep working.
// - Close: a side that closes without an error lets the other flush what it holds and close
//   (destroySoon: FIN after the last byte); a side that is reset (or fails) resets the other, so a
//   cut-off stream never looks complete.
// - Idle timeout: no timer per tunnel; the listener's sweeper calls sweep() with the coarse clock.
import type { Socket } from 'node:net'
import { retargetReads, type ReadBuffer } from '../net/read-buffer.ts'

/** Counters of one kind of tunnel on one listener (weft_tunnel_* metrics, /stats). */
export interface TunnelStats {
  opened: number
  closed: number
  /** client → upstream */
  bytesUp: number
  /** upstream → client */
  bytesDown: number
  idleTimeouts: number
}

export function newTunnelStats(): TunnelStats {
  return { opened: 0, closed: 0, bytesUp: 0, bytesDown: 0, idleTimeouts: 0 }
}

function closeOther(s: Socket, reset: boolean): void {
  if (reset) s.resetAndDestroy()
  else s.destroySoon()
}

/** What a tunnel needs from its listener. */
export interface TunnelOwner {
  now(): number
  connectionClosed(t: Tunnel): void
}

export class Tunnel {
  /** the client socket (the listener reads bytesRead/bytesWritten of it when it closes) */
  readonly socket: Socket
  private upstream: Socket | null = null
  private readonly owner: TunnelOwner
  private readonly stats: TunnelStats
  private readonly clientRb: ReadBuffer | null
  private upRb: ReadBuffer | null = null
  private readonly idleTimeoutMs: number
  /** client bytes that arrived before the upstream was attached (copies) */
  private queued: Buffer[] | null = null
  private clientEnded = false
  private done = false
  lastActivityAt: number

  /**
   * Take over the client socket. clientRb: the read buffer it reads into (null: it reads 'data'
   * events, and the previous owner has removed its listener). clientEnded: the client's FIN was
   * already seen. Until attach() the client is paused and what it sent is queued.
   */
  constructor(owner: TunnelOwner, client: Socket, clientRb: ReadBuffer | null, stats: TunnelStats, idleTimeoutMs: number, clientEnded = false) {
    this.owner = owner
    this.socket = client
    this.clientRb = clientRb
    this.stats = stats
    this.idleTimeoutMs = idleTimeoutMs
    this.clientEnded = clientEnded
    this.lastActivityAt = owner.now()
    stats.opened++
    if (clientRb === null || !retargetReads(client, (buf, n) => this.fromClient(buf, n))) {
      client.on('data', (b: Buffer) => this.fromClient(b, b.length))
    }
    client.on('end', () => this.onClientEnd())
    client.on('error', () => {})
    client.on('close', (hadError: boolean) => this.onClientClose(hadError))
    client.on('drain', () => this.upstream?.resume())
  }

  /** Queue bytes for the upstream (the detector's or the HTTP connection's leftovers; copied). */
  queue(b: Buffer): void {
    if (b.length === 0) return
    ;(this.queued ??= []).push(Buffer.from(b))
  }

  /**
   * Join the upstream. upRb: its read buffer (null: 'data' events, no other listener on it).
   * fromUpstream: bytes the upstream already sent (after the 101 head), for the client.
   */
  attach(upstream: Socket, upRb: ReadBuffer | null, fromUpstream: Buffer | null): void {
    if (this.done) {
      upstream.destroy()
      return
    }
    this.upstream = upstream
    this.upRb = upRb
    if (upRb === null || !retargetReads(upstream, (buf, n) => this.fromUpstream(buf, n))) {
      upstream.on('data', (b: Buffer) => this.fromUpstream(b, b.length))
    }
    upstream.on('end', () => this.onUpstreamEnd())
    upstream.on('error', () => {})
    upstream.on('close', (hadError: boolean) => this.onUpstreamClose(hadError))
    upstream.on('drain', () => this.socket.resume())
    if (fromUpstream !== null && fromUpstream.length > 0) {
      this.stats.bytesDown += fromUpstream.length
      this.socket.write(fromUpstream)
    }
    const q = this.queued
    this.queued = null
    let ok = true
    if (q !== null) {
      for (const b of q) {
        this.stats.bytesUp += b.length
        ok = upstream.write(b)
      }
    }
    if (this.clientEnded) upstream.end()
    else if (ok) this.socket.resume()
    if (upstream.isPaused()) upstream.resume()
  }

  private fromClient(buf: Buffer, n: number): void {
    this.lastActivityAt = this.owner.now()
    const up = this.upstream
    if (up === null) {
      // Not attached yet (connecting): keep a copy, stop reading until attach().
      this.queue(buf.subarray(0, n))
      this.socket.pause()
      return
    }
    this.stats.bytesUp += n
    const ok = up.write(n === buf.length ? buf : buf.subarray(0, n))
    if (up.writableLength > 0 && this.clientRb !== null) this.clientRb.retained = true
    if (!ok) this.socket.pause()
  }

  private fromUpstream(buf: Buffer, n: number): void {
    this.lastActivityAt = this.owner.now()
    this.stats.bytesDown += n
    const c = this.socket
    const ok = c.write(n === buf.length ? buf : buf.subarray(0, n))
    if (c.writableLength > 0 && this.upRb !== null) this.upRb.retained = true
    if (!ok) this.upstream?.pause()
  }

  private onClientEnd(): void {
    this.clientEnded = true
    this.upstream?.end()
  }

  private onUpstreamEnd(): void {
    this.socket.end()
  }

  private onClientClose(hadError: boolean): void {
    const up = this.upstream
    if (up !== null && !up.destroyed) closeOther(up, hadError)
    this.finish()
  }

  private onUpstreamClose(hadError: boolean): void {
    const c = this.socket
    if (!c.destroyed) closeOther(c, hadError)
  }

  private finish(): void {
    if (this.done) return
    this.done = true
    this.stats.closed++
    this.owner.connectionClosed(this)
  }

  /** The upstream could not be reached: close the client. */
  fail(): void {
    this.socket.destroy()
  }

  /** Called periodically with the coarse clock: the idle timeout. */
  sweep(now: number): void {
    if (this.done || now - this.lastActivityAt <= this.idleTimeoutMs) return
    this.stats.idleTimeouts++
    this.upstream?.destroy()
    this.socket.destroy()
  }

  /**
   * Graceful drain: a tunnel has no message boundary at which to stop, so it is left to finish;
   * the proxy's drain timeout closes what is still open (as Envoy's tcp_proxy).
   */
  drain(): void {}
}
