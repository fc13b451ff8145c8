// The HTTP/1 exchange: one HTTP/1 request/response from a downstream connection to an upstream
// endpoint. The pipeline (filters, route, policy, the cluster's dispatch, tries, timers, retries,
// telemetry) is the shared one (proxy/exchange/core.ts); this file is the HTTP/1 wire around it:
// the upstream request (an HTTP/1 head, or HTTP/2 fields when the cluster speaks HTTP/2: a try
// asks for the one it needs, proxy/cluster/try.ts), the request body (de-framed by the codec,
// handed to the shared pipeline), the response head (held back to leave in one write with the
// first body bytes), chunked framing, 1xx and upgrades, local replies as HTTP/1 bytes. Bodies are
// streamed with backpressure both ways, never buffered whole.
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { EndpointState } from '../cluster/cluster.ts'
import { OUTCOME_OK } from '../cluster/outlier.ts'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2'
import { chunkHeader } from '../../api/http1/chunked.ts'
import { reasonPhrase, type HttpError, type RequestHead, type ResponseHead } from '../../api/http1/head.ts'
import type { CompiledRoute } from '../route/table.ts'
import type { CompiledMutation } from '../route/headers.ts'
import { trailerBlock, trailerFields } from '../exchange/h2-fields.ts'
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

/** body pieces up to this size are copied to leave with their framing in one write */
const COALESCE_LIMIT = 16384
const CONTINUE_100 = 'HTTP/1.1 100 Continue\r\n\r\n'
const CRLF = '\r\n'
const LAST_CHUNK = '0\r\n'

const RESP_NONE = 0
const RESP_RAW = 1
const RESP_CHUNKED = 2

