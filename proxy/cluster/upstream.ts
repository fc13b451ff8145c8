// One HTTP/1.1 connection to an endpoint: writes requests given to it, parses responses strictly
// and hands them to the bound handler. Owned by an EndpointPool; bound to one exchange at a time.
import type { Socket } from 'node:net'
import { ChunkedDecoder, type ChunkSink } from '../../api/http1/chunked.ts'
import { HttpError, parseResponseHead, type ResponseHead } from '../../api/http1/head.ts'
import type { ReadBuffer } from '../net/read-buffer.ts'

export interface UpstreamHandler {
  onUpstreamInformational(head: ResponseHead): void
  onUpstreamHead(head: ResponseHead, hasBody: boolean): void
  onUpstreamData(buf: Buffer, start: number, end: number): void
  /** the response is complete; trailers is a raw "name: value\r\n" block or "" */
  onUpstreamEnd(trailers: string): void
  /**
   * The connection failed. flag: UC (closed/reset), UPE (protocol error). `responseStarted` says
   * whether any response byte was seen.
   */
  onUpstreamError(err: HttpError, flag: string, responseStarted: boolean): void
  onUpstreamDrain(): void
  /** end of one read from the socket: a good moment to flush corked writes */
  onUpstreamFlush(): void
  /**
   * 101 Switching Protocols to an upgrade request (bound with `upgrade`): the connection has left
   * its pool (detach()) and belongs to the handler. rest: bytes after the head (a copy), or null.
   */
  onUpstreamUpgrade?(head: ResponseHead, rest: Buffer | null, rb: ReadBuffer | null): void
}

const CRLFCRLF = Buffer.from('\r\n\r\n')

const R_IDLE = 0
const R_HEAD = 1
const R_BODY_LENGTH = 2
const R_BODY_CHUNKED = 3
const R_BODY_CLOSE = 4

export interface PoolHooks {
  release(conn: UpstreamConn): void
  closed(conn: UpstreamConn): void
}

export class UpstreamConn implements ChunkSink {
  readonly socket: Socket
  private readonly pool: PoolHooks
  private readonly rb: ReadBuffer | null
  private readonly maxHeaderBytes: number
  private readonly maxHeaders: number
  handler: UpstreamHandler | null = null
  /** used before: a failure before any response byte may be a stale keep-alive race */
  reused = false
  /** coarse-clock time it went idle */
  idleSince = 0
  private state = R_IDLE
  private pending: Buffer | null = null
  private remaining = 0
  private decoder: ChunkedDecoder | null = null
  private noBody = false
  private keep = true
  private started = false
  private dead = false
  /** the upstream sent FIN (a close-delimited body ended properly, not by a reset) */
  private endSeen = false
  /** the bound request asks to switch protocols: a 101 is its answer, not a protocol error */
  private upgrade = false
  /** switched protocols: the socket belongs to a tunnel, not to this object or the pool */
  private detached = false

  /** rb: the read buffer the socket reads into (created with onread), or null for 'data' events */
  constructor(socket: Socket, pool: PoolHooks, rb: ReadBuffer | null, maxHeaderBytes: number, maxHeaders: number) {
    this.socket = socket
    this.pool = pool
    this.rb = rb
    this.maxHeaderBytes = maxHeaderBytes
    this.maxHeaders = maxHeaders
    if (rb === null) socket.on('data', (b: Buffer) => this.onData(b))
    socket.on('drain', () => this.handler?.onUpstreamDrain())
    socket.on('error', () => {}) // reported through 'close'
    socket.on('end', () => {
      this.endSeen = true
    })
    socket.on('close', () => this.onClose())
  }

  /** Bind to an exchange; `headRequest`: the response to HEAD has no body; `upgrade`: the request asks to switch protocols. */
  bind(h: UpstreamHandler, headRequest: boolean, upgrade = false): void {
    this.handler = h
    this.noBody = headRequest
    this.state = R_HEAD
    this.started = false
    this.keep = true
    this.upgrade = upgrade
  }

  /**
   * Leave the pool for good (after a 101): the slot is freed now, the socket is the caller's, and
   * nothing here reacts to its events any more. Returns the read buffer it reads into.
   */
  detach(): ReadBuffer | null {
    this.detached = true
    this.dead = true
    this.handler = null
    this.state = R_IDLE
    this.pool.closed(this)
    return this.rb
  }

  get alive(): boolean {
    return !this.dead && !this.socket.destroyed
  }

  destroy(): void {
    if (this.dead) return
    // Dead from now on: the pool must not hand it out before the 'close' event.
    this.dead = true
    this.handler = null
    this.socket.destroy()
  }

  /** the bytes last read are still referenced by a write that did not flush at once */
  retainRead(): void {
    if (this.rb !== null) this.rb.retained = true
  }

  /** reads through the ReadBuffer (see net/read-buffer.ts) */
  onBytes(buf: Buffer, n: number): void {
    this.onData(buf.subarray(0, n))
  }

