// The proxy's side of the config stream: connect (exponential backoff, full jitter), say who it
// is and what it still serves, apply each batch of responses (decode, assemble, validate,
// compile, atomic swap) and answer every response: ACK, or NACK with the validation errors while
// the last good config keeps serving. Disconnected, the proxy serves what it has; without a
// static bootstrap it serves nothing (and is not ready) until its first config.
import { WEFT_VERSION } from '../../protos/version.ts'
import pino, { type Logger } from 'pino'
import { typeName, type ConfigRequest, type ConfigResponse__Output, type TypeUrl } from '../../protos/api.ts'
import { closeConnection, GrpcStream, type EarlyConnection, type GrpcStatus } from './grpc-stream.ts'
import { streamConfigCodec } from './wire.ts'
import type { Bootstrap } from '../../api/schema.ts'
import type { Proxy } from '../proxy.ts'
import { assemble, checkAssembled, decodeBatch, NOTHING_ACCEPTED, type Accepted, type LocalSettings, type Outcome } from './assemble.ts'
import { backoffDelay, DEFAULT_BACKOFF, REAL_TIMERS, type BackoffOptions, type Timers } from './backoff.ts'
import { XdsMetrics } from './metrics.ts'
import { promClient } from '../telemetry/metrics.ts'

export interface NodeIdentity {
  id: string
  pod?: string
  namespace?: string
  serviceAccount?: string
  workload?: string
  labels?: Record<string, string>
  proxyVersion?: string
  /** host:port of the proxy's admin API, for operator tools (weft stat --control-plane) */
  adminAddress?: string
}

export interface ConfigClientOptions {
  /** host:port of the control plane */
  address: string
  node: NodeIdentity
  /** the proxy's own settings (admin, limits, telemetry, listener ports); see ./assemble.ts */
  local?: LocalSettings
  /** served at once, until the first config from the control plane: the proxy is ready without it */
  staticBootstrap?: Bootstrap
  backoff?: BackoffOptions
  log?: Logger
  /** injectable for tests */
  random?: () => number
  timers?: Timers
  now?: () => number
  /** HTTP/2 keepalive pings on the stream, so a vanished control plane is noticed; default 30 s */
  keepaliveMs?: number
  /** the stream's keepalive and connect timers (default: real ones); `timers` is the reconnection schedule's */
  streamTimers?: Timers
  /** a connection to `address` opened before the client (./grpc-stream.ts, openConnection): the first attempt's, if still usable */
  connection?: EarlyConnection | null
}

export interface XdsStatus {
  controlPlane: string
  node: string
  connected: boolean
  /** when the stream came up (connected) or went down (not connected) */
  since: string | null
  /** what is being served: nothing yet, the static bootstrap, or the control plane's config */
  source: 'none' | 'static' | 'control-plane'
  /** type -> version applied */
  versions: Record<string, string>
  lastUpdateAt: string | null
  /** 0 while connected; else seconds since the stream went down (or since start, never connected) */
  staleSeconds: number
  reconnects: number
  updates: { ack: number; nack: number }
  lastNack: { at: string; responses: { type: string; version: string }[]; code: string; errors: string[] } | null
}

export interface ConfigClient {
  status(): XdsStatus
  readonly metrics: XdsMetrics
  /** Stop (the proxy keeps serving what it has). */
  close(): void
}

export const XDS_APPLY = 'WEFT_ERR_XDS_APPLY'
const PROXY_VERSION = `weft/${WEFT_VERSION}`
const MAX_MESSAGE = 256 * 1024 * 1024
const USER_AGENT = `weft-proxy/${WEFT_VERSION}`

interface Stream {
  readonly call: GrpcStream<ConfigRequest, ConfigResponse__Output>
  up: boolean
  upAt: number
  gotResponse: boolean
  down: boolean
  pending: ConfigResponse__Output[]
}

export async function startConfigClient(proxy: Proxy, opts: ConfigClientOptions): Promise<ConfigClient> {
  const c = new XdsClient(proxy, opts)
  await c.start()
  return c
}

