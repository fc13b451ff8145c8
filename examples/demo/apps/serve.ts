// What the demo's applications share: listen on 127.0.0.1, answer JSON, and stop cleanly on
// SIGTERM/SIGINT (stop accepting, let requests in flight finish, exit 0). They are plain
// node:http apps that know nothing of the mesh except where their own sidecar listens.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'

export type Handler = (req: IncomingMessage, res: ServerResponse) => void

/** --name value options of an app, all strings (undefined when absent). */
export function options<const K extends string>(names: readonly K[]): Record<K, string | undefined> {
  const spec = Object.fromEntries(names.map((n) => [n, { type: 'string' as const }]))
  return parseArgs({ options: spec, strict: true }).values as Record<K, string | undefined>
}

export function required(name: string, v: string | undefined): string {
  if (v === undefined || v === '') throw new Error(`--${name} is required`)
  return v
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** Headers an app must copy from the request it serves to the calls it makes, so traces join up. */
export const PROPAGATED = ['x-request-id', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'b3', 'traceparent', 'tracestate']

export function serve(name: string, port: number, handler: Handler, onStop: () => void = () => {}): void {
  const server = createServer(handler)
  server.keepAliveTimeout = 30_000
  server.listen(port, '127.0.0.1', () => process.stdout.write(`${name} listening on 127.0.0.1:${port}\n`))
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    onStop()
    server.close(() => process.exit(0))
    server.closeIdleConnections()
    // a keep-alive client that never sends again would hold close() forever
    setTimeout(() => server.closeAllConnections(), 2000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
