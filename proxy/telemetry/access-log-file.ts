// The access log's destination: a file opened for appending (or standard output), written with one
// writev(2) at a time on libuv's pool, from buffers ("slabs") the log fills line by line and hands
// over whole. A slab comes back to the log once its bytes are written, so a busy log reuses the same
// few slabs instead of allocating a buffer per batch.
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
  /** bytes of a slab */
  slabBytes: number
  /** most unwritten bytes (queued and in flight) before whole slabs are dropped */
  maxBufferBytes: number
  onError: (err: Error) => void
  /** the destination was full (EAGAIN): the write waits and retries (each time) */
  onWait?: () => void
}

export interface LogFile {
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

/** Files with bytes still queued, written synchronously if the process exits first. */
const pending = new Set<() => void>()
let exitHook = false

export function openLogFile(opts: LogFileOptions): LogFile {
  const { slabBytes, maxBufferBytes, onError } = opts
  const ownFd = opts.path !== undefined
  let fd = ownFd ? -1 : 1
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
  const release = (c: Chunk): void => {
    unwritten -= c.len - c.off
    if (free.length < FREE_SLABS) free.push(c.slab)
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
      pump()
    })
  }

  return {
    slab(): Buffer {
      return free.pop() ?? Buffer.allocUnsafeSlow(slabBytes)
    },
    write(slab: Buffer, len: number, lines: number): void {
      if (failed || closed || len + unwritten > maxBufferBytes) {
        dropped += lines
        if (free.length < FREE_SLABS) free.push(slab)
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
