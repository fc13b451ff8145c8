// Raw HTTP/2 frames for tests: build what node:http2's client refuses to send (content-length
// that disagrees with DATA, malformed fields, pseudo-headers in the wrong order, RST_STREAM in the
// same write as HEADERS, …) and read the proxy's frames back from a plain net socket.
//
// HPACK (RFC 7541): the encoder writes every field as a literal without indexing, new name, no
// Huffman (6.2.2), so any byte can be sent, uppercase and CR/LF/NUL included. The decoder reads
// only :status (what tests need), from the static table or a literal whose value is plain or
// Huffman-coded digits.
import { connect as h2connect, type IncomingHttpHeaders } from 'node:http2'
import { connect, type Socket } from 'node:net'

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const
export const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const
export const E = {
  NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, SETTINGS_TIMEOUT: 4, STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, CONNECT_ERROR: 10, ENHANCE_YOUR_CALM: 11,
} as const
/** SETTINGS identifiers */
export const S = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const

export interface Frame {
  type: number
  flags: number
  streamId: number
  payload: Buffer
}

/** One frame: 9-byte header and payload. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(streamId & 0x7fffffff, 5)
  return Buffer.concat([h, payload])
}

export function settings(pairs: [number, number][] = []): Buffer {
  const p = Buffer.alloc(pairs.length * 6)
  pairs.forEach(([id, v], i) => {
    p.writeUInt16BE(id, i * 6)
    p.writeUInt32BE(v, i * 6 + 2)
  })
  return frame(T.SETTINGS, 0, 0, p)
}

export function settingsAck(): Buffer {
  return frame(T.SETTINGS, F.ACK, 0)
}

function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1
  if (value < max) return [first | value]
  const out = [first | max]
  value -= max
  while (value >= 128) {
    out.push((value % 128) + 128)
    value = Math.floor(value / 128)
  }
  out.push(value)
  return out
}

/** An HPACK block of literal-without-indexing fields (names and values sent byte for byte, latin1). */
export function hpack(fields: [string, string][]): Buffer {
  const parts: Buffer[] = []
  for (const [n, v] of fields) {
    const nb = Buffer.from(n, 'latin1')
    const vb = Buffer.from(v, 'latin1')
    parts.push(Buffer.from([0x00, ...hpackInt(nb.length, 7, 0)]), nb, Buffer.from(hpackInt(vb.length, 7, 0)), vb)
  }
  return Buffer.concat(parts)
}

export interface HeadersOptions {
  endStream?: boolean
  /** default true; false: CONTINUATION frames must follow */
  endHeaders?: boolean
}

/** HEADERS with `fields` (or a ready block). */
export function headers(streamId: number, fields: [string, string][] | Buffer, o: HeadersOptions = {}): Buffer {
  const block = Buffer.isBuffer(fields) ? fields : hpack(fields)
  const flags = (o.endStream === true ? F.END_STREAM : 0) | (o.endHeaders === false ? 0 : F.END_HEADERS)
  return frame(T.HEADERS, flags, streamId, block)
}

export function continuation(streamId: number, block: Buffer, endHeaders = true): Buffer {
  return frame(T.CONTINUATION, endHeaders ? F.END_HEADERS : 0, streamId, block)
}

export function data(streamId: number, payload: Buffer | string, endStream = false): Buffer {
  return frame(T.DATA, endStream ? F.END_STREAM : 0, streamId, Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'latin1'))
}

export function rstStream(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4)
  p.writeUInt32BE(code)
  return frame(T.RST_STREAM, 0, streamId, p)
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const p = Buffer.alloc(4)
  p.writeUInt32BE(increment)
  return frame(T.WINDOW_UPDATE, 0, streamId, p)
}

export function goaway(lastStreamId: number, code: number, debug = ''): Buffer {
  const p = Buffer.alloc(8)
  p.writeUInt32BE(lastStreamId & 0x7fffffff)
  p.writeUInt32BE(code, 4)
  return frame(T.GOAWAY, 0, 0, Buffer.concat([p, Buffer.from(debug)]))
}

export function ping(payload = Buffer.alloc(8), ack = false): Buffer {
  return frame(T.PING, ack ? F.ACK : 0, 0, payload)
}

/** A GET/POST request's fields: pseudo-headers first, then `extra`. */
export function requestFields(method: string, path: string, extra: [string, string][] = [], authority = 'app.test'): [string, string][] {
  return [[':method', method], [':scheme', 'http'], [':path', path], [':authority', authority], ...extra]
}

/** Split complete frames off `buf`. */
export function parseFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = []
  let p = 0
  while (buf.length - p >= 9) {
    const len = buf.readUIntBE(p, 3)
    if (buf.length - p < 9 + len) break
    frames.push({ type: buf[p + 3], flags: buf[p + 4], streamId: buf.readUInt32BE(p + 5) & 0x7fffffff, payload: buf.subarray(p + 9, p + 9 + len) })
    p += 9 + len
  }
  return { frames, rest: buf.subarray(p) }
}

/** The error code of a RST_STREAM or GOAWAY frame. */
export function errorCode(f: Frame): number {
  return f.type === T.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0)
}

// Huffman codes of the digits (RFC 7541 Appendix B), the only characters of a :status value.
const HUFF_DIGITS: [number, number][] = [[0b00000, 5], [0b00001, 5], [0b00010, 5], [0b011001, 6], [0b011010, 6], [0b011011, 6], [0b011100, 6], [0b011101, 6], [0b011110, 6], [0b011111, 6]]
const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 }

