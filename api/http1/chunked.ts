// Streaming, strict decoder for the chunked transfer coding (RFC 9112 7.1). It validates every
// framing byte and hands out data slices; the proxy re-encodes canonically, so chunk extensions and
// odd spellings never reach the other side. Trailer fields are validated like header fields.

const S_SIZE = 0
const S_SIZE_WS = 1
const S_EXT = 2
const S_SIZE_LF = 3
const S_DATA = 4
const S_DATA_CR = 5
const S_DATA_LF = 6
const S_TRAILER = 7
const S_DONE = 8

const MAX_SIZE_DIGITS = 12 // 2^48 bytes per chunk is plenty; longer is an overflow attempt
const MAX_TRAILER_BYTES = 16384
const TRAILER_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const l = c | 0x20
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10
  return -1
}

export interface ChunkSink {
  /** a piece of body data: buf[start, end) */
  onChunkData(buf: Buffer, start: number, end: number): void
  /** the last chunk and trailer section were read; trailers is the raw "name: value\r\n..." block ("" if none) */
  onChunkedEnd(trailers: string): void
}

export class ChunkedDecoder {
  private state = S_SIZE
  private size = 0
  private digits = 0
  private trailer = ''
  /** set when the input is invalid */
  error = ''

  get done(): boolean {
    return this.state === S_DONE
  }

  /**
   * Consume buf[start, end). Returns the index just past the last byte consumed: `end` unless the
   * body ended inside the buffer (the rest belongs to the next message), or -1 on a framing error.
   */
  push(buf: Buffer, start: number, end: number, sink: ChunkSink): number {
    let i = start
    while (i < end) {
      const state = this.state
      if (state === S_DATA) {
        const n = Math.min(this.size, end - i)
        sink.onChunkData(buf, i, i + n)
        i += n
        this.size -= n
        if (this.size === 0) this.state = S_DATA_CR
        continue
      }
      const c = buf[i]
      switch (state) {
        case S_SIZE: {
          const h = hexVal(c)
          if (h >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size too large')
            this.size = this.size * 16 + h
          } else if (this.digits === 0) {
            return this.fail('invalid chunk size')
          } else if (c === 0x0d) {
            this.state = S_SIZE_LF
          } else if (c === 0x3b /* ; */) {
            this.state = S_EXT
          } else if (c === 0x20 || c === 0x09) {
            this.state = S_SIZE_WS
          } else {
            return this.fail('invalid chunk size')
          }
          break
        }
        case S_SIZE_WS: // BWS is allowed only before a chunk extension
          if (c === 0x3b) this.state = S_EXT
          else if (c !== 0x20 && c !== 0x09) return this.fail('invalid chunk size')
          break
        case S_EXT:
          if (c === 0x0d) this.state = S_SIZE_LF
          else if (c !== 0x09 && (c < 0x20 || c === 0x7f)) return this.fail('invalid chunk extension')
          break
        case S_SIZE_LF:
          if (c !== 0x0a) return this.fail('chunk size line not ended by CRLF')
          this.digits = 0
          if (this.size === 0) {
            this.state = S_TRAILER
            this.trailer = ''
          } else {
            this.state = S_DATA
          }
          break
        case S_DATA_CR:
          if (c !== 0x0d) return this.fail('chunk data not followed by CRLF')
          this.state = S_DATA_LF
          break
        case S_DATA_LF:
          if (c !== 0x0a) return this.fail('chunk data not followed by CRLF')
          this.state = S_SIZE
          this.size = 0
          break
        case S_TRAILER: {
          // Collect the trailer section up to the empty line.
          const nl = buf.indexOf(0x0a, i)
          const stop = nl === -1 || nl >= end ? end : nl + 1
          this.trailer += buf.latin1Slice(i, stop)
          if (this.trailer.length > MAX_TRAILER_BYTES) return this.fail('trailer section too large')
          i = stop
          if (nl === -1 || nl >= end) continue
          const t = this.trailer
          if (t.length < 2 || t.charCodeAt(t.length - 2) !== 0x0d) return this.fail('trailer line not ended by CRLF')
          if (t.endsWith('\r\n\r\n') || t === '\r\n') {
            const block = t === '\r\n' ? '' : t.slice(0, t.length - 2)
            const err = validateTrailers(block)
            if (err !== '') return this.fail(err)
            this.state = S_DONE
            sink.onChunkedEnd(block)
            return i
          }
          continue
        }
        case S_DONE:
          return i
      }
      i++
    }
    return i
  }

  private fail(msg: string): number {
    this.error = msg
    return -1
  }
}

function validateTrailers(block: string): string {
  if (block === '') return ''
  const lines = block.split('\r\n')
  for (let i = 0; i < lines.length - 1; i++) {
    if (!TRAILER_LINE.test(lines[i])) return 'invalid trailer field'
    const name = lines[i].slice(0, lines[i].indexOf(':')).toLowerCase()
    // Framing and routing fields are not allowed as trailers (RFC 9110 6.5.1).
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'host') return 'forbidden trailer field'
  }
  return ''
}

/** Canonical chunk-size line for n bytes. */
export function chunkHeader(n: number): string {
  return n.toString(16) + '\r\n'
}
