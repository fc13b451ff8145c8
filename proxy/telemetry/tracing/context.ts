// Trace context propagation headers: reading B3 (single `b3` header and multi `x-b3-*` headers)
// and W3C Trace Context (`traceparent` + `tracestate`) from a request head, and the names the proxy
// must drop from the forwarded request because it re-emits them (see tracer.ts for injection).
//
// Precedence, first one that yields a context wins: `b3`, then `x-b3-*`, then `traceparent`.
// A format whose ids are malformed (not lower-case hex of the right length, or all zeros) is
// treated as absent and the next one is tried. A format may carry only a sampling decision
// (`b3: 0`, `x-b3-sampled: 1` or `x-b3-flags: 1` without ids): the context then has traceId "".
//
// Trace ids are normalized as Zipkin does: a 32-char id whose high 64 bits are zero becomes the
// 16-char id, so a 64-bit B3 trace that went through a W3C hop keeps one id.
//
// Hot path: one pass over the header names with a first-character test; nothing is allocated
// for a request without trace headers. `scanContext` fills a shared object (no allocation at
// all); `extractContext` returns a copy.

export interface TraceContext {
  /** 16 or 32 lower-case hex chars; "" when the caller sent only a sampling decision */
  traceId: string
  /** the caller's span id (16 hex), "" when traceId is "" */
  spanId: string
  /** the caller's parent span id, "" when absent */
  parentId: string
  /** the caller's sampling decision; null when it left the decision to us */
  sampled: boolean | null
  /** debug (x-b3-flags: 1, or b3 "d"): always sampled */
  debug: boolean
  /** W3C tracestate to pass on; "" when absent or when it belongs to another trace than traceId */
  tracestate: string
  /** which header format the context came from */
  format: 'b3' | 'b3multi' | 'w3c'
  /**
   * every format the request carried headers of (FORMAT_* bits of inject.ts: b3 1, x-b3-* 2,
   * traceparent 4), valid or not: the formats the proxy answers in upstream
   */
  formats: number
}

/**
 * Lower-case header names the proxy drops from a forwarded request because the tracer emits them
 * itself (with its own span id): B3 single and multi, traceparent and tracestate.
 */
export const TRACE_HEADER_NAMES: ReadonlySet<string> = new Set([
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'traceparent',
  'tracestate',
])

// lower-case hex digits -> value + 1 (0 = not a lower-case hex digit)
const HEX = new Uint8Array(128)
for (let i = 0; i < 16; i++) HEX['0123456789abcdef'.charCodeAt(i)] = i + 1

const NOT_HEX = -1
const ZERO = 0
const NONZERO = 1

/** s[from, to): NOT_HEX unless all lower-case hex; else ZERO when all '0', else NONZERO. One pass. */
function hexRun(s: string, from: number, to: number): number {
  let acc = 0
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i)
    const v = c < 128 ? HEX[c] : 0
    if (v === 0) return NOT_HEX
    acc |= v - 1
  }
  return acc === 0 ? ZERO : NONZERO
}

function isHex(s: string, from: number, to: number): boolean {
  return hexRun(s, from, to) !== NOT_HEX
}

/** A trace id from s[from, to) (16 or 32 hex), normalized; "" when invalid or zero. */
function traceIdOf(s: string, from: number, to: number): string {
  const n = to - from
  if (n === 16) {
    if (hexRun(s, from, to) !== NONZERO) return ''
    return from === 0 && to === s.length ? s : s.slice(from, to)
  }
  if (n !== 32) return ''
  const high = hexRun(s, from, from + 16)
  const low = hexRun(s, from + 16, to)
  if (high === NOT_HEX || low === NOT_HEX) return ''
  // a zero high half is the 64-bit id (as Zipkin normalizes)
  if (high === ZERO) return low === ZERO ? '' : s.slice(from + 16, to)
  return from === 0 && to === s.length ? s : s.slice(from, to)
}

/** A span id from s[from, to) (16 hex); "" when invalid or zero. */
function spanIdOf(s: string, from: number, to: number): string {
  if (to - from !== 16 || hexRun(s, from, to) !== NONZERO) return ''
  return from === 0 && to === s.length ? s : s.slice(from, to)
}

