// Version 4 UUIDs (RFC 9562; the request ids the proxy adds) from the kernel's random source, read
// 4 KiB at a time, without node:crypto. Loading node:crypto sets up OpenSSL and ~20 modules: ~3 MB
// resident and 10-17 ms of CPU, paid by every sidecar at its first request only for request ids
// (measured with process.moduleLoadList and RSS; README, *Footprint*). The bytes are the same kind
// node:crypto's randomUUID uses (the OS CSPRNG, there through OpenSSL's generator), each used once.
// The sidecar's bundle gives this function to the proxy's modules that import randomUUID from
// node:crypto (build/bundle.ts); where /dev/urandom cannot be read, node:crypto's is used.
import { closeSync, openSync, readSync } from 'node:fs'

const POOL_BYTES = 4096
const pool = Buffer.allocUnsafeSlow(POOL_BYTES)
let pos = POOL_BYTES
let fallback: (() => string) | null = null

/** '00'..'ff' */
const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/** Fills the pool from /dev/urandom; false when it cannot be read (then node:crypto is used). */
function refill(): boolean {
  let fd = -1
  try {
    fd = openSync('/dev/urandom', 'r')
    for (let n = 0; n < POOL_BYTES; ) {
      const r = readSync(fd, pool, n, POOL_BYTES - n, null)
      if (r <= 0) return false
      n += r
    }
    pos = 0
    return true
  } catch {
    return false
  } finally {
    if (fd >= 0) closeSync(fd)
  }
}

export function randomUUID(): string {
  if (fallback !== null) return fallback()
  if (pos + 16 > POOL_BYTES && !refill()) {
    fallback = (process.getBuiltinModule('node:crypto') as typeof import('node:crypto')).randomUUID
    return fallback()
  }
  const b = pool
  const p = pos
  pos += 16
  return (
    HEX[b[p]] + HEX[b[p + 1]] + HEX[b[p + 2]] + HEX[b[p + 3]] + '-' +
    HEX[b[p + 4]] + HEX[b[p + 5]] + '-' +
    HEX[(b[p + 6] & 0x0f) | 0x40] + HEX[b[p + 7]] + '-' +
    HEX[(b[p + 8] & 0x3f) | 0x80] + HEX[b[p + 9]] + '-' +
    HEX[b[p + 10]] + HEX[b[p + 11]] + HEX[b[p + 12]] + HEX[b[p + 13]] + HEX[b[p + 14]] + HEX[b[p + 15]]
  )
}
