// Reads into a per-connection buffer that is reused from one read to the next, instead of a new
// Buffer pushed through a Readable stream per read. Measured on the proxy path this saves about a
// third of the CPU per request (see README, "Hot path"). The bytes handed to a reader are only
// valid during the call: whoever keeps a reference (a write that did not flush at once, a partial
// head kept for later) sets `retained`, and the next read gets a fresh buffer.
//
// Client sockets use the public `onread` option of net.connect. Accepted sockets have no such
// option, so the same mechanism is switched on through the socket's internals when the running
// Node has them (it does on every release Weft pins); otherwise they fall back to 'data' events.
import type { Socket } from 'node:net'

export const READ_BUFFER_SIZE = 16384
/**
 * A connection's first buffer. Most connections read small messages (a request head, a small
 * response), and an idle keep-alive connection keeps its buffer: 10,000 idle client connections
 * held 16 KiB each. A read that fills this one moves the connection to READ_BUFFER_SIZE for good.
 * Below half of Buffer.poolSize, so it is a slice of Node's shared 8 KiB pool.
 */
export const FIRST_READ_BUFFER_SIZE = 1024

export type OnBytes = (buf: Buffer, n: number) => void

/** A ReadBuffer by its `next`, which a socket holds (its kBufferGen): retargetReads finds the buffer's owner through it. */
const byNext = new WeakMap<() => Buffer, ReadBuffer>()

export class ReadBuffer {
  private buf: Buffer = Buffer.allocUnsafe(FIRST_READ_BUFFER_SIZE)
  /** set by a reader that keeps a reference into the bytes it was given */
  retained = false
  /** the last read filled the buffer (set by the read callbacks below) */
  filled = false

  constructor() {
    byNext.set(this.next, this)
  }

  /** the buffer for the next read */
  readonly next = (): Buffer => {
    if (this.filled && this.buf.length < READ_BUFFER_SIZE) {
      this.buf = Buffer.allocUnsafe(READ_BUFFER_SIZE)
      this.retained = false
    } else if (this.retained) {
      this.buf = Buffer.allocUnsafe(this.buf.length)
      this.retained = false
    }
    return this.buf
  }

  /** the read callback of a socket reading into this buffer */
  callback(onBytes: OnBytes): (n: number, buf: Buffer) => boolean {
    return (n: number, buf: Buffer) => {
      this.filled = n === buf.length
      onBytes(buf, n)
      return true
    }
  }
}

/** Options for net.connect that deliver reads of the new socket into rb. */
export function onreadOptions(rb: ReadBuffer, onBytes: OnBytes): { buffer: () => Buffer; callback: (n: number, buf: Buffer) => boolean } {
  return {
    buffer: rb.next,
    callback: rb.callback(onBytes),
  }
}

interface SocketInternals {
  _handle?: { useUserBuffer?: (b: Buffer) => void } | null
}

let symbols: { kBuffer: symbol; kBufferCb: symbol; kBufferGen: symbol } | null | undefined

function findSymbols(s: Socket): typeof symbols {
  if (symbols !== undefined) return symbols
  if (process.env.WEFT_NO_FAST_READ === '1') return (symbols = null)
  const byName = new Map<string, symbol>()
  for (const k of Object.getOwnPropertySymbols(s)) if (k.description !== undefined) byName.set(k.description, k)
  const kBuffer = byName.get('kBuffer')
  const kBufferCb = byName.get('kBufferCb')
  const kBufferGen = byName.get('kBufferGen')
  const h = (s as unknown as SocketInternals)._handle
  symbols = kBuffer && kBufferCb && kBufferGen && h && typeof h.useUserBuffer === 'function' ? { kBuffer, kBufferCb, kBufferGen } : null
  return symbols
}

/**
 * Deliver the reads of an accepted socket to onBytes through rb. Returns false when this Node does
 * not allow it; the caller then listens to 'data' events.
 */
export function readIntoBuffer(s: Socket, rb: ReadBuffer, onBytes: OnBytes): boolean {
  const k = findSymbols(s)
  const h = (s as unknown as SocketInternals)._handle
  if (k === null || k === undefined || h == null || typeof h.useUserBuffer !== 'function') return false
  const rec = s as unknown as Record<symbol, unknown>
  const first = rb.next()
  rec[k.kBuffer] = first
  rec[k.kBufferCb] = rb.callback(onBytes)
  rec[k.kBufferGen] = rb.next
  h.useUserBuffer(first)
  return true
}

/**
 * Hand the reads of a socket to a new reader: protocol detection passing the connection to the
 * HTTP/1 codec or a tunnel, an upgraded HTTP connection becoming a tunnel. Works for sockets that
 * read through a user buffer (readIntoBuffer, or net.connect's onread, which set the same slot);
 * the buffer stays, only the callback changes. Returns false for a socket reading 'data' events:
 * the caller then removes the old owner's 'data' listener and adds its own.
 */
let kBufferCb: symbol | undefined
let kBufferGen: symbol | undefined

export function retargetReads(s: Socket, onBytes: OnBytes): boolean {
  // Looked up on the socket itself, not through findSymbols: net.connect's public onread uses
  // the slot whatever WEFT_NO_FAST_READ says.
  if (kBufferCb === undefined) {
    const own = Object.getOwnPropertySymbols(s)
    kBufferCb = own.find((k) => k.description === 'kBufferCb')
    kBufferGen = own.find((k) => k.description === 'kBufferGen')
  }
  if (kBufferCb === undefined) return false
  const rec = s as unknown as Record<symbol, unknown>
  if (typeof rec[kBufferCb] !== 'function') return false
  const rb = kBufferGen === undefined ? undefined : byNext.get(rec[kBufferGen] as () => Buffer)
  rec[kBufferCb] = rb !== undefined
    ? rb.callback(onBytes)
    : (n: number, buf: Buffer) => {
        onBytes(buf, n)
        return true
      }
  return true
}
