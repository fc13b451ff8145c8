// HPACK's static Huffman code (RFC 7541 §5.2, Appendix B). The code is canonical: within one
// length the codes are consecutive in symbol order, so a decoder needs, per length, the first
// code and where its symbols start in the symbol list (checked when this module loads).
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './tables.ts'

const EOS = 256
const MAX_LEN = 30

/** per bit length: first code, how many codes, index of the first in SYMBOLS */
const FIRST = new Int32Array(MAX_LEN + 2)
const COUNT = new Int32Array(MAX_LEN + 2)
const OFFSET = new Int32Array(MAX_LEN + 2)
const SYMBOLS = new Uint16Array(257)

{
  const order = Array.from({ length: 257 }, (_, i) => i).sort((a, b) => HUFFMAN_LENGTHS[a] - HUFFMAN_LENGTHS[b] || HUFFMAN_CODES[a] - HUFFMAN_CODES[b])
  let k = 0
  for (let len = 1; len <= MAX_LEN; len++) {
    OFFSET[len] = k
    FIRST[len] = -1
    while (k < 257 && HUFFMAN_LENGTHS[order[k]] === len) {
      const sym = order[k]
      if (FIRST[len] === -1) FIRST[len] = HUFFMAN_CODES[sym]
      else if (HUFFMAN_CODES[sym] !== FIRST[len] + COUNT[len]) throw new Error('HPACK Huffman table is not canonical')
      SYMBOLS[k] = sym
      COUNT[len]++
      k++
    }
  }
}

/** Bytes the Huffman encoding of s[0..] (latin1) takes. */
export function huffmanLength(s: string): number {
  let bits = 0
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff]
  return (bits + 7) >>> 3
}

/** Encode latin1 `s` into out at pos (room for huffmanLength(s) bytes); returns the new pos. */
export function huffmanEncode(s: string, out: Uint8Array, pos: number): number {
  let acc = 0 // pending bits, right-aligned; at most 7 + 30 bits: kept below 2^53 as a number
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff
    const len = HUFFMAN_LENGTHS[c]
    acc = acc * (1 << len) + HUFFMAN_CODES[c]
    n += len
    while (n >= 8) {
      n -= 8
      const d = 2 ** n
      const byte = Math.floor(acc / d)
      out[pos++] = byte
      acc -= byte * d
    }
  }
  if (n > 0) out[pos++] = ((acc << (8 - n)) | (0xff >>> n)) & 0xff // padded with EOS's leading 1s
  return pos
}

/**
 * Decode b[start..end) as Huffman. Returns the latin1 string, or null when the input is not a
 * valid encoding (RFC 7541 §5.2: EOS inside, padding longer than 7 bits or not all ones).
 */
export function huffmanDecode(b: Uint8Array, start: number, end: number): string | null {
  let code = 0
  let len = 0
  let out = ''
  let chunk: number[] = []
  for (let i = start; i < end; i++) {
    const byte = b[i]
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >>> bit) & 1)
      len++
      if (len < 5) continue
      const f = FIRST[len]
      if (f !== -1 && code - f < COUNT[len] && code >= f) {
        const sym = SYMBOLS[OFFSET[len] + code - f]
        if (sym === EOS) return null
        chunk.push(sym)
        if (chunk.length === 4096) {
          out += String.fromCharCode.apply(null, chunk)
          chunk = []
        }
        code = 0
        len = 0
      } else if (len >= MAX_LEN) return null
    }
  }
  // padding: fewer than 8 bits, all ones (a prefix of EOS)
  if (len > 7 || code !== (1 << len) - 1) return null
  return chunk.length === 0 ? out : out + String.fromCharCode.apply(null, chunk)
}
