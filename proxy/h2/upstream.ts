// The HTTP/2 side of an endpoint: one h2c session (node:http2, prior knowledge) shared by every
// stream to that endpoint — multiplexing instead of a pool of connections. Kept on the endpoint's
// EndpointPool (pool.h2), so it survives config swaps with it and closes when the endpoint leaves.
//
// - Connect: pool.connectTimeout; the streams that asked while connecting wait for it (bounded by
//   pool.maxPending) and fail with UF together if it fails.
// - GOAWAY from the upstream: the session stops taking new streams (the next request opens a new
//   session), its streams in flight finish on it.
// - More streams than the upstream's SETTINGS_MAX_CONCURRENT_STREAMS wait in nghttp2's queue of
//   the session (it opens them as others close); the first streams wait for those SETTINGS.
// - Idle: a session without activity for pool.idleTimeout is closed (GOAWAY, then the socket).
// - The connection window is raised to CONNECTION_WINDOW so that one stream whose reader is slow
//   (its stream window full) cannot take the whole connection's window from the others.
import { connect, constants, type ClientHttp2Session, type Http2Session } from 'node:http2'
import type { EventEmitter } from 'node:events'
import { ClientSession } from './codec/client.ts'
import type { EndpointPool, PoolAttachment } from '../cluster/pool.ts'
import { HttpError } from '../../api/http1/head.ts'
import type { TryDispatcher, TryHandler, UpstreamTry } from '../cluster/try.ts'
import { H2Try } from './stream-try.ts'

/** connection-level receive window of every session (both directions of the proxy) */
export const CONNECTION_WINDOW = 16 * 1024 * 1024
/** SETTINGS of the proxy's sessions: no push, stream window 64 KiB (bounded memory per slow stream) */
export const H2_SETTINGS = { enablePush: false, initialWindowSize: 65535, maxConcurrentStreams: 1000 }

/** the same for the proxy's own client codec; a response head up to 64 KiB and 200 fields */
const CLIENT_OPTIONS = {
  maxConcurrentStreams: H2_SETTINGS.maxConcurrentStreams,
  maxHeaderListSize: 64 * 1024,
  maxHeaderFields: 200,
  initialWindowSize: H2_SETTINGS.initialWindowSize,
  connectionWindow: CONNECTION_WINDOW,
}

/**
 * The client codec of the upstream sessions: the proxy's own (proxy/h2/codec/client.ts, the
 * default), or node:http2 with WEFT_H2_UPSTREAM_CODEC=node (for comparison). The e2e pass-through
 * timeout once blamed on it happened with node:http2 too (a loaded machine; the test now retries).
 * Read when a session opens.
 */
function ownClient(): boolean {
  return process.env.WEFT_H2_UPSTREAM_CODEC !== 'node'
}

/** An upstream session of either codec. */
export type UpSession = ClientHttp2Session | ClientSession

export interface H2Waiter {
  /** who the waiter stands for, when it is an adapter (cancel finds it by either) */
  readonly target?: unknown
  onH2Session(s: UpSession): void
  /** flag: UF (connect failure or timeout), UO (too many waiting), UH (endpoint removed) */
  onH2Failure(err: HttpError, flag: string): void
}

export interface H2UpstreamStats {
  /** sessions opened (connections) */
  sessions: number
  connectFailures: number
  connectTimeouts: number
  goaways: number
}

export class H2Upstream implements PoolAttachment, TryDispatcher {
  private readonly pool: EndpointPool
  /** the session new streams go on; null: none yet, or it is going away */
  private session: UpSession | null = null
  private connected = false
  private waiters: H2Waiter[] = []
  private closed = false
  readonly stats: H2UpstreamStats = { sessions: 0, connectFailures: 0, connectTimeouts: 0, goaways: 0 }

  constructor(pool: EndpointPool) {
    this.pool = pool
  }

  /** A try for h on a stream of this endpoint's session (TryDispatcher, as EndpointPool.dispatch; start() acquires the session). */
  dispatch(h: TryHandler, queued: Buffer[] | null, ended: boolean): UpstreamTry {
    return new H2Try(this, h, queued, ended)
  }

  /** A session for a new stream: at once when connected, else when the connect completes. */
  acquire(w: H2Waiter): void {
    if (this.closed) {
      w.onH2Failure(new HttpError(503, 'WEFT_ERR_UPSTREAM_REMOVED', 'endpoint removed from config'), 'UH')
      return
    }
    const s = this.session
    if (s !== null && this.connected && !s.closed && !s.destroyed) {
      w.onH2Session(s)
      return
    }
    if (this.waiters.length >= this.pool.settings.maxPending) {
      // counted where /clusters shows an endpoint's pending overflows (connections.overflows)
      this.pool.stats.rqPendingOverflow++
      w.onH2Failure(new HttpError(503, 'WEFT_ERR_UPSTREAM_OVERFLOW', 'upstream connection pool overflow'), 'UO')
      return
    }
    this.waiters.push(w)
    if (s === null || s.closed || s.destroyed) this.open()
  }

  /** A waiter gave up (its client left, its try timed out). */
  cancel(w: unknown): void {
    const i = this.waiters.findIndex((x) => x === w || x.target === w)
    if (i !== -1) this.waiters.splice(i, 1)
  }

