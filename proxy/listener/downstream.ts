// One accepted HTTP/1.1 client connection: reads request heads strictly, de-frames request bodies,
// runs one Exchange at a time (so pipelined requests are answered in order) and enforces the
// head/idle timeouts through the listener's sweeper. Anything ambiguous is answered 400 and the
// connection closed before a byte goes upstream.
import type { Socket } from 'node:net'
import type { PeerIdentity } from '../identity/authz.ts'
import { ChunkedDecoder, type ChunkSink } from '../../api/http1/chunked.ts'
import { HttpError, parseRequestHead, reasonPhrase } from '../../api/http1/head.ts'
import { ReadBuffer, readIntoBuffer, retargetReads } from '../net/read-buffer.ts'
import { Exchange, type Downstream, type ExchangeCounters, type RouterConfig } from '../router/exchange.ts'

const CRLFCRLF = Buffer.from('\r\n\r\n')

const P_PIPELINE = 1
const P_UPSTREAM = 2

/** bytes of a request body we keep reading after an early response, before giving up on the connection */
const DISCARD_LIMIT = 1 << 20
/**
 * After our last response we send FIN but keep reading (and dropping) for this long, so the
 * client reads the response before the connection goes away (closing with unread bytes would
 * send RST and could destroy the response in flight; nginx's lingering_close).
 */
const LINGER_MS = 2000

/** A LF not preceded by CR in buf[from..]: the head will never end with CRLFCRLF. */
function hasBareLf(buf: Buffer, from: number): boolean {
  let i = buf.indexOf(0x0a, from)
  while (i !== -1) {
    if (i === from || buf[i - 1] !== 0x0d) return true
    i = buf.indexOf(0x0a, i + 1)
  }
  return false
}

export interface ConnectionLimits {
  maxHeaderBytes: number
  maxHeaders: number
  requestHeadTimeoutMs: number
  idleTimeoutMs: number
  /** a connection that sends no byte for this long is closed (HTTP/1: 408) */
  firstByteTimeoutMs: number
  /** HTTP/2: a stream that moves no byte either way for this long is reset */
  streamIdleTimeoutMs: number
  /** HTTP/2: SETTINGS_MAX_CONCURRENT_STREAMS of the proxy's server sessions */
  http2MaxConcurrentStreams: number
  /** HTTP/2: streams of one client connection in progress at once (each may hold an upstream); more wait */
  http2MaxActiveStreams: number
}

/** What a connection reads from its listener; `config` is swapped atomically on reload. */
export interface ListenerContext {
  readonly config: RouterConfig & { readonly limits: ConnectionLimits }
  readonly counters: ExchangeCounters & { downstreamProtocolErrors: number; timeouts: number }
  now(): number
  /** the identity a mutual TLS connection's client proved (null: plain text) */
  peerOf(s: Socket): PeerIdentity | null
  connectionClosed(c: DownstreamConnection): void
  /**
   * The connection switched protocols (101): make it a tunnel to `upstream`. rb: the client's read
   * buffer (null: 'data' events); pending: bytes the client sent after the upgrade request;
   * ended: the client's FIN was seen; fromUpstream: bytes after the 101 head.
   */
  upgraded(c: DownstreamConnection, rb: ReadBuffer | null, pending: Buffer | null, ended: boolean, upstream: Socket, upRb: ReadBuffer | null, fromUpstream: Buffer | null): void
}

/** A connection handed over by protocol detection, with what was read from it already. */
export interface Handoff {
  /** the read buffer the socket reads into (null: it reads 'data' events) */
  readonly rb: ReadBuffer | null
  /** the bytes read so far: processed as this connection's first read */
  readonly first: Buffer | null
  /** the client's FIN was already seen */
  readonly ended: boolean
}

export class DownstreamConnection implements Downstream, ChunkSink {
  readonly socket: Socket
  readonly remoteAddress: string
  readonly peer: PeerIdentity | null
  private readonly ctx: ListenerContext
  private readonly rb: ReadBuffer
  /** the 'data' listener when the socket does not read into rb */
  private dataListener: ((b: Buffer) => void) | null = null
  /** switched protocols: the socket belongs to a tunnel now */
  private tunnelled = false
  private pending: Buffer | null = null
  private exchange: Exchange | null = null
  private limits: ConnectionLimits
  // request body state of the current request
  private bodyRemaining = 0
  private decoder: ChunkedDecoder | null = null
  private bodyDone = true
  private responseDone = true
  private closeAfterResponse = false
  private discarded = 0
  private pauseReasons = 0
  private processing = false
  private closed = false
  /** coarse time after which a closing connection is destroyed (0: not closing) */
  private lingerUntil = 0
  /** the client sent FIN: answer what it sent, then close */
  private peerEnded = false
  draining = false
  /** coarse time the current head started arriving (0: not reading a head) */
  headStartedAt = 0
  lastActivityAt: number

