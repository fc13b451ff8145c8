// RequestMirror: a copy of a request goes to another cluster, fire-and-forget (Envoy's
// request_mirror_policies, Istio's mirror). The copy never slows or fails the original: its body
// is copied as it streams and dropped (the mirror abandoned) when the mirror cannot keep up; its
// response is read and discarded; any failure is only counted. As Envoy does, the mirrored
// request's Host gets "-shadow" appended, so the receiver can tell copies from real traffic.
import type { ClusterRuntime, EndpointState } from '../../cluster/cluster.ts'
import type { PoolWaiter } from '../../cluster/pool.ts'
import type { UpstreamConn, UpstreamHandler } from '../../cluster/upstream.ts'
import type { HttpError, ResponseHead } from '../../../api/http1/head.ts'

/** copies of a mirrored body held (waiting for a connection, or not yet taken by the socket) */
const MIRROR_BUFFER_LIMIT = 256 * 1024

export interface MirrorCounters {
  mirrored: number
  mirrorFailed: number
  mirrorAbandoned: number
}

export class CompiledMirror {
  readonly cluster: string
  readonly ratio: number
  constructor(cluster: string, percent: number) {
    this.cluster = cluster
    this.ratio = percent / 100
  }

  /**
   * The cluster a request's copy goes to, or null: not sampled, no such cluster or no endpoint,
   * or an HTTP/2 cluster (the mirror speaks HTTP/1 only: not sent, counted as mirror_failed so
   * the gap is visible).
   */
  target(clusters: ReadonlyMap<string, ClusterRuntime>, counters: MirrorCounters): ClusterRuntime | null {
    if (this.ratio < 1 && Math.random() >= this.ratio) return null
    const cluster = clusters.get(this.cluster)
    if (cluster === undefined || cluster.endpoints.length === 0) return null
    if (cluster.http2) {
      counters.mirrorFailed++
      return null
    }
    return cluster
  }
}

/** One mirrored request in flight. */
export class MirrorRequest implements PoolWaiter, UpstreamHandler {
  private readonly ep: EndpointState
  private readonly counters: MirrorCounters
  private up: UpstreamConn | null = null
  private queued: (string | Buffer)[] | null
  private queuedBytes = 0
  private ended = false
  private sent = false
  private done = false

  /** head: the complete upstream request head (its Host already "-shadow") */
  constructor(cluster: ClusterRuntime, head: string, hasBody: boolean, counters: MirrorCounters) {
    this.counters = counters
    this.ended = !hasBody
    this.queued = [head]
    this.queuedBytes = head.length
    const ep = cluster.balancer.pick(undefined)!
    this.ep = ep
    counters.mirrored++
    ep.active++
    ep.pool.acquire(this)
  }

  /** Request body bytes (the caller's buffer is reused: copied here). */
  body(part: string | Buffer): void {
    if (this.done) return
    const s = this.up?.socket
    if (s !== undefined) {
      if (s.writableLength > MIRROR_BUFFER_LIMIT) return this.abandon()
      if (typeof part === 'string') s.write(part, 'latin1')
      else s.write(Buffer.from(part))
      return
    }
    const copy = typeof part === 'string' ? part : Buffer.from(part)
    this.queuedBytes += copy.length
    if (this.queuedBytes > MIRROR_BUFFER_LIMIT) return this.abandon()
    this.queued!.push(copy)
  }

  bodyEnd(): void {
    this.ended = true
    if (this.up !== null) this.sent = true
  }

  /** The original went away before its body was whole: the copy cannot be completed either. */
  cancel(): void {
    if (!this.ended) this.abandon()
  }

  private abandon(): void {
    if (this.done) return
    this.counters.mirrorAbandoned++
    this.finish()
    const up = this.up
    this.up = null
    if (up !== null) up.destroy()
    else this.ep.pool.cancel(this)
  }

  private finish(): void {
    this.done = true
    this.queued = null
    this.ep.active--
  }

  onPoolConnection(conn: UpstreamConn): void {
    if (this.done) return conn.release(true)
    this.up = conn
    conn.bind(this, false)
    const s = conn.socket
    s.cork()
    for (const p of this.queued!) typeof p === 'string' ? s.write(p, 'latin1') : s.write(p)
    s.uncork()
    this.queued = null
    if (this.ended) this.sent = true
  }

  onPoolFailure(_err: HttpError, _flag: string): void {
    if (this.done) return
    this.counters.mirrorFailed++
    this.finish()
  }

  onUpstreamInformational(_head: ResponseHead): void {}
  onUpstreamHead(_head: ResponseHead, _hasBody: boolean): void {}
  onUpstreamData(_buf: Buffer, _start: number, _end: number): void {}
  onUpstreamEnd(_trailers: string): void {
    if (this.done) return
    const up = this.up!
    this.up = null
    this.finish()
    up.release(this.sent)
  }
  onUpstreamError(_err: HttpError, _flag: string, _responseStarted: boolean): void {
    if (this.done) return
    this.up = null
    this.counters.mirrorFailed++
    this.finish()
  }
  onUpstreamDrain(): void {}
  onUpstreamFlush(): void {}
}
