// The access log: one JSON line per completed request, appended to a file or written to standard
// output (./access-log-file.ts), off the request path. Off by default (`telemetry.accessLog.enabled`).
// One access log per listener: the listener's peer labels are serialized once, at creation.
//
// Cost on the request path: a request filtered out (status class not listed, or not sampled) reads
// its status, costs an array read and at most one random() call, and builds nothing. A logged
// request is serialized by hand into one string (the field set is fixed: no object, no generic
// serializer; pino's logger.info() measured 5-10x the cost of this for the same line) and encoded
// at once into a slab, a buffer that collects the lines of up to BATCH_MS (20 ms) or SLAB_BYTES and
// is then written whole (one write(2) per slab, on libuv's pool). So no line outlives its request as
// a string, and a batch is not concatenated, flattened or encoded again. Fields that usually repeat
// from one request to the next (method, authority, protocol, route, cluster, endpoint, client
// address, path) keep their last JSON form and are escaped again only when they change; the others
// are escaped only when they hold a character JSON must escape; the time is formatted once per
// second and the duration from integers (see isoTime and msText). Measured: see the README (Access
// log). The bytes not yet written are bounded (`maxBufferBytes`, 16 MiB by default): when the disk
// or the stdout reader cannot keep up, further lines are dropped and counted (`dropped`) rather
// than growing memory.
//
// Fields of every line, always present, in this order (names follow Envoy's / Istio's access log
// vocabulary; absent values are JSON null, never omitted):
//
// | field                       | type           | meaning |
// |-----------------------------|----------------|---------|
// | `start_time`                | string         | when the request head was parsed, ISO 8601 UTC with milliseconds (`2025-01-31T12:00:00.123Z`) |
// | `reporter`                  | string         | `source` (outbound listener: this workload calls out) or `destination` (inbound listener: calls to this workload) |
// | `source_workload`           | string         | calling workload; `unknown` when this proxy cannot know it (inbound) |
// | `source_namespace`          | string         | its namespace, or `unknown` |
// | `destination_workload`      | string         | called workload; `unknown` when not known per listener (outbound: see `upstream_cluster`) |
// | `destination_namespace`     | string         | its namespace, or `unknown` |
// | `duration_ms`               | number         | from the request head parsed to the last response byte written (or the failure), ms, microsecond precision |
// | `method`                    | string         | request method |
// | `authority`                 | string         | `Host` as received |
// | `path`                      | string         | request target (path and query) as received, before any rewrite |
// | `protocol`                  | string         | `HTTP/1.1`, `HTTP/1.0` or `HTTP/2` |
// | `response_code`             | number         | status sent to the client; `0` when the client went away before any response |
// | `response_flags`            | string         | `-` when the response was relayed; otherwise the proxy's flag (`NR`, `NC`, `UH`, `UF`, `UO`, `UC`, `UPE`, `UT`, `URX`, `RL`, `DI`, `FI`, `DPE`, `DR`, `DC`; see the README) |
// | `grpc_status`               | string         | grpc-status of a gRPC response (present on those lines only) |
// | `route_name`                | string \| null | the route that matched; null when none did |
// | `upstream_cluster`          | string \| null | the cluster the request was sent to; null when none |
// | `upstream_host`             | string \| null | the endpoint `address:port`; null when none was picked |
// | `bytes_received`            | number         | request body bytes received from the client |
// | `bytes_sent`                | number         | response body bytes sent to the client |
// | `request_id`                | string \| null | `x-request-id` sent upstream (generated when absent); null for replies before routing |
// | `trace_id`                  | string \| null | trace id when tracing is on; null otherwise |
// | `downstream_remote_address` | string         | the client's address |
// | `source_principal`          | string \| null | the caller's SPIFFE ID when it came over mutual TLS (inbound); null otherwise |
//
// Status classes: `1xx` … `5xx` select by the first digit of `response_code`. A `response_code` of
// 0 (the client went away before any response; flag `DC`) is its own class, `0xx`: it is logged
// when no filter is set and, with a filter, only when `0xx` is listed (a `["5xx"]` filter shows
// server failures, not client cancellations). Codes 600–999 (non-standard, relayed as received)
// are logged only when no filter is set.
import { openLogFile } from './access-log-file.ts'
import type { PeerLabels, RequestRecord, RequestSink } from './types.ts'

