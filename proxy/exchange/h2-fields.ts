// HTTP/2 request fields as the exchange builds them (core.ts h2RequestHeaders): what never goes
// on, and adding a field node:http2 takes once only. Trailers across HTTP versions, either
// direction: an HTTP/1 trailer section as HTTP/2 trailer fields and back.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import { blockPairs, SINGLE_VALUE } from '../h2/headers.ts'
import { connectionSpecific, fieldClean } from '../h2/validate.ts'

/** Request fields that never go on (connection-specific in HTTP/2, RFC 9113 8.2.2), and host (:authority says it). */
export const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'grpc-timeout'])

/** Add a field; one node:http2 takes once only (SINGLE_VALUE) is replaced instead (it would throw). */
export function addHeader(h: OutgoingHttpHeaders, n: string, v: string): void {
  const cur = h[n]
  if (cur === undefined || SINGLE_VALUE.has(n)) h[n] = v
  else if (Array.isArray(cur)) cur.push(v)
  else h[n] = [String(cur), v]
}

/**
 * A field that never goes on as a trailer: framing and routing fields (RFC 9110 6.5.1; an HTTP/1
 * receiver refuses the message, api/http1/chunked.ts does) and connection-specific ones (RFC 9113
 * 8.2.2: they make an HTTP/2 message malformed).
 */
function dropTrailer(n: string): boolean {
  return n === 'content-length' || n === 'host' || n === 'te' || connectionSpecific(n)
}

/**
 * An HTTP/1 trailer section ("name: value\r\n" lines, checked by the chunked parser) as HTTP/2
 * trailer fields: names lower-cased, what dropTrailer says and what validate.ts would refuse left
 * out. null: no field left.
 */
export function trailerFields(block: string): OutgoingHttpHeaders | null {
  let out: OutgoingHttpHeaders | null = null
  for (const [n, v] of blockPairs(block, false)) {
    if (dropTrailer(n) || !fieldClean(n, v)) continue
    if (out === null) out = Object.create(null) as OutgoingHttpHeaders
    addHeader(out, n, v)
  }
  return out
}

/**
 * HTTP/2 trailer fields (checked by the codec that read them: validate.ts checkTrailers) as an
 * HTTP/1 trailer section, one line per value; pseudo-headers and what dropTrailer says left out,
 * and any value validate.ts would refuse (no CR or LF reaches the HTTP/1 wire).
 */
export function trailerBlock(fields: IncomingHttpHeaders | OutgoingHttpHeaders): string {
  let s = ''
  for (const n in fields) {
    if (n.charCodeAt(0) === 0x3a || dropTrailer(n)) continue
    const v = fields[n]
    if (v === undefined) continue
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (fieldClean(n, v[i])) s += n + ': ' + v[i] + '\r\n'
    } else {
      const x = String(v)
      if (fieldClean(n, x)) s += n + ': ' + x + '\r\n'
    }
  }
  return s
}
