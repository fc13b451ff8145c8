// A try on an HTTP/2 upstream, as both exchanges drive it: the stream of either client codec
// (the proxy's, proxy/h2/codec/client.ts, or node:http2's), its events delivered through one
// interface (StreamSink), and the request fields it is opened with.
import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import type { ClientStream } from '../h2/codec/client.ts'
import { H2Stream, type StreamSink } from '../h2/codec/stream.ts'
import { SINGLE_VALUE } from '../h2/headers.ts'

/** An upstream HTTP/2 stream of either client codec. */
export type UpStream = ClientHttp2Stream | ClientStream

/** Request fields that never go on (connection-specific in HTTP/2, RFC 9113 8.2.2), and host (:authority says it). */
export const DROP_REQUEST = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings', 'grpc-timeout'])

/**
 * The stream's events go to `sink`: the proxy's codec calls it directly (no listeners, flow
 * started); a node:http2 stream gets listeners that call it the same way.
 */
export function sinkTo(st: UpStream, sink: StreamSink): void {
  if (st instanceof H2Stream) {
    st.sink = sink
    st.flow()
    return
  }
  const s = st as unknown as H2Stream
  st.on('response', (h: IncomingHttpHeaders, flags: number) => sink.streamResponse(s, h, flags))
  st.on('data', (b: Buffer) => sink.streamData(s, b))
  st.on('trailers', (h: IncomingHttpHeaders) => sink.streamTrailers(s, h))
  st.on('end', () => sink.streamEnd(s))
  st.on('close', () => sink.streamClose(s))
  st.on('error', () => {}) // reported through 'close' (rstCode)
  st.on('drain', () => sink.streamDrain(s))
}

/** Add a field; one node:http2 takes once only (SINGLE_VALUE) is replaced instead (it would throw). */
export function addHeader(h: OutgoingHttpHeaders, n: string, v: string): void {
  const cur = h[n]
  if (cur === undefined || SINGLE_VALUE.has(n)) h[n] = v
  else if (Array.isArray(cur)) cur.push(v)
  else h[n] = [String(cur), v]
}