export interface AccessLogOptions {
  /** file to append to (created when missing); default standard output */
  path?: string
  /** only these status classes, "0xx" … "5xx" (see above); default all */
  statusClasses?: string[]
  /** percent of requests logged (0–100, after the status filter); default 100 */
  sampling?: number
  /** source of randomness for sampling, [0, 1); default Math.random */
  random?: () => number
  /** most bytes of lines waiting to be written before lines are dropped; default 16 MiB */
  maxBufferBytes?: number
  /** a write or open error of the destination (each error once); default: a process warning */
  onError?: (err: Error) => void
}

export interface AccessLog extends RequestSink {
  /** resolves when every line logged so far has been handed to the OS */
  flush(): Promise<void>
  /** flush, then close the file (standard output stays open); later requests are ignored */
  close(): Promise<void>
  /** lines dropped because the destination could not keep up (or failed to open) */
  readonly dropped: number
}

const STATUS_CLASS = /^[0-5]xx$/

/**
 * Bytes of a slab: a batch this large is written at once, without waiting for BATCH_MS. 64 KiB
 * filled in ~7 ms at 25k req/s; at 256 KiB the timer decides below ~37k req/s, and the write
 * thread's CPU per request halved (0.2-0.7 against 0.7-1.1 us, alternated bench runs).
 */
const SLAB_BYTES = 256 * 1024
/** A line waits at most this long (ms) for its slab to be written. */
const BATCH_MS = 20

/** Which classes (index = status / 100, 0–9) are logged. */
function classTable(statusClasses: string[] | undefined): boolean[] {
  const all = statusClasses === undefined
  const t = new Array<boolean>(10).fill(all)
  if (!all) {
    for (const c of statusClasses) {
      if (!STATUS_CLASS.test(c)) throw new RangeError(`access log: invalid status class ${JSON.stringify(c)} (expected 0xx, 1xx, … 5xx)`)
      t[Number(c[0])] = true
    }
  }
  return t
}

/** A character JSON must escape (JSON.stringify also escapes lone surrogates). */
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/

/** A JSON string: quoted as is unless it holds a character to escape (a regex test is ~2x faster than JSON.stringify). */
export function q(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"'
}

/** A string, or null when empty. */
function qn(s: string): string {
  return s === '' ? 'null' : q(s)
}

/** A number (never NaN/Infinity in JSON). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
}

/** ".001" … ".999" without trailing zeros, "" for 0: the fraction of a millisecond count in microseconds. */
const FRACTION = Array.from({ length: 1000 }, (_, i) => (i === 0 ? '' : ('.' + String(i).padStart(3, '0')).replace(/0+$/, '')))

/**
 * `ms` rounded to the microsecond, as String(Math.round(ms * 1000) / 1000) writes it, from two
 * integers (a double's shortest form costs ~5x more); null when not finite or negative.
 */
export function msText(ms: number): string {
  if (!(ms >= 0) || ms > 1e15) return num(Math.round(ms * 1000) / 1000)
  const us = Math.round(ms * 1000)
  const whole = Math.floor(us / 1000)
  return whole + FRACTION[us - whole * 1000]
}

// ISO 8601 time with milliseconds; Date#toISOString costs microseconds, so the part up to the
// second is cached (requests of one second share it).
let isoSecond = NaN
let isoPrefix = ''

/** `2025-01-31T12:00:00.123Z` for ms since the epoch. */
export function isoTime(ms: number): string {
  const sec = Math.floor(ms / 1000)
  if (sec !== isoSecond) {
    isoSecond = sec
    isoPrefix = new Date(sec * 1000).toISOString().slice(0, -4) // "2025-01-31T12:00:00."
  }
  const m = Math.floor(ms - sec * 1000)
  return isoPrefix + (m < 10 ? '00' : m < 100 ? '0' : '') + m + 'Z'
}

/**
 * The JSON form of a field that usually repeats from one request to the next: the last string and
 * its form are kept, so a repeat costs one string comparison (a pointer comparison for names that
 * come from the compiled config).
 */
class Memo {
  last = ''
  json = '""'
  of(s: string): string {
    if (s === this.last) return this.json
    this.last = s
    return (this.json = q(s))
  }
  /** null for "" */
  orNull(s: string): string {
    return s === '' ? 'null' : this.of(s)
  }
}

