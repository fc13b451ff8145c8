// A try on an HTTP/2 upstream: one stream on the endpoint's shared session (proxy/h2/upstream.ts),
// of either client codec (the proxy's, proxy/h2/codec/client.ts, or node:http2's). It waits for
// the session with the request body queued, opens the stream with the fields the handler gives it
// (END_STREAM on the HEADERS when the request is whole and empty), sends the body and the
// request's trailers, and turns the stream's events (one StreamSink, called directly by the
// proxy's codec, by listeners on a node:http2 stream) into the handler's.
import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import { HttpError } from '../../api/http1/head.ts'
import { QueuedTry, StreamResetError, type TryHandler, type UpstreamTry } from '../cluster/try.ts'
import type { ClientStream } from './codec/client.ts'
import { H2Stream, type StreamSink } from './codec/stream.ts'
import { cancelStream, type H2Upstream, type H2Waiter, type UpSession } from './upstream.ts'

/** An upstream HTTP/2 stream of either client codec. */
export type UpStream = ClientHttp2Stream | ClientStream

const END_STREAM = 0x1
const UC = 'UC'

export class H2Try extends QueuedTry implements UpstreamTry, H2Waiter, StreamSink {
  readonly dataKept = true
  readonly flushes = false
  readonly readsToEnd = false
  private readonly upstream: H2Upstream
  private st: UpStream | null = null
  private respStarted = false
  private respEnded = false

  constructor(upstream: H2Upstream, h: TryHandler, queued: Buffer[] | null, ended: boolean) {
    super(h, queued, ended)
    this.upstream = upstream
  }

  get buffered(): number {
    const st = this.st
    return st === null ? this.queuedBytes : st.writableLength
  }

  start(): void {
    this.upstream.acquire(this)
  }

  // ---- H2Waiter

  onH2Session(s: UpSession): void {
    if (this.dead) return
    try {
      this.open(s)
    } catch (err) {
      this.internal(err)
    }
  }

  private open(s: UpSession): void {
    const h = this.h
    const fields = h.tryRequestH2()
    const trailers = this.ended ? h.tryTrailersH2() : null
    const endStream = this.ended && this.queued === null && trailers === null
    let st: UpStream
    try {
      st = s.request(fields, { endStream })
    } catch {
      // the session went away between the pick and now (GOAWAY)
      process.nextTick(sessionGone, this)
      return
    }
    this.st = st
    sinkTo(st, this)
    if (endStream) return h.tryStarted(true)
    let ok = true
    const q = this.takeQueue()
    if (q !== null) for (const b of q) ok = st.write(b)
    if (this.ended) this.endStream(st, trailers)
    h.tryStarted(ok)
  }

  onH2Failure(err: HttpError, flag: string): void {
    if (this.dead) return
    this.dead = true
    this.h.tryFailed(err, flag)
  }

