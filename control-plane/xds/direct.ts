// Responses written to a config stream's HTTP/2 stream directly, as the pieces ./wire.ts keeps
// (framedPieces: a small head, the resources' shared encodings, a small tail), instead of through
// grpc-js's write path, which serializes each response into one buffer and copies that into a
// framed buffer of its own: ~10 MB per complete snapshot per proxy at 10,000 Services, garbage as
// soon as it is written, and freed only by V8's next major collection (bench:cp's sync: +60 MB of
// such buffers at the peak; the control plane's CPU for the sync 10-12 s -> ~4 s without them).
//
// The pieces go out in groups of about GROUP_BYTES, the next group once the stream has taken the
// last (its 'drain'): a complete snapshot is ~10,000 pieces (a route table's virtual hosts), and
// queued at once their write requests would live as long as the proxy takes to read the whole
// message, long enough to be promoted to V8's old generation (+50 MB of old space over a sync).
import type { ServerHttp2Stream } from 'node:http2'

/** Bytes of pieces handed to the stream in one writev. */
export const GROUP_BYTES = 256 * 1024

/**
 * The HTTP/2 stream under a grpc-js server call. grpc-js 1.14 keeps it as `call.call.stream`
 * (ServerDuplexStreamImpl -> BaseServerInterceptingCall, when the server has no interceptors).
 * null when it is not there (another grpc-js): then responses go through call.write.
 * test/xds-large.test.ts checks that a server started by startConfigServer writes directly.
 */
export function http2StreamOf(call: object): ServerHttp2Stream | null {
  const s = (call as { call?: { stream?: unknown } }).call?.stream as Partial<ServerHttp2Stream> | undefined
  if (s == null || typeof s.write !== 'function' || typeof s.cork !== 'function' || typeof s.respond !== 'function' || s.session == null) return null
  return s as ServerHttp2Stream
}

interface Queued {
  readonly pieces: readonly Buffer[]
  next: number
  readonly written: () => void
}

/**
 * One stream's messages, in order, each as pieces; `written` is called once a message's last piece
 * was taken by the stream. Every message of the stream must go through it (order). Nothing is
 * written once the stream ended or was destroyed (what is queued is dropped: the ConfigStream is
 * closed then and gives back what it held).
 */
export class DirectWriter {
  private readonly stream: ServerHttp2Stream
  private readonly queue: Queued[] = []
  private waiting = false

  constructor(stream: ServerHttp2Stream) {
    this.stream = stream
  }

  write(pieces: readonly Buffer[], written: () => void): void {
    this.queue.push({ pieces, next: 0, written })
    if (!this.waiting) this.flush()
  }

  private flush(): void {
    const s = this.stream
    while (this.queue.length > 0) {
      if (s.destroyed || s.writableEnded) {
        this.queue.length = 0
        return
      }
      s.cork()
      let bytes = 0
      while (bytes < GROUP_BYTES && this.queue.length > 0) {
        const q = this.queue[0]
        const piece = q.pieces[q.next++]
        bytes += piece.length
        if (q.next < q.pieces.length) {
          s.write(piece)
          continue
        }
        this.queue.shift()
        s.write(piece, () => q.written()) // called with an error too: the stream then closes
      }
      s.uncork()
      if (s.writableNeedDrain) {
        this.waiting = true
        s.once('drain', () => {
          this.waiting = false
          this.flush()
        })
        return
      }
    }
  }
}