export function createAccessLog(opts: AccessLogOptions, labels: PeerLabels): AccessLog {
  const classes = classTable(opts.statusClasses)
  const sampling = opts.sampling ?? 100
  if (!(sampling >= 0 && sampling <= 100)) throw new RangeError(`access log: sampling must be a percentage 0–100, got ${sampling}`)
  const threshold = sampling / 100
  const random = opts.random ?? Math.random
  const onError = opts.onError ?? ((err: Error) => process.emitWarning(`access log ${opts.path ?? 'stdout'}: ${err.message}`))
  const file = openLogFile({ path: opts.path, slabBytes: SLAB_BYTES, maxBufferBytes: opts.maxBufferBytes ?? 16 * 1024 * 1024, onError })

  // The listener's labels, serialized once.
  const peer =
    ',"reporter":' + q(labels.reporter) +
    ',"source_workload":' + q(labels.sourceWorkload) +
    ',"source_namespace":' + q(labels.sourceNamespace) +
    ',"destination_workload":' + q(labels.destinationWorkload) +
    ',"destination_namespace":' + q(labels.destinationNamespace)
  const method = new Memo()
  const authority = new Memo()
  const path = new Memo()
  const protocol = new Memo()
  const flags = new Memo()
  const route = new Memo()
  const cluster = new Memo()
  const host = new Memo()
  const client = new Memo()

  /** closed: nothing more is logged */
  let off = false
  let closing: Promise<void> | null = null
  // The slab being filled: `used` bytes, `lines` lines; written by writeSlab (full, or BATCH_MS after its first line).
  let slab: Buffer | null = null
  let used = 0
  let lines = 0
  let scheduled: NodeJS.Timeout | null = null
  const writeSlab = (): void => {
    if (scheduled !== null) clearTimeout(scheduled)
    scheduled = null
    if (slab === null || used === 0) return
    file.write(slab, used, lines)
    slab = null
    used = lines = 0
  }
  const append = (line: string): void => {
    // UTF-8 takes at most 3 bytes per UTF-16 unit
    const room = line.length * 3
    if (slab !== null && used + room > SLAB_BYTES) writeSlab()
    if (room > SLAB_BYTES) {
      // a line longer than a slab (a huge path) goes alone, in a buffer of its own
      const big = Buffer.from(line)
      file.write(big, big.length, 1)
      return
    }
    if (slab === null) slab = file.slab()
    used += slab.write(line, used)
    lines++
    if (scheduled === null) scheduled = setTimeout(writeSlab, BATCH_MS).unref()
  }

  function onRequest(r: RequestRecord): void {
    const status = r.status
    const cls = (status / 100) | 0
    if (!classes[cls] || (threshold < 1 && !(random() < threshold))) return
    if (off) return
    const f = r.flags
    append(
      '{"start_time":"' + isoTime(r.startTime) + '"' + peer +
      ',"duration_ms":' + msText(r.durationMs) +
      ',"method":' + method.of(r.method) +
      ',"authority":' + authority.of(r.authority) +
      ',"path":' + path.of(r.path) +
      ',"protocol":' + protocol.of(r.protocol) +
      ',"response_code":' + num(status) +
      ',"response_flags":' + (f === '' ? '"-"' : flags.of(f)) +
      (r.grpcStatus === '' ? '' : ',"grpc_status":' + q(r.grpcStatus)) +
      ',"route_name":' + route.orNull(r.routeName) +
      ',"upstream_cluster":' + cluster.orNull(r.clusterName) +
      ',"upstream_host":' + host.orNull(r.upstreamHost) +
      ',"bytes_received":' + num(r.bytesIn) +
      ',"bytes_sent":' + num(r.bytesOut) +
      ',"request_id":' + qn(r.requestId) +
      ',"trace_id":' + qn(r.traceId) +
      ',"downstream_remote_address":' + client.of(r.downstreamAddress) +
      ',"source_principal":' + (r.peer === null ? 'null' : q(r.peer.principal)) +
      '}\n',
    )
  }

  function flush(): Promise<void> {
    writeSlab()
    return file.flush()
  }

  function close(): Promise<void> {
    if (closing !== null) return closing
    off = true
    writeSlab()
    closing = file.close()
    return closing
  }

  return {
    onRequest,
    flush,
    close,
    get dropped() {
      return file.dropped
    },
  }
}
