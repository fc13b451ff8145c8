// RequestMirror: a copy of a request goes to another cluster, fire-and-forget (Envoy's
// request_mirror_policies, Istio's mirror). The copy never slows or fails the original: its body
// is copied as it streams and dropped (the mirror abandoned) when the mirror cannot keep up; its
// response is read and discarded; any failure is only counted. As Envoy does, the mirrored
// request's Host gets "-shadow" appended, so the receiver can tell copies from real traffic.
// The copy is a try like the original's, dispatched by the mirror cluster in one call
// (ClusterRuntime.dispatch): over HTTP/1 or HTTP/2, as the mirror cluster speaks, whatever the
// client spoke.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import type { BreakerTicket } from '../../cluster/breaker.ts'
import type { ClusterRuntime, DispatchHandler, EndpointState } from '../../cluster/cluster.ts'
import { OUTCOME_5XX, OUTCOME_CONNECT, OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../../cluster/outlier.ts'
import type { HttpError, ResponseHead } from '../../../api/http1/head.ts'
import type { ReadBuffer } from '../../net/read-buffer.ts'
import type { UpstreamTry } from '../../cluster/try.ts'

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
  /** the request's trailers as HTTP/2 fields (null: none) */
  tryTrailersH2(): OutgoingHttpHeaders | null
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

/**
 * One mirrored request in flight: the DispatchHandler of its try (one cluster.dispatch, as the
 * original's), which throws the response away. The copy goes through the mirror cluster like any
 * request: its limits and breaker may refuse it (counted as mirror_failed and by the cluster's
 * own decision counters), its endpoint counts it active, and its outcome is reported to the
 * cluster's outlier detection and breaker (endTry).
 */
export class MirrorRequest implements DispatchHandler {
  readonly method: string
  readonly wantsUpgrade = false
  // ---- ClusterTry (written by cluster.dispatch, released by cluster.endTry)
  endpoint: EndpointState | undefined = undefined
  lastEndpoint: EndpointState | undefined = undefined
  ticket: BreakerTicket | null = null
  acStart = -1
  private readonly cluster: ClusterRuntime
  private readonly counters: MirrorCounters
  private readonly src: MirrorSource
  private h1 = ''
  private chunked = false
  private h2: OutgoingHttpHeaders | null = null
  /** the copy's try; null: the cluster refused it */
  private readonly t: UpstreamTry | null
  private outcome = OUTCOME_OK
  private ended: boolean
  private done = false

  /** queued: the body so far (kept as given); ended: it is whole */
  constructor(cluster: ClusterRuntime, src: MirrorSource, queued: Buffer[] | null, ended: boolean, counters: MirrorCounters) {
    this.cluster = cluster
    this.counters = counters
    this.src = src
    this.method = src.method
    this.ended = ended
    counters.mirrored++
    const t = cluster.dispatch(this, queued, ended)
    if (typeof t === 'number') {
      // refused by the mirror cluster (max requests, breaker, no healthy endpoint): only counted
      this.t = null
      this.done = true
      counters.mirrorFailed++
      return
    }
    this.t = t
    t.start()
  }

  /** copies are not hashed on the affinity header (any endpoint of the mirror cluster) */
  header(_name: string): string | undefined {
    return undefined
  }

  /** The mirror cluster took the copy: the request is taken now, in the form it speaks. */
  dispatched(cluster: ClusterRuntime, _ep: EndpointState, _hashKey: string | undefined): void {
    if (cluster.http2) this.h2 = this.src.shadowH2()
    else {
      this.h1 = this.src.shadowH1()
      this.chunked = this.src.shadowChunked()
    }
  }

  /** Request body bytes (volatile: the caller's buffer is reused, copied here). */
  body(b: Buffer, volatile: boolean): void {
    if (this.done) return
    const t = this.t!
    if (t.buffered > MIRROR_BUFFER_LIMIT) return this.abandon()
    // never the caller's buffer: the try's socket may hold it past this call
    t.write(volatile ? Buffer.from(b) : b, false)
  }

  bodyEnd(): void {
    this.ended = true
    if (!this.done) this.t!.end()
  }

  /** The original went away before its body was whole: the copy cannot be completed either. */
  cancel(): void {
    if (!this.ended) this.abandon()
  }

  private abandon(): void {
    if (this.done) return
    this.counters.mirrorAbandoned++
    // the proxy gave it up: not the endpoint's doing
    this.finish(OUTCOME_OK, true)
    this.t!.cancel(false)
  }

  /** The copy's try is over: the cluster releases the endpoint and hears the outcome (once). */
  private finish(outcome: number, neutral: boolean): void {
    this.done = true
    this.cluster.endTry(this, outcome, neutral)
  }

  private failed(outcome: number, neutral: boolean): void {
    if (this.done) return
    this.counters.mirrorFailed++
    this.finish(outcome, neutral)
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
    return this.src.tryTrailersH2()
  }
  tryRetainRequest(): void {}

  // ---- TryHandler: the response, read and thrown away

  tryStarted(_writable: boolean): void {}
  tryFailed(_err: HttpError, flag: string): void {
    // a connect failure is the endpoint's; a full pending queue or a removed endpoint is not
    const connect = flag === 'UF'
    this.failed(connect ? OUTCOME_CONNECT : OUTCOME_OK, !connect)
  }
  tryAgain(): void {}
  tryInformational(_head: ResponseHead): void {}
  tryHead(status: number, _h1: ResponseHead | null, _h2: IncomingHttpHeaders | null, _endStream: boolean): void {
    if (status < 500 || this.done) return
    this.endpoint!.counters.rq5xx++
    this.outcome = status === 502 || status === 503 || status === 504 ? OUTCOME_GATEWAY : OUTCOME_5XX
  }
  tryData(_buf: Buffer, _start: number, _end: number): void {}
  tryTrailers(_raw: string, _fields: IncomingHttpHeaders | null): void {}
  tryEnd(): void {
    if (!this.done) this.finish(this.outcome, false)
  }
  tryError(_err: HttpError, _flag: string, responseStarted: boolean): void {
    this.failed(responseStarted ? OUTCOME_GATEWAY : OUTCOME_RESET, false)
  }
  tryDrain(): void {}
  tryFlush(): void {}
  tryUpgrade(_head: ResponseHead, socket: Socket, _rb: ReadBuffer | null, _rest: Buffer | null): void {
    socket.destroy()
  }
}
