// Give the heap back after a burst of complete snapshots (proxies syncing, a mesh-wide change).
//
// Why (bench:cp, 1,000 proxies, README "Memory with many proxies"): writing a complete snapshot to
// each connecting proxy leaves short-lived garbage that outlives the young generation (streams in
// flight): ~17 KB of old space per proxy for ~5 KB that stays live. With the responses written as
// pieces (./direct.ts) nothing forces a major collection during the sync, the old generation fills
// (135 -> 164 MB) and after the next collection V8 keeps its pages (~240 MB committed for ~145 MB
// used): RSS stayed ~390 MB after the sync instead of ~350 MB. Once the push queue is empty after
// such a burst, one compacting collection that also releases the pages (V8's CollectAllAvailable-
// Garbage, what Node's low-memory notification does) gives them back.
//
// When: the send budget (./budget.ts) is idle (nothing being written, nobody waiting) after at
// least `minBytes` of complete snapshots were written since the last compaction, `settleMs` after
// the last one (a timer, never on a proxy's request path); and `settleMs` after every
// `minStreams` config streams opened, busy or not (a reconnect storm of 1,000 proxies lasts
// tens of seconds and each stream's setup leaves ~17 KB in the old generation). Endpoint updates
// (small batches) do not count and do not delay it. The pause (bench:cp, ~145 MB heap) is ~0.5 s
// on an idle core, up to ~1.1 s on the loaded bench machine.
//
// Node has no public GC API: `gc` is V8's gc extension, exposed with --expose-gc (if the process
// was started with it) or else turned on at run time: v8.setFlagsFromString('--expose-gc'), then
// V8 installs the extension in contexts created after it (vm.runInNewContext('gc')). Node's docs
// call flags changed after start unpredictable; this one was checked on Node 26.10 (the pinned
// one): test/xds-compact.test.ts runs without --expose-gc. Without a gc() it logs a warning when
// a compaction is due, and goes on without.
import v8 from 'node:v8'
import vm from 'node:vm'
import type { Logger } from 'pino'

/** Complete snapshots written since the last compaction before the next one may run. */
export const DEFAULT_COMPACT_AFTER_BYTES = 64 * 1024 * 1024
/** Or this many config streams opened since the last compaction (a reconnect storm: proxies that know their versions are sent nothing, but each stream's setup leaves garbage). */
export const DEFAULT_COMPACT_AFTER_STREAMS = 256
/** Quiet time (no complete snapshot written) before it runs. */
export const DEFAULT_COMPACT_SETTLE_MS = 200

export interface Compaction {
  /** complete snapshots written (bytes) in the burst it followed */
  burstBytes: number
  /** config streams opened in it */
  streams: number
  pauseMs: number
  /** the process's CPU over the pause (the collection's helper threads included) */
  cpuMs: number
  heapUsedBefore: number
  heapUsedAfter: number
  heapTotalBefore: number
  heapTotalAfter: number
  rssBefore: number
  rssAfter: number
}

type GcFn = (opts?: { type?: string; execution?: string; flavor?: string }) => unknown

let gcFn: GcFn | null | undefined
/** V8's gc(), or null if this V8 will not give it. */
export function v8Gc(): GcFn | null {
  if (gcFn !== undefined) return gcFn
  const g = (globalThis as { gc?: GcFn }).gc
  if (typeof g === 'function') return (gcFn = g)
  try {
    v8.setFlagsFromString('--expose-gc')
    const f = vm.runInNewContext('gc') as unknown
    gcFn = typeof f === 'function' ? (f as GcFn) : null
  } catch {
    gcFn = null
  }
  return gcFn
}

export interface HeapCompactorOptions {
  /** bytes of complete snapshots before a compaction may run; 0 or less: never */
  minBytes?: number
  /** or streams opened */
  minStreams?: number
  settleMs?: number
  log?: Logger
  /** each compaction that ran (a metric) */
  onCompact?: (c: Compaction) => void
}

