// Raw HTTP/1.x client for tests: write exact bytes on a net socket, collect every byte received
// and parse responses one at a time (Content-Length, chunked with trailers, close-delimited, 1xx,
// bodyless HEAD/204/304).
import { connect, type Socket } from 'node:net'

export interface RawResponse {
  version: string
  status: number
  reason: string
  /** [name, value] in order, names as received */
  headers: [string, string][]
  body: Buffer
  /** chunked trailers, [name, value] */
  trailers: [string, string][]
  /** false when the connection closed before the body was complete (truncated) */
  complete: boolean
  /** the head text (status line and fields, without the blank line) */
  head: string
  /** first value of a header (case-insensitive) */
  get(name: string): string | undefined
  /** every value of a header */
  all(name: string): string[]
  has(name: string): boolean
}

export interface ReadOptions {
  /** the response answers a HEAD request: no body whatever the headers say */
  head?: boolean
  timeoutMs?: number
}

function makeResponse(head: string): RawResponse {
  const lines = head.split('\r\n')
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0])
  if (m === null) throw new Error(`malformed status line: ${JSON.stringify(lines[0])}`)
  const headers: [string, string][] = []
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':')
    headers.push([l.slice(0, c), l.slice(c + 1).trim()])
  }
  const r: RawResponse = {
    version: m[1],
    status: Number(m[2]),
    reason: m[3] ?? '',
    headers,
    body: Buffer.alloc(0),
    trailers: [],
    complete: true,
    head,
    get(name) {
      const n = name.toLowerCase()
      return r.headers.find(([k]) => k.toLowerCase() === n)?.[1]
    },
    all(name) {
      const n = name.toLowerCase()
      return r.headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v)
    },
    has(name) {
      return r.get(name) !== undefined
    },
  }
  return r
}

