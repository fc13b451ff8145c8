// The mutating admission webhook over HTTPS: POST /inject with an AdmissionReview, the answer
// from ./admission.ts. GET /healthz answers 200 (weft check, the Deployment's probes).
// Errors: 405 for other methods, 404 for other paths, 413 over 4 MiB, 400 for a body that is not
// JSON or not an AdmissionReview, or for a request that is not strict HTTP/1.1, each with a
// one-line text message.
//
// HTTP/1.1 on TLS sockets with the proxy's own strict head parser and chunked decoder
// (api/http1/), not node:https: every pod created in the cluster is one review, a scale-up is a
// burst of them, and the API server waits on each (bench/webhook.ts: at 100 concurrent reviews
// node:https spent about twice the CPU per review, and its p99 was 1.5-2x this server's).
// kube-apiserver calls admission webhooks over HTTP/1.1 with kept-alive connections
// (kubernetes#82090), so there is no HTTP/2 here.
import { createServer, type Server, type TLSSocket } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { HttpError, parseRequestHead, reasonPhrase, type RequestHead } from '../../api/http1/head.ts'
import { ChunkedDecoder, type ChunkSink } from '../../api/http1/chunked.ts'
import { admit, type AdmitOptions } from './admission.ts'

export const WEBHOOK_PATH = '/inject'
const MAX_BODY = 4 << 20
const MAX_HEAD = 64 * 1024
const MAX_HEADERS = 100
/** The API server keeps its connections to a webhook in a pool (Go's idle timeout: 90 s). */
const IDLE_TIMEOUT_MS = 120_000

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
  /** a connection without a request for this long is closed (default 120 s; it may stay up to a quarter more) */
  idleTimeoutMs?: number
}

interface Answer {
  status: number
  type: string
  body: string
  /** extra header lines, each ending in CRLF */
  extra?: string
  close?: boolean
}

const text = (status: number, msg: string, extra?: string, close?: boolean): Answer =>
  ({ status, type: 'text/plain; charset=utf-8', body: msg + '\n', extra, close })

