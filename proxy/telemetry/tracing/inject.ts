// The propagation header block of one request as one flat string, in the formats asked for:
//   B3 multi   x-b3-traceid, x-b3-spanid, [x-b3-parentspanid], x-b3-sampled, [x-b3-flags]
//   B3 single  b3: {traceid}-{spanid}-{1|0|d}[-{parentspanid}]
//   W3C        traceparent: 00-{traceid, 32 hex}-{spanid}-{01|00}
// (tracestate is appended by the tracer when there is one).
//
// Each shape of block (formats, parent id or not, sampled or not, debug or not, 64- or 128-bit
// trace id) has a template buffer made once, with the constant text in place; per request only
// the ids are written into it (the new span id, and the trace id of a new trace, hex-encoded
// straight from the pooled random bytes of ids.ts into their first place and copied to the
// others) and the buffer is read out as one latin1 string; the new ids are slices of that string.
//
// Why not string concatenation: a block of ~12 concatenated pieces is a rope, and the socket
// write of the upstream head (itself a rope) pays for every piece again when it flattens it; a
// flat block is a single piece there. See bench/tracing-micro.ts.
import { writeRandomHex } from './ids.ts'

/** Propagation formats, as bits (TraceContext.formats, Tracer propagation). */
export const FORMAT_B3 = 1
export const FORMAT_B3MULTI = 2
export const FORMAT_W3C = 4
export const FORMAT_ALL = FORMAT_B3 | FORMAT_B3MULTI | FORMAT_W3C

/** Config names of the formats. */
export const FORMAT_NAMES = { b3: FORMAT_B3, b3multi: FORMAT_B3MULTI, w3c: FORMAT_W3C } as const
export type FormatName = keyof typeof FORMAT_NAMES

interface Template {
  readonly buf: Buffer
  /** offsets of the trace id (after any zero padding); the first is where it is written */
  readonly traceAt: number[]
  readonly spanAt: number[]
  /** offsets of the parent id, empty when the shape has none */
  readonly parentAt: number[]
}

const templates: (Template | undefined)[] = new Array(128)

const T32 = 'T'.repeat(32)
const S16 = 'S'.repeat(16)
const P16 = 'P'.repeat(16)

function makeTemplate(formats: number, hasParent: boolean, sampled: boolean, debug: boolean, trace64: boolean): Template {
  const tid = trace64 ? T32.slice(16) : T32
  const traceAt: number[] = []
  const spanAt: number[] = []
  const parentAt: number[] = []
  let s = ''
  if ((formats & FORMAT_B3MULTI) !== 0) {
    s += 'x-b3-traceid: '
    traceAt.push(s.length)
    s += tid + '\r\nx-b3-spanid: '
    spanAt.push(s.length)
    s += S16 + '\r\n'
    if (hasParent) {
      s += 'x-b3-parentspanid: '
      parentAt.push(s.length)
      s += P16 + '\r\n'
    }
    s += sampled ? 'x-b3-sampled: 1\r\n' : 'x-b3-sampled: 0\r\n'
    if (debug) s += 'x-b3-flags: 1\r\n'
  }
  if ((formats & FORMAT_B3) !== 0) {
    s += 'b3: '
    traceAt.push(s.length)
    s += tid + '-'
    spanAt.push(s.length)
    s += S16 + (debug ? '-d' : sampled ? '-1' : '-0')
    if (hasParent) {
      s += '-'
      parentAt.push(s.length)
      s += P16
    }
    s += '\r\n'
  }
  if ((formats & FORMAT_W3C) !== 0) {
    s += 'traceparent: 00-' + (trace64 ? '0000000000000000' : '')
    traceAt.push(s.length)
    s += tid + '-'
    spanAt.push(s.length)
    s += S16 + (sampled ? '-01\r\n' : '-00\r\n')
  }
  return { buf: Buffer.from(s, 'latin1'), traceAt, spanAt, parentAt }
}

/** Where the new ids are in the last block written (char offsets). */
export const last = { traceIdAt: 0, spanIdAt: 0 }

/** an id (lower-case hex, ASCII) at `at` */
function putId(buf: Buffer, at: number, id: string): void {
  for (let i = 0; i < id.length; i++) buf[at + i] = id.charCodeAt(i)
}

/** copy the id at at[0] to the other offsets */
function spread(buf: Buffer, at: number[], len: number): void {
  const from = at[0]
  for (let i = 1; i < at.length; i++) buf.copyWithin(at[i], from, from + len)
}

/**
 * The block for a request. `formats`: FORMAT_* bits (at least one). traceId "" starts a new
 * 128-bit trace (random); else a 16- or 32-char trace id. parentId "" omits the parent id. Our
 * new span id is random. `last` says where the new ids are in the returned string.
 */
export function writeBlock(formats: number, traceId: string, parentId: string, sampled: boolean, debug: boolean): string {
  const trace64 = traceId.length === 16
  const hasParent = parentId !== ''
  const key = (hasParent ? 1 : 0) | (sampled ? 2 : 0) | (debug ? 4 : 0) | (trace64 ? 8 : 0) | ((formats & FORMAT_ALL) << 4)
  const t = templates[key] ?? (templates[key] = makeTemplate(formats, hasParent, sampled, debug, trace64))
  const buf = t.buf
  const tl = trace64 ? 16 : 32
  if (traceId === '') writeRandomHex(buf, t.traceAt[0], 16)
  else putId(buf, t.traceAt[0], traceId)
  if (t.traceAt.length > 1) spread(buf, t.traceAt, tl)
  writeRandomHex(buf, t.spanAt[0], 8)
  if (t.spanAt.length > 1) spread(buf, t.spanAt, 16)
  if (hasParent) {
    putId(buf, t.parentAt[0], parentId)
    if (t.parentAt.length > 1) spread(buf, t.parentAt, 16)
  }
  last.traceIdAt = t.traceAt[0]
  last.spanIdAt = t.spanAt[0]
  return buf.latin1Slice(0, buf.length)
}