export class Exchange extends ExchangeCore {
  private readonly down: Downstream
  private readonly req: RequestHead
  /** the request as an HTTP/1 head ("" until a try on an HTTP/1 cluster needs it) */
  private upHead = ''
  /** the request as HTTP/2 fields (null until a try on an HTTP/2 cluster needs them) */
  private h2Head: OutgoingHttpHeaders | null = null
  /** the request's trailers ("name: value\r\n" lines of a chunked body) */
  private reqTrailers = ''
  /** the response's trailers, as lines */
  private upTrailers = ''
  private respMode = RESP_NONE
  private upstreamPaused = false
  /** response head not yet written */
  private headOut: string | null = null
  /** request bytes go upstream (false: no route, a local reply, discarded) */
  private forwarding = false
  private closeAfter = false

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
  get wantsUpgrade(): boolean {
    return this.req.upgrade !== ''
  }
  protected override get mayMirror(): boolean {
    return this.req.upgrade === ''
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

  // ---- a try: the request in the form the cluster speaks -------------------------------------

  protected prepareTry(ep: EndpointState, http2: boolean): void {
    this.upstreamPaused = false
    const fresh = this.req.authority === '' // the endpoint's address is the authority
    if (http2) {
      if (this.h2Head === null || fresh) this.h2Head = this.h2Fields(ep)
    } else if (this.upHead === '' || fresh) this.upHead = this.buildUpstreamHead(this.route!, ep)
  }

  tryRequestH1(_endStream: boolean): string {
    return this.upHead
  }

  tryChunked(_endStream: boolean): boolean {
    return this.req.chunked
  }

  tryRequestH2(): OutgoingHttpHeaders {
    return this.h2Head!
  }

  tryTrailersH1(): string {
    return this.reqTrailers
  }

  /** the chunked request's trailers as HTTP/2 trailer fields (null: none) */
  tryTrailersH2(): OutgoingHttpHeaders | null {
    return this.reqTrailers === '' ? null : trailerFields(this.reqTrailers)
  }

  override tryRetainRequest(): void {
    this.down.retainRead()
  }

  protected pauseRequest(): void {
    this.down.pauseForUpstream()
  }

  protected resumeRequest(): void {
    this.down.resumeForUpstream()
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

  protected resetResponse(_err: HttpError): void {
    this.down.abort()
  }

  protected internalError(err: unknown): void {
    throw err
  }

  // ---- the mirror's copy (its Host "-shadow", as Envoy; the rest of the request the same) ----

  shadowH1(): string {
    const h = this.upHead !== '' ? this.upHead : this.buildUpstreamHead(this.route!, this.endpoint!)
    const a = h.indexOf('\r\nhost: ') + 8
    if (a < 8) return h
    const e = h.indexOf('\r\n', a)
    return h.slice(0, e) + '-shadow' + h.slice(e)
  }

  shadowChunked(): boolean {
    return this.req.chunked
  }

  shadowH2(): OutgoingHttpHeaders {
    const h: OutgoingHttpHeaders = { ...(this.h2Head ?? this.h2Fields(this.endpoint!)) }
    h[':authority'] = String(h[':authority']) + '-shadow'
    return h
  }

  // ---- request path ------------------------------------------------------------------------

  /** The request as HTTP/2 fields; its length goes on (the codec keeps the framing fields out of them). */
  private h2Fields(ep: EndpointState): OutgoingHttpHeaders {
    const req = this.req
    const h = this.h2RequestHeaders(this.route!, ep, req.names, req.values, true)
    if (!req.chunked && req.contentLength >= 0) h['content-length'] = req.contentLength
    return h
  }

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
      // one id for every try of the request (and its mirrored copy)
      if (this.requestId === '') this.requestId = randomUUID()
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

  /** Request body bytes from the client (already de-framed). */
  onBody(buf: Buffer, start: number, end: number): void {
    if (this.done || end === start) return
    this.bytesIn += end - start
    if (!this.forwarding) return // discarded
    this.sendBody(buf.subarray(start, end), true)
  }

  onBodyEnd(trailers: string): void {
    this.reqTrailers = trailers
    this.endBody()
  }

  // ---- response path -----------------------------------------------------------------------

  override tryInformational(head: ResponseHead): void {
    // We answered Expect ourselves; other 1xx (e.g. 103) go to HTTP/1.1 clients.
    if (head.status === 100 || this.req.minor === 0) return
    this.down.write(serializeHead(head, 'HTTP/1.1 ' + head.status + ' ' + head.reason + CRLF, null) + CRLF)
  }

  /**
   * 101 to an upgrade request: relay it (with the route's response header mutations), complete
   * the exchange (its record has status 101; the tunnel has counters of its own), and hand both
   * sockets to the listener as a tunnel. The upstream connection has left its pool for good.
   */
  override tryUpgrade(head: ResponseHead, socket: Socket, rb: ReadBuffer | null, rest: Buffer | null): void {
    this.up = null
    if (this.done) {
      socket.destroy()
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
    this.down.upgrade(socket, rb, rest)
  }

  /** The response head, as HTTP/1 (an HTTP/2 upstream's fields made one), held back for the first body bytes. */
  protected relayHead(status: number, h1: ResponseHead | null, h2: IncomingHttpHeaders | null, endStream: boolean): void {
    const head = h1 ?? responseHeadOf(h2!, status, endStream)
    const hasBody = h1 !== null ? !endStream : !(endStream || this.req.method === 'HEAD' || status === 204 || status === 304)
    this.upTrailers = ''
    const mut = this.route!.responseHeaders
    let h = serializeHead(head, 'HTTP/1.1 ' + status + ' ' + head.reason + CRLF, mut)
    h += mut.append
    if (this.explain !== null && this.explain.selectedBy === 'header') h += EXPLAIN_ID_HEADER + ': ' + this.requestId + CRLF
    // An answer before the request body is in: the connection closes after it (the rest of the
    // body is not read), so say so now.
    let close = !this.req.keepAlive || this.down.draining || !this.reqEnded
    if (!hasBody) {
      this.respMode = RESP_NONE
      if (head.contentLength >= 0 && status !== 204) h += 'content-length: ' + head.contentLength + CRLF
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
    // Held back so that the head and the first body bytes leave in one write; a try that does
    // not say when its read is done (HTTP/2) has it written after this tick's DATA at the latest.
    this.headOut = h + CRLF
    if (!endStream && !this.up!.flushes) process.nextTick(flushHead, this)
  }

  tryData(buf: Buffer, start: number, end: number): void {
    if (this.done || this.discarding) return
    let ok: boolean
    const n = end - start
    this.bytesOut += n
    if (this.respMode === RESP_CHUNKED) {
      ok = this.writeWithHead(chunkHeader(n), buf, start, end, CRLF)
    } else {
      ok = this.writeWithHead('', buf, start, end, '')
    }
    const t = this.up
    if (!ok && !this.upstreamPaused && t !== null) {
      this.upstreamPaused = true
      t.pause()
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

  override tryFlush(): void {
    if (this.headOut !== null) {
      this.down.write(this.headOut)
      this.headOut = null
    }
  }

  onDownstreamDrain(): void {
    if (!this.upstreamPaused) return
    this.upstreamPaused = false
    this.up?.resume()
  }

  tryTrailers(raw: string, fields: IncomingHttpHeaders | null): void {
    if (raw !== '' || fields === null) {
      this.upTrailers = raw
      return
    }
    this.upTrailers = trailerBlock(fields)
  }

  /** The response is complete; a request body still arriving is not waited for: the connection closes after. */
  protected relayEnd(): void {
    if (this.respMode === RESP_CHUNKED) {
      const h = this.headOut ?? ''
      this.headOut = null
      this.down.write(h + LAST_CHUNK + this.upTrailers + CRLF)
    } else {
      this.tryFlush()
    }
    this.done = true
    this.endTry(this.outcome, false)
    this.complete()
    this.down.exchangeDone(this.closeAfter || !this.reqEnded)
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
  x.tryFlush()
}
