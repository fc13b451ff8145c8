// RequestMirror: a copy of a request goes to another cluster, fire-and-forget (Envoy's
// request_mirror_policies, Istio's mirror). The copy never slows or fails the original: its body
// is copied as it streams and dropped (the mirror abandoned) when the mirror cannot keep up; its
// response is read and discarded; any failure is only counted. As Envoy does, the mirrored
// request's Host gets "-shadow" appended, so the receiver can tell copies from real traffic.
// The copy is a try like the original's (proxy/cluster/try.ts): over HTTP/1 or HTTP/2, as the
// mirror cluster speaks, whatever the client spoke.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import type { ClusterRuntime, EndpointState } from '../../cluster/cluster.ts'
import type { HttpError, ResponseHead } from '../../../api/http1/head.ts'
import type { ReadBuffer } from '../../net/read-buffer.ts'
import type { TryHandler, UpstreamTry } from '../../cluster/try.ts'

/** copies of a mirrored body held (waiting for a connection, or not yet taken by the socket) */
const MIRROR_BUFFER_LIMIT = 256 * 1024

export interface MirrorCounters {
  mirrored: number
  mirrorFailed: number
  mirrorAbandoned: number
}

/** The original's request as the copy is sent: its Host "-shadow", its framing the original's. */
export interface MirrorSource {
  readonly method: string
  /** an HTTP/1 head with its framing fields */
  shadowH1(): string
  /** the body after shadowH1's head goes chunk-framed */
  shadowChunked(): boolean
  /** HTTP/2 fields (:authority "-shadow") */
  shadowH2(): OutgoingHttpHeaders
  /** the request's trailers as "name: value\r\n" lines ("" none) */
  tryTrailersH1(): string
}

export class CompiledMirror {
  readonly cluster: string
  readonly ratio: number
  constructor(cluster: string, percent: number) {
    this.cluster = cluster
    this.ratio = percent / 100
  }

  /** The cluster a request's copy goes to, or null: not sampled, no such cluster or no endpoint. */
  target(clusters: ReadonlyMap<string, ClusterRuntime>, _counters: MirrorCounters): ClusterRuntime | null {
    if (this.ratio < 1 && Math.random() >= this.ratio) return null
    const cluster = clusters.get(this.cluster)
    if (cluster === undefined || cluster.endpoints.length === 0) return null
    return cluster
  }
}

/** One mirrored request in flight: the TryHandler of its try, which throws the response away. */
export class MirrorRequest implements TryHandler {
  readonly method: string
  readonly wantsUpgrade = false
  private readonly ep: EndpointState
  private readonly counters: MirrorCounters
  private readonly src: MirrorSource
  private readonly h1: string
  private readonly chunked: boolean
  private readonly h2: OutgoingHttpHeaders | null
  private readonly t: UpstreamTry
  private ended: boolean
  private done = false

  /** queued: the body so far (kept as given); ended: it is whole */
  constructor(cluster: ClusterRuntime, src: MirrorSource, queued: Buffer[] | null, ended: boolean, counters: MirrorCounters) {
    this.counters = counters
    this.src = src
    this.method = src.method
    this.ended = ended
    // the request is taken now, in the form the mirror cluster speaks
    this.h2 = cluster.http2 ? src.shadowH2() : null
    this.h1 = cluster.http2 ? '' : src.shadowH1()
    this.chunked = cluster.http2 ? false : src.shadowChunked()
    const ep = cluster.balancer.pick(undefined)!
    this.ep = ep
    counters.mirrored++
    ep.active++
    this.t = cluster.openTry(ep, this, queued, ended)
    this.t.start()
  }

  /** Request body bytes (volatile: the caller's buffer is reused, copied here). */
  body(b: Buffer, volatile: boolean): void {
    if (this.done) return
    if (this.t.buffered > MIRROR_BUFFER_LIMIT) return this.abandon()
    // never the caller's buffer: the try's socket may hold it past this call
    this.t.write(volatile ? Buffer.from(b) : b, false)
  }

  bodyEnd(): void {
    this.ended = true
    if (!this.done) this.t.end()
  }

  /** The original went away before its body was whole: the copy cannot be completed either. */
  cancel(): void {
    if (!this.ended) this.abandon()
  }

  private abandon(): void {
    if (this.done) return
    this.counters.mirrorAbandoned++
    this.finish()
    this.t.cancel(false)
  }

  private finish(): void {
    this.done = true
    this.ep.active--
  }

  private failed(): void {
    if (this.done) return
    this.counters.mirrorFailed++
    this.finish()
  }

  // ---- TryHandler: the request as the try asks for it

  tryRequestH1(_endStream: boolean): string {
    return this.h1
  }
  tryChunked(_endStream: boolean): boolean {
    return this.chunked
  }
  tryRequestH2(): OutgoingHttpHeaders {
    return this.h2!
  }
  tryTrailersH1(): string {
    return this.src.tryTrailersH1()
  }
  tryTrailersH2(): OutgoingHttpHeaders | null {
    return null
  }
  tryRetainRequest(): void {}

  // ---- TryHandler: the response, read and thrown away

  tryStarted(_writable: boolean): void {}
  tryFailed(_err: HttpError, _flag: string): void {
    this.failed()
  }
  tryAgain(): void {}
  tryInformational(_head: ResponseHead): void {}
  tryHead(_status: number, _h1: ResponseHead | null, _h2: IncomingHttpHeaders | null, _endStream: boolean): void {}
  tryData(_buf: Buffer, _start: number, _end: number): void {}
  tryTrailers(_raw: string, _fields: IncomingHttpHeaders | null): void {}
  tryEnd(): void {
    if (!this.done) this.finish()
  }
  tryError(_err: HttpError, _flag: string, _responseStarted: boolean): void {
    this.failed()
  }
  tryDrain(): void {}
  tryFlush(): void {}
  tryUpgrade(_head: ResponseHead, socket: Socket, _rb: ReadBuffer | null, _rest: Buffer | null): void {
    socket.destroy()
  }
}
