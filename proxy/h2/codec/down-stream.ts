// What an HTTP/2 exchange (proxy/h2/exchange.ts) needs of its client stream: node:http2's
// ServerHttp2Stream has it, and so has the proxy's own codec's stream (stream.ts).
import type { OutgoingHttpHeaders } from 'node:http2'

export interface DownStream {
  readonly closed: boolean
  readonly destroyed: boolean
  readonly rstCode?: number
  on(event: string, listener: (...args: any[]) => void): unknown
  write(b: Buffer): boolean
  end(b?: Buffer): unknown
  pause(): unknown
  resume(): unknown
  respond(h: OutgoingHttpHeaders, opts?: { endStream?: boolean; waitForTrailers?: boolean }): void
  sendTrailers(h: OutgoingHttpHeaders): void
  close(code?: number): void
}
