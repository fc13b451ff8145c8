// HPACK's static Huffman code (RFC 7541 §5.2, Appendix B): the encoder writes the codes bit by
// bit; the decoder reads four bits at a time through a state machine made from the code's tree
// (precomputed: ./huffman-fsm.ts).
import { HUFFMAN_FSM_LE } from './huffman-fsm.ts'
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './tables.ts'

const EOS = 256

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
 * The decoder's state machine, four bits at a time (the technique of nghttp2's decoder): a state is
 * an inner node of the code's tree; for each state and nibble, the state after those four bits,
 * and the symbol they completed (at most one: the shortest code has five bits).
 */
const FAIL = 0xffff
/** next state per (state, nibble); FAIL: EOS decoded, or a path the code does not have */
let FSM_NEXT = new Uint16Array(0)
/** symbol completed per (state, nibble), + 1 (0: none) */
let FSM_EMIT = new Uint16Array(0)
/** the state is a valid end: fewer than 8 pending bits, all ones (RFC 7541 §5.2) */
let FSM_ACCEPT = new Uint8Array(0)

export interface HuffmanFsm {
  next: Uint16Array<ArrayBuffer>
  emit: Uint16Array<ArrayBuffer>
  accept: Uint8Array<ArrayBuffer>
}

/**
 * The tables, on the first decode, from ./huffman-fsm.ts: that file holds them as made by
 * buildHuffmanFsm (written by `node build/huffman-fsm.ts`; test/huffman-fsm.test.ts checks that
 * they are equal). Building them at run time took ~20,000 loop iterations: at module load they made
 * V8 compile the module with its optimizing compiler during every sidecar's start (on-stack
 * replacement: ~35 ms on a background thread, and ~5 MB of the compiler's own code paged in), and on
 * the first decode they still did so in a --control-plane sidecar, whose config stream decodes its
 * first HPACK headers as it starts (idle RSS ~6 MB higher).
 */
function loadDecoder(): void {
  const t = HUFFMAN_FSM_LE !== null && new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? unpackHuffmanFsm(HUFFMAN_FSM_LE) : buildHuffmanFsm()
  FSM_NEXT = t.next
  FSM_EMIT = t.emit
  FSM_ACCEPT = t.accept
}

/** The tables from their packed form (base64 of next, emit as little-endian 16-bit words, then accept). */
export function unpackHuffmanFsm(packed: string): HuffmanFsm {
  const b = Buffer.from(packed, 'base64')
  const states = b.length / 65 // 16 + 16 words and one byte per state
  const words = new Uint16Array(states * 32)
  new Uint8Array(words.buffer).set(b.subarray(0, states * 64))
  return { next: words.subarray(0, states * 16), emit: words.subarray(states * 16), accept: new Uint8Array(b.subarray(states * 64)) }
}

/** The packed form unpackHuffmanFsm reads (on a little-endian machine). */
export function packHuffmanFsm(t: HuffmanFsm): string {
  return Buffer.concat([Buffer.from(t.next.buffer, t.next.byteOffset, t.next.byteLength), Buffer.from(t.emit.buffer, t.emit.byteOffset, t.emit.byteLength), Buffer.from(t.accept)]).toString('base64')
}

/** The state machine from the code's tree. */
export function buildHuffmanFsm(): HuffmanFsm {
  const NODE_CHILD: number[][] = [[-1, -1]] // inner nodes: child per bit, >= 0 an inner node, < 0 -(symbol + 2)
  const NODE_DEPTH: number[] = [0]
  const NODE_ONES: boolean[] = [true] // reached from the root by 1-bits only (a prefix of EOS)
  for (let sym = 0; sym <= EOS; sym++) {
    const code = HUFFMAN_CODES[sym]
    const len = HUFFMAN_LENGTHS[sym]
    let node = 0
    for (let i = len - 1; i >= 0; i--) {
      const bit = Math.floor(code / 2 ** i) & 1
      if (i === 0) {
        NODE_CHILD[node][bit] = -(sym + 2)
        break
      }
      let next = NODE_CHILD[node][bit]
      if (next < 0) {
        next = NODE_CHILD.length
        NODE_CHILD.push([-1, -1])
        NODE_DEPTH.push(NODE_DEPTH[node] + 1)
        NODE_ONES.push(NODE_ONES[node] && bit === 1)
        NODE_CHILD[node][bit] = next
      }
      node = next
    }
  }
  const STATES = NODE_CHILD.length
  const next = new Uint16Array(STATES * 16)
  const emitted = new Uint16Array(STATES * 16)
  const accept = new Uint8Array(STATES)
  for (let st = 0; st < STATES; st++) {
    accept[st] = NODE_ONES[st] && NODE_DEPTH[st] < 8 ? 1 : 0
    for (let nib = 0; nib < 16; nib++) {
      let node = st
      let emit = 0
      let fail = false
      for (let i = 3; i >= 0; i--) {
        const c = NODE_CHILD[node][(nib >>> i) & 1]
        if (c >= 0) {
          node = c
          continue
        }
        const sym = -c - 2
        if (c === -1 || sym === EOS || emit !== 0) {
          fail = true
          break
        }
        emit = sym + 1
        node = 0
      }
      next[st * 16 + nib] = fail ? FAIL : node
      emitted[st * 16 + nib] = fail ? 0 : emit
    }
  }
  return { next, emit: emitted, accept }
}

let decodeOut = Buffer.allocUnsafe(1024)

/**
 * Decode b[start..end) as Huffman. Returns the latin1 string, or null when the input is not a
 * valid encoding (RFC 7541 §5.2: EOS inside, padding longer than 7 bits or not all ones).
 */
export function huffmanDecode(b: Uint8Array, start: number, end: number): string | null {
  // every symbol takes at least 5 bits
  const max = Math.ceil(((end - start) * 8) / 5)
  if (decodeOut.length < max) decodeOut = Buffer.allocUnsafe(Math.max(max, 2 * decodeOut.length))
  const out = decodeOut
  if (FSM_ACCEPT.length === 0) loadDecoder()
  let n = 0
  let st = 0
  for (let i = start; i < end; i++) {
    const byte = b[i]
    let k = st * 16 + (byte >>> 4)
    st = FSM_NEXT[k]
    if (st === FAIL) return null
    let e = FSM_EMIT[k]
    if (e !== 0) out[n++] = e - 1
    k = st * 16 + (byte & 0xf)
    st = FSM_NEXT[k]
    if (st === FAIL) return null
    e = FSM_EMIT[k]
    if (e !== 0) out[n++] = e - 1
  }
  if (FSM_ACCEPT[st] === 0) return null
  return out.latin1Slice(0, n)
}
