// The access log: one JSON line per completed request, appended to a file or written to standard
// output (./access-log-file.ts), off the request path. Off by default (`telemetry.accessLog.enabled`).
// One access log per listener: the listener's peer labels are serialized once, at creation.
//
// Cost on the request path: a request filtered out (status class not listed, or not sampled) reads
// its status, costs an array read and at most one random() call, and builds nothing. A logged
// request is encoded straight into a slab (./access-log-line.ts: the fixed text encoded once, the
// values copied byte by byte; no string, no object, no generic serializer — pino's logger.info()
// measured 5-10x the cost of the string form of this line), a buffer that collects the lines of up
// to BATCH_MS (20 ms) or SLAB_BYTES and is then written whole (one write(2) per slab, on libuv's
// pool). So no line leaves garbage behind, and a batch is not concatenated or encoded again.
// Measured: see the README (Access log). The bytes not yet written are bounded (`maxBufferBytes`,
// 16 MiB by default): when the disk or the stdout reader cannot keep up, further lines are dropped
// and counted (`dropped`) rather than growing memory.
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
import { lineEncoder } from './access-log-line.ts'
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
  /** the destination was full (a non-blocking pipe: EAGAIN) and the write waits to retry */
  onWait?: () => void
}

export interface AccessLog extends RequestSink {
  /** resolves when every line logged so far has been handed to the OS */
  flush(): Promise<void>
  /** flush, then close the file (standard output stays open); later requests are ignored */
  close(): Promise<void>
  /** lines dropped because the destination could not keep up (or failed to open) */
  readonly dropped: number
}

export { isoTime, msText, q } from './access-log-line.ts'

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

export function createAccessLog(opts: AccessLogOptions, labels: PeerLabels): AccessLog {
  const classes = classTable(opts.statusClasses)
  const sampling = opts.sampling ?? 100
  if (!(sampling >= 0 && sampling <= 100)) throw new RangeError(`access log: sampling must be a percentage 0–100, got ${sampling}`)
  const threshold = sampling / 100
  const random = opts.random ?? Math.random
  const onError = opts.onError ?? ((err: Error) => process.emitWarning(`access log ${opts.path ?? 'stdout'}: ${err.message}`))
  const file = openLogFile({ path: opts.path, slabBytes: SLAB_BYTES, maxBufferBytes: opts.maxBufferBytes ?? 16 * 1024 * 1024, onError, onWait: opts.onWait })

  const encoder = lineEncoder(labels)

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

  function onRequest(r: RequestRecord): void {
    const status = r.status
    const cls = (status / 100) | 0
    if (!classes[cls] || (threshold < 1 && !(random() < threshold))) return
    if (off) return
    const room = encoder.maxBytes(r)
    if (slab !== null && used + room > SLAB_BYTES) writeSlab()
    if (room > SLAB_BYTES) {
      // a line that may be longer than a slab (a huge path) goes alone, in a buffer of its own
      const big = Buffer.allocUnsafeSlow(room)
      file.write(big, encoder.encode(r, big, 0), 1)
      return
    }
    if (slab === null) slab = file.slab()
    used = encoder.encode(r, slab, used)
    lines++
    if (scheduled === null) scheduled = setTimeout(writeSlab, BATCH_MS).unref()
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