  /** handoff: from protocol detection, which has read the first bytes (see listener/detect.ts) */
  constructor(socket: Socket, ctx: ListenerContext, handoff?: Handoff) {
    this.socket = socket
    this.ctx = ctx
    this.limits = ctx.config.limits
    this.remoteAddress = socket.remoteAddress ?? ''
    this.peer = ctx.peerOf(socket)
    this.lastActivityAt = ctx.now()
    const onBytes = (buf: Buffer, n: number): void => this.onData(buf.subarray(0, n))
    let fast: boolean
    if (handoff === undefined) {
      socket.setNoDelay(true)
      this.rb = new ReadBuffer()
      fast = readIntoBuffer(socket, this.rb, onBytes)
    } else {
      // The same read buffer goes on: the first bytes are still in it, processed below before
      // the next read can overwrite them (onData copies what it keeps).
      this.rb = handoff.rb ?? new ReadBuffer()
      fast = handoff.rb !== null && retargetReads(socket, onBytes)
    }
    if (!fast) {
      this.dataListener = (b: Buffer) => this.onData(b)
      socket.on('data', this.dataListener)
    }
    socket.on('drain', () => this.exchange?.onDownstreamDrain())
    socket.on('error', () => {})
    socket.on('close', () => this.onClose())
    socket.on('end', () => this.onEnd())
    if (handoff !== undefined) {
      if (handoff.first !== null && handoff.first.length > 0) this.onData(handoff.first)
      if (handoff.ended && !this.closed) this.onEnd()
    }
  }

  // ---- Downstream interface used by the exchange ---------------------------------------------

