// Header blocks between the HTTP/1 shapes the route table compiles ("name: value\r\n" lines, made
// for the HTTP/1 writer) and node:http2's header objects.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { CompiledMutation } from '../route/headers.ts'
import { HeaderFields } from './codec/stream.ts'
import { connectionSpecific } from './validate.ts'

/** Response fields that are connection-specific in HTTP/2 (RFC 9113 8.2.2), never relayed: dropResponse(). */

/**
 * Fields node:http2 refuses to send more than once (it throws ERR_HTTP2_HEADER_SINGLE_VALUE):
 * a route's `add` of one of these replaces the upstream's value instead of appending to it.
 */
export const SINGLE_VALUE = new Set([
  ':status', ':method', ':authority', ':scheme', ':path', ':protocol', 'access-control-allow-credentials',
  'access-control-max-age', 'access-control-request-method', 'age', 'authorization', 'content-encoding',
  'content-language', 'content-length', 'content-location', 'content-md5', 'content-range', 'content-type',
  'date', 'dnt', 'etag', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match',
  'if-range', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization',
  'range', 'referer', 'retry-after', 'tk', 'upgrade-insecure-requests', 'user-agent', 'x-content-type-options',
])

const parsed = new Map<string, [string, string][]>()

/**
 * The pairs of a "name: value\r\n" block. Blocks of the compiled config (mutations, direct replies)
 * are few and fixed, so their parse is kept; per-request blocks (trace headers, rate-limit fields)
 * pass keep = false and are parsed anew.
 */
export function blockPairs(block: string, keep = true): [string, string][] {
  if (block === '') return NONE
  const hit = keep ? parsed.get(block) : undefined
  if (hit !== undefined) return hit
  const out: [string, string][] = []
  for (const line of block.split('\r\n')) {
    const c = line.indexOf(':')
    if (c <= 0) continue
    out.push([line.slice(0, c).toLowerCase(), line.slice(c + 1).trim()])
  }
  if (keep && parsed.size < 10_000) parsed.set(block, out)
  return out
}

const NONE: [string, string][] = []

/** The upstream's response head for the client: its fields minus connection ones, the route's mutations applied. */
export function responseHeadersOut(h: IncomingHttpHeaders, mut: CompiledMutation): OutgoingHttpHeaders {
  const out = new HeaderFields() as OutgoingHttpHeaders
  out[':status'] = h[':status']
  const drop = mut.drop
  let lists = false
  for (const n in h) {
    if (n.charCodeAt(0) === 0x3a || dropResponse(n) || (drop !== null && drop.has(n))) continue
    const v = h[n]
    if (typeof v !== 'string') lists = true
    out[n] = v
  }
  if (mut.append !== '') {
    for (const [n, v] of blockPairs(mut.append)) {
      const cur = out[n]
      if (cur === undefined || SINGLE_VALUE.has(n)) out[n] = v
      else {
        lists = true
        if (Array.isArray(cur)) out[n] = [...cur, v]
        else out[n] = [String(cur), v]
      }
    }
  }
  // a single-value field the upstream sent as a list (an HTTP/1 upstream repeating it): the last
  if (lists) {
    for (const n in out) {
      const v = out[n]
      if (Array.isArray(v) && SINGLE_VALUE.has(n)) out[n] = v[v.length - 1]
    }
  }
  return out
}

/** a response field never relayed: connection-specific, te, http2-settings */
function dropResponse(n: string): boolean {
  return connectionSpecific(n) || n === 'te' || n === 'http2-settings'
}
