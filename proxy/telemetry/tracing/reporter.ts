// Sends finished spans to a Zipkin v2 collector (POST <url>, JSON v2 list of spans) in batches,
// through zipkin-js's HTTP transport (zipkin-transport-http's HttpLogger, with zipkin's
// jsonEncoder.JSON_V2), behind a bounded queue of our own.
//
// Why a queue in front of HttpLogger: on its own, HttpLogger (0.22) keeps an unbounded queue
// (maxPayloadSize only triggers an early send), starts a new POST every interval even while the
// previous one hangs (unbounded concurrent requests when the collector is slow), ignores its
// `timeout` with Node's global fetch, and reports failures as 'error' events that do not say
// how many spans were lost. So this reporter:
//   - keeps at most `maxQueue` spans waiting; report() beyond that drops the span and counts it;
//   - every `batchIntervalMs` moves up to `maxBatch` spans into HttpLogger (logSpan: JSON_V2
//     encoding) and has it POST them at once (processQueue), with a fetch that has a timeout
//     and reads the response body; one POST in flight at a time;
//   - counts the batch as sent on HttpLogger's 'success' event, or as failed (its spans dropped)
//     on its 'error' event (connection refused, timeout, status other than 200/202).
// HttpLogger's own interval timer is set to the longest period Node allows; since its queue is
// emptied synchronously by us, it never has anything to send.
//
// report() is synchronous and O(1), never throws and never waits on the network.
// Counters: reported = every span given to report(); eventually
//   reported = sent + dropped + queued + inFlight.
import zipkin from 'zipkin'
import { HttpLogger } from 'zipkin-transport-http'
import type { SpanReporter, ZipkinSpan } from './tracer.ts'

export interface ZipkinReporterOptions {
  /** the collector's span endpoint, e.g. http://zipkin:9411/api/v2/spans */
  url: string
  /** how often queued spans are sent; default 1000 ms */
  batchIntervalMs?: number
  /** most spans waiting to be sent; default 1000 */
  maxQueue?: number
  /** most spans in one POST; default min(maxQueue, 500) */
  maxBatch?: number
  /** a POST that has not answered after this is abandoned (its spans dropped); default 5000 ms */
  timeoutMs?: number
}

export interface ReporterCounters {
  /** spans given to report() */
  reported: number
  /** spans lost: queue full, batch failed, or reported after close() */
  dropped: number
  /** spans the collector accepted (200/202) */
  sent: number
  /** POSTs that failed (each dropped its whole batch) */
  failed: number
  /** POSTs the collector accepted */
  batches: number
}

type FetchOptions = { method: string; body: string; headers: Record<string, string> }
type FetchLike = (url: string, o: FetchOptions) => Promise<Response>

/** What we use of zipkin-transport-http 0.22's HttpLogger (its JS has more than its .d.ts says). */
interface HttpLoggerApi {
  logSpan(span: ZipkinSpan): void
  processQueue(fetchImpl: FetchLike): void
  on(event: 'success' | 'error', listener: (arg: unknown) => void): unknown
  removeAllListeners(event?: string): unknown
}
type HttpLoggerCtor = new (o: {
  endpoint: string
  httpInterval: number
  jsonEncoder: unknown
  log: { error(...args: unknown[]): void }
  fetchImplementation: FetchLike
}) => HttpLoggerApi

/** setInterval's longest period (a larger one is silently turned into 1 ms). */
const TIMER_MAX = 2 ** 31 - 1
const RESOLVED = Promise.resolve()

export class ZipkinReporter implements SpanReporter {
  readonly url: string
  readonly batchIntervalMs: number
  readonly maxQueue: number
  readonly maxBatch: number
  readonly timeoutMs: number
  readonly counters: ReporterCounters = { reported: 0, dropped: 0, sent: 0, failed: 0, batches: 0 }
  /** the last failure, "" when none yet */
  lastError = ''
  private queue: ZipkinSpan[] = []
  private readonly logger: HttpLoggerApi
  private readonly fetchImpl: FetchLike
  private readonly timer: NodeJS.Timeout
  private inFlight: Promise<void> | null = null
  private inFlightCount = 0
  private settleInFlight: () => void = () => {}
  private closed = false

