// The HTTP/1 exchange: one HTTP/1 request/response from a downstream connection to an upstream
// endpoint. The pipeline (filters, route, policy, the cluster's dispatch, tries, timers, retries,
// telemetry) is the shared one (proxy/exchange/core.ts); this file is the HTTP/1 wire around it:
// the upstream head, the request body (framed, queued while no connection is there, kept for
// another try), the response head (held back to leave in one write with the first body bytes),
// chunked framing, 1xx and upgrades, local replies as HTTP/1 bytes. Bodies are streamed with
// backpressure both ways, never buffered whole.
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { ClusterRuntime, EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_GATEWAY, OUTCOME_OK, OUTCOME_RESET } from '../cluster/outlier.ts'
import type { PoolWaiter } from '../cluster/pool.ts'
import type { UpstreamConn, UpstreamHandler } from '../cluster/upstream.ts'
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import type { H2Stream, StreamSink } from '../h2/codec/stream.ts'
import { cancelStream, h2Upstream, type H2Waiter, type UpSession } from '../h2/upstream.ts'
import { sinkTo, type UpStream } from '../exchange/h2-try.ts'
import { chunkHeader } from '../../api/http1/chunked.ts'
import { HttpError, reasonPhrase, type RequestHead, type ResponseHead } from '../../api/http1/head.ts'
import { MirrorRequest } from '../filters/mirror/mirror.ts'
import { FAIL_RESET } from '../filters/retry/policy.ts'
import type { CompiledRoute, RoutePolicy } from '../route/table.ts'
import type { CompiledMutation } from '../route/headers.ts'
import { TRACE_HEADER_NAMES } from '../telemetry/tracing/context.ts'
import { EXPLAIN_ID_HEADER } from '../telemetry/explain.ts'
import type { ReadBuffer } from '../net/read-buffer.ts'
import type { PeerIdentity } from '../identity/authz.ts'
import { XFCC_SANITIZE_SET } from '../listener/protocol.ts'
import { ExchangeCore, upstreamPath } from '../exchange/core.ts'
import { Flags, type ExchangeCounters, type RouterConfig } from '../exchange/types.ts'

export { Flags, type ExchangeCounters, type RouterConfig } from '../exchange/types.ts'

/** What the exchange needs from the downstream connection. */
export interface Downstream {
  readonly remoteAddress: string
  /** the caller's identity (mutual TLS); null: plain text */
  readonly peer: PeerIdentity | null
  readonly draining: boolean
  write(data: string | Buffer): boolean
  cork(): void
  uncork(): void
  /** stop/start reading request bytes for backpressure */
  pauseForUpstream(): void
  resumeForUpstream(): void
  /** the bytes last read from the client are still referenced (a write did not flush at once) */
  retainRead(): void
  /** the response is complete; close: the connection must close after it */
  exchangeDone(close: boolean): void
  /** bytes queued in the client socket, not yet taken by the kernel */
  readonly writableLength: number
  /** the response cannot be completed: reset the client connection */
  abort(): void
  /** the upstream switched protocols (the 101 is written): tunnel the two connections */
  upgrade(upstream: Socket, upRb: ReadBuffer | null, fromUpstream: Buffer | null): void
}

const QUEUE_LIMIT = 65536
/** body pieces up to this size are copied to leave with their framing in one write */
const COALESCE_LIMIT = 16384
const CONTINUE_100 = 'HTTP/1.1 100 Continue\r\n\r\n'
const CRLF = '\r\n'
const LAST_CHUNK = '0\r\n'

const RESP_NONE = 0
const RESP_RAW = 1
const RESP_CHUNKED = 2

