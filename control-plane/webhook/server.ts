// The mutating admission webhook over HTTPS: POST /inject with an AdmissionReview, the answer
// from ./admission.ts. GET /healthz answers 200 (weft check, the Deployment's probes).
// Errors: 405 for other methods, 404 for other paths, 413 over 4 MiB, 400 for a body that is not
// JSON or not an AdmissionReview, each with a one-line text message.
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { admit, type AdmitOptions } from './admission.ts'

export const WEBHOOK_PATH = '/inject'
const MAX_BODY = 4 << 20

export interface WebhookStats {
  /** decisions by name: injected, skipped:<reason>, not-a-pod, bad-request */
  decisions: Map<string, number>
}

export interface WebhookServer {
  readonly server: Server
  readonly port: number
  readonly stats: WebhookStats
  /** serve a new certificate (rotation) to new connections */
  setCertificate(certPem: string, keyPem: string): void
  close(): Promise<void>
}

export interface WebhookServerOptions extends AdmitOptions {
  certPem: string
  keyPem: string
  host?: string
  port?: number
  onDecision?: (decision: string, uid: string | undefined) => void
  /** SO_REUSEPORT: several processes serve the same port (the kernel spreads connections) */
  reusePort?: boolean
}

export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const stats: WebhookStats = { decisions: new Map() }
  const count = (d: string) => stats.decisions.set(d, (stats.decisions.get(d) ?? 0) + 1)
  const server = createServer({ cert: o.certPem, key: o.keyPem, minVersion: 'TLSv1.2', noDelay: true }, (req, res) => {
    try {
      handle(req, res)
    } catch (err) {
      text(res, 500, `weft webhook: ${String(err)}`)
    }
  })
  // Plain 'data'/'end' events, no async iteration: this runs once per pod created in the cluster,
  // and a burst of pod creations is a burst of reviews (see bench/webhook.ts).
  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    if (path === '/healthz') return text(res, 200, 'ok')
    if (path !== WEBHOOK_PATH) return text(res, 404, `weft webhook: no ${path}; POST AdmissionReviews to ${WEBHOOK_PATH}`)
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST')
      return text(res, 405, `weft webhook: ${req.method} not allowed; POST an AdmissionReview`)
    }
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (c: Buffer) => {
      if (over) return
      size += c.length
      if (size > MAX_BODY) {
        over = true
        count('bad-request')
        res.setHeader('connection', 'close')
        text(res, 413, `weft webhook: body over ${MAX_BODY} bytes`)
        return
      }
      chunks.push(c)
    })
    req.on('end', () => {
      if (over) return
      try {
        answer(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), res)
      } catch (err) {
        text(res, 500, `weft webhook: ${String(err)}`)
      }
    })
    req.on('error', () => { if (!res.headersSent) res.destroy() })
  }
  function answer(raw: Buffer, res: ServerResponse): void {
    let body: unknown
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch (err) {
      count('bad-request')
      return text(res, 400, `weft webhook: body is not JSON (${(err as Error).message}); expected an AdmissionReview (admission.k8s.io/v1)`)
    }
    const out = admit(body, o)
    if ('error' in out) {
      count('bad-request')
      return text(res, 400, `weft webhook: ${out.error}`)
    }
    count(out.decision)
    o.onDecision?.(out.decision, out.review.response.uid)
    const json = JSON.stringify(out.review)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
    res.end(json)
  }
  // The API server keeps its connections to a webhook in a pool (Go's idle timeout: 90 s). Node's
  // default (close after 5 s idle) makes a burst of pod creations pay a TLS handshake per connection.
  server.keepAliveTimeout = 120_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: o.port ?? 0, host: o.host ?? '127.0.0.1', reusePort: o.reusePort === true }, () => { server.off('error', reject); resolve() })
  })
  return {
    server,
    port: (server.address() as AddressInfo).port,
    stats,
    setCertificate: (cert, key) => server.setSecureContext({ cert, key }),
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections() }),
  }
}

function text(res: ServerResponse, status: number, msg: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' })
  res.end(msg + '\n')
}