// The shared result of scanContext: valid until the next call.
const shared: TraceContext = { traceId: '', spanId: '', parentId: '', sampled: null, debug: false, tracestate: '', format: 'b3', formats: 0 }

function set(traceId: string, spanId: string, parentId: string, sampled: boolean | null, debug: boolean, format: TraceContext['format']): TraceContext {
  const c = shared
  c.traceId = traceId
  c.spanId = spanId
  c.parentId = parentId
  c.sampled = debug ? true : sampled
  c.debug = debug
  c.tracestate = ''
  c.format = format
  c.formats = 0
  return c
}

/** `b3: {traceId}-{spanId}[-{sampling}[-{parentId}]]` or `b3: {sampling}` (0, 1, d). */
function parseB3Single(v: string): TraceContext | null {
  const n = v.length
  if (n === 1) {
    const c = v.charCodeAt(0)
    if (c === 0x30) return set('', '', '', false, false, 'b3')
    if (c === 0x31) return set('', '', '', true, false, 'b3')
    if (c === 0x64) return set('', '', '', true, true, 'b3')
    return null
  }
  const d1 = v.indexOf('-')
  if (d1 !== 16 && d1 !== 32) return null
  const traceId = traceIdOf(v, 0, d1)
  const s0 = d1 + 1
  const s1 = s0 + 16
  if (traceId === '' || n < s1) return null
  const spanId = spanIdOf(v, s0, s1)
  if (spanId === '') return null
  let sampled: boolean | null = null
  let debug = false
  let parentId = ''
  if (n > s1) {
    if (v.charCodeAt(s1) !== 0x2d) return null
    const p = s1 + 1
    if (n === p + 1 || (n > p + 1 && v.charCodeAt(p + 1) === 0x2d)) {
      // sampling state, then optionally the parent id
      const c = v.charCodeAt(p)
      if (c === 0x31) sampled = true
      else if (c === 0x30) sampled = false
      else if (c === 0x64) debug = true
      else return null
      if (n > p + 1) {
        parentId = spanIdOf(v, p + 2, n)
        if (parentId === '') return null
      }
    } else {
      // parent id without a sampling state (lenient)
      parentId = spanIdOf(v, p, n)
      if (parentId === '') return null
    }
  }
  return set(traceId, spanId, parentId, sampled, debug, 'b3')
}

function sampledOf(v: string): boolean | null {
  if (v === '1' || v === 'true') return true
  if (v === '0' || v === 'false') return false
  return null
}

/** x-b3-* headers; ids present but malformed: absent. */
function parseB3Multi(traceIdV: string, spanIdV: string, parentV: string, sampledV: string, flagsV: string): TraceContext | null {
  const sampled = sampledV === '' ? null : sampledOf(sampledV)
  const debug = flagsV === '1'
  if (traceIdV === '' && spanIdV === '') {
    if (sampled === null && !debug) return null
    return set('', '', '', sampled, debug, 'b3multi')
  }
  const traceId = traceIdOf(traceIdV, 0, traceIdV.length)
  const spanId = spanIdOf(spanIdV, 0, spanIdV.length)
  if (traceId === '' || spanId === '') return null
  const parentId = parentV === '' ? '' : spanIdOf(parentV, 0, parentV.length)
  return set(traceId, spanId, parentId, sampled, debug, 'b3multi')
}

/** W3C Trace Context level 1 `traceparent` syntax: {version}-{trace-id 32}-{parent-id 16}-{flags}. */
function traceparentWellFormed(v: string): boolean {
  const n = v.length
  if (n < 55) return false
  if (!isHex(v, 0, 2) || (v.charCodeAt(0) === 0x66 && v.charCodeAt(1) === 0x66)) return false // ff is invalid
  if (v.charCodeAt(2) !== 0x2d || v.charCodeAt(35) !== 0x2d || v.charCodeAt(52) !== 0x2d) return false
  // version 00 has exactly these fields; later versions may append "-..."
  const v00 = v.charCodeAt(0) === 0x30 && v.charCodeAt(1) === 0x30
  if (n > 55 && (v00 || v.charCodeAt(55) !== 0x2d)) return false
  return isHex(v, 53, 55)
}

