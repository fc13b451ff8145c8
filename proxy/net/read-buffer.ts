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

export type OnBytes = (buf: Buffer, n: number) => void

export class ReadBuffer {
  private buf: Buffer = Buffer.allocUnsafe(READ_BUFFER_SIZE)
  /** set by a reader that keeps a reference into the bytes it was given */
  retained = false

  /** the buffer for the next read */
  readonly next = (): Buffer => {
    if (this.retained) {
      this.buf = Buffer.allocUnsafe(READ_BUFFER_SIZE)
      this.retained = false
    }
    return this.buf
  }
}

/** Options for net.connect that deliver reads of the new socket into rb. */
export function onreadOptions(rb: ReadBuffer, onBytes: OnBytes): { buffer: () => Buffer; callback: (n: number, buf: Buffer) => boolean } {
  return {
    buffer: rb.next,
    callback: (n: number, buf: Buffer) => {
      onBytes(buf, n)
      return true
    },
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
  rec[k.kBufferCb] = (n: number, buf: Buffer) => {
    onBytes(buf, n)
    return true
  }
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

export function retargetReads(s: Socket, onBytes: OnBytes): boolean {
  // Looked up on the socket itself, not through findSymbols: net.connect's public onread uses
  // the slot whatever WEFT_NO_FAST_READ says.
  if (kBufferCb === undefined) kBufferCb = Object.getOwnPropertySymbols(s).find((k) => k.description === 'kBufferCb')
  if (kBufferCb === undefined) return false
  const rec = s as unknown as Record<symbol, unknown>
  if (typeof rec[kBufferCb] !== 'function') return false
  rec[kBufferCb] = (n: number, buf: Buffer) => {
    onBytes(buf, n)
    return true
  }
  return true
}