  private onData(b: Buffer): void {
    if (this.detached) return
    if (this.state === R_IDLE || this.handler === null) {
      // Bytes nobody asked for: the connection is out of sync, never reuse it.
      this.socket.destroy()
      return
    }
    this.started = true
    let buf = b
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, b])
      this.pending = null
    }
    let i = 0
    const end = buf.length
    const bound = this.handler
    while (i < end && this.handler === bound) {
      switch (this.state) {
        case R_HEAD: {
          const from = i
          const idx = buf.indexOf(CRLFCRLF, from)
          if (idx === -1) {
            if (end - from > this.maxHeaderBytes) return this.protocolError('upstream response head too large')
            this.pending = Buffer.from(buf.subarray(from)) // a copy: the read buffer is reused
            return
          }
          const head = parseResponseHead(buf.latin1Slice(from, idx), this.maxHeaders)
          i = idx + 4
          if (head instanceof HttpError) return this.protocolError(head.message)
          if (head.status < 200) {
            if (head.status === 101) {
              if (!this.upgrade || bound.onUpstreamUpgrade === undefined || this.noBody) return this.protocolError('unexpected 101 Switching Protocols')
              // The rest of this read is the new protocol's: copied, the read buffer is reused.
              const rest = i < end ? Buffer.from(buf.subarray(i, end)) : null
              bound.onUpstreamUpgrade(head, rest, this.detach())
              return
            }
            bound.onUpstreamInformational(head)
            continue
          }
          this.keep = !head.close
          const bodyless = this.noBody || head.status === 204 || head.status === 304
          if (bodyless) {
            bound.onUpstreamHead(head, false)
            this.finish('')
          } else if (head.chunked) {
            this.decoder = new ChunkedDecoder()
            this.state = R_BODY_CHUNKED
            bound.onUpstreamHead(head, true)
          } else if (head.contentLength >= 0) {
            this.remaining = head.contentLength
            this.state = R_BODY_LENGTH
            bound.onUpstreamHead(head, head.contentLength > 0)
            if (this.remaining === 0) this.finish('')
          } else {
            this.keep = false
            this.state = R_BODY_CLOSE
            bound.onUpstreamHead(head, true)
          }
          break
        }
        case R_BODY_LENGTH: {
          const n = Math.min(this.remaining, end - i)
          this.remaining -= n
          bound.onUpstreamData(buf, i, i + n)
          i += n
          if (this.remaining === 0) this.finish('')
          break
        }
        case R_BODY_CHUNKED: {
          const next = this.decoder!.push(buf, i, end, this)
          if (next === -1) return this.protocolError(this.decoder!.error)
          i = next
          break
        }
        case R_BODY_CLOSE:
          bound.onUpstreamData(buf, i, end)
          i = end
          break
        default:
          // A response after the one we wanted: the upstream is out of sync.
          this.socket.destroy()
          return
      }
    }
    bound.onUpstreamFlush()
    // Bytes after a complete response that nobody asked for: out of sync, never reuse.
    if (i < end && !this.dead) this.socket.destroy()
  }

  onChunkData(buf: Buffer, start: number, end: number): void {
    this.handler?.onUpstreamData(buf, start, end)
  }

  onChunkedEnd(trailers: string): void {
    this.decoder = null
    this.finish(trailers)
  }

  private finish(trailers: string): void {
    const h = this.handler
    this.state = R_IDLE
    this.handler = null
    this.pending = null
    if (h !== null) h.onUpstreamEnd(trailers)
    // The exchange decides whether the connection goes back to the pool (it knows whether the
    // request was fully written); it calls release() or destroy().
  }

  /** After onUpstreamEnd: return to the pool if both sides allow reuse. */
  release(requestFullySent: boolean): void {
    if (this.dead) return
    if (this.keep && requestFullySent && this.state === R_IDLE) {
      this.reused = true
      if (this.socket.isPaused()) this.socket.resume()
      this.pool.release(this)
    } else {
      this.socket.destroy()
    }
  }

  private protocolError(msg: string): void {
    const h = this.handler
    this.handler = null
    this.state = R_IDLE
    this.socket.destroy()
    h?.onUpstreamError(new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', msg), 'UPE', this.started)
  }

  private onClose(): void {
    if (this.detached) return
    this.dead = true
    const h = this.handler
    this.handler = null
    // Free the pool slot first: a retry from the handler may need it.
    this.pool.closed(this)
    if (h !== null) {
      if (this.state === R_BODY_CLOSE && this.endSeen) {
        this.state = R_IDLE
        h.onUpstreamEnd('')
      } else {
        h.onUpstreamError(
          new HttpError(502, 'WEFT_ERR_UPSTREAM_RESET', 'upstream connection closed before the response completed'),
          'UC',
          this.started,
        )
      }
    }
  }
}
