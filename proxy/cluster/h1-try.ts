// A try on an HTTP/1 upstream: one connection of the endpoint's pool (pool.ts, upstream.ts),
// opened by EndpointPool.dispatch. It waits for the connection with the request body queued,
// writes the head the handler gives it and the body (chunk-framed when the head says so), and
// hands the connection's parsed response to the handler. A reused keep-alive connection that fails before any response
// byte most likely raced the upstream's idle close: a request without body goes again, once, on a
// fresh connection. At the response's end the connection goes back to the pool when the request
// was written whole, else it is closed.
import type { Socket } from 'node:net'
import { chunkHeader } from '../../api/http1/chunked.ts'
import type { HttpError, ResponseHead } from '../../api/http1/head.ts'
import type { EndpointPool, PoolWaiter } from './pool.ts'
import type { UpstreamConn, UpstreamHandler } from './upstream.ts'
import type { ReadBuffer } from '../net/read-buffer.ts'
import { QueuedTry, type TryHandler, type UpstreamTry } from './try.ts'

const CRLF = '\r\n'
const LAST_CHUNK = '0\r\n'

export class H1Try extends QueuedTry implements UpstreamTry, PoolWaiter, UpstreamHandler {
  readonly dataKept = false
  readonly flushes = true
  readonly readsToEnd = true
  private readonly pool: EndpointPool
  private conn: UpstreamConn | null = null
  private chunked = false
  /** body bytes given to this try (a request with a body is not sent again after a stale failure) */
  private bodyBytes = 0
  /** the request was written whole (the connection may be reused) */
  private sent = false
  private again = false
  private paused = false

  /** queued: the body so far (kept by the try); ended: it is whole */
  constructor(pool: EndpointPool, h: TryHandler, queued: Buffer[] | null, ended: boolean) {
    super(h, queued, ended)
    this.pool = pool
    this.bodyBytes = this.queuedBytes
  }

  get buffered(): number {
    const c = this.conn
    return c === null ? this.queuedBytes : c.socket.writableLength
  }

  start(): void {
    this.pool.acquire(this)
  }

  // ---- PoolWaiter

  onPoolConnection(conn: UpstreamConn): void {
    if (this.dead) {
      conn.release(true)
      return
    }
    this.conn = conn
    const h = this.h
    conn.bind(this, h.method === 'HEAD', h.wantsUpgrade)
    const endStream = this.ended && this.queued === null
    this.chunked = h.tryChunked(endStream)
    const head = h.tryRequestH1(endStream)
    const s = conn.socket
    let ok: boolean
    // The head is built as a string (a rope of its pieces) and written as one Buffer: Node's
    // buffer write path costs less per call than its string path (measured with --cpu-prof).
    if (this.queued === null && !(this.ended && this.chunked)) {
      ok = s.write(Buffer.from(head, 'latin1'))
    } else {
      s.cork()
      s.write(Buffer.from(head, 'latin1'))
      ok = true
      const q = this.takeQueue()
      if (q !== null) for (const b of q) ok = this.writeBody(s, b)
      if (this.ended) ok = this.writeEnd(s)
      s.uncork()
    }
    if (this.ended) this.sent = true
    h.tryStarted(ok)
  }

  onPoolFailure(err: HttpError, flag: string): void {
    if (this.dead) return
    this.dead = true
    this.h.tryFailed(err, flag)
  }

  // ---- the request side

  write(b: Buffer, volatile: boolean): boolean {
    if (this.dead) return true
    this.bodyBytes += b.length
    const c = this.conn
    if (c === null) return this.queue(b, volatile)
    const s = c.socket
    const ok = this.writeBody(s, b)
    if (volatile && s.writableLength > 0) this.h.tryRetainRequest()
    return ok
  }

  private writeBody(s: Socket, b: Buffer): boolean {
    if (!this.chunked) return s.write(b)
    s.write(chunkHeader(b.length), 'latin1')
    s.write(b)
    return s.write(CRLF, 'latin1')
  }

  private writeEnd(s: Socket): boolean {
    return this.chunked ? s.write(LAST_CHUNK + this.h.tryTrailersH1() + CRLF, 'latin1') : true
  }

  end(): void {
    if (this.ended) return
    this.ended = true
    const c = this.conn
    if (c === null || this.dead) return
    this.writeEnd(c.socket)
    this.sent = true
  }

  pause(): void {
    const c = this.conn
    if (c !== null && !this.paused) {
      this.paused = true
      c.socket.pause()
    }
  }

  resume(): void {
    const c = this.conn
    if (c !== null && this.paused) {
      this.paused = false
      c.socket.resume()
    }
  }

  retainRead(): void {
    this.conn?.retainRead()
  }

  cancel(closeExcess: boolean): void {
    if (this.dead) return
    this.dead = true
    const c = this.conn
    this.conn = null
    this.queued = null
    if (c !== null) c.destroy()
    else this.pool.cancel(this, closeExcess)
  }

  // ---- UpstreamHandler: the connection's response

  onUpstreamInformational(head: ResponseHead): void {
    this.h.tryInformational(head)
  }

  onUpstreamHead(head: ResponseHead, hasBody: boolean): void {
    this.h.tryHead(head.status, head, null, !hasBody)
  }

  onUpstreamData(buf: Buffer, start: number, end: number): void {
    this.h.tryData(buf, start, end)
  }

  onUpstreamEnd(trailers: string): void {
    const c = this.conn
    if (this.dead || c === null) return
    this.dead = true
    this.conn = null
    // back to the pool when the request was written whole (release resumes a paused socket)
    c.release(this.sent)
    const h = this.h
    if (trailers !== '') h.tryTrailers(trailers, null)
    h.tryEnd()
  }

  onUpstreamError(err: HttpError, flag: string, responseStarted: boolean): void {
    const c = this.conn
    if (this.dead || c === null) return
    this.conn = null
    if (!responseStarted && c.reused && !this.again && this.ended && this.bodyBytes === 0) {
      this.again = true
      this.sent = false
      this.paused = false
      this.h.tryAgain()
      this.pool.acquire(this, true)
      return
    }
    this.dead = true
    this.h.tryError(err, flag, responseStarted)
  }

  onUpstreamDrain(): void {
    if (!this.dead) this.h.tryDrain()
  }

  onUpstreamFlush(): void {
    if (!this.dead) this.h.tryFlush()
  }

  onUpstreamUpgrade(head: ResponseHead, rest: Buffer | null, rb: ReadBuffer | null): void {
    const c = this.conn
    this.conn = null
    this.dead = true
    if (c === null) return
    this.h.tryUpgrade(head, c.socket, rb, rest)
  }
}
