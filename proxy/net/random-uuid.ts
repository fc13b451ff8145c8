// Version 4 UUIDs (RFC 9562; the request ids the proxy adds) from the kernel's random source, read
// 4 KiB at a time, without node:crypto. Loading node:crypto sets up OpenSSL and ~20 modules: ~3 MB
// resident and 10-17 ms of CPU, paid by every sidecar at its first request only for request ids
// (measured with process.moduleLoadList and RSS; README, *Footprint*). The bytes are the same kind
// node:crypto's randomUUID uses (the OS CSPRNG, there through OpenSSL's generator), each used once.
// The sidecar's bundle gives this function to the proxy's modules that import randomUUID from
// node:crypto (build/bundle.ts); where /dev/urandom cannot be read, node:crypto's is used.
import { closeSync, openSync, readSync } from 'node:fs'

const POOL_BYTES = 4096
/** ids a pool holds (16 random bytes each) */
const IDS = POOL_BYTES / 16
/** characters of an id */
const ID_CHARS = 36
const pool = Buffer.allocUnsafeSlow(POOL_BYTES)
/** the pool's ids as text, ID_CHARS bytes each */
const text = Buffer.allocUnsafeSlow(IDS * ID_CHARS)
/** the same, as one flat string (ids are slices of it) */
let ids = ''
let next = IDS
let fallback: (() => string) | null = null

/** '0'..'f' as bytes */
const HEX = Buffer.from('0123456789abcdef', 'latin1')
/** dash after these bytes of an id */
const DASH_AFTER = [0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]

/**
 * Fills the pool from /dev/urandom and writes its ids as text; false when it cannot be read (then
 * node:crypto is used).
 *
 * Why one string for a pool's ids: an id concatenated from 20 pieces is a rope of 19 cons strings
 * (~600 bytes of garbage) that the proxy walks when it writes the x-request-id header and that the
 * access log first flattens (a runtime call and a copy: ~1/4 of the log's main-thread cost a line,
 * measured). A slice of one flat string is one small object, read in place; an id kept for long
 * (the explain ring, a span) keeps its pool's 9 KiB string alive with it.
 */
function refill(): boolean {
  let fd = -1
  try {
    fd = openSync('/dev/urandom', 'r')
    for (let n = 0; n < POOL_BYTES; ) {
      const r = readSync(fd, pool, n, POOL_BYTES - n, null)
      if (r <= 0) return false
      n += r
    }
  } catch {
    return false
  } finally {
    if (fd >= 0) closeSync(fd)
  }
  let o = 0
  for (let p = 0; p < POOL_BYTES; p += 16) {
    for (let i = 0; i < 16; i++) {
      let b = pool[p + i]
      if (i === 6) b = (b & 0x0f) | 0x40 // version 4
      else if (i === 8) b = (b & 0x3f) | 0x80 // variant 10
      text[o++] = HEX[b >> 4]
      text[o++] = HEX[b & 0x0f]
      if (DASH_AFTER[i] === 1) text[o++] = 0x2d
    }
  }
  ids = text.toString('latin1', 0, IDS * ID_CHARS)
  next = 0
  return true
}

/** A version 4 UUID, lower-case hex with dashes (36 characters, one flat string). */
export function randomUUID(): string {
  if (fallback !== null) return fallback()
  if (next === IDS && !refill()) {
    fallback = (process.getBuiltinModule('node:crypto') as typeof import('node:crypto')).randomUUID
    return fallback()
  }
  const at = next++ * ID_CHARS
  return ids.slice(at, at + ID_CHARS)
}
