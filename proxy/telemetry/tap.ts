// Tap: live requests streamed to whoever asks, as NDJSON (`GET /tap` on the admin listener,
// `weft tap` on the command line). The proxy holds one TapHub; every listener hands it completed
// requests. While nobody taps, the request path's cost is one boolean read (`hub.active`), and
// onRequest returns at once. While someone taps, a request matching at least one subscription is
// serialized once and the same line goes to every matching subscriber.
//
// One line per matching request (admin API style, camelCase):
//
// | field       | type   | meaning |
// |-------------|--------|---------|
// | `time`      | string | request start, ISO 8601 UTC with milliseconds |
// | `listener`  | string | the listener's name (only from sinks made by `hub.forListener(name)`) |
// | `method`    | string | request method |
// | `authority` | string | `Host` as received |
// | `path`      | string | path and query as received |
// | `status`    | number | status sent to the client; 0 when the client went away first |
// | `latencyMs` | number | request head parsed → last response byte, ms (microsecond precision) |
// | `flags`     | string | response flag, `-` when relayed |
// | `route`     | string | route name, `""` when none matched |
// | `cluster`   | string | cluster, `""` when none |
// | `upstream`  | string | endpoint `address:port`, `""` when none |
// | `requestId` | string | `x-request-id` sent upstream, `""` when none |
// | `principal` | string | the caller's SPIFFE ID over mutual TLS (inbound), `""` when none |
// | `explain`   | array  | with `?explain=1` only: the request's decision trace steps (telemetry/explain.ts) |
//
// A slow reader cannot grow the proxy's memory: once its response holds TAP_MAX_QUEUED_BYTES not
// yet sent (write() has returned false long before), lines for it are dropped until it drains;
// then one line `{"dropped":N}` tells the reader how many it missed. `hub.dropped` counts them all.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestRecord, RequestSink } from './types.ts'
import type { ExplainRecorder } from './explain.ts'

export interface TapFilter {
  /** host part of the authority (no port, case-insensitive), or the virtual host's name */
  service?: string
  /** the request path (with query) starts with this */
  pathPrefix?: string
  /** a status ("503", "0") or a class ("5xx", "0xx" for client went away) */
  status?: string
  /** the authority as received, case-insensitive (with port when it has one) */
  authority?: string
  /** each line also carries the request's decision trace (`explain`: its steps; telemetry/explain.ts) */
  explain?: boolean
}

/** A filter compiled for matching: lowercased strings, a status range. */
interface Subscription {
  readonly service: string | null
  readonly pathPrefix: string | null
  readonly authority: string | null
  readonly statusMin: number
  readonly statusMax: number
  readonly explain: boolean
  readonly write: (line: string) => boolean
  readonly onEnd: (() => void) | null
  dropped: number
}

/** Parse a status filter: "503" → [503, 503], "5xx" → [500, 599], "0xx" or "0" → [0, 0]. */
export function parseStatusFilter(s: string): { min: number; max: number } {
  const v = s.trim().toLowerCase()
  // classes 1xx–5xx and 0xx (client went away); codes 100–599 and 0: nothing else can ever match
  if (/^[0-5]xx$/.test(v)) {
    const c = Number(v[0])
    return c === 0 ? { min: 0, max: 0 } : { min: c * 100, max: c * 100 + 99 }
  }
  if (v === '0' || /^[1-5][0-9]{2}$/.test(v)) return { min: Number(v), max: Number(v) }
  throw new RangeError(`invalid status filter ${JSON.stringify(s)}: expected a status 100-599 (e.g. 503), a class 1xx-5xx, or 0 / 0xx (client went away)`)
}

/** The host of an authority, lowercased, without the port ("[::1]:80" → "[::1]"). */
export function authorityHost(authority: string): string {
  let end = authority.length
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']')
    if (close > 0) end = close + 1
  } else {
    const colon = authority.lastIndexOf(':')
    if (colon >= 0) end = colon
  }
  return authority.slice(0, end).toLowerCase()
}

function matches(s: Subscription, r: RequestRecord): boolean {
  const status = r.status
  if (status < s.statusMin || status > s.statusMax) return false
  if (s.pathPrefix !== null && !r.path.startsWith(s.pathPrefix)) return false
  if (s.authority !== null && r.authority.toLowerCase() !== s.authority) return false
  if (s.service !== null && authorityHost(r.authority) !== s.service && r.vhostName.toLowerCase() !== s.service) return false
  return true
}

/** The NDJSON line of a request (with its trailing newline); with `explain`, its trace's steps too. */
export function tapLine(r: RequestRecord, listener?: string, explain = false): string {
  return (
    JSON.stringify({
      time: new Date(r.startTime).toISOString(),
      listener,
      method: r.method,
      authority: r.authority,
      path: r.path,
      status: r.status,
      latencyMs: Math.round(r.durationMs * 1000) / 1000,
      flags: r.flags === '' ? '-' : r.flags,
      route: r.routeName,
      cluster: r.clusterName,
      upstream: r.upstreamHost,
      requestId: r.requestId,
      principal: r.peer?.principal ?? '',
      ...(explain ? { explain: r.explain?.steps ?? null } : {}),
    }) + '\n'
  )
}

export class TapHub implements RequestSink {
  private subs: Subscription[] = []
  private isActive = false
  private droppedTotal = 0

  /** True only while someone taps: check it before calling onRequest. */
  get active(): boolean {
    return this.isActive
  }