  write(data: string | Buffer): boolean {
    if (this.closed) return true
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data)
  }
  cork(): void {
    this.socket.cork()
  }
  uncork(): void {
    this.socket.uncork()
  }
  pauseForUpstream(): void {
    this.pause(P_UPSTREAM)
  }
  resumeForUpstream(): void {
    this.resume(P_UPSTREAM)
  }
  get writableLength(): number {
    return this.socket.writableLength
  }
  retainRead(): void {
    this.rb.retained = true
  }

  exchangeDone(close: boolean): void {
    this.responseDone = true
    this.lastActivityAt = this.ctx.now()
    if (close) this.closeAfterResponse = true
    this.resume(P_UPSTREAM)
    if (this.bodyDone) this.nextRequest()
  }

  abort(): void {
    this.exchange = null
    this.socket.destroy()
  }

  /**
   * The upstream answered the upgrade request with 101 (the exchange has written it): the
   * connection becomes a tunnel. Bytes the client sent after the upgrade request (pipelined, held
   * in `pending` because one exchange runs at a time) are the new protocol's and go upstream; had
   * the answer not been 101 they would have been parsed as the next request.
   */
  upgrade(upstream: Socket, upRb: ReadBuffer | null, fromUpstream: Buffer | null): void {
    this.exchange = null
    this.tunnelled = true
    const pending = this.pending
    this.pending = null
    if (this.dataListener !== null) this.socket.off('data', this.dataListener)
    this.pauseReasons = 0
    this.ctx.upgraded(this, this.dataListener === null ? this.rb : null, pending, this.peerEnded, upstream, upRb, fromUpstream)
  }

  // ---- reading -------------------------------------------------------------------------------

  private pause(reason: number): void {
    if (this.pauseReasons === 0) this.socket.pause()
    this.pauseReasons |= reason
  }

  private resume(reason: number): void {
    if ((this.pauseReasons & reason) === 0) return
    this.pauseReasons &= ~reason
    if (this.pauseReasons === 0 && !this.closed) this.socket.resume()
  }

  private onData(chunk: Buffer): void {
    this.lastActivityAt = this.ctx.now()
    if (this.lingerUntil !== 0) return // closing: read and drop
    if (!this.bodyDone) {
      const used = this.feedBody(chunk, 0)
      if (used < 0) return
      if (used === chunk.length) return
      chunk = chunk.subarray(used)
    }
    this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk])
    if (this.responseDone && this.bodyDone) this.processPending()
    else if (this.pending.length > this.limits.maxHeaderBytes) this.pause(P_PIPELINE)
    // Bytes kept for later must not live in the read buffer, which the next read overwrites.
    if (this.pending !== null && this.pending.buffer === chunk.buffer) this.pending = Buffer.from(this.pending)
  }

  /** Feed request body bytes from buf[start..]; returns the index after the body's last byte, or -1 when the connection was failed. */
  private feedBody(buf: Buffer, start: number): number {
    const ex = this.exchange
    if (this.decoder !== null) {
      const next = this.decoder.push(buf, start, buf.length, this)
      if (next < 0) {
        this.failRequest(new HttpError(400, 'WEFT_ERR_HTTP_CHUNKED', this.decoder.error))
        return -1
      }
      return next
    }
    const n = Math.min(this.bodyRemaining, buf.length - start)
    this.bodyRemaining -= n
    if (this.responseDone) this.discard(n)
    else if (ex !== null) ex.onBody(buf, start, start + n)
    if (this.bodyRemaining === 0) this.bodyEnded('')
    return start + n
  }

  onChunkData(buf: Buffer, start: number, end: number): void {
    if (this.responseDone) this.discard(end - start)
    else this.exchange?.onBody(buf, start, end)
  }

  onChunkedEnd(trailers: string): void {
    this.decoder = null
    this.bodyEnded(trailers)
  }

  private discard(n: number): void {
    this.discarded += n
    if (this.discarded > DISCARD_LIMIT) {
      // The response is out; reading more of a body nobody wants is not worth the connection.
      this.closeAfterResponse = true
      this.exchange = null
      this.bodyDone = true
      this.decoder = null
      this.lingeringClose()
    }
  }

  private bodyEnded(trailers: string): void {
    this.bodyDone = true
    const ex = this.exchange
    if (ex !== null) ex.onBodyEnd(trailers)
    // nextRequest guards against re-entry: inside processPending it only clears the exchange.
    if (this.responseDone) this.nextRequest()
  }

  private nextRequest(): void {
    this.exchange = null
    if (this.closeAfterResponse || this.draining) {
      this.closeAfterResponse = true
      this.pending = null
      this.lingeringClose()
      return
    }
    this.resume(P_PIPELINE)
    if (!this.processing) this.processPending()
  }

  /** Parse and start as many requests as the buffered bytes allow, one exchange at a time. */
  private processPending(): void {
    if (this.processing) return
    this.processing = true
    try {
      while (this.pending !== null && this.responseDone && this.bodyDone && !this.closed && !this.closeAfterResponse) {
        let buf = this.pending
        // RFC 9112 2.2: ignore at least one empty line before a request-line.
        let s = 0
        while (s + 1 < buf.length && buf[s] === 0x0d && buf[s + 1] === 0x0a && s < 4) s += 2
        const idx = buf.indexOf(CRLFCRLF, s)
        if (idx === -1) {
          if (hasBareLf(buf, s)) return this.failRequest(new HttpError(400, 'WEFT_ERR_HTTP_PARSE', 'bare LF in request head'))
          if (buf.length - s > this.limits.maxHeaderBytes) {
            return this.failRequest(new HttpError(431, 'WEFT_ERR_HTTP_HEAD_TOO_LARGE', 'request head too large'))
          }
          // The client ended its side inside a request head: it can never complete; close now
          // rather than holding the socket half-closed until the head timeout.
          if (this.peerEnded) {
            this.pending = null
            this.socket.destroySoon()
            return
          }
          if (this.headStartedAt === 0) this.headStartedAt = this.ctx.now()
          return
        }
        if (idx - s > this.limits.maxHeaderBytes) {
          return this.failRequest(new HttpError(431, 'WEFT_ERR_HTTP_HEAD_TOO_LARGE', 'request head too large'))
        }
        this.headStartedAt = 0
        const head = parseRequestHead(buf.latin1Slice(s, idx), this.limits.maxHeaders)
        if (head instanceof HttpError) return this.failRequest(head)
        let rest = idx + 4
        this.pending = rest < buf.length ? buf.subarray(rest) : null
        // The config the request started with: a reload during it changes nothing for it.
        const config = this.ctx.config
        this.limits = config.limits
        const ex = new Exchange(this, head, config, this.ctx.counters)
        this.exchange = ex
        this.responseDone = false
        this.discarded = 0
        const hasBody = head.chunked || head.contentLength > 0
        this.bodyDone = !hasBody
        if (head.chunked) this.decoder = new ChunkedDecoder()
        else this.bodyRemaining = head.contentLength > 0 ? head.contentLength : 0
        ex.start(hasBody)
        if (!hasBody || this.pending === null || this.closed) continue
        buf = this.pending
        this.pending = null
        const used = this.feedBody(buf, 0)
        if (used < 0) return
        if (used < buf.length) this.pending = buf.subarray(used)
      }
      if (this.pending !== null && this.pending.length > this.limits.maxHeaderBytes && !this.responseDone) this.pause(P_PIPELINE)
    } finally {
      this.processing = false
    }
    // A pipelined request with a body started after the client's FIN: its body can never complete
    // (onEnd already ran, so nothing else would notice).
    if (this.peerEnded && !this.bodyDone && this.exchange !== null && this.lingerUntil === 0 && !this.closed) {
      this.failRequest(new HttpError(400, 'WEFT_ERR_HTTP_INCOMPLETE_BODY', 'client closed before the request body was complete'))
      return
    }
    // The client is done sending and everything it sent is answered.
    if (this.peerEnded && this.exchange === null && this.responseDone && !this.closed) this.socket.destroySoon()
  }

  /** Answer a request we cannot or will not read, and close: nothing is forwarded. */
  private failRequest(err: HttpError): void {
    this.ctx.counters.downstreamProtocolErrors++
    this.pending = null
    this.closeAfterResponse = true
    this.bodyDone = true
    this.decoder = null
    const ex = this.exchange
    // A 400 can still be sent if the client has not seen a byte of a response to this request.
    // The upstream (if the request was already routed) gets its connection closed mid-request, so
    // it never sees a complete one.
    const replyPossible = ex === null ? this.responseDone : !ex.wroteResponse
    if (ex !== null) {
      ex.abortFromDownstream()
      this.exchange = null
    }
    if (replyPossible) {
      this.responseDone = true
      const body = err.code + ': ' + err.message + '\n'
      this.socket.write(
        'HTTP/1.1 ' + err.status + ' ' + reasonPhrase(err.status) +
          '\r\ncontent-type: text/plain\r\ncontent-length: ' + body.length +
          '\r\nx-weft-response-flags: DPE\r\nx-weft-error: ' + err.code + '\r\nconnection: close\r\n\r\n' + body,
        'latin1',
      )
      this.lingeringClose()
    } else if (this.responseDone) {
      this.lingeringClose()
    } else {
      // A response is already on its way; the bad bytes make the rest of it meaningless.
      this.socket.destroy()
    }
  }

  /** Send FIN after what is written, drop whatever the client still sends, destroy after LINGER_MS or its FIN. */
  private lingeringClose(): void {
    if (this.lingerUntil !== 0 || this.closed) return
    this.lingerUntil = this.ctx.now() + LINGER_MS
    this.pauseReasons = 0
    this.socket.resume()
    this.socket.end()
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** Called periodically with the coarse clock: head and idle timeouts. */
  sweep(now: number): void {
    const l = this.limits
    if (this.lingerUntil !== 0) {
      if (now > this.lingerUntil) this.socket.destroy()
      return
    }
    if (this.headStartedAt !== 0 && now - this.headStartedAt > l.requestHeadTimeoutMs && this.responseDone) {
      this.ctx.counters.timeouts++
      this.failRequest(new HttpError(408, 'WEFT_ERR_HTTP_HEAD_TIMEOUT', 'request head not received in time'))
      return
    }
    if (now - this.lastActivityAt > l.firstByteTimeoutMs && this.socket.bytesRead === 0) {
      // not a byte since the accept (HAProxy answers such a connection 408 after 5 s)
      this.ctx.counters.timeouts++
      this.failRequest(new HttpError(408, 'WEFT_ERR_FIRST_BYTE_TIMEOUT', 'no request received in time'))
      return
    }
    if (this.responseDone && now - this.lastActivityAt > l.idleTimeoutMs) {
      this.ctx.counters.timeouts++
      this.socket.destroy()
    }
  }

  /**
   * Graceful drain: the response in flight (or the next one) carries Connection: close and the
   * connection closes after it; closeIdle: an idle connection closes now.
   */
  drain(closeIdle: boolean): void {
    this.draining = true
    if (closeIdle && this.exchange === null && this.responseDone && (this.pending === null || this.pending.length === 0)) {
      this.lingeringClose()
    }
  }

  private onEnd(): void {
    if (this.tunnelled) return
    this.peerEnded = true
    if (!this.bodyDone && this.lingerUntil === 0) {
      // The client stopped sending in the middle of a request body: it can never complete.
      this.failRequest(new HttpError(400, 'WEFT_ERR_HTTP_INCOMPLETE_BODY', 'client closed before the request body was complete'))
      return
    }
    if (this.lingerUntil !== 0) this.socket.destroySoon()
    else if (this.exchange === null && this.responseDone) this.processPending()
  }

  private onClose(): void {
    this.closed = true
    if (this.tunnelled) return // the tunnel reports it
    if (this.exchange !== null) {
      this.exchange.abortFromDownstream()
      this.exchange = null
    }
    this.ctx.connectionClosed(this)
  }
}
