// Random trace and span ids, cheap enough to make for every request.
//
// Random bytes come from the OS CSPRNG in blocks (one randomFillSync per POOL_BYTES), and ids are
// hex-encoded from that pool with a table: no crypto call and no Buffer#toString per id. The
// request path (inject.ts) hex-encodes them straight into the propagation header block;
// randomId64 / randomId128 give them as strings. Ids are unique and unpredictable for tracing
// purposes; they are not secrets.
import { randomFillSync } from 'node:crypto'

const POOL_BYTES = 4096
const pool = Buffer.allocUnsafe(POOL_BYTES)
let pos = POOL_BYTES

/** '0'..'9', 'a'..'f' as char codes */
export const HEX_CHARS: Uint8Array = new Uint8Array(Buffer.from('0123456789abcdef', 'latin1'))

/**
 * Hex-encode `bytes` fresh random bytes into `dst` at `at` (2 chars per byte), and the same chars
 * again at `at2` when it is >= 0; the first 8 bytes are never all zero (no zero span id, no
 * 128-bit trace id with a zero high half, which Zipkin would shorten to 64 bits).
 */
export function writeRandomHex(dst: Uint8Array, at: number, bytes: number, at2 = -1): void {
  for (;;) {
    if (pos + bytes > POOL_BYTES) {
      randomFillSync(pool)
      pos = 0
    }
    const p = pos
    pos += bytes
    const r = pool
    if ((r[p] | r[p + 1] | r[p + 2] | r[p + 3] | r[p + 4] | r[p + 5] | r[p + 6] | r[p + 7]) === 0) continue
    for (let i = 0; i < bytes; i++) {
      const v = r[p + i]
      const hi = HEX_CHARS[v >> 4]
      const lo = HEX_CHARS[v & 15]
      dst[at + 2 * i] = hi
      dst[at + 2 * i + 1] = lo
      if (at2 >= 0) {
        dst[at2 + 2 * i] = hi
        dst[at2 + 2 * i + 1] = lo
      }
    }
    return
  }
}

const scratch = Buffer.allocUnsafe(32)

/** 64-bit id: 16 lower-case hex chars, never all zeros (a span id, or a 64-bit trace id). */
export function randomId64(): string {
  writeRandomHex(scratch, 0, 8)
  return scratch.latin1Slice(0, 16)
}

/** 128-bit id: 32 lower-case hex chars whose high 64 bits are never all zeros (a trace id). */
export function randomId128(): string {
  writeRandomHex(scratch, 0, 16)
  return scratch.latin1Slice(0, 32)
}
