// The access log's destination: a file opened for appending (or standard output), written from
// buffers ("slabs") the log fills line by line and hands over whole. A slab comes back to the log
// once its bytes are written, so a busy log reuses the same few slabs instead of allocating a buffer
// per batch.
//
// Two ways to write a slab:
// - direct: a regular file the log opened itself is written from the main thread (write(2) into
//   the page cache, ~10-20 µs for a 32 KiB slab), when nothing is queued. Measured (bench
//   --access-log-cost): the log's cost halved against handing 256 KiB slabs to libuv's pool —
//   the hand-over (a pool thread woken, the completion back on the event loop) cost more than the
//   write, and a 32 KiB slab that is written at once is reused while it is still in the CPU's
//   cache, where 20 ms of lines (256 KiB) streamed through it and pushed the proxy's own data out.
//   A write that takes longer than SLOW_WRITE_MS (a disk the kernel throttles) sends the next
//   SLOW_BACKOFF_MS of slabs to the pool instead, so a slow disk blocks the proxy once, briefly.
// - queued: standard output (a pipe or a terminal may block), a file while the disk is slow, and
//   anything behind a queued slab (writes never reorder): one writev(2) at a time on libuv's pool,
//   in bigger slabs (QUEUED_SLAB_BYTES).
//
// Why not pino's destination (sonic-boom), used before: the log already batches, so what is left per
// batch is the hand-over; sonic-boom copied or merged each batch, and its flush state is private.
// Here the queue is the slabs themselves: flush() knows exactly when the last byte is written, the
// bound on unwritten bytes drops whole slabs and counts their lines, and writes never reorder.
//
// Failures: an error opening the file, or a write error other than EAGAIN, is reported to onError
// (each error code once); the lines of a failed write are counted as dropped. After a failed open
// every line is dropped. EAGAIN (a non-blocking stdout pipe that is full) retries the same bytes a
// little later. At process exit, slabs still queued are written synchronously (as pino did).
import fs from 'node:fs'

export interface LogFileOptions {
  /** file to append to (created when missing); undefined: standard output (fd 1, never closed) */
  path?: string
  /** most unwritten bytes (queued and in flight) before whole slabs are dropped */
  maxBufferBytes: number
  onError: (err: Error) => void
  /** the destination was full (EAGAIN): the write waits and retries (each time) */
  onWait?: () => void
  /** ms clock that times direct writes; default performance.now (tests inject a slow disk) */
  clock?: () => number
}

export interface LogFile {
  /** bytes of the slabs slab() hands out now (DIRECT_SLAB_BYTES once the file is known to take direct writes) */
  readonly slabBytes: number
  /** an empty slab of slabBytes (recycled when one is free) */
  slab(): Buffer
  /** write slab[0, len), which holds `lines` lines; the slab belongs to the file until written */
  write(slab: Buffer, len: number, lines: number): void
  /** resolves when every byte handed over so far is written (or can never be) */
  flush(): Promise<void>
  /** flush, then close the file (standard output stays open); later writes are dropped */
  close(): Promise<void>
  /** lines dropped: over the bound, failed writes, a destination that could not be opened */
  readonly dropped: number
}

interface Chunk {
  slab: Buffer
  /** next byte to write */
  off: number
  len: number
  lines: number
}

/** Slabs kept for reuse (two cover one being written while one fills). */
const FREE_SLABS = 2
/** Delay before writing again after EAGAIN, ms. */
const EAGAIN_RETRY_MS = 10
/** Most chunks in one writev. */
const MAX_IOV = 64
/** Slab bytes for direct writes: small enough to stay in the CPU's cache (see above). */
export const DIRECT_SLAB_BYTES = 32 * 1024
/**
 * Slab bytes for writes on libuv's pool: a batch this large is written without waiting for the
 * log's timer. 64 KiB filled in ~7 ms at 25k req/s; at 256 KiB the timer decides below ~37k req/s,
 * and the pool thread's CPU per request halved (0.2-0.7 against 0.7-1.1 µs, alternated bench runs).
 */
export const QUEUED_SLAB_BYTES = 256 * 1024
/** A direct write slower than this (ms) sends the next SLOW_BACKOFF_MS of writes to the pool. */
const SLOW_WRITE_MS = 5
const SLOW_BACKOFF_MS = 10_000

/** Files with bytes still queued, written synchronously if the process exits first. */
const pending = new Set<() => void>()
let exitHook = false

