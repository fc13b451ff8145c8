// The propagation header block of one request as one flat string: x-b3-traceid, x-b3-spanid,
// [x-b3-parentspanid], x-b3-sampled, [x-b3-flags], traceparent (tracestate is appended by the
// tracer when there is one).
//
// Each shape of block (parent id or not, sampled or not, debug or not, 64- or 128-bit trace id)
// has a template buffer made once, with the constant text in place; per request only the ids are
// written into it (the new span id, and the trace id of a new trace, hex-encoded straight from
// the pooled random bytes of ids.ts, each in both its B3 and its traceparent place) and the
// buffer is read out as one latin1 string; the new ids are slices of that string.
//
// Why not string concatenation: a block of ~12 concatenated pieces is a rope, and the socket
// write of the upstream head (itself a rope) pays for every piece again when it flattens it; a
// flat block is a single piece there. See bench/tracing-micro.ts.
import { writeRandomHex } from './ids.ts'

interface Template {
  readonly buf: Buffer
  /** offsets of the trace id in x-b3-traceid and in traceparent (after the zero padding) */
  readonly trace1: number
  readonly trace2: number
  readonly span1: number
  readonly span2: number
  /** offset of the parent id, -1 when the shape has none */
  readonly parent: number
}

const templates: (Template | undefined)[] = new Array(16)

const X32 = 'T'.repeat(32)
const X16 = 'S'.repeat(16)

function makeTemplate(hasParent: boolean, sampled: boolean, debug: boolean, trace64: boolean): Template {
  const tid = trace64 ? X32.slice(16) : X32
  let s = 'x-b3-traceid: '
  const trace1 = s.length
  s += tid + '\r\nx-b3-spanid: '
  const span1 = s.length
  s += X16 + '\r\n'
  let parent = -1
  if (hasParent) {
    s += 'x-b3-parentspanid: '
    parent = s.length
    s += 'P'.repeat(16) + '\r\n'
  }
  s += sampled ? 'x-b3-sampled: 1\r\n' : 'x-b3-sampled: 0\r\n'
  if (debug) s += 'x-b3-flags: 1\r\n'
  s += 'traceparent: 00-' + (trace64 ? '0000000000000000' : '')
  const trace2 = s.length
  s += tid + '-'
  const span2 = s.length
  s += X16 + (sampled ? '-01\r\n' : '-00\r\n')
  return { buf: Buffer.from(s, 'latin1'), trace1, trace2, span1, span2, parent }
}

/** Where the new ids are in the last block written (char offsets). */
export const last = { traceIdAt: 0, spanIdAt: 0 }

/** an id (lower-case hex, ASCII) at `at` */
function putId(buf: Buffer, at: number, id: string, at2: number): void {
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i)
    buf[at + i] = c
    if (at2 >= 0) buf[at2 + i] = c
  }
}

/**
 * The block for a request. traceId "" starts a new 128-bit trace (random); else a 16- or 32-char
 * trace id. parentId "" omits x-b3-parentspanid. Our new span id is random. `last` says where
 * the new ids are in the returned string.
 */
export function writeBlock(traceId: string, parentId: string, sampled: boolean, debug: boolean): string {
  const trace64 = traceId.length === 16
  const hasParent = parentId !== ''
  const key = (hasParent ? 1 : 0) | (sampled ? 2 : 0) | (debug ? 4 : 0) | (trace64 ? 8 : 0)
  const t = templates[key] ?? (templates[key] = makeTemplate(hasParent, sampled, debug, trace64))
  const buf = t.buf
  if (traceId === '') writeRandomHex(buf, t.trace1, 16, t.trace2)
  else putId(buf, t.trace1, traceId, t.trace2)
  writeRandomHex(buf, t.span1, 8, t.span2)
  if (hasParent) putId(buf, t.parent, parentId, -1)
  last.traceIdAt = t.trace1
  last.spanIdAt = t.span1
  return buf.latin1Slice(0, buf.length)
}