export class Exchange extends ExchangeCore<string | Buffer> implements PoolWaiter, UpstreamHandler, H2Waiter, StreamSink {
  private readonly down: Downstream
  private readonly req: RequestHead
  /** the try's upstream: a connection of the endpoint's HTTP/1 pool, or a stream on its HTTP/2 session */
  private up: UpstreamConn | null = null
  private stream: UpStream | null = null
  /** the request fields of an HTTP/2 try */
  private h2Head: OutgoingHttpHeaders | null = null
  /** the response head of the stream came; its end came; its trailers as a "name: value\r\n" block */
  private streamStarted = false
  private streamEnded = false
  private upTrailers = ''
  /** the request body goes chunk-framed (a chunked request to an HTTP/1 upstream) */
  private frame = false
  private upHead = ''
  /** request body bytes waiting for an upstream connection */
  private queued: (string | Buffer)[] | null = null
  private queuedBytes = 0
  private reqSent = false
  private respMode = RESP_NONE
  /** sent again once on a fresh connection after a reused one failed (a stale keep-alive) */
  private retried = false
  private upstreamPaused = false
  /** response head not yet written */
  private headOut: string | null = null
  /** request bytes go upstream (false: no route, a local reply, discarded) */
  private forwarding = false
  /** the response of this try is being read and thrown away: a retry follows */
  private discarding = false
  private closeAfter = false
  private respEnded = false

  get method(): string {
    return this.req.method
  }
  get authority(): string {
    return this.req.authority
  }
  get path(): string {
    return this.req.path
  }
  get protocol(): string {
    return this.req.minor === 1 ? 'HTTP/1.1' : 'HTTP/1.0'
  }
  get downstreamAddress(): string {
    return this.down.remoteAddress
  }
  get peer(): PeerIdentity | null {
    return this.down.peer
  }

  constructor(down: Downstream, req: RequestHead, config: RouterConfig, counters: ExchangeCounters) {
    super(config, counters)
    this.down = down
    this.req = req
  }

  /** Some bytes of a response (relayed or local) were written to the client. */
  get wroteResponse(): boolean {
    return this.respStarted && this.headOut === null
  }

  /** Route and dispatch. The request body, if any, follows through onBody/onBodyEnd. */
  start(hasBody: boolean): void {
    if (!hasBody) this.reqEnded = true
    this.hasBody = hasBody
    const req = this.req
    const cluster = this.routeRequest(req.names, req.values)
    if (cluster === undefined) return
    this.forwarding = true
    // to an HTTP/2 upstream the body goes as DATA: de-framed
    this.frame = req.chunked && !cluster.http2
    if (req.expectContinue && hasBody) this.down.write(CONTINUE_100)
    if (this.delayed) return // the fault delay's timer (or the held filter) dispatches
    this.dispatch()
  }

  // ---- FilterExchange (proxy/filters/filter.ts) ---------------------------------------------

  header(name: string): string | undefined {
    return headerOf(this.req, name)
  }

  redirect(status: number, location: string): void {
    this.flags = Flags.DirectResponse
    this.writeLocal(status, 'location: ' + location + '\r\ncontent-length: 0\r\n' + (this.route?.responseHeaders.append ?? ''), EMPTY)
  }

  // ---- a try: the head, the mirror, a pool connection ----------------------------------------

  protected prepareTry(ep: EndpointState, pol: RoutePolicy | null): void {
    const req = this.req
    if (this.tries === 0 || req.authority === '') this.upHead = this.buildUpstreamHead(this.route!, ep)
    // An upgrade is not mirrored: the copy could only fail at its 101.
    if (pol !== null && this.tries === 0 && pol.mirror !== null && req.upgrade === '') this.startMirror(pol)
  }

  protected openTry(ep: EndpointState, cluster: ClusterRuntime): void {
    // An HTTP/2 cluster: a stream on the endpoint's shared session (onH2Session).
    if (cluster.http2) h2Upstream(ep.pool).acquire(this)
    else ep.pool.acquire(this)
  }

  /** Abandon the current try's connection or stream, or its place in the pool's (or session's) queue. */
  protected cancelTry(ep: EndpointState | undefined): void {
    const up = this.up
    const st = this.stream
    this.up = null
    this.stream = null
    if (up !== null) up.destroy()
    else if (st !== null) {
      if (!st.closed) cancelStream(st)
    } else if (ep !== undefined) ep.pool.cancel(this)
    if (this.waitTimer !== null) {
      clearTimeout(this.waitTimer)
      this.waitTimer = null
    }
  }

  protected resetForRetry(): void {
    this.queued = this.retained === null ? null : this.retained.slice()
    this.queuedBytes = 0
    this.reqSent = false
    this.upstreamPaused = false
  }