class XdsClient implements ConfigClient {
  readonly metrics: XdsMetrics
  private readonly proxy: Proxy
  private readonly o: ConfigClientOptions
  private readonly log: Logger
  private readonly timers: Timers
  private readonly now: () => number
  private readonly backoff: Required<BackoffOptions>
  private accepted: Accepted = NOTHING_ACCEPTED
  private stream: Stream | null = null
  private timer: unknown = null
  private attempt = 0
  /** attempts that never reached the control plane, in a row (reset when a stream comes up) */
  private failedInARow = 0
  private closed = false
  private source: XdsStatus['source'] = 'none'
  private readonly startedAt: number
  private changedAt: number | null = null
  private lastUpdateAt: number | null = null
  private lastNack: XdsStatus['lastNack'] = null
  private reconnects = 0
  private readonly counts = { ack: 0, nack: 0 }
  // batches are applied one after the other, in arrival order
  private queue: Promise<void> = Promise.resolve()
  /** the early connection, until the first attempt takes it */
  private early: EarlyConnection | null

  constructor(proxy: Proxy, o: ConfigClientOptions) {
    this.proxy = proxy
    this.o = o
    this.log = (o.log ?? pino({ level: 'silent' })).child({ controlPlane: o.address })
    this.timers = o.timers ?? REAL_TIMERS
    this.now = o.now ?? Date.now
    this.backoff = { ...DEFAULT_BACKOFF, ...o.backoff }
    this.startedAt = this.now()
    this.early = o.connection ?? null
    this.metrics = new XdsMetrics({ connected: () => this.stream?.up === true, staleSeconds: () => this.staleSeconds() })
  }

  async start(): Promise<void> {
    if (this.o.staticBootstrap !== undefined) {
      await this.proxy.apply(this.o.staticBootstrap)
      this.source = 'static'
    }
    this.metrics.attach(this.proxy.metrics?.registry ?? null)
    this.connect()
    // While the control plane answers the hello, load prom-client if the first config will need it
    // (metrics are on unless the local settings turn them off; the proxy makes its registry as it
    // applies that config), so the loading overlaps the wait instead of following it: after the
    // event loop's poll phase (setImmediate), so the connection's events (the hello going out) come first.
    if (this.proxy.metrics === null && this.o.local?.telemetry?.metrics?.enabled !== false) setImmediate(promClient)
  }

  close(): void {
    this.closed = true
    if (this.early !== null) closeConnection(this.early)
    this.early = null
    if (this.timer !== null) this.timers.clearTimeout(this.timer)
    this.timer = null
    const s = this.stream
    if (s !== null) this.down(s, null)
  }

  status(): XdsStatus {
    const up = this.stream?.up === true
    return {
      controlPlane: this.o.address,
      node: this.o.node.id,
      connected: up,
      since: this.changedAt === null ? null : new Date(this.changedAt).toISOString(),
      source: this.source,
      versions: Object.fromEntries([...this.accepted.versions].map(([t, v]) => [typeName(t), v])),
      lastUpdateAt: this.lastUpdateAt === null ? null : new Date(this.lastUpdateAt).toISOString(),
      staleSeconds: this.staleSeconds(),
      reconnects: this.reconnects,
      updates: { ...this.counts },
      lastNack: this.lastNack,
    }
  }

  private staleSeconds(): number {
    if (this.stream?.up === true) return 0
    return Math.max(0, (this.now() - (this.changedAt ?? this.startedAt)) / 1000)
  }

  private connect(): void {
    this.timer = null
    if (this.closed) return
    // A connection per attempt (./grpc-stream.ts): the reconnection schedule is ours (injectable,
    // jittered), not a channel's own reconnect backoff.
    const codec = streamConfigCodec()
    let s: Stream | null = null
    const call = new GrpcStream<ConfigRequest, ConfigResponse__Output>(
      {
        address: this.o.address,
        path: codec.path,
        serialize: codec.requestSerialize,
        deserialize: codec.responseDeserialize as (b: Buffer) => ConfigResponse__Output,
        keepaliveMs: this.o.keepaliveMs ?? 30_000,
        // a full snapshot of a large mesh is far more than gRPC's 4 MiB default
        maxMessage: MAX_MESSAGE,
        userAgent: USER_AGENT,
        timers: this.o.streamTimers ?? REAL_TIMERS,
        connection: this.early,
      },
      {
        onHeaders: () => {
          if (s === null || s.down || s.up) return
          s.up = true
          this.failedInARow = 0
          s.upAt = this.now()
          this.changedAt = s.upAt
          this.log.info({ node: this.o.node.id }, 'connected to the control plane')
        },
        onMessage: (r) => {
          if (s !== null) this.onResponse(s, r)
        },
        onStatus: (st) => {
          if (s !== null) this.down(s, st)
        },
      },
    )
    this.early = null
    s = { call, up: false, upAt: 0, gotResponse: false, down: false, pending: [] }
    this.stream = s
    const n = this.o.node
    call.write({
      node: {
        id: n.id,
        pod: n.pod ?? '',
        namespace: n.namespace ?? '',
        serviceAccount: n.serviceAccount ?? '',
        workload: n.workload ?? '',
        labels: n.labels ?? {},
        proxyVersion: n.proxyVersion ?? PROXY_VERSION,
        adminAddress: n.adminAddress ?? '',
      },
      knownVersions: Object.fromEntries(this.accepted.versions),
    })
  }

