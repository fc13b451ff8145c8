// The HTTP/1.1 head of a mirrored copy of an HTTP/2 request: the mirror (proxy/filters/mirror/)
// speaks HTTP/1, so the copy of an HTTP/2 request is written as one, with the same method, path,
// fields and request id, its Host "-shadow" (as Envoy), and a body framed by content-length when
// its length is known, else chunked.
import type { OutgoingHttpHeaders } from 'node:http2'

/** Fields the copy frames itself (or that do not exist in HTTP/1). */
const SKIP = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te'])

/**
 * bodyLength: the body's length when known (its content-length, or all of it already read), -1:
 * unknown (chunked); 0 with no body: no framing field.
 */
export function mirrorHead(h: OutgoingHttpHeaders, hasBody: boolean, bodyLength: number): string {
  let s = `${h[':method']} ${h[':path']} HTTP/1.1\r\nhost: ${h[':authority']}-shadow\r\n`
  for (const n in h) {
    if (n.charCodeAt(0) === 58 /* ':' */ || SKIP.has(n)) continue
    const v = h[n]
    if (v === undefined) continue
    if (Array.isArray(v)) for (const x of v) s += n + ': ' + x + '\r\n'
    else s += n + ': ' + v + '\r\n'
  }
  if (hasBody) s += bodyLength >= 0 ? 'content-length: ' + bodyLength + '\r\n' : 'transfer-encoding: chunked\r\n'
  return s + '\r\n'
}
