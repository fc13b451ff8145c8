// HTTP/2 request fields as the exchange builds them (core.ts h2RequestHeaders): what never goes
// on, and adding a field node:http2 takes once only.
import type { OutgoingHttpHeaders } from 'node:http2'
import { SINGLE_VALUE } from '../h2/headers.ts'

/** Request fields that never go on (connection-specific in HTTP/2, RFC 9113 8.2.2), and host (:authority says it). */
export const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'grpc-timeout'])

/** Add a field; one node:http2 takes once only (SINGLE_VALUE) is replaced instead (it would throw). */
export function addHeader(h: OutgoingHttpHeaders, n: string, v: string): void {
  const cur = h[n]
  if (cur === undefined || SINGLE_VALUE.has(n)) h[n] = v
  else if (Array.isArray(cur)) cur.push(v)
  else h[n] = [String(cur), v]
}