  /**
   * An exception while handling the stream's event (a value node:http2 throws on, a bug): this
   * try fails (502, or a reset client stream), the stream is cancelled, the process goes on.
   */
  private internal(err: unknown): void {
    const st = this.st
    const dead = this.dead
    this.dead = true
    this.st = null
    if (st !== null && !st.closed) cancelStream(st)
    if (dead) return
    try {
      this.h.tryError(new HttpError(502, 'WEFT_ERR_INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`), 'UPE', this.respStarted)
    } catch {}
  }

  /** (nextTick) the session refused the stream */
  sessionGone(): void {
    if (this.dead) return
    this.dead = true
    this.h.tryError(new StreamResetError(0, 'the HTTP/2 session went away'), UC, false)
  }

  // ---- the request side

  write(b: Buffer, volatile: boolean): boolean {
    if (this.dead) return true
    // a copy when the caller reuses its buffer: the stream holds what it was given until it is sent
    const part = volatile ? Buffer.from(b) : b
    const st = this.st
    if (st !== null) return st.write(part)
    return this.queue(part, false)
  }

  end(): void {
    if (this.ended) return
    this.ended = true
    const st = this.st
    if (st !== null && !this.dead && !st.writableEnded) this.endStream(st, this.h.tryTrailersH2())
  }

  /** The request is whole: the stream ends, with the request's trailers when it had some. */
  private endStream(st: UpStream, trailers: OutgoingHttpHeaders | null): void {
    // trailers go on over the proxy's codec (node:http2's client drops them)
    if (trailers !== null && st instanceof H2Stream) st.waitTrailers = true
    st.end()
  }

  pause(): void {
    this.st?.pause()
  }

  resume(): void {
    this.st?.resume()
  }

  retainRead(): void {}

  cancel(_closeExcess: boolean): void {
    if (this.dead) return
    this.dead = true
    const st = this.st
    this.st = null
    this.queued = null
    if (st === null) this.upstream.cancel(this)
    // a stream whose response ended and whose request was sent closes by itself: no RST_STREAM
    else if (!st.closed && !(this.respEnded && st.writableEnded)) cancelStream(st)
  }

  // ---- StreamSink: the stream's events

  streamResponse(st: H2Stream, headers: IncomingHttpHeaders, flags: number): void {
    if (this.dead || (st as unknown) !== this.st) return
    this.respStarted = true
    const endStream = (flags & END_STREAM) !== 0
    if (endStream) this.respEnded = true
    try {
      this.h.tryHead(Number(headers[':status']), null, headers, endStream)
      // trailers-only (a gRPC error): the head is the whole response
      if (endStream && !this.dead) this.over()
    } catch (err) {
      this.internal(err)
    }
  }

  streamData(st: H2Stream, b: Buffer): void {
    if (this.dead || (st as unknown) !== this.st) return
    try {
      this.h.tryData(b, 0, b.length)
    } catch (err) {
      this.internal(err)
    }
  }

  streamTrailers(st: H2Stream, t: IncomingHttpHeaders): void {
    if (this.dead || (st as unknown) !== this.st) return
    try {
      this.h.tryTrailers('', t)
    } catch (err) {
      this.internal(err)
    }
  }

  streamEnd(st: H2Stream): void {
    if (this.dead || (st as unknown) !== this.st) return
    // no response: its close says why
    if (!this.respStarted) return
    this.respEnded = true
    try {
      this.over()
    } catch (err) {
      this.internal(err)
    }
  }

  /** The response is whole: the stream is let go (cancelled when the request is still being sent). */
  private over(): void {
    const st = this.st!
    this.dead = true
    this.st = null
    if (!st.closed && !st.writableEnded) cancelStream(st)
    this.h.tryEnd()
  }

  streamWantTrailers(st: H2Stream): void {
    try {
      st.sendTrailers(this.h.tryTrailersH2() ?? {})
    } catch (err) {
      this.internal(err)
    }
  }

  streamDrain(st: H2Stream): void {
    if (this.dead || (st as unknown) !== this.st) return
    try {
      this.h.tryDrain()
    } catch (err) {
      this.internal(err)
    }
  }

  streamClose(st: H2Stream): void {
    if (this.dead || (st as unknown) !== this.st) return
    this.dead = true
    this.st = null
    try {
      this.h.tryError(new StreamResetError(st.rstCode ?? 0), UC, this.respStarted)
    } catch {}
  }
}

function sessionGone(t: H2Try): void {
  t.sessionGone()
}

/**
 * The stream's events go to `sink`: the proxy's codec calls it directly (no listeners, flow
 * started); a node:http2 stream gets listeners that call it the same way.
 */
export function sinkTo(st: UpStream, sink: StreamSink): void {
  if (st instanceof H2Stream) {
    st.sink = sink
    st.flow()
    return
  }
  const s = st as unknown as H2Stream
  st.on('response', (h: IncomingHttpHeaders, flags: number) => sink.streamResponse(s, h, flags))
  st.on('data', (b: Buffer) => sink.streamData(s, b))
  st.on('trailers', (h: IncomingHttpHeaders) => sink.streamTrailers(s, h))
  st.on('end', () => sink.streamEnd(s))
  st.on('close', () => sink.streamClose(s))
  st.on('error', () => {}) // reported through 'close' (rstCode)
  st.on('drain', () => sink.streamDrain(s))
}
