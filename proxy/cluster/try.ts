// One upstream try behind one interface, whatever the two sides speak (undici's dispatch(opts,
// handler), reduced): the exchange (either downstream codec, or a mirror's copy) is the try's
// TryHandler, and the try is an UpstreamTry. Every level dispatches with the same call,
// `dispatch(handler, queued, ended)`: an endpoint's HTTP/1 pool (EndpointPool, a connection:
// h1-try.ts) and its HTTP/2 session (H2Upstream, a stream: proxy/h2/stream-try.ts) are
// TryDispatchers, and ClusterRuntime.dispatch (cluster.ts) is the same call with admission, the
// balancer's pick and the accounting in front, handing the try to the endpoint's pool or session
// as its endpoints speak. The try asks its handler
// for the request in the form its wire needs (an HTTP/1 head, or HTTP/2 fields) when it starts,
// queues the body until then, and turns its wire's events into the handler's: head, data,
// trailers, end, error. So the exchange handles each event once, not once per upstream kind.
//
// The HTTP/1 byte-level tricks stay HTTP/1's: a head parsed from an HTTP/1 upstream reaches the
// handler as that ResponseHead (the HTTP/1 downstream relays it without a conversion), read
// bytes are slices of the connection's read buffer (`dataKept` false), and an HTTP/1 try says
// when one read is done (`tryFlush`, where a held-back head is written at the latest).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { Socket } from 'node:net'
import { HttpError, type ResponseHead } from '../../api/http1/head.ts'
import type { ReadBuffer } from '../net/read-buffer.ts'

/** What a try asks of and tells to the one it runs for (an exchange, a mirrored copy). */
export interface TryHandler {
  // ---- the request, asked for when the try starts (and again on a fresh connection)
  readonly method: string
  /** the request asks to switch protocols (HTTP/1 Upgrade): a 101 is its answer */
  readonly wantsUpgrade: boolean
  /** the request as an HTTP/1 head with its framing fields; endStream: no body byte follows */
  tryRequestH1(endStream: boolean): string
  /** the body after that head goes chunk-framed */
  tryChunked(endStream: boolean): boolean
  /** the request as HTTP/2 fields (pseudo-headers first) */
  tryRequestH2(): OutgoingHttpHeaders
  /** the request's trailers, for an HTTP/1 chunked body ("name: value\r\n" lines, "" none) */
  tryTrailersH1(): string
  /** the request's trailers for an HTTP/2 stream (null: none) */
  tryTrailersH2(): OutgoingHttpHeaders | null
  /** request bytes written with `volatile` are still referenced by the socket: keep them */
  tryRetainRequest(): void

  // ---- the try's events
  /** the request went out (head and what was queued); writable: the upstream takes more now */
  tryStarted(writable: boolean): void
  /** the try could not start: UF connect failure or timeout, UO the pending queue is full, UH removed */
  tryFailed(err: HttpError, flag: string): void
  /** the try's request went again on a fresh connection (a reused one failed at once: stale keep-alive) */
  tryAgain(): void
  /** a 1xx other than 101 (HTTP/1 upstreams) */
  tryInformational(head: ResponseHead): void
  /**
   * The response head: from an HTTP/1 upstream `h1` (its parsed head), from an HTTP/2 one `h2`
   * (its fields). endStream: no data and no trailers follow (tryEnd does).
   */
  tryHead(status: number, h1: ResponseHead | null, h2: IncomingHttpHeaders | null, endStream: boolean): void
  /** response bytes; kept past the call only when the try's `dataKept` says so, else copied */
  tryData(buf: Buffer, start: number, end: number): void
  /** the response's trailers: a "name: value\r\n" block (HTTP/1 chunked) or fields (HTTP/2) */
  tryTrailers(raw: string, fields: IncomingHttpHeaders | null): void
  /** the response is complete; the try has let its connection or stream go */
  tryEnd(): void
  /**
   * The try failed after it started: UC closed or reset (err may be a StreamResetError), UPE a
   * malformed response. responseStarted: a response byte had come.
   */
  tryError(err: HttpError, flag: string, responseStarted: boolean): void
  /** the upstream takes request bytes again (after a write returned false) */
  tryDrain(): void
  /** one read of the upstream is processed (HTTP/1 tries only: `flushes`) */
  tryFlush(): void
  /** 101 to an upgrade request: the socket has left its pool and is the handler's */
  tryUpgrade(head: ResponseHead, socket: Socket, rb: ReadBuffer | null, rest: Buffer | null): void
}