function huffDigits(b: Buffer): string {
  let bits = 0
  let n = 0
  let out = ''
  for (const byte of b) {
    bits = (bits << 8) | byte
    n += 8
    for (;;) {
      let hit = false
      for (let d = 0; d < 10; d++) {
        const [code, len] = HUFF_DIGITS[d]
        if (n >= len && ((bits >> (n - len)) & ((1 << len) - 1)) === code) {
          out += d
          n -= len
          bits &= (1 << n) - 1
          hit = true
          break
        }
      }
      if (!hit) break
    }
  }
  return out
}

/**
 * :status of a response HEADERS block when it is the first field (node:http2 writes it first):
 * indexed from the static table, or a literal with the static name :status. -1: not understood.
 */
export function statusOf(block: Buffer): number {
  const b0 = block[0]
  if ((b0 & 0x80) !== 0) return STATIC_STATUS[b0 & 0x7f] ?? -1
  // literal with incremental indexing (01xxxxxx), without indexing (0000xxxx) or never indexed (0001xxxx)
  const idx = (b0 & 0xc0) === 0x40 ? b0 & 0x3f : b0 & 0x0f
  if (idx < 8 || idx > 14) return -1
  const h = (block[1] & 0x80) !== 0
  const len = block[1] & 0x7f
  const v = block.subarray(2, 2 + len)
  return Number(h ? huffDigits(v) : v.toString('latin1'))
}

/** A raw HTTP/2 client: write exact bytes, collect the frames received. */
export class H2RawClient {
  readonly socket: Socket
  readonly frames: Frame[] = []
  private buf = Buffer.alloc(0)
  /** the peer sent FIN */
  ended = false
  closed = false
  private waiters: (() => void)[] = []

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (b: Buffer) => {
      const { frames, rest } = parseFrames(this.buf.length === 0 ? b : Buffer.concat([this.buf, b]))
      this.buf = Buffer.from(rest)
      for (const f of frames) {
        // answer the server's SETTINGS and PINGs as a client must, unless told not to
        if (this.autoAck && f.type === T.SETTINGS && (f.flags & F.ACK) === 0) socket.write(settingsAck())
        this.frames.push(f)
      }
      this.wake()
    })
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  /** ack the server's SETTINGS automatically (default true) */
  autoAck = true

  /**
   * Connect to 127.0.0.1:port; with `preface` (default true) send the connection preface and an
   * empty SETTINGS (plus `settingsPairs`) at once.
   */
  static connect(port: number, o: { preface?: boolean; settings?: [number, number][]; allowHalfOpen?: boolean } = {}): Promise<H2RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, allowHalfOpen: o.allowHalfOpen ?? true })
      s.setNoDelay(true)
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        const c = new H2RawClient(s)
        if (o.preface !== false) s.write(Buffer.concat([PREFACE, settings(o.settings ?? [])]))
        resolve(c)
      })
    })
  }

  /** Write frames in one write (one read on the other side, most likely). */
  send(...frames: Buffer[]): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve()
      this.socket.write(Buffer.concat(frames), () => resolve())
    })
  }

  /** the peer closed or ended the connection */
  get done(): boolean {
    return this.ended || this.closed
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  private changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** The first frame (received so far or later) that matches; null on timeout or when the connection ends first. */
  async waitFrame(match: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame | null> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const f = this.frames.find(match)
      if (f !== undefined) return f
      const left = deadline - Date.now()
      if (left <= 0 || this.done) return null
      await this.changed(left)
    }
  }

  /** RST_STREAM on `streamId` (or a GOAWAY): the first of them, null on timeout. */
  waitReset(streamId: number, timeoutMs = 3000): Promise<Frame | null> {
    return this.waitFrame((f) => (f.type === T.RST_STREAM && f.streamId === streamId) || f.type === T.GOAWAY, timeoutMs)
  }

  /** The response HEADERS of a stream. */
  waitResponse(streamId: number, timeoutMs = 3000): Promise<Frame | null> {
    return this.waitFrame((f) => f.type === T.HEADERS && f.streamId === streamId, timeoutMs)
  }

  /** Wait until the peer ends or closes the connection; true if it did within timeoutMs. */
  async waitClose(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.done) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await this.changed(left)
    }
    return true
  }

  /** DATA payloads received on a stream, concatenated. */
  body(streamId: number): Buffer {
    return Buffer.concat(this.frames.filter((f) => f.type === T.DATA && f.streamId === streamId).map((f) => f.payload))
  }

  /** FIN (half close, as curl does), nothing else. */
  end(): void {
    this.socket.end()
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** GET /ok (authority app.test) over a fresh node:http2 connection: the response's :status. */
export async function h2status(port: number, path = '/ok'): Promise<number> {
  const c = h2connect(`http://127.0.0.1:${port}`)
  c.on('error', () => {})
  try {
    return await new Promise((resolve, reject) => {
      const st = c.request({ ':path': path, ':authority': 'app.test' })
      let h: IncomingHttpHeaders = {}
      st.on('response', (x) => (h = x))
      st.on('data', () => {})
      st.on('end', () => resolve(Number(h[':status'])))
      st.on('error', reject)
    })
  } finally {
    c.destroy()
  }
}