export function openLogFile(opts: LogFileOptions): LogFile {
  const { maxBufferBytes, onError } = opts
  const ownFd = opts.path !== undefined
  let fd = ownFd ? -1 : 1
  /** a regular file of our own: slabs are written from this thread when nothing is queued */
  let direct = false
  let slabBytes = QUEUED_SLAB_BYTES
  /** performance.now() until which direct writes are off (the last one was slow) */
  let slowUntil = 0
  const clock = opts.clock ?? (() => performance.now())
  let failed = false
  let closed = false
  let writing = false
  let retryTimer: NodeJS.Timeout | null = null
  /** queued chunks; while writing, the first `inflight` of them are in the writev */
  const queue: Chunk[] = []
  let inflight = 0
  let unwritten = 0
  let dropped = 0
  const free: Buffer[] = []
  const reported = new Set<string>()
  let waiters: (() => void)[] = []

  const report = (err: NodeJS.ErrnoException): void => {
    const key = err.code ?? err.message
    if (reported.has(key)) return
    reported.add(key)
    onError(err)
  }
  const recycle = (slab: Buffer): void => {
    if (free.length < FREE_SLABS && slab.length === slabBytes) free.push(slab)
  }
  const release = (c: Chunk): void => {
    unwritten -= c.len - c.off
    recycle(c.slab)
  }
  const settle = (): void => {
    if (queue.length > 0 && !failed) return
    pending.delete(exitFlush)
    const w = waiters
    waiters = []
    for (const f of w) f()
  }
  const dropAll = (): void => {
    for (const c of queue) {
      dropped += c.lines
      release(c)
    }
    queue.length = 0
  }

  function pump(): void {
    if (writing || fd < 0 || queue.length === 0 || retryTimer !== null) return
    writing = true
    inflight = Math.min(queue.length, MAX_IOV)
    if (inflight === 1) {
      const c = queue[0]
      fs.write(fd, c.slab, c.off, c.len - c.off, null, written)
    } else {
      const iov: Buffer[] = []
      for (let i = 0; i < inflight; i++) iov.push(queue[i].slab.subarray(queue[i].off, queue[i].len))
      fs.writev(fd, iov, written)
    }
  }

  function written(err: NodeJS.ErrnoException | null, n: number): void {
    writing = false
    const count = inflight
    inflight = 0
    if (err !== null) {
      if (err.code === 'EAGAIN') {
        opts.onWait?.()
        retryTimer = setTimeout(() => {
          retryTimer = null
          pump()
        }, EAGAIN_RETRY_MS)
        return
      }
      report(err)
      for (let i = 0; i < count; i++) {
        dropped += queue[i].lines
        release(queue[i])
      }
      queue.splice(0, count)
    } else {
      // a partial write leaves the rest of a chunk at the head of the queue
      let i = 0
      while (i < count && n >= queue[i].len - queue[i].off) {
        n -= queue[i].len - queue[i].off
        release(queue[i])
        i++
      }
      if (i < count) {
        queue[i].off += n
        unwritten -= n
      }
      queue.splice(0, i)
    }
    if (queue.length > 0) pump()
    else settle()
  }

  /** slab[0, len) now, from this thread (nothing is queued or in flight) */
  function writeDirect(slab: Buffer, len: number, lines: number): void {
    const t0 = clock()
    let off = 0
    try {
      while (off < len) off += fs.writeSync(fd, slab, off, len - off)
    } catch (err) {
      // the lines not wholly written are lost (a line torn by a failed write is counted too)
      let whole = 0
      for (let i = slab.indexOf(10); i >= 0 && i < off; i = slab.indexOf(10, i + 1)) whole++
      dropped += lines - whole
      report(err as NodeJS.ErrnoException)
    }
    const t1 = clock()
    if (t1 - t0 > SLOW_WRITE_MS) slowUntil = t1 + SLOW_BACKOFF_MS
    recycle(slab)
  }

  /** At exit: what is queued and not in flight, synchronously (an in-flight write completes on its own or is lost). */
  function exitFlush(): void {
    if (fd < 0) return
    for (let i = writing ? inflight : 0; i < queue.length; i++) {
      const c = queue[i]
      try {
        while (c.off < c.len) c.off += fs.writeSync(fd, c.slab, c.off, c.len - c.off)
      } catch {
        return
      }
    }
  }

  if (opts.path !== undefined) {
    fs.open(opts.path, 'a', (err, f) => {
      if (err !== null) {
        failed = true
        report(err)
        dropAll()
        settle()
        return
      }
      if (closed && queue.length === 0) {
        fs.close(f, () => {})
        return
      }
      fd = f
      try {
        direct = fs.fstatSync(f).isFile()
      } catch {
        direct = false
      }
      if (direct) {
        slabBytes = DIRECT_SLAB_BYTES
        free.length = 0
      }
      pump()
    })
  }

  return {
    get slabBytes() {
      return slabBytes
    },
    slab(): Buffer {
      return free.pop() ?? Buffer.allocUnsafeSlow(slabBytes)
    },
    write(slab: Buffer, len: number, lines: number): void {
      if (failed || closed || len + unwritten > maxBufferBytes) {
        dropped += lines
        recycle(slab)
        return
      }
      if (direct && queue.length === 0 && fd >= 0 && clock() >= slowUntil) {
        writeDirect(slab, len, lines)
        return
      }
      queue.push({ slab, off: 0, len, lines })
      unwritten += len
      if (!exitHook) {
        exitHook = true
        process.on('exit', () => {
          for (const f of pending) f()
        })
      }
      pending.add(exitFlush)
      pump()
    },
    flush(): Promise<void> {
      if (queue.length === 0 || failed) return Promise.resolve()
      return new Promise((resolve) => waiters.push(resolve))
    },
    async close(): Promise<void> {
      closed = true
      await this.flush()
      if (ownFd && fd >= 0) {
        const f = fd
        fd = -1
        await new Promise<void>((resolve) => fs.close(f, () => resolve()))
      }
    },
    get dropped() {
      return dropped
    },
  }
}