function parseTraceparent(v: string): TraceContext | null {
  if (!traceparentWellFormed(v)) return null
  const traceId = traceIdOf(v, 3, 35)
  const spanId = spanIdOf(v, 36, 52)
  if (traceId === '' || spanId === '') return null
  const flags = HEX[v.charCodeAt(54)] - 1
  return set(traceId, spanId, '', (flags & 1) === 1, false, 'w3c')
}

/**
 * Scan a request's header fields for a trace context. Returns a shared object, valid until the
 * next call (do not keep it), or null when the request carries no usable context.
 * For the request path: `x-b3-parentspanid` (the caller's parent, which the proxy does not use)
 * is not read, so parentId is "" for B3 multi; extractContext reads it.
 */
export function scanContext(names: readonly string[], values: readonly string[]): TraceContext | null {
  return scan(names, values, false)
}

function scan(names: readonly string[], values: readonly string[], withParent: boolean): TraceContext | null {
  let b3 = ''
  let xTraceId = ''
  let xSpanId = ''
  let xParent = ''
  let xSampled = ''
  let xFlags = ''
  let traceparent = ''
  let tracestate = ''
  let formats = 0
  for (let i = 0; i < names.length; i++) {
    const name = names[i]
    const c = name.charCodeAt(0)
    if (c === 0x78 /* x */) {
      if (name.length < 10 || name.charCodeAt(1) !== 0x2d || name.charCodeAt(2) !== 0x62 || name.charCodeAt(3) !== 0x33) continue
      switch (name) {
        case 'x-b3-traceid':
          if (xTraceId === '') xTraceId = values[i]
          formats |= 2
          break
        case 'x-b3-spanid':
          if (xSpanId === '') xSpanId = values[i]
          formats |= 2
          break
        case 'x-b3-parentspanid':
          if (withParent && xParent === '') xParent = values[i]
          formats |= 2
          break
        case 'x-b3-sampled':
          if (xSampled === '') xSampled = values[i]
          formats |= 2
          break
        case 'x-b3-flags':
          if (xFlags === '') xFlags = values[i]
          formats |= 2
          break
      }
    } else if (c === 0x62 /* b */) {
      if (name === 'b3' && b3 === '') {
        b3 = values[i]
        formats |= 1
      }
    } else if (c === 0x74 /* t */) {
      if (name === 'traceparent') {
        if (traceparent === '') traceparent = values[i]
        formats |= 4
      } else if (name === 'tracestate') {
        // several fields are one list (W3C Trace Context 3.3.1.1)
        const v = values[i]
        if (v !== '') tracestate = tracestate === '' ? v : tracestate + ',' + v
      }
    }
  }
  if (formats === 0) return null
  let ctx: TraceContext | null = null
  if (b3 !== '') ctx = parseB3Single(b3)
  if (ctx === null && (xTraceId !== '' || xSpanId !== '' || xSampled !== '' || xFlags !== ''))
    ctx = parseB3Multi(xTraceId, xSpanId, xParent, xSampled, xFlags)
  if (ctx === null) {
    if (traceparent === '') return null
    ctx = parseTraceparent(traceparent)
    if (ctx === null) return null
    ctx.tracestate = tracestate
    ctx.formats = formats
    return ctx
  }
  ctx.formats = formats
  // tracestate belongs to the traceparent's trace: pass it on only when that is the one we continue.
  if (tracestate !== '' && ctx.traceId !== '' && traceparent !== '' && traceparentWellFormed(traceparent) && traceIdOf(traceparent, 3, 35) === ctx.traceId)
    ctx.tracestate = tracestate
  return ctx
}

/** The trace context of a request (B3 single, B3 multi, W3C, in that order), or null. */
export function extractContext(names: readonly string[], values: readonly string[]): TraceContext | null {
  const c = scan(names, values, true)
  if (c === null) return null
  return { traceId: c.traceId, spanId: c.spanId, parentId: c.parentId, sampled: c.sampled, debug: c.debug, tracestate: c.tracestate, format: c.format, formats: c.formats }
}