  protected responseOut(): boolean {
    return this.wroteResponse
  }

  protected unstartResponse(): void {
    this.headOut = null
    this.respStarted = false
    this.discarding = false
  }

  protected abortResponse(): void {
    this.complete()
    this.down.abort()
  }

  protected internalError(err: unknown): void {
    throw err
  }

  private startMirror(pol: RoutePolicy): void {
    const cluster = pol.mirror!.target(this.config.clusters, this.counters)
    if (cluster === null) return
    // The copy's Host gets "-shadow" (as Envoy), the rest of the head is the same.
    const h = this.upHead
    const a = h.indexOf('\r\nhost: ') + 8
    const e = h.indexOf('\r\n', a)
    const head = h.slice(0, e) + '-shadow' + h.slice(e)
    this.mirror = new MirrorRequest(cluster, a < 8 ? h : head, this.hasBody && !this.reqEnded, this.counters)
    const m = this.mirror
    // what came of the body already (de-framed when the try goes to an HTTP/2 upstream: framed again)
    const reframe = !this.frame && this.req.chunked
    if (this.queued !== null) {
      for (const part of this.queued) {
        if (reframe) m.body(chunkHeader(part.length))
        m.body(part)
        if (reframe) m.body(CRLF)
      }
    }
    if (this.reqEnded) {
      if (reframe) m.body(LAST_CHUNK + CRLF)
      m.bodyEnd()
    }
  }


  // ---- request path ------------------------------------------------------------------------

  private buildUpstreamHead(route: CompiledRoute, ep: EndpointState): string {
    const req = this.req
    const path = upstreamPath(route, req.path)
    const mut = route.requestHeaders
    const authority = mut.host ?? route.rewriteHost ?? (req.authority === '' ? ep.key : req.authority)
    let h = req.method + ' ' + path + ' HTTP/1.1\r\nhost: ' + authority + CRLF
    const drop = mut.drop
    const names = req.names
    const values = req.values
    let xff = ''
    let proto = false
    let rid = false
    const trace = this.trace
    const fcc = this.config.forwardClientCert
    for (let i = 0; i < names.length; i++) {
      const n = names[i]
      if (drop !== null && drop.has(n)) continue
      // what a caller says of its own certificate is not believed (inbound listeners)
      if (fcc !== 0 && n === 'x-forwarded-client-cert') continue
      // The trace context goes upstream as our span's (added below), not the caller's.
      if (trace !== null && TRACE_HEADER_NAMES.has(n)) continue
      if (n === 'x-forwarded-for') {
        // Several fields are one list (RFC 9110 5.3): keep the client's hops in order, add ours once.
        xff = xff === '' ? values[i] : xff + ', ' + values[i]
        continue
      }
      if (n === 'x-forwarded-proto') proto = true
      else if (n === 'x-request-id') {
        rid = true
        this.requestId = values[i]
      }
      h += n + ': ' + values[i] + CRLF
    }
    h += 'x-forwarded-for: ' + (xff === '' ? this.down.remoteAddress : xff + ', ' + this.down.remoteAddress) + CRLF
    if (fcc === XFCC_SANITIZE_SET && this.down.peer !== null) h += 'x-forwarded-client-cert: ' + this.down.peer.xfcc + CRLF
    if (!proto) h += 'x-forwarded-proto: http\r\n'
    if (!rid) {
      this.requestId = randomUUID()
      h += 'x-request-id: ' + this.requestId + CRLF
    }
    h += route.requestHeaders.append
    if (trace !== null) h += trace.headerBlock
    if (req.chunked) h += 'transfer-encoding: ' + req.transferEncoding + CRLF
    else if (req.contentLength >= 0) h += 'content-length: ' + req.contentLength + CRLF
    // The one hop-by-hop pair that goes on: asked again of the next hop (RFC 9110 7.8).
    if (req.upgrade !== '') h += 'connection: upgrade\r\nupgrade: ' + req.upgrade + CRLF
    return h + CRLF
  }