  private open(): void {
    const settings = this.pool.settings
    this.stats.sessions++
    this.connected = false
    const host = this.pool.host.includes(':') ? `[${this.pool.host}]` : this.pool.host
    let s: UpSession
    try {
      // mesh TLS runs on Weft's own codec only
      s = ownClient() || settings.tls !== null
        ? ClientSession.connect(this.pool.host, this.pool.port, CLIENT_OPTIONS, settings.tls, this.pool)
        : connect(`http://${host}:${this.pool.port}`, { settings: H2_SETTINGS, peerMaxConcurrentStreams: 1000 })
    } catch (e) {
      for (const w of this.waiters.splice(0)) notify(w, null, new HttpError(503, 'WEFT_ERR_NO_IDENTITY', (e as Error).message))
      return
    }
    this.session = s
    const ev: EventEmitter = s
    let settled = false
    const fail = (err: HttpError): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (this.session === s) this.session = null
      s.destroy()
      for (const w of this.waiters.splice(0)) notify(w, null, err)
    }
    const timer = setTimeout(() => {
      this.stats.connectTimeouts++
      fail(new HttpError(503, 'WEFT_ERR_UPSTREAM_CONNECT_TIMEOUT', 'upstream connect timeout'))
    }, settings.connectTimeoutMs)
    // Streams wait for the upstream's SETTINGS (one round trip on a new session only): sent
    // before them, a burst would exceed its SETTINGS_MAX_CONCURRENT_STREAMS (a Weft sidecar
    // refuses the streams over it); after them, nghttp2 queues what is over the limit.
    ev.once('remoteSettings', () => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      this.connected = true
      if (s instanceof ClientSession) {
        // the codec raised its connection window with its SETTINGS
      } else {
        try {
          s.setLocalWindowSize(CONNECTION_WINDOW)
        } catch {}
      }
      s.setTimeout(settings.idleTimeoutMs, () => {
        // no frame either way for idleTimeout: nothing is in flight worth keeping it for
        if (this.session === s) this.session = null
        s.close()
      })
      for (const w of this.waiters.splice(0)) notify(w, s, null)
    })
    ev.on('error', (err: NodeJS.ErrnoException) => {
      if (!settled) {
        this.stats.connectFailures++
        fail(new HttpError(503, 'WEFT_ERR_UPSTREAM_CONNECT', `upstream connect error: ${err.code ?? err.message}`))
      }
    })
    ev.on('goaway', () => {
      // in-flight streams finish on it; new ones go on a new session
      this.stats.goaways++
      if (this.session === s) this.session = null
    })
    ev.on('close', () => {
      if (this.session === s) this.session = null
      if (!settled) fail(new HttpError(503, 'WEFT_ERR_UPSTREAM_CONNECT', 'upstream connect error: closed'))
    })
  }

  /** For the admin API (/clusters). */
  view(): { open: number; waiting: number } & H2UpstreamStats {
    const s = this.session
    return { open: s !== null && this.connected && !s.closed && !s.destroyed ? 1 : 0, waiting: this.waiters.length, ...this.stats }
  }

  /** The endpoint left the config: GOAWAY, streams in flight finish. */
  close(): void {
    this.closed = true
    const s = this.session
    this.session = null
    if (s !== null && !s.destroyed) s.close()
    for (const w of this.waiters.splice(0)) w.onH2Failure(new HttpError(503, 'WEFT_ERR_UPSTREAM_REMOVED', 'endpoint removed from config'), 'UH')
  }
}

/**
 * Tell a waiter its session (or failure) from inside the session's event: a waiter that throws
 * fails alone (as a connect failure), and the waiters after it are still told.
 */
function notify(w: H2Waiter, s: UpSession | null, err: HttpError | null): void {
  try {
    if (s !== null) w.onH2Session(s)
    else w.onH2Failure(err!, 'UF')
  } catch (e) {
    if (s === null) return
    try {
      w.onH2Failure(new HttpError(502, 'WEFT_ERR_INTERNAL', `internal error: ${e instanceof Error ? e.message : String(e)}`), 'UF')
    } catch {}
  }
}

/** The endpoint's HTTP/2 side, created on first use. */
export function h2Upstream(pool: EndpointPool): H2Upstream {
  let u = pool.h2 as H2Upstream | null
  if (u === null) {
    pool.h2 = u = new H2Upstream(pool)
    if (pool.isDraining) u.close() // the endpoint left the config: refuse (503 UH), open nothing
  }
  return u
}

export const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = constants

/** how long a cancelled stream of a session that is going away may take to close */
export const STUCK_CANCEL_MS = 1000

/**
 * Cancel an upstream stream (RST_STREAM CANCEL). On a session that is going away (the upstream's
 * GOAWAY) nghttp2 can stop reading and writing while a stream is still open (a GOAWAY, then a
 * response HEADERS it drops as malformed): the stream never closes, the upstream's FIN is never
 * read, and the socket would sit in CLOSE-WAIT until the idle timeout. Such a session is destroyed
 * when its cancelled stream has not closed within STUCK_CANCEL_MS.
 */
export function cancelStream(st: { close(code?: number): void }): void {
  st.close(NGHTTP2_CANCEL)
  // an HTTP/2 stream has its session; the HTTP/1 adapter of exchange.ts has none
  const h2 = st as { readonly destroyed?: boolean; readonly session?: Http2Session | null }
  const s = h2.session
  if (s === undefined || s === null || !s.closed || s.destroyed) return
  setTimeout(() => {
    if (h2.destroyed !== true && !s.destroyed) s.destroy()
  }, STUCK_CANCEL_MS).unref()
}