export class RawClient {
  readonly socket: Socket
  /** every byte received so far */
  data: Buffer = Buffer.alloc(0)
  /** the peer ended its side (FIN) */
  ended = false
  closed = false
  /** the connection was reset (ECONNRESET) */
  reset = false
  private cursor = 0
  private waiters: (() => void)[] = []

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (b: Buffer) => {
      this.data = this.data.length === 0 ? b : Buffer.concat([this.data, b])
      this.wake()
    })
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') this.reset = true
    })
    socket.on('close', () => {
      this.closed = true
      this.wake()
    })
  }

  static connect(port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, allowHalfOpen: opts.allowHalfOpen ?? false })
      s.setNoDelay(true)
      s.once('error', reject)
      s.once('connect', () => {
        s.off('error', reject)
        resolve(new RawClient(s))
      })
    })
  }

  /** true once the peer ended or the socket closed */
  get done(): boolean {
    return this.ended || this.closed
  }

  /** bytes received and not yet consumed by response() */
  get unread(): Buffer {
    return this.data.subarray(this.cursor)
  }

  text(): string {
    return this.data.toString('latin1')
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve()
      const cb = () => resolve()
      if (typeof data === 'string') this.socket.write(data, 'latin1', cb)
      else this.socket.write(data, cb)
    })
  }

  private wake(): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  /** Resolves on the next data/end/close (or after ms). */
  changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.waiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** Wait until the peer closes/ends the connection; true if it did within timeoutMs. */
  async waitClose(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (!this.done) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await this.changed(left)
    }
    return true
  }

  /** Wait until at least n bytes in total were received (or the connection is done). */
  async waitBytes(n: number, timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    while (this.data.length < n && !this.done) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await this.changed(left)
    }
    return this.data.length >= n
  }

  /**
   * The next response (1xx interim responses are returned on their own). Throws when the
   * connection closes before a complete head, or on timeout. A body cut short by the close comes
   * back with complete: false.
   */
  async response(opts: ReadOptions = {}): Promise<RawResponse> {
    const deadline = Date.now() + (opts.timeoutMs ?? 3000)
    for (;;) {
      const r = this.tryParse(opts.head === true)
      if (r !== null) return r
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no complete response in time; unread: ${JSON.stringify(this.unread.toString('latin1').slice(0, 300))}`)
      await this.changed(left)
    }
  }

  private tryParse(headRequest: boolean): RawResponse | null {
    const buf = this.data
    const he = buf.indexOf('\r\n\r\n', this.cursor, 'latin1')
    if (he === -1) {
      if (this.done) {
        const rest = buf.toString('latin1', this.cursor)
        throw new Error(`connection closed before a response head${rest === '' ? '' : ': ' + JSON.stringify(rest.slice(0, 300))}`)
      }
      return null
    }
    const r = makeResponse(buf.toString('latin1', this.cursor, he))
    let pos = he + 4
    const finish = (end: number): RawResponse => {
      this.cursor = end
      return r
    }
    if (r.status < 200 || r.status === 204 || r.status === 304 || headRequest) return finish(pos)
    const te = r.all('transfer-encoding').join(',')
    if (/chunked\s*$/i.test(te)) {
      const parts: Buffer[] = []
      for (;;) {
        const le = buf.indexOf('\r\n', pos, 'latin1')
        if (le === -1) return this.incomplete(r, parts, buf.length)
        const size = parseInt(buf.toString('latin1', pos, le).split(';')[0], 16)
        if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(buf.toString('latin1', pos, le))}`)
        if (size === 0) {
          const end = buf.indexOf('\r\n\r\n', le, 'latin1')
          if (end === -1) {
            // no trailers: "0\r\n\r\n"
            if (buf.length >= le + 4 && buf.toString('latin1', le, le + 4) === '\r\n\r\n') {
              r.body = Buffer.concat(parts)
              return finish(le + 4)
            }
            return this.incomplete(r, parts, buf.length)
          }
          for (const l of buf.toString('latin1', le + 2, end).split('\r\n')) {
            if (l === '') continue
            const c = l.indexOf(':')
            r.trailers.push([l.slice(0, c), l.slice(c + 1).trim()])
          }
          r.body = Buffer.concat(parts)
          return finish(end + 4)
        }
        const ds = le + 2
        if (buf.length < ds + size + 2) {
          parts.push(buf.subarray(ds, Math.min(buf.length, ds + size)))
          return this.incomplete(r, parts, buf.length)
        }
        parts.push(buf.subarray(ds, ds + size))
        pos = ds + size + 2
      }
    }
    const clv = r.get('content-length')
    if (clv !== undefined) {
      const cl = Number(clv)
      if (buf.length < pos + cl) return this.incomplete(r, [buf.subarray(pos)], buf.length)
      r.body = buf.subarray(pos, pos + cl)
      return finish(pos + cl)
    }
    // close-delimited
    if (!this.done) return null
    r.body = buf.subarray(pos)
    return finish(buf.length)
  }

  private incomplete(r: RawResponse, parts: Buffer[], end: number): RawResponse | null {
    if (!this.done) return null
    r.body = Buffer.concat(parts)
    r.complete = false
    this.cursor = end
    return r
  }

  /** Read n responses in order (options per index). */
  async responses(n: number, opts: ReadOptions[] = []): Promise<RawResponse[]> {
    const out: RawResponse[] = []
    for (let i = 0; i < n; i++) out.push(await this.response(opts[i] ?? {}))
    return out
  }

  destroy(): void {
    this.socket.destroy()
  }
}

/** Connect, write `bytes`, and collect the reply until the peer closes or timeoutMs passes. */
export async function sendRaw(port: number, bytes: string | Buffer, timeoutMs = 2000): Promise<{ client: RawClient; text: string; closed: boolean }> {
  const c = await RawClient.connect(port)
  await c.write(bytes)
  const closed = await c.waitClose(timeoutMs)
  c.destroy()
  return { client: c, text: c.text(), closed }
}

/** A client connected to `port`, destroyed at teardown. */
export async function rawClient(t: { teardown(fn: () => unknown): void }, port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(port, opts)
  t.teardown(() => c.destroy())
  return c
}
