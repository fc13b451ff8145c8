// Random trace and span ids as lower-case hex, cheap enough to make two per request.
//
// Random bytes come from the OS CSPRNG in blocks (one randomFillSync per POOL_BYTES) and are
// hex-encoded once per block into a string; an id is then a slice of that string (V8 keeps a
// 16/32-char slice as a view of the block, no copy, no hex work per id). Ids are unique and
// unpredictable for tracing purposes; they are not secrets.
import { randomFillSync } from 'node:crypto'

const POOL_BYTES = 4096
const POOL_HEX = POOL_BYTES * 2
const ZERO16 = '0000000000000000'

const pool = Buffer.allocUnsafe(POOL_BYTES)
let hex = ''
let pos = POOL_HEX

function refill(): void {
  randomFillSync(pool)
  hex = pool.toString('hex')
  pos = 0
}

/** 64-bit id: 16 lower-case hex chars, never all zeros (a span id, or a 64-bit trace id). */
export function randomId64(): string {
  if (pos + 16 > POOL_HEX) refill()
  const id = hex.slice(pos, pos + 16)
  pos += 16
  return id === ZERO16 ? randomId64() : id
}

/**
 * 128-bit id: 32 lower-case hex chars whose high 64 bits are never all zeros (a trace id; Zipkin
 * would shorten one with a zero high half to 16 chars, and it would no longer match what we propagate).
 */
export function randomId128(): string {
  if (pos + 32 > POOL_HEX) refill()
  const id = hex.slice(pos, pos + 32)
  pos += 32
  return id.startsWith(ZERO16) ? randomId128() : id
}