/**
 * Opens tries for a handler: an endpoint's HTTP/1 pool or HTTP/2 session. The try is returned
 * not started (the caller keeps it, then calls start(): its first events may come from there).
 * queued: the request body so far (kept by the try); ended: it is whole.
 */
export interface TryDispatcher {
  dispatch(h: TryHandler, queued: Buffer[] | null, ended: boolean): UpstreamTry
}

/** The request side of one try, the same for an HTTP/1 connection and an HTTP/2 stream. */
export interface UpstreamTry {
  /** bytes given to tryData stay valid after the call (HTTP/2 DATA); false: a read buffer's slice */
  readonly dataKept: boolean
  /** the try says when one read is done (tryFlush) */
  readonly flushes: boolean
  /** a response not wanted (a retry follows) is read to its end, so that the connection is kept */
  readonly readsToEnd: boolean
  /** request bytes queued (waiting for the connection or stream, or not yet taken by it) */
  readonly buffered: number
  /** acquire the connection or session: the try starts when it is there */
  start(): void
  /**
   * A piece of the request body (already de-framed; the try frames it for its wire). volatile:
   * `b` is reused after the call (copied where kept; the handler is asked to retain it where a
   * socket still holds it). false: wait for tryDrain.
   */
  write(b: Buffer, volatile: boolean): boolean
  /** the request body is whole (its trailers are asked for then) */
  end(): void
  /** stop and resume reading the response (backpressure) */
  pause(): void
  resume(): void
  /** the response bytes last handed over are still referenced by a write that did not flush */
  retainRead(): void
  /**
   * Abandon the try: its connection closed, its stream reset, or its place in a queue given up.
   * closeExcess: a connect opened for it alone is given up too (EndpointPool.cancel).
   */
  cancel(closeExcess: boolean): void
}

/** request body bytes a try queues before it starts, past which write() says "wait" */
const QUEUE_LIMIT = 65536

/** What both kinds of try share: their handler, and the request body queued until they start. */
export abstract class QueuedTry {
  protected readonly h: TryHandler
  /** body pieces waiting for the connection or stream */
  protected queued: Buffer[] | null
  protected queuedBytes = 0
  /** the request body is whole */
  protected ended: boolean
  /** cancelled, failed or over: no more events to the handler, writes ignored */
  protected dead = false

  /** queued: the body so far (kept by the try); ended: it is whole */
  constructor(h: TryHandler, queued: Buffer[] | null, ended: boolean) {
    this.h = h
    this.queued = queued !== null && queued.length > 0 ? queued : null
    if (this.queued !== null) for (const b of this.queued) this.queuedBytes += b.length
    this.ended = ended
  }

  /** Keep a piece until the try starts (a copy when the caller reuses its buffer); false past the limit. */
  protected queue(b: Buffer, volatile: boolean): boolean {
    const copy = volatile ? Buffer.from(b) : b
    if (this.queued === null) this.queued = []
    this.queued.push(copy)
    this.queuedBytes += copy.length
    return this.queuedBytes <= QUEUE_LIMIT
  }

  /** The queued pieces, handed over once as the try starts (null: none). */
  protected takeQueue(): Buffer[] | null {
    const q = this.queued
    this.queued = null
    this.queuedBytes = 0
    return q
  }
}

/** The upstream reset an HTTP/2 stream (rstCode: its RST_STREAM code, 0 when the session went away). */
export class StreamResetError extends HttpError {
  readonly rstCode: number
  constructor(rstCode: number, message = `upstream reset the stream (code ${rstCode})`) {
    super(502, 'WEFT_ERR_UPSTREAM_RESET', message)
    this.rstCode = rstCode
  }
}

/** RST_STREAM REFUSED_STREAM (RFC 9113 8.7): the upstream never processed the request */
export const REFUSED_STREAM = 7
