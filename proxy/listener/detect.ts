// Protocol detection on an accepted connection: the first bytes say HTTP/2 (the prior-knowledge
// connection preface), HTTP/1.x (a method token and a space), or neither (opaque TCP). Bounded in
// bytes (a decision within the first DETECT_MAX_BYTES) and in time: a client that sends nothing is
// the client of a server-speaks-first protocol (SMTP, MySQL, …) and is tunnelled once the
// listener's detectTimeout (default 100 ms) passes, instead of after Linkerd's 10 s.
//
// The bytes read here are not lost: they are handed to the HTTP/1 connection (which processes them
// as its first read, in the same read buffer, so an HTTP/1 request costs no copy) or queued for the
// tunnel. The socket's reads are moved to the new owner (retargetReads): nothing is read twice.
import type { Socket } from 'node:net'
import { ReadBuffer, readIntoBuffer } from '../net/read-buffer.ts'

export const DETECT_UNDECIDED = 0
export const DETECT_HTTP1 = 1
export const DETECT_HTTP2 = 2
export const DETECT_TCP = 3

/** RFC 9113 3.4 */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
/** a decision is always taken within this many bytes: the preface is 24, a method of 19 plus SP after 2 empty lines too */
export const DETECT_MAX_BYTES = 24
/** longest method token taken for HTTP (UPDATEREDIRECTREF, the longest registered, is 17) */
const MAX_METHOD = 19

const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1

/** buf is a (possibly partial) prefix of the HTTP/2 preface, of at least `min` bytes */
function prefacePrefix(buf: Buffer, min: number): boolean {
  const m = Math.min(buf.length, H2_PREFACE.length)
  return m >= min && buf.compare(H2_PREFACE, 0, m, 0, m) === 0
}

/**
 * Classify the first bytes of a connection. `final`: no more bytes will come (timeout, FIN), so
 * decide on what is there. HTTP/1: RFC 9112 allows empty lines before the request line (the codec
 * skips two), then a token and SP. Anything else is TCP: a TLS ClientHello (0x16), Redis (`*1\r\n`),
 * PostgreSQL (a length), … A text protocol whose first word is followed by a space looks like
 * HTTP/1 to any bounded detector: declare its port `protocol: tcp`.
 */
export function classify(buf: Buffer, final: boolean): number {
  const n = buf.length
  if (prefacePrefix(buf, 1)) {
    if (n >= H2_PREFACE.length) return DETECT_HTTP2
    if (!final) return DETECT_UNDECIDED
    if (n >= 4) return DETECT_HTTP2 // "PRI " and more of the preface: an HTTP/2 client that stopped
  }
  let s = 0
  while (s + 1 < n && s < 4 && buf[s] === 0x0d && buf[s + 1] === 0x0a) s += 2
  let i = s
  while (i < n && TCHAR[buf[i]] === 1) {
    if (++i - s > MAX_METHOD) return DETECT_TCP
  }
  if (i < n) {
    if (i > s && buf[i] === 0x20) return DETECT_HTTP1
    // a lone CR of a third empty line, or the CR of a pair still arriving
    if (!(i === s && buf[i] === 0x0d && i + 1 === n && !final)) return DETECT_TCP
  }
  if (final) return i > s ? DETECT_HTTP1 : DETECT_TCP
  return DETECT_UNDECIDED
}

/** What the detector tells its listener. */
export interface DetectOwner {
  /**
   * The connection speaks `protocol` (DETECT_*), or the client left before saying (DETECT_UNDECIDED,
   * socket closed). first: the bytes read so far (null: none; valid only during the call unless
   * copied); rb: the read buffer the socket reads into (null: it reads 'data' events and the
   * detector's listener is removed); ended: the client's FIN was seen.
   */
  detected(d: Detector, protocol: number, first: Buffer | null, rb: ReadBuffer | null, ended: boolean): void
  /** the listener's limits, for the sweep of a connection that never decides */
  readonly config: { readonly limits: { readonly requestHeadTimeoutMs: number; readonly firstByteTimeoutMs: number } }
  /** a connection that sent nothing within firstByteTimeout was closed */
  firstByteTimeout(d: Detector): void
}

const FIRST_BYTE_BODY = 'WEFT_ERR_FIRST_BYTE_TIMEOUT: no request received in time\n'
const FIRST_BYTE_408 =
  'HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\ncontent-length: ' + FIRST_BYTE_BODY.length +
  '\r\nx-weft-response-flags: DPE\r\nx-weft-error: WEFT_ERR_FIRST_BYTE_TIMEOUT\r\nconnection: close\r\n\r\n' + FIRST_BYTE_BODY

