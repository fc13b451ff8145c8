// The access log: one JSON line per completed request, written asynchronously through pino's
// destination (sonic-boom, `sync: false`) to a file (appended) or to standard output. Off by
// default (`telemetry.accessLog.enabled`). One access log per listener: the listener's peer labels
// are serialized once, at creation, not per request.
//
// Cost on the request path: a request filtered out (status class not listed, or not sampled) reads
// its status, costs an array read and at most one random() call, and builds nothing. A logged
// request is serialized by hand into one string (the field set is fixed: no object, no generic
// serializer; pino's logger.info() measured 5-10x the cost of this for the same line) and handed
// to a batch: the lines of up to BATCH_MS (20 ms) or BATCH_BYTES are joined into one string and
// handed to the destination as one Buffer, so the encoding and the write(2) are paid per batch, not
// per request (a write per request cost ~20 % of the throughput; a batch per event-loop turn ~12 %).
// The write to the file happens later, off the request path. The bytes not yet written are bounded (`maxBufferBytes`, 16 MiB by default): when the
// disk or the stdout reader cannot keep up, further lines are dropped and counted (`dropped`)
// rather than growing memory.
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
import pino from 'pino'
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

/** A batch this large is handed to the destination at once, without waiting for the end of the turn. */
const BATCH_BYTES = 64 * 1024
/** A line waits at most this long (ms) for its batch to be written. */
const BATCH_MS = 20

/** The part of sonic-boom's state `flush()` reads (its public flush() does not wait unless minLength > 0). */
interface SonicState {
  fd: number
  destroyed: boolean
  _writing: boolean
  _opening?: boolean
  _len: number
}

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

const q = JSON.stringify as (s: string) => string

/** A string, or null when empty. */
function qn(s: string): string {
  return s === '' ? 'null' : q(s)
}

/** A number (never NaN/Infinity in JSON). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
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

export function createAccessLog(opts: AccessLogOptions, labels: PeerLabels): AccessLog {
  const classes = classTable(opts.statusClasses)
  const sampling = opts.sampling ?? 100
  if (!(sampling >= 0 && sampling <= 100)) throw new RangeError(`access log: sampling must be a percentage 0–100, got ${sampling}`)
  const threshold = sampling / 100
  const random = opts.random ?? Math.random
  const onError = opts.onError ?? ((err: Error) => process.emitWarning(`access log ${opts.path ?? 'stdout'}: ${err.message}`))

  // Buffer mode: sonic-boom's string mode measures the whole pending string on every write.
  const dest = pino.destination({
    dest: opts.path ?? 1,
    sync: false,
    append: true,
    contentMode: 'buffer',
    maxLength: opts.maxBufferBytes ?? 16 * 1024 * 1024,
  })
  const state = dest as unknown as SonicState
  // In buffer mode sonic-boom's write() takes a Buffer (its typings only know strings).
  const out = dest as unknown as { write(chunk: Buffer): boolean }
  let dropped = 0
  let lastError: Error | null = null
  let failed = false
  /** closed, or the destination failed to open: nothing more is written */
  let off = false
  // A dropped write is a batch: count its lines.
  dest.on('drop', (data: Buffer | string) => {
    let n = 0
    for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) n++
    dropped += Math.max(n, 1)
  })
  dest.on('error', (err: Error) => {
    // pino's own listener re-emits errors other than EPIPE: report each one once.
    if (err === lastError) return
    lastError = err
    if (state.fd < 0) {
      // Never opened: nothing will be written. pino flushes its destinations synchronously at
      // process exit, which throws on a stream without a file; do what pino does on EPIPE.
      failed = true
      off = true
      ;(dest as unknown as { flushSync: () => void }).flushSync = () => {}
    }
    onError(err)
  })

  // The listener's labels, serialized once.
  const peer =
    ',"reporter":' + q(labels.reporter) +
    ',"source_workload":' + q(labels.sourceWorkload) +
    ',"source_namespace":' + q(labels.sourceNamespace) +
    ',"destination_workload":' + q(labels.destinationWorkload) +
    ',"destination_namespace":' + q(labels.destinationNamespace)

  let closing: Promise<void> | null = null
  // Lines of the current event-loop turn, written by writeBatch (setImmediate).
  let batch = ''
  let scheduled: NodeJS.Timeout | null = null
  const writeBatch = (): void => {
    if (scheduled !== null) clearTimeout(scheduled)
    scheduled = null
    if (batch === '') return
    const chunk = batch
    batch = ''
    out.write(Buffer.from(chunk))
  }

  function onRequest(r: RequestRecord): void {
    const status = r.status
    const cls = (status / 100) | 0
    if (!classes[cls] || (threshold < 1 && !(random() < threshold))) return
    if (off) {
      if (failed) dropped++
      return
    }
    const flags = r.flags
    const line =
      '{"start_time":"' + isoTime(r.startTime) + '"' + peer +
      ',"duration_ms":' + num(Math.round(r.durationMs * 1000) / 1000) +
      ',"method":' + q(r.method) +
      ',"authority":' + q(r.authority) +
      ',"path":' + q(r.path) +
      ',"protocol":' + q(r.protocol) +
      ',"response_code":' + num(status) +
      ',"response_flags":' + (flags === '' ? '"-"' : q(flags)) +
      (r.grpcStatus === '' ? '' : ',"grpc_status":' + q(r.grpcStatus)) +
      ',"route_name":' + qn(r.routeName) +
      ',"upstream_cluster":' + qn(r.clusterName) +
      ',"upstream_host":' + qn(r.upstreamHost) +
      ',"bytes_received":' + num(r.bytesIn) +
      ',"bytes_sent":' + num(r.bytesOut) +
      ',"request_id":' + qn(r.requestId) +
      ',"trace_id":' + qn(r.traceId) +
      ',"downstream_remote_address":' + q(r.downstreamAddress) +
      ',"source_principal":' + (r.peer === null ? 'null' : q(r.peer.principal)) +
      '}\n'
    batch += line
    if (batch.length >= BATCH_BYTES) writeBatch()
    else if (scheduled === null) scheduled = setTimeout(writeBatch, BATCH_MS).unref()
  }

  /** Wait until sonic-boom has no line buffered or in flight (or cannot ever write them). */
  function flush(): Promise<void> {
    if (scheduled !== null) {
      clearTimeout(scheduled)
      writeBatch()
    }
    return new Promise((resolve) => {
      const check = (): void => {
        dest.off('drain', check)
        dest.off('ready', check)
        dest.off('error', check)
        if (state.destroyed || failed) return resolve()
        if (state.fd < 0 || state._opening === true) {
          dest.once('ready', check)
          dest.once('error', check)
          return
        }
        if (!state._writing && state._len === 0) return resolve()
        dest.once('drain', check)
        dest.once('error', check)
      }
      check()
    })
  }

  function close(): Promise<void> {
    if (closing !== null) return closing
    closing = (async () => {
      off = true
      await flush()
      if (state.destroyed || failed) return
      await new Promise<void>((resolve) => {
        dest.once('close', () => resolve())
        dest.once('error', () => resolve())
        dest.end()
      })
    })()
    return closing
  }

  return {
    onRequest,
    flush,
    close,
    get dropped() {
      return dropped
    },
  }
}