export class HeapCompactor {
  readonly minBytes: number
  readonly minStreams: number
  readonly settleMs: number
  /** compactions that ran */
  count = 0
  last: Compaction | null = null
  private burst = 0
  private streams = 0
  private timer: NodeJS.Timeout | null = null
  private forced = false
  private readonly log: Logger | undefined
  private readonly onCompact: (c: Compaction) => void
  private isIdle: () => boolean = () => true

  constructor(opts: HeapCompactorOptions = {}) {
    this.minBytes = opts.minBytes ?? DEFAULT_COMPACT_AFTER_BYTES
    this.minStreams = opts.minStreams ?? DEFAULT_COMPACT_AFTER_STREAMS
    this.settleMs = opts.settleMs ?? DEFAULT_COMPACT_SETTLE_MS
    this.log = opts.log
    this.onCompact = opts.onCompact ?? (() => {})
  }

  /** What tells whether the push queue is empty (the send budget). */
  watch(isIdle: () => boolean): void {
    this.isIdle = isIdle
  }

  /** A complete snapshot of `bytes` is being written. */
  wrote(bytes: number): void {
    if (this.minBytes <= 0) return
    this.burst += bytes
    if (this.timer !== null && !this.forced) {
      clearTimeout(this.timer) // the burst goes on: settleMs again from its end
      this.timer = null
    }
    if (this.timer === null && this.isIdle()) this.schedule(false)
  }

  /** A config stream opened. */
  opened(): void {
    if (this.minBytes <= 0) return
    this.streams++
    // every minStreams streams, even while streams keep opening and snapshots are being written
    // (a reconnect storm of thousands of proxies lasts tens of seconds: its garbage would pile up)
    if (this.minStreams > 0 && this.streams >= this.minStreams && !this.forced) {
      if (this.timer !== null) clearTimeout(this.timer)
      this.timer = null
      this.schedule(true)
    }
  }

  /** The push queue emptied: compact after settleMs if the burst was large enough. */
  idle(): void {
    if (this.timer === null) this.schedule(false)
  }

  private due(): boolean {
    return this.minBytes > 0 && (this.burst >= this.minBytes || (this.minStreams > 0 && this.streams >= this.minStreams))
  }

  /** forced: run even if the push queue is not empty then */
  private schedule(forced: boolean): void {
    if (!this.due()) return
    this.forced = forced
    this.timer = setTimeout(() => {
      this.timer = null
      this.forced = false
      if ((forced || this.isIdle()) && this.due()) this.compact() // not idle: its idle() schedules again
    }, this.settleMs)
    this.timer.unref()
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.forced = false
  }

  /** Run the compaction now (the timer's job). Returns null if V8 gave no gc(). */
  compact(): Compaction | null {
    const gc = v8Gc()
    if (gc === null) {
      this.burst = 0
      this.streams = 0
      this.log?.warn('heap compaction after a push burst skipped: V8 gave no gc()')
      return null
    }
    const before = process.memoryUsage()
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    const pauseMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const after = process.memoryUsage()
    const c: Compaction = {
      burstBytes: this.burst,
      streams: this.streams,
      pauseMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      heapUsedBefore: before.heapUsed,
      heapUsedAfter: after.heapUsed,
      heapTotalBefore: before.heapTotal,
      heapTotalAfter: after.heapTotal,
      rssBefore: before.rss,
      rssAfter: after.rss,
    }
    this.burst = 0
    this.streams = 0
    this.count++
    this.last = c
    const mb = (n: number) => Math.round(n / 1048576)
    this.log?.info(
      {
        burstMB: mb(c.burstBytes),
        streams: c.streams,
        pauseMs: Math.round(pauseMs),
        cpuMs: Math.round(c.cpuMs),
        heapUsedMB: [mb(c.heapUsedBefore), mb(c.heapUsedAfter)],
        heapTotalMB: [mb(c.heapTotalBefore), mb(c.heapTotalAfter)],
        rssMB: [mb(c.rssBefore), mb(c.rssAfter)],
      },
      'heap compacted after a push burst',
    )
    this.onCompact(c)
    return c
  }
}