export class Detector {
  readonly socket: Socket
  private readonly owner: DetectOwner
  private readonly rb = new ReadBuffer()
  private readonly fast: boolean
  /** bytes so far when more than one read was needed (a copy) */
  private buf: Buffer | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  /** without a TCP target the only thing worth waiting for is the rest of an HTTP/2 preface */
  private readonly tcpFallback: boolean
  private decided = false
  /** answered 408 for sending nothing: whatever comes now is dropped */
  private timedOut = false
  private ended = false
  readonly startedAt: number
  private readonly onDataEvent = (b: Buffer): void => this.onBytes(b)
  private readonly onEndEvent = (): void => this.onEnd()
  private readonly onCloseEvent = (): void => this.onClose()

  /**
   * timeoutMs > 0: the listener has a TCP target; a client silent for that long goes to it. The
   * timer is Node's: timers of one duration share one list and one libuv timer, so this is a FIFO
   * of deadlines, not a timer each; the sweeper's tick (up to 1 s) is too coarse for 100 ms.
   */
  constructor(socket: Socket, owner: DetectOwner, now: number, timeoutMs: number) {
    this.socket = socket
    this.owner = owner
    this.startedAt = now
    this.tcpFallback = timeoutMs > 0
    socket.setNoDelay(true)
    this.fast = readIntoBuffer(socket, this.rb, (buf, n) => this.onBytes(buf.subarray(0, n)))
    if (!this.fast) socket.on('data', this.onDataEvent)
    socket.on('end', this.onEndEvent)
    socket.on('error', () => {})
    socket.on('close', this.onCloseEvent)
    if (timeoutMs > 0) this.timer = setTimeout(() => this.onTimeout(), timeoutMs)
  }

  private onBytes(chunk: Buffer): void {
    if (this.decided || this.timedOut) return
    const buf = this.buf === null ? chunk : Buffer.concat([this.buf, chunk])
    let p = classify(buf, false)
    if (p === DETECT_UNDECIDED && !this.tcpFallback && !prefacePrefix(buf, 1)) p = DETECT_HTTP1
    if (p === DETECT_UNDECIDED) {
      // Kept for the next read, which reuses the read buffer.
      this.buf = buf === chunk ? Buffer.from(chunk) : buf
      return
    }
    this.finish(p, buf)
  }

  private onTimeout(): void {
    this.timer = null
    if (this.decided) return
    this.finish(this.buf === null ? DETECT_TCP : classify(this.buf, true), this.buf)
  }

  private onEnd(): void {
    this.ended = true
    if (this.decided) return
    if (this.buf !== null) this.finish(classify(this.buf, true), this.buf)
    // A FIN before any byte: with a TCP target that is still a TCP client (it may want the
    // server's banner; the FIN is passed on); without one there is nothing to answer.
    else if (this.tcpFallback) this.finish(DETECT_TCP, null)
    else this.socket.destroySoon()
  }

  private onClose(): void {
    if (this.decided) return
    this.decided = true
    this.clearTimer()
    this.owner.detected(this, DETECT_UNDECIDED, null, null, this.ended)
  }

  private finish(protocol: number, first: Buffer | null): void {
    this.decided = true
    this.clearTimer()
    const s = this.socket
    if (!this.fast) s.off('data', this.onDataEvent)
    s.off('end', this.onEndEvent)
    s.off('close', this.onCloseEvent)
    this.owner.detected(this, protocol, first, this.fast ? this.rb : null, this.ended)
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer)
      this.timer = null
    }
  }

  /**
   * A connection that never decides: nothing sent and no TCP target (the first-byte timeout, as
   * HAProxy's 408 after 5 s: without a TCP target the listener speaks HTTP only), or part of an
   * HTTP/2 preface (the request head timeout).
   */
  sweep(now: number): void {
    const l = this.owner.config.limits
    if (this.timedOut) return
    if (this.buf === null && !this.decided) {
      // with a TCP target a silent client is a server-speaks-first one: detectTimeout decides
      if (this.tcpFallback || now - this.startedAt <= l.firstByteTimeoutMs) return
      this.timedOut = true
      this.owner.firstByteTimeout(this)
      // no byte came, so nothing says which HTTP; an HTTP/1 client reads this, an HTTP/2 one
      // sees its connection end before its preface was answered
      this.socket.end(FIRST_BYTE_408)
      this.socket.destroySoon()
      return
    }
    if (now - this.startedAt > l.requestHeadTimeoutMs) this.socket.destroy()
  }

  /**
   * Graceful drain: nothing has been answered on it yet, so it closes now ('close' reports it);
   * in the drain's first step it goes on (a request may be on its way), drained once detected.
   */
  drain(closeIdle: boolean): void {
    if (closeIdle && !this.decided) this.socket.destroy()
  }
}