  onPoolConnection(conn: UpstreamConn): void {
    if (this.done) {
      conn.release(true)
      return
    }
    this.up = conn
    conn.bind(this, this.req.method === 'HEAD', this.req.upgrade !== '')
    this.startedAt = performance.now()
    const s = conn.socket
    let ok: boolean
    // The head is built as a string (a rope of its pieces) and written as one Buffer: Node's
    // buffer write path costs less per call than its string path (measured with --cpu-prof).
    if (this.queued === null) {
      ok = s.write(Buffer.from(this.upHead, 'latin1'))
    } else {
      s.cork()
      s.write(Buffer.from(this.upHead, 'latin1'))
      ok = true
      for (const part of this.queued) ok = typeof part === 'string' ? s.write(part, 'latin1') : s.write(part)
      this.queued = null
      this.queuedBytes = 0
      s.uncork()
    }
    if (this.reqEnded) this.reqSent = true
    if (ok) this.down.resumeForUpstream()
    else this.down.pauseForUpstream()
  }


  onPoolFailure(err: HttpError, flag: string): void {
    this.tryFailed(err, flag)
  }

  // ---- an HTTP/2 upstream: a stream on the endpoint's session (H2Waiter, StreamSink) --------

  onH2Session(s: UpSession): void {
    try {
      this.openStream(s)
    } catch (err) {
      this.streamFailed(err)
    }
  }

  onH2Failure(err: HttpError, flag: string): void {
    this.tryFailed(err, flag)
  }

  /** Open the try's stream with the request as HTTP/2 fields, and send what is queued of its body. */
  private openStream(s: UpSession): void {
    const ep = this.endpoint
    if (this.done || ep === undefined) return
    const req = this.req
    if (this.h2Head === null || req.authority === '') {
      const h = this.h2RequestHeaders(this.route!, ep, req.names, req.values, true)
      // the codec keeps the framing fields out of the head's fields: the length goes on
      if (!req.chunked && req.contentLength >= 0) h['content-length'] = req.contentLength
      this.h2Head = h
    }
    const endStream = this.reqEnded && this.queued === null
    let st: UpStream
    try {
      st = s.request(this.h2Head, { endStream })
    } catch {
      // the session went away between the pick and now (GOAWAY)
      process.nextTick(sessionGone, this)
      return
    }
    this.stream = st
    this.streamStarted = false
    this.streamEnded = false
    this.upTrailers = ''
    this.startedAt = performance.now()
    sinkTo(st, this)
    if (endStream) {
      this.reqSent = true
      return
    }
    let ok = true
    if (this.queued !== null) for (const part of this.queued) ok = st.write(typeof part === 'string' ? Buffer.from(part, 'latin1') : part)
    this.queued = null
    this.queuedBytes = 0
    if (this.reqEnded) this.endStream(st)
    else if (ok) this.down.resumeForUpstream()
    else this.down.pauseForUpstream()
  }

  private endStream(st: UpStream): void {
    if (!st.writableEnded) st.end()
    this.reqSent = true
  }

  /** (nextTick) the session refused the stream: as a reset before any response */
  sessionGone(): void {
    this.onUpstreamError(new HttpError(502, 'WEFT_ERR_UPSTREAM_RESET', 'the HTTP/2 session went away'), Flags.UpstreamConnectionTermination, false)
  }