  private down(s: Stream, st: GrpcStatus | null): void {
    if (s.down) return
    s.down = true
    s.pending = [] // a batch cut short is never applied
    s.call.cancel()
    if (this.stream !== s) return
    this.stream = null
    const now = this.now()
    if (s.up) this.changedAt = now
    // A stream that delivered config, or stayed up a while, resets the schedule; one that dies at
    // once (a control plane refusing us) keeps backing off.
    if (s.gotResponse || (s.up && now - s.upAt >= this.backoff.maxMs)) this.attempt = 0
    if (this.closed) return
    const delay = backoffDelay(this.attempt++, this.backoff, this.o.random ?? Math.random)
    const fields = { code: st?.code, details: st?.details, retryInMs: delay }
    if (s.up) this.log.warn(fields, 'control plane stream lost; serving the last config')
    else if (this.failedInARow++ % 10 === 0) {
      // the first failure and every tenth after it: a new user must see that nothing connects
      this.log.warn({ ...fields, code: 'WEFT_ERR_CONTROL_PLANE_UNREACHABLE', grpcCode: st?.code, controlPlane: this.o.address }, `control plane ${this.o.address} unreachable (${st?.details ?? 'no answer'}); retrying. Is it the control plane's gRPC address (weft control-plane --listen, default :15010), not its admin one?`)
    } else this.log.debug(fields, 'control plane unreachable')
    this.reconnects++
    this.metrics.countReconnect()
    this.timer = this.timers.setTimeout(() => this.connect(), delay)
  }

  private onResponse(s: Stream, r: ConfigResponse__Output): void {
    if (s.down) return
    s.gotResponse = true
    s.pending.push(r)
    if (r.batchRemaining > 0) return
    const batch = s.pending
    s.pending = []
    this.queue = this.queue.then(() => this.applyBatch(s, batch))
  }

  private async applyBatch(s: Stream, batch: ConfigResponse__Output[]): Promise<void> {
    if (this.closed) return
    const decoded = decodeBatch(this.accepted, batch)
    let result: Outcome<Accepted> = decoded
    if (decoded.ok) {
      const checked = checkAssembled(assemble(this.o.local ?? {}, decoded.value))
      if (!checked.ok) result = checked
      else if (!sameConfig(this.proxy, checked.value)) {
        try {
          await this.proxy.apply(checked.value)
        } catch (err) {
          // e.g. a listener port in use: the proxy is exactly as it was
          result = { ok: false, code: XDS_APPLY, errors: [(err as Error).message] }
        }
      }
    }
    if (result.ok) {
      this.accepted = result.value
      this.source = 'control-plane'
      this.lastUpdateAt = this.now()
      this.metrics.attach(this.proxy.metrics?.registry ?? null)
    } else {
      this.proxy.reject(`control-plane ${this.o.address}`, result.errors.map((e) => `${result.code}: ${e}`))
      this.lastNack = {
        at: new Date(this.now()).toISOString(),
        responses: batch.map((r) => ({ type: typeName(r.typeUrl), version: r.versionInfo })),
        code: result.code,
        errors: result.errors,
      }
    }
    for (const r of batch) {
      const type = typeName(r.typeUrl)
      this.counts[result.ok ? 'ack' : 'nack']++
      this.metrics.countUpdate(type, result.ok ? 'ack' : 'nack')
      // Answer only on the stream that asked: a new stream starts with a hello instead.
      if (s.down) continue
      s.call.write(
        result.ok
          ? { typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce }
          : {
              typeUrl: r.typeUrl,
              versionInfo: this.accepted.versions.get(r.typeUrl as TypeUrl) ?? '',
              responseNonce: r.nonce,
              errorDetail: { code: result.code, message: result.errors[0] ?? '', details: result.errors },
            },
      )
    }
  }
}

/** The proxy already runs exactly this config (a reconnection resent it): no recompile. */
function sameConfig(proxy: Proxy, b: Bootstrap): boolean {
  const cur = proxy.current
  return cur !== null && JSON.stringify(cur.source) === JSON.stringify(b)
}