  /** Lines dropped because a subscriber could not keep up, since the hub was created. */
  get dropped(): number {
    return this.droppedTotal
  }

  get subscribers(): number {
    return this.subs.length
  }

  /**
   * Receive one NDJSON line per matching request. `write` returns false when it dropped the line
   * (counted in `dropped`). `onEnd` is called if the hub ends the subscription (closeAll). Returns
   * the function that unsubscribes (idempotent).
   */
  subscribe(filter: TapFilter, write: (line: string) => boolean, onEnd?: () => void): () => void {
    let min = 0
    let max = 999
    if (filter.status !== undefined && filter.status !== '') {
      const st = parseStatusFilter(filter.status)
      min = st.min
      max = st.max
    }
    const sub: Subscription = {
      service: filter.service ? filter.service.toLowerCase() : null,
      pathPrefix: filter.pathPrefix ? filter.pathPrefix : null,
      authority: filter.authority ? filter.authority.toLowerCase() : null,
      statusMin: min,
      statusMax: max,
      explain: filter.explain === true,
      write,
      onEnd: onEnd ?? null,
      dropped: 0,
    }
    // Copy on write: a subscriber that unsubscribes from inside write() does not disturb the loop.
    this.subs = [...this.subs, sub]
    this.isActive = true
    return () => {
      const i = this.subs.indexOf(sub)
      if (i < 0) return
      this.subs = this.subs.filter((s) => s !== sub)
      this.isActive = this.subs.length > 0
    }
  }

  onRequest(r: RequestRecord): void {
    if (this.isActive) this.publish(r, undefined)
  }

  /** A sink for one listener: same hub, lines carry `"listener": name`. */
  forListener(name: string): RequestSink & { readonly active: boolean } {
    const hub = this
    return {
      get active() {
        return hub.isActive
      },
      onRequest(r: RequestRecord): void {
        if (hub.isActive) hub.publish(r, name)
      },
    }
  }

  /** End every subscription (admin server shutting down): calls their onEnd. */
  closeAll(): void {
    const subs = this.subs
    this.subs = []
    this.isActive = false
    for (const s of subs) s.onEnd?.()
  }

  private publish(r: RequestRecord, listener: string | undefined): void {
    const subs = this.subs
    let line: string | null = null
    let explained: string | null = null
    for (let i = 0; i < subs.length; i++) {
      const s = subs[i]
      if (!matches(s, r)) continue
      let l: string
      if (s.explain) l = explained ??= tapLine(r, listener, true)
      else l = line ??= tapLine(r, listener)
      if (!s.write(l)) {
        s.dropped++
        this.droppedTotal++
      }
    }
  }
}

/** The query of a /tap request as a filter; throws RangeError on a bad status. */
export function tapFilterFromQuery(q: URLSearchParams): TapFilter {
  const f: TapFilter = {}
  const service = q.get('service')
  const path = q.get('path') ?? q.get('pathPrefix')
  const status = q.get('status')
  const authority = q.get('authority')
  if (service) f.service = service
  if (path) f.pathPrefix = path
  if (status) {
    parseStatusFilter(status)
    f.status = status
  }
  if (authority) f.authority = authority
  const explain = q.get('explain')
  if (explain === '1' || explain === 'true') f.explain = true
  return f
}

/**
 * Bytes a tap response may hold in the process before lines are dropped. Larger than the stream's
 * 16 KiB high-water mark: node:http sends chunked writes made in one tick together, so a burst of
 * requests completing in one tick would otherwise drop lines even for a fast reader.
 */
export const TAP_MAX_QUEUED_BYTES = 256 * 1024

/**
 * `GET /tap?service=&path=&status=&authority=` on the admin server: a chunked NDJSON stream of
 * matching requests that lasts until the client disconnects (or hub.closeAll()).
 */
export function handleTapRequest(req: IncomingMessage, res: ServerResponse, hub: TapHub, explain?: ExplainRecorder): void {
  let filter: TapFilter
  try {
    filter = tapFilterFromQuery(new URL(req.url ?? '/', 'http://admin').searchParams)
  } catch (err) {
    const body = (err as Error).message + '\n'
    res.writeHead(400, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
    res.end(body)
    return
  }
  res.writeHead(200, {
    'content-type': 'application/x-ndjson',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  })
  if (req.method === 'HEAD') {
    res.end()
    return
  }
  res.flushHeaders() // the client knows at once that it is subscribed
  const sock = req.socket
  sock.setNoDelay(true)
  sock.setTimeout(0)

  let blocked = false
  let missed = 0
  const write = (line: string): boolean => {
    if (blocked || res.destroyed || res.writableEnded) {
      missed++
      return false
    }
    res.write(line)
    // Past the budget (write() has returned false by then, so 'drain' will come): drop until drained.
    if (res.writableLength >= TAP_MAX_QUEUED_BYTES) blocked = true
    return true
  }
  const onDrain = (): void => {
    blocked = false
    if (missed > 0) {
      const n = missed
      missed = 0
      if (!res.write(JSON.stringify({ dropped: n }) + '\n')) blocked = true
    }
  }
  res.on('drain', onDrain)
  const unsubscribe = hub.subscribe(filter, write, () => res.end())
  // while a tap asks for traces, every request is traced (its filters choose what it prints)
  const traced = filter.explain === true && explain !== undefined
  if (traced) explain.tapInterest(1)
  res.once('close', () => {
    if (traced) explain.tapInterest(-1)
    unsubscribe()
    res.off('drain', onDrain)
  })
}