export async function startWebhookServer(o: WebhookServerOptions): Promise<WebhookServer> {
  const stats: WebhookStats = { decisions: new Map() }
  const count = (d: string) => stats.decisions.set(d, (stats.decisions.get(d) ?? 0) + 1)
  // idle connections are found by a sweep every quarter of the timeout, not by a timer refreshed
  // on every read and write: open connections -> the sweep count at their last request bytes
  const sockets = new Map<TLSSocket, { seen: number }>()
  const idleMs = o.idleTimeoutMs ?? IDLE_TIMEOUT_MS
  let sweeps = 0
  const sweep = setInterval(() => {
    sweeps++
    // seen at count k: idle since somewhere in the quarter that ended at sweep k + 1
    for (const [sock, c] of sockets) if (sweeps - c.seen - 1 >= 4) sock.destroy()
  }, idleMs / 4).unref()

  /** The answer to one complete request. */
  function answer(head: RequestHead, body: Buffer): Answer {
    const q = head.path.indexOf('?')
    const path = q < 0 ? head.path : head.path.slice(0, q)
    if (path === '/healthz') return text(200, 'ok')
    if (path !== WEBHOOK_PATH) return text(404, `weft webhook: no ${path}; POST AdmissionReviews to ${WEBHOOK_PATH}`)
    if (head.method !== 'POST') return text(405, `weft webhook: ${head.method} not allowed; POST an AdmissionReview`, 'allow: POST\r\n')
    let review: unknown
    try {
      review = JSON.parse(body.toString('utf8'))
    } catch (err) {
      count('bad-request')
      return text(400, `weft webhook: body is not JSON (${(err as Error).message}); expected an AdmissionReview (admission.k8s.io/v1)`)
    }
    const out = admit(review, o)
    if ('error' in out) {
      count('bad-request')
      return text(400, `weft webhook: ${out.error}`)
    }
    count(out.decision)
    o.onDecision?.(out.decision, out.review.response.uid)
    return { status: 200, type: 'application/json', body: out.json }
  }

  const server = createServer({ cert: o.certPem, key: o.keyPem, minVersion: 'TLSv1.2' }, (sock) => {
    const conn = { seen: sweeps }
    sockets.set(sock, conn)
    sock.setNoDelay(true)
    sock.on('error', () => {}) // a peer that resets: the socket closes, nothing else to do
    sock.on('close', () => sockets.delete(sock))
    let pending: Buffer[] = []
    let pendingLen = 0
    let head: RequestHead | undefined
    let chunked: ChunkedDecoder | undefined
    let body: Buffer[] = []
    let bodyLen = 0
    let chunkedDone = false
    let closing = false
    const sink: ChunkSink = {
      onChunkData: (b, s, e) => { body.push(b.subarray(s, e)); bodyLen += e - s },
      onChunkedEnd: () => { chunkedDone = true },
    }
    const send = (a: Answer) => {
      const close = a.close === true || head?.keepAlive === false
      sock.write(`HTTP/1.1 ${a.status} ${reasonPhrase(a.status)}\r\ncontent-type: ${a.type}\r\ncontent-length: ${Buffer.byteLength(a.body)}\r\n${a.extra ?? ''}${close ? 'connection: close\r\n' : ''}\r\n${a.body}`)
      if (close) {
        closing = true
        sock.end()
      }
    }
    const fail = (a: Answer) => {
      if (a.status === 400 || a.status === 413) count('bad-request')
      send({ ...a, close: true })
    }
    sock.on('data', (d: Buffer) => {
      if (closing) return
      conn.seen = sweeps
      let buf = pendingLen === 0 ? d : Buffer.concat([...pending, d])
      pending = []
      pendingLen = 0
      let at = 0
      while (at < buf.length && !closing) {
        if (head === undefined) {
          const end = buf.indexOf('\r\n\r\n', at)
          if (end < 0) {
            if (buf.length - at > MAX_HEAD) return fail(text(400, `weft webhook: request head over ${MAX_HEAD} bytes`))
            break
          }
          let from = at
          while (buf[from] === 0x0d && buf[from + 1] === 0x0a) from += 2 // leading blank lines (RFC 9112 2.2)
          const h = parseRequestHead(buf.latin1Slice(from, end), MAX_HEADERS)
          if (h instanceof HttpError) return fail(text(h.status === 431 ? 431 : 400, `weft webhook: bad request (${h.message})`))
          at = end + 4
          if (h.upgrade !== '') return fail(text(400, 'weft webhook: no protocol upgrades here'))
          if (h.contentLength > MAX_BODY) return fail(text(413, `weft webhook: body over ${MAX_BODY} bytes`))
          head = h
          body = []
          bodyLen = 0
          chunked = h.chunked ? new ChunkedDecoder() : undefined
          chunkedDone = false
          if (h.expectContinue && (h.chunked || h.contentLength > 0)) sock.write('HTTP/1.1 100 Continue\r\n\r\n')
        }
        // the body
        if (chunked !== undefined) {
          const next = chunked.push(buf, at, buf.length, sink)
          if (next < 0) return fail(text(400, `weft webhook: bad chunked body (${chunked.error})`))
          at = next
          if (bodyLen > MAX_BODY) return fail(text(413, `weft webhook: body over ${MAX_BODY} bytes`))
          if (!chunkedDone) break
        } else {
          const need = Math.max(0, head.contentLength) - bodyLen
          const take = Math.min(need, buf.length - at)
          if (take > 0) { body.push(buf.subarray(at, at + take)); bodyLen += take; at += take }
          if (bodyLen < Math.max(0, head.contentLength)) break
        }
        let a: Answer
        try {
          a = answer(head, body.length === 1 ? body[0]! : Buffer.concat(body, bodyLen))
        } catch (err) {
          a = text(500, `weft webhook: ${String(err)}`)
        }
        send(a)
        head = undefined
        chunked = undefined
        body = []
        bodyLen = 0
      }
      if (at < buf.length && !closing) {
        buf = buf.subarray(at)
        pending = [buf]
        pendingLen = buf.length
      }
    })
  })
  server.on('tlsClientError', () => {}) // a failed handshake concerns that client only
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: o.port ?? 0, host: o.host ?? '127.0.0.1', reusePort: o.reusePort === true }, () => { server.off('error', reject); resolve() })
  })
  return {
    server,
    port: (server.address() as AddressInfo).port,
    stats,
    setCertificate: (cert, key) => server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' }),
    close: () => new Promise<void>((resolve) => {
      clearInterval(sweep)
      server.close(() => resolve())
      for (const s of sockets.keys()) s.destroy()
    }),
  }
}
