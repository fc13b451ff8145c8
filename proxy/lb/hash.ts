// 32-bit string hashing for the hash-based balancers (ringHash, maglev).
//
// MurmurHash3 x86_32 over the UTF-16 code units of the string, read as little-endian bytes: the
// result equals murmur3_32(Buffer.from(s, 'utf16le'), seed), so no code unit is truncated (unlike
// the common charCodeAt & 0xff variants) and the hash is stable across processes and platforms.
// Two code units form one 4-byte block. No allocation per call.

const C1 = 0xcc9e2d51
const C2 = 0x1b873593

/** Seed of the secondary hash (maglev skip); any value other than 0 gives an independent hash. */
export const SECONDARY_SEED = 0x9747b28c

/** MurmurHash3 x86_32 of the UTF-16LE encoding of s. Returns an unsigned 32-bit integer. */
export function murmur3(s: string, seed: number): number {
  let h = seed | 0
  const len = s.length
  const blocks = len & ~1
  let i = 0
  for (; i < blocks; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16)
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, C2)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  if (i < len) {
    // Tail: one code unit = 2 bytes.
    let k = s.charCodeAt(i)
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, C2)
    h ^= k
  }
  h ^= len << 1 // length in bytes
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function mixK(k: number): number {
  k = Math.imul(k, C1)
  k = (k << 15) | (k >>> 17)
  return Math.imul(k, C2)
}

function mixH(h: number, k: number): number {
  h ^= mixK(k)
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

function fmix(h: number, byteLen: number): number {
  h ^= byteLen
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const digits = new Uint16Array(16) // scratch of murmur3Series

/**
 * out[offset + r] = murmur3(prefix + String(r), seed) for r in [0, count), without building the
 * strings and hashing the prefix once (ring construction hashes `${key}_${r}` for up to millions
 * of points). Config-time helper.
 */
export function murmur3Series(prefix: string, count: number, seed: number, out: Uint32Array, offset: number): void {
  const plen = prefix.length
  const even = plen & ~1
  let h0 = seed | 0
  for (let i = 0; i < even; i += 2) h0 = mixH(h0, prefix.charCodeAt(i) | (prefix.charCodeAt(i + 1) << 16))
  const odd = plen !== even
  const carry = odd ? prefix.charCodeAt(even) : 0
  // Decimal digits of r, most significant first, incremented in place (odometer).
  let nd = 1
  digits[0] = 48
  for (let r = 0; r < count; r++) {
    if (r > 0) {
      let d = nd - 1
      while (d >= 0 && digits[d] === 57) digits[d--] = 48
      if (d >= 0) digits[d]++
      else {
        digits[nd++] = 48
        digits[0] = 49
      }
    }
    let h = h0
    let j = 0
    if (odd) h = mixH(h, carry | (digits[j++] << 16))
    for (; j + 1 < nd; j += 2) h = mixH(h, digits[j] | (digits[j + 1] << 16))
    if (j < nd) h ^= mixK(digits[j])
    out[offset + r] = fmix(h, (plen + nd) << 1)
  }
}

/** Primary hash: request affinity keys, ring positions, maglev offsets. */
export function hash32(s: string): number {
  return murmur3(s, 0)
}

/** Secondary hash, independent of hash32 (different seed): maglev skips. */
export function hash32b(s: string): number {
  return murmur3(s, SECONDARY_SEED)
}