  /** An exception in a stream callback: this request fails (502 or a reset), not the process. */
  private streamFailed(err: unknown): void {
    const st = this.stream
    try {
      this.onUpstreamError(new HttpError(502, 'WEFT_ERR_INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`), Flags.UpstreamProtocolError, this.streamStarted)
    } catch {}
    if (st !== null && !st.closed) cancelStream(st)
  }

  streamResponse(st: H2Stream, headers: IncomingHttpHeaders, flags: number): void {
    if ((st as unknown) !== this.stream) return
    try {
      this.streamStarted = true
      const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0
      const status = Number(headers[':status'])
      const noBody = endStream || this.req.method === 'HEAD' || status === 204 || status === 304
      this.onUpstreamHead(responseHeadOf(headers, status, endStream), !noBody)
      if (endStream) {
        // trailers-only (a gRPC error): the fields are the head's; nothing more comes
        this.streamEnded = true
        this.onUpstreamEnd('')
      } else if (this.headOut !== null) {
        // held back to leave with the first DATA of this read; written after it at the latest
        process.nextTick(flushHead, this)
      }
    } catch (err) {
      this.streamFailed(err)
    }
  }

  streamData(st: H2Stream, b: Buffer): void {
    if ((st as unknown) !== this.stream) return
    try {
      this.onUpstreamData(b, 0, b.length)
    } catch (err) {
      this.streamFailed(err)
    }
  }

  streamTrailers(st: H2Stream, t: IncomingHttpHeaders): void {
    if ((st as unknown) !== this.stream) return
    let block = ''
    for (const n in t) if (n.charCodeAt(0) !== 0x3a) block += n + ': ' + String(t[n]) + CRLF
    this.upTrailers = block
  }

  streamEnd(st: H2Stream): void {
    if ((st as unknown) !== this.stream) return
    this.streamEnded = true
    if (!this.streamStarted) return // no response: its close says why
    try {
      this.onUpstreamEnd(this.upTrailers)
    } catch (err) {
      this.streamFailed(err)
    }
  }

  streamWantTrailers(_st: H2Stream): void {
    // request trailers are not sent on from an HTTP/1 client
  }

  streamDrain(st: H2Stream): void {
    if ((st as unknown) === this.stream) this.onUpstreamDrain()
  }

  streamClose(st: H2Stream): void {
    if ((st as unknown) !== this.stream) return
    try {
      this.onUpstreamError(new HttpError(502, 'WEFT_ERR_UPSTREAM_RESET', `upstream reset the stream (code ${st.rstCode})`), Flags.UpstreamConnectionTermination, this.streamStarted)
    } catch (err) {
      this.streamFailed(err)
    }
  }

  /** Request body bytes from the client (already de-framed). */
  onBody(buf: Buffer, start: number, end: number): void {
    if (this.done || end === start) return
    this.bytesIn += end - start
    const data = buf.subarray(start, end)
    if (!this.forwarding) return // discarded
    if (this.frame) {
      this.send(chunkHeader(data.length))
      this.send(data)
      this.send(CRLF)
    } else {
      if (this.mirror !== null && this.req.chunked) this.mirror.body(chunkHeader(data.length))
      this.send(data)
      if (this.mirror !== null && this.req.chunked) this.mirror.body(CRLF)
    }
  }

  onBodyEnd(trailers: string): void {
    this.reqEnded = true
    if (this.done) return
    if (this.frame && this.forwarding) this.send(LAST_CHUNK + trailers + CRLF)
    if (this.mirror !== null) {
      // the mirror's head says chunked: its body is framed even when the try's is not
      if (!this.frame && this.req.chunked) this.mirror.body(LAST_CHUNK + trailers + CRLF)
      this.mirror.bodyEnd()
    }
    if (this.up !== null) this.reqSent = true
    else if (this.stream !== null && this.forwarding) this.endStream(this.stream)
    this.maybeFinish()
  }

  private send(part: string | Buffer): void {
    if (this.policy !== null) {
      if (this.retained !== null) {
        // kept for another try, up to a small limit; past it the request can no longer be retried
        const copy = typeof part === 'string' ? part : Buffer.from(part)
        this.keepForRetry(copy, copy.length)
      }
      if (this.mirror !== null) this.mirror.body(part)
    }
    if (this.up !== null) {
      const sock = this.up.socket
      const ok = typeof part === 'string' ? sock.write(part, 'latin1') : sock.write(part)
      if (typeof part !== 'string' && sock.writableLength > 0) this.down.retainRead()
      if (!ok) this.down.pauseForUpstream()
      return
    }
    const st = this.stream
    if (st !== null) {
      // a copy: the read buffer is reused, the stream holds what it was given until it is sent
      if (!st.write(typeof part === 'string' ? Buffer.from(part, 'latin1') : Buffer.from(part))) this.down.pauseForUpstream()
      return
    }
    // Waiting for a connection: keep a copy, the read buffer is reused.
    const copy = typeof part === 'string' ? part : Buffer.from(part)
    if (this.queued === null) this.queued = []
    this.queued.push(copy)
    this.queuedBytes += copy.length
    if (this.queuedBytes > QUEUE_LIMIT) this.down.pauseForUpstream()
  }

  onUpstreamDrain(): void {
    this.down.resumeForUpstream()
  }

  // ---- response path -----------------------------------------------------------------------

  onUpstreamInformational(head: ResponseHead): void {
    // We answered Expect ourselves; other 1xx (e.g. 103) go to HTTP/1.1 clients.
    if (head.status === 100 || this.req.minor === 0) return
    this.down.write(serializeHead(head, 'HTTP/1.1 ' + head.status + ' ' + head.reason + CRLF, null) + CRLF)
  }

  /**
   * 101 to an upgrade request: relay it (with the route's response header mutations), complete
   * the exchange (its record has status 101; the tunnel has counters of its own), and hand both
   * sockets to the listener as a tunnel. The upstream connection has left its pool for good.
   */
  onUpstreamUpgrade(head: ResponseHead, rest: Buffer | null, rb: ReadBuffer | null): void {
    const up = this.up
    this.up = null
    if (this.done || up === null) {
      up?.socket.destroy()
      return
    }
    const ep = this.endpoint!
    if (this.tryTimer !== null) {
      clearTimeout(this.tryTimer)
      this.tryTimer = null
    }
    this.cluster!.balancer.observe(ep, performance.now() - this.startedAt)
    this.endTry(OUTCOME_OK, false)
    this.done = true
    this.respStarted = true
    this.status = 101
    const mut = this.route!.responseHeaders
    const h = serializeHead(head, 'HTTP/1.1 101 ' + (head.reason === '' ? 'Switching Protocols' : head.reason) + CRLF, mut)
    this.down.write(h + mut.append + 'connection: upgrade\r\nupgrade: ' + (head.upgrade === '' ? this.req.upgrade : head.upgrade) + CRLF + CRLF)
    this.complete()
    this.down.upgrade(up.socket, rb, rest)
  }

  onUpstreamHead(head: ResponseHead, hasBody: boolean): void {
    if (this.done) return
    const status = head.status
    if (this.tryAnswered(status, -1, true)) {
      // read this response to its end and throw it away; the retry follows (onUpstreamEnd)
      this.discarding = true
      return
    }
    this.respStarted = true
    this.status = status
    const mut = this.route!.responseHeaders
    let h = serializeHead(head, 'HTTP/1.1 ' + head.status + ' ' + head.reason + CRLF, mut)
    h += mut.append
    if (this.explain !== null && this.explain.selectedBy === 'header') h += EXPLAIN_ID_HEADER + ': ' + this.requestId + CRLF
    // An answer before the request body is in: the connection closes after it (the rest of the
    // body is not read), so say so now.
    let close = !this.req.keepAlive || this.down.draining || !this.reqEnded
    if (!hasBody) {
      this.respMode = RESP_NONE
      if (head.contentLength >= 0 && head.status !== 204) h += 'content-length: ' + head.contentLength + CRLF
    } else if (head.contentLength >= 0) {
      this.respMode = RESP_RAW
      h += 'content-length: ' + head.contentLength + CRLF
    } else if (this.req.minor === 1) {
      this.respMode = RESP_CHUNKED
      h += 'transfer-encoding: ' + (head.chunked ? head.transferEncoding : 'chunked') + CRLF
    } else {
      // HTTP/1.0 client and no length: delimit by closing.
      this.respMode = RESP_RAW
      close = true
    }
    if (close) {
      this.closeAfter = true
      h += 'connection: close\r\n'
    } else if (this.req.minor === 0) {
      h += 'connection: keep-alive\r\n'
    }
    // Held back so that the head and the first body bytes leave in one write.
    this.headOut = h + CRLF
  }

  onUpstreamData(buf: Buffer, start: number, end: number): void {
    if (this.done || this.discarding) return
    let ok: boolean
    const n = end - start
    this.bytesOut += n
    if (this.respMode === RESP_CHUNKED) {
      ok = this.writeWithHead(chunkHeader(n), buf, start, end, CRLF)
    } else {
      ok = this.writeWithHead('', buf, start, end, '')
    }
    if (!ok && !this.upstreamPaused) {
      if (this.up !== null) {
        this.upstreamPaused = true
        this.up.socket.pause()
      } else if (this.stream !== null) {
        this.upstreamPaused = true
        this.stream.pause()
      }
    }
  }

  /** Write prefix + data + suffix, preceded by the held-back head if any, in one write when small. */
  private writeWithHead(prefix: string, buf: Buffer, start: number, end: number, suffix: string): boolean {
    const head = this.headOut === null ? prefix : this.headOut + prefix
    this.headOut = null
    const n = end - start
    if (head.length === 0 && suffix.length === 0) {
      const ok = this.down.write(buf.subarray(start, end))
      if (this.down.writableLength > 0) this.up?.retainRead()
      return ok
    }
    if (n <= COALESCE_LIMIT) {
      const out = Buffer.allocUnsafe(head.length + n + suffix.length)
      out.latin1Write(head, 0)
      buf.copy(out, head.length, start, end)
      if (suffix.length > 0) out.latin1Write(suffix, head.length + n)
      return this.down.write(out)
    }
    if (head.length > 0) this.down.write(head)
    let ok = this.down.write(buf.subarray(start, end))
    if (this.down.writableLength > 0) this.up?.retainRead()
    if (suffix.length > 0) ok = this.down.write(suffix)
    return ok
  }

  onUpstreamFlush(): void {
    if (this.headOut !== null) {
      this.down.write(this.headOut)
      this.headOut = null
    }
  }

  onDownstreamDrain(): void {
    if (!this.upstreamPaused) return
    if (this.up !== null) {
      this.upstreamPaused = false
      this.up.socket.resume()
    } else if (this.stream !== null) {
      this.upstreamPaused = false
      this.stream.resume()
    }
  }

  onUpstreamEnd(trailers: string): void {
    if (this.done) return
    if (this.discarding) {
      this.discarding = false
      this.releaseTry()
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    if (this.respMode === RESP_CHUNKED) {
      const h = this.headOut ?? ''
      this.headOut = null
      this.down.write(h + LAST_CHUNK + trailers + CRLF)
    } else {
      this.onUpstreamFlush()
    }
    this.respEnded = true
    this.maybeFinish()
  }

  /** Done when the response is complete; the upstream is reused only if the request was fully sent. */
  private maybeFinish(): void {
    if (!this.respEnded || this.done) return
    this.done = true
    this.endTry(this.outcome, false)
    this.releaseTry()
    this.onUpstreamFlush()
    this.complete()
    // A request body still arriving: we cannot wait for it on this connection, close after.
    this.down.exchangeDone(this.closeAfter || !this.reqEnded)
  }

  /** The response was read whole: the connection goes back to its pool (if the request was sent whole), the stream is done. */
  private releaseTry(): void {
    const up = this.up
    const st = this.stream
    this.up = null
    this.stream = null
    if (up !== null) {
      if (this.upstreamPaused) up.socket.resume()
      up.release(this.reqSent)
    } else if (st !== null && !st.closed && !(this.streamEnded && st.writableEnded)) {
      // a stream whose response ended and whose request was sent closes by itself: no RST_STREAM
      cancelStream(st)
    }
  }

  onUpstreamError(err: HttpError, flag: string, responseStarted: boolean): void {
    if (this.done) return
    const up = this.up
    this.up = null
    this.stream = null
    // A reused keep-alive connection that failed before any response byte most likely raced the
    // upstream's idle close. Without a body the request can safely go again on a fresh connection.
    if (!responseStarted && up !== null && up.reused && !this.retried && this.req.contentLength <= 0 && !this.req.chunked && !this.discarding) {
      this.retried = true
      this.counters.staleRetries++
      this.annotateRetry()
      this.endpoint!.pool.acquire(this, true)
      return
    }
    this.noteUpstreamError(err.code, err.message, responseStarted)
    if (this.discarding) {
      // the response we were throwing away broke off: retry all the same
      this.discarding = false
      this.endTry(this.outcome, false)
      this.retryNow()
      return
    }
    this.endTry(responseStarted ? OUTCOME_GATEWAY : OUTCOME_RESET, false)
    if (!this.respStarted && this.retry !== null && this.retryAfter(FAIL_RESET)) return
    if (this.headOut !== null) {
      // The head was held back and nothing reached the client yet: a clean error is still possible.
      this.headOut = null
      this.respStarted = false
    }
    if (this.respStarted) {
      // Mid-response: the only honest signal left is to reset the client connection.
      this.done = true
      this.flags = flag
      this.complete()
      this.down.abort()
      return
    }
    this.localReply(err.status, this.retryFlag(flag), err.code, err.message)
  }

  /** The client went away: release everything. */
  abortFromDownstream(): void {
    if (this.done) return
    this.downstreamLeft()
  }

  // ---- local replies -----------------------------------------------------------------------

  protected directReply(route: CompiledRoute): void {
    const d = route.direct!
    this.flags = Flags.DirectResponse
    this.writeLocal(d.status, d.head + route.responseHeaders.append, d.body)
  }

  /** The proxy's own answer as text/plain, its flag and error code as headers (decided in localReply). */
  protected writeReply(status: number, flag: string, code: string, message: string, extra: string): void {
    this.forwarding = false
    const body = Buffer.from(code + ': ' + message + '\n')
    const head =
      'content-type: text/plain\r\ncontent-length: ' + body.length +
      '\r\nx-weft-response-flags: ' + flag + '\r\nx-weft-error: ' + code + CRLF + extra
    this.writeLocal(status, head, body)
  }

  private writeLocal(status: number, fields: string, body: Buffer): void {
    if (this.done) return
    this.done = true
    this.respStarted = true
    this.status = status
    if (this.req.method !== 'HEAD') this.bytesOut = body.length
    // A client that sent Expect: 100-continue and got no 100 may or may not send its body: only
    // closing keeps the next bytes from being misread (as nginx and Envoy do).
    const close = !this.req.keepAlive || this.down.draining || status === 400 || (this.req.expectContinue && !this.reqEnded)
    let h = 'HTTP/1.1 ' + status + ' ' + reasonPhrase(status) + CRLF + fields
    if (close) h += 'connection: close\r\n'
    else if (this.req.minor === 0) h += 'connection: keep-alive\r\n'
    this.down.write(this.req.method === 'HEAD' || body.length === 0 ? h + CRLF : h + CRLF + body.latin1Slice(0, body.length))
    this.complete()
    // The request body (if any) is read and discarded by the connection before the next request.
    this.down.exchangeDone(close)
  }
}

const EMPTY = Buffer.alloc(0)

function headerOf(req: RequestHead, name: string): string | undefined {
  const names = req.names
  for (let i = 0; i < names.length; i++) if (names[i] === name) return req.values[i]
  return undefined
}

function serializeHead(head: ResponseHead, statusLine: string, mut: CompiledMutation | null): string {
  let h = statusLine
  const drop = mut === null ? null : mut.drop
  const names = head.names
  const values = head.values
  for (let i = 0; i < names.length; i++) {
    if (drop !== null && drop.has(names[i])) continue
    h += names[i] + ': ' + values[i] + CRLF
  }
  return h
}

const { NGHTTP2_FLAG_END_STREAM } = constants

/** Response fields of an HTTP/2 upstream that are not relayed as HTTP/1 fields (the framing is the proxy's). */
const H2_RESPONSE_DROP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'expect', 'http2-settings', 'content-length'])

/** An HTTP/2 response head as the HTTP/1 response head the exchange relays. */
function responseHeadOf(h: IncomingHttpHeaders, status: number, endStream: boolean): ResponseHead {
  const names: string[] = []
  const values: string[] = []
  for (const n in h) {
    if (n.charCodeAt(0) === 0x3a || H2_RESPONSE_DROP.has(n)) continue
    const v = h[n]
    if (Array.isArray(v)) {
      for (const x of v) {
        names.push(n)
        values.push(x)
      }
    } else if (v !== undefined) {
      names.push(n)
      values.push(String(v))
    }
  }
  const cl = h['content-length']
  return {
    status, reason: reasonPhrase(status), minor: 1, names, values,
    contentLength: cl === undefined ? (endStream ? 0 : -1) : Number(cl),
    chunked: false, transferEncoding: '', close: false, upgrade: '',
  }
}

function flushHead(x: Exchange): void {
  x.onUpstreamFlush()
}

function sessionGone(x: Exchange): void {
  x.sessionGone()
}