  constructor(o: ZipkinReporterOptions) {
    this.url = o.url
    this.batchIntervalMs = o.batchIntervalMs ?? 1000
    this.maxQueue = o.maxQueue ?? 1000
    this.maxBatch = o.maxBatch ?? Math.min(this.maxQueue, 500)
    this.timeoutMs = o.timeoutMs ?? 5000
    if (!(this.batchIntervalMs > 0) || !(this.maxQueue >= 1) || !(this.maxBatch >= 1) || !(this.timeoutMs > 0))
      throw new RangeError('zipkin reporter: batchIntervalMs, maxQueue, maxBatch and timeoutMs must be positive')
    const timeoutMs = this.timeoutMs
    const fetchImpl: FetchLike = (url, f) =>
      fetch(url, { method: f.method, body: f.body, headers: f.headers, signal: AbortSignal.timeout(timeoutMs) }).then(async (res) => {
        // read the (empty) body so the connection goes back to the pool
        try {
          await res.arrayBuffer()
        } catch {
          // the status is what counts
        }
        return res
      })
    this.fetchImpl = fetchImpl
    this.logger = new (HttpLogger as unknown as HttpLoggerCtor)({
      endpoint: o.url,
      httpInterval: TIMER_MAX,
      jsonEncoder: zipkin.jsonEncoder.JSON_V2,
      log: { error() {} },
      fetchImplementation: fetchImpl,
    })
    if (typeof this.logger.processQueue !== 'function') throw new Error('zipkin-transport-http: HttpLogger without processQueue (unsupported version)')
    this.logger.on('success', () => this.settle(true, ''))
    this.logger.on('error', (err) => this.settle(false, err instanceof Error ? err.message : String(err)))
    this.timer = setInterval(() => void this.send(), this.batchIntervalMs)
    this.timer.unref()
  }

  /** Queue a finished span. Never throws, never waits; drops (and counts) when the queue is full. */
  report(span: ZipkinSpan): void {
    const c = this.counters
    c.reported++
    if (this.closed || this.queue.length >= this.maxQueue) {
      c.dropped++
      return
    }
    this.queue.push(span)
  }

  /** spans waiting to be sent */
  get queued(): number {
    return this.queue.length
  }

  /** spans in the POST under way */
  get inFlightSpans(): number {
    return this.inFlightCount
  }

  /** Send what is queued now (in as many batches as needed); resolves when done. Never rejects. */
  async flush(): Promise<void> {
    if (this.inFlight !== null) await this.inFlight
    let rounds = Math.ceil(this.queue.length / this.maxBatch)
    while (rounds-- > 0 && this.queue.length > 0) await this.send()
    if (this.inFlight !== null) await this.inFlight
  }

  /** Stop the timer, send what is queued (best effort); later report() calls drop. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.timer)
    await this.flush()
    // Nothing is in flight any more. An 'error' listener stays (a no-op): HttpLogger's timer
    // outlives us, and an EventEmitter 'error' without a listener would throw.
    this.logger.removeAllListeners('success')
    this.logger.removeAllListeners('error')
    this.logger.on('error', () => {})
  }

  /** Start one POST of up to maxBatch queued spans unless one is under way. */
  private send(): Promise<void> {
    if (this.inFlight !== null) return this.inFlight
    const q = this.queue
    if (q.length === 0) return RESOLVED
    let batch: ZipkinSpan[]
    if (q.length <= this.maxBatch) {
      batch = q
      this.queue = []
    } else {
      batch = q.splice(0, this.maxBatch)
    }
    let n = 0
    for (let i = 0; i < batch.length; i++) {
      try {
        this.logger.logSpan(batch[i]) // JSON_V2 encoding
        n++
      } catch {
        this.counters.dropped++
      }
    }
    if (n === 0) return RESOLVED
    this.inFlightCount = n
    const p = new Promise<void>((resolve) => {
      this.settleInFlight = resolve
    })
    this.inFlight = p
    try {
      this.logger.processQueue(this.fetchImpl)
    } catch (err) {
      this.settle(false, err instanceof Error ? err.message : String(err))
    }
    return p
  }

  /** The POST under way ended ('success' or 'error' from HttpLogger). */
  private settle(ok: boolean, error: string): void {
    if (this.inFlight === null) return
    const n = this.inFlightCount
    const c = this.counters
    if (ok) {
      c.sent += n
      c.batches++
    } else {
      c.failed++
      c.dropped += n
      // HttpLogger's message for a bad status embeds the whole request body
      this.lastError = error.length > 300 ? error.slice(0, 300) + '…' : error
    }
    const resolve = this.settleInFlight
    this.inFlight = null
    this.inFlightCount = 0
    this.settleInFlight = () => {}
    resolve()
    // a backlog of full batches goes out now rather than one per interval
    if (!this.closed && this.queue.length >= this.maxBatch) void this.send()
  }
}
