// A process of bench proxies (forked by ./bench.ts): each proxy is its own @grpc/grpc-js channel
// and bidirectional stream to the control plane, speaking the real protocol. It says hello with
// a node identity, collects each batch, decodes it on top of what it accepted before with the
// proxy's own proxy/xds/assemble.ts decodeBatch, and ACKs every response with its nonce (NACKs it
// when decoding fails). Optionally (--validate-proxies) it also assembles and validates the
// result with the static bootstrap's checks, as a real proxy does before it compiles.
//
// Lighter than the real Proxy: nothing listens, nothing is compiled, and the proxies of this
// process that hold the same versions share one decoded state (each still decodes every batch
// itself; the duplicate result is dropped). Otherwise 1,000 proxies of a 10,000-Service mesh
// would need 1,000 copies of it in memory.
import { credentials, type ClientDuplexStream, type StatusObject } from '@grpc/grpc-js'
import { configDiscoveryClient, type ConfigDiscoveryClient, type ConfigRequest, type ConfigResponse__Output } from '../../protos/api.ts'
import { assemble, checkAssembled, decodeBatch, NOTHING_ACCEPTED, type Accepted } from '../../proxy/xds/assemble.ts'

export interface WorkerProxy {
  id: string
  namespace: string
}

/** parent -> worker */
export type ToWorker =
  | { type: 'start'; address: string; proxies: WorkerProxy[]; concurrency: number; validate: boolean; sync: SyncMode }
  | { type: 'stats' }
  | { type: 'stop' }

/**
 * full: every proxy is sent, decodes and ACKs the complete snapshot. warm: per namespace, the
 * first proxy of this process does; the others then connect declaring the versions it holds
 * (known_versions, as proxies reconnecting to a restarted control plane do) and are sent
 * nothing until something changes. They share its decoded state.
 */
export type SyncMode = 'full' | 'warm'

export interface WorkerStats {
  proxies: number
  connected: number
  batches: number
  responses: number
  acks: number
  nacks: number
  /** decode (and validation) time in this process, ms */
  decodeMs: number
  /** distinct decoded states held */
  states: number
  streamErrors: string[]
  nackErrors: string[]
}

/** worker -> parent */
export type FromWorker =
  | { type: 'progress'; synced: number }
  | { type: 'ready'; synced: number; ms: number }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'error'; message: string }

const MAX_MESSAGE = 512 * 1024 * 1024

interface Shared {
  readonly key: string
  readonly accepted: Accepted
  refs: number
}

class BenchProxy {
  private readonly p: WorkerProxy
  private readonly w: Worker
  private client: ConfigDiscoveryClient | null = null
  private call: ClientDuplexStream<ConfigRequest, ConfigResponse__Output> | null = null
  private pending: ConfigResponse__Output[] = []
  private state: Shared | null = null
  synced = false

  constructor(p: WorkerProxy, w: Worker) {
    this.p = p
    this.w = w
  }

  /** Start from `state` (warm: the versions another proxy of the namespace holds), or from nothing. */
  connect(address: string, state: Shared | null = null): void {
    if (state !== null) this.state = this.w.share(state)
    const Client = configDiscoveryClient()
    // One connection per proxy, as separate proxies have (channels of one process would share one).
    const client = new Client(address, credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': 300_000,
    })
    const call = client.StreamConfig()
    this.client = client
    this.call = call
    call.on('data', (r: ConfigResponse__Output) => this.onResponse(r))
    call.on('error', () => {}) // the status event carries it
    call.on('status', (st: StatusObject) => {
      if (!this.w.stopping) this.w.stats.streamErrors.push(`${this.p.id}: stream ended: ${st.code} ${st.details}`)
    })
    call.write({
      node: {
        id: this.p.id,
        pod: this.p.id.split('.')[0],
        namespace: this.p.namespace,
        serviceAccount: 'bench',
        workload: 'bench-proxy',
        labels: { app: 'bench-proxy' },
        proxyVersion: 'weft-bench/0.1.0',
      },
      knownVersions: Object.fromEntries(this.state?.accepted.versions ?? []),
    })
    this.w.stats.connected++
  }

  close(): void {
    this.call?.cancel()
    this.client?.close()
  }

  get shared(): Shared | null {
    return this.state
  }

  private onResponse(r: ConfigResponse__Output): void {
    this.pending.push(r)
    if (r.batchRemaining > 0) return
    const batch = this.pending
    this.pending = []
    this.apply(batch)
  }

  private apply(batch: ConfigResponse__Output[]): void {
    const s = this.w.stats
    const t0 = performance.now()
    const prev = this.state?.accepted ?? NOTHING_ACCEPTED
    const decoded = decodeBatch(prev, batch)
    let errors: string[] = []
    let code = ''
    if (!decoded.ok) {
      errors = decoded.errors
      code = decoded.code
    } else if (this.w.validate) {
      const checked = checkAssembled(assemble({}, decoded.value))
      if (!checked.ok) {
        errors = checked.errors
        code = checked.code
      }
    }
    if (errors.length === 0 && decoded.ok) this.state = this.w.intern(decoded.value, this.state)
    s.decodeMs += performance.now() - t0
    s.batches++
    for (const r of batch) {
      s.responses++
      if (errors.length === 0) {
        s.acks++
        this.call!.write({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce })
      } else {
        s.nacks++
        if (s.nackErrors.length < 20) s.nackErrors.push(`${this.p.id}: ${code}: ${errors[0]}`)
        this.call!.write({
          typeUrl: r.typeUrl,
          versionInfo: this.state?.accepted.versions.get(r.typeUrl as never) ?? '',
          responseNonce: r.nonce,
          errorDetail: { code, message: errors[0] ?? '', details: errors.slice(0, 20) },
        })
      }
    }
    if (!this.synced) {
      this.synced = true
      this.w.onSynced(this, this.p.namespace)
    }
  }
}

class Worker {
  readonly stats: WorkerStats = { proxies: 0, connected: 0, batches: 0, responses: 0, acks: 0, nacks: 0, decodeMs: 0, states: 0, streamErrors: [], nackErrors: [] }
  validate = false
  stopping = false
  private readonly shared = new Map<string, Shared>()
  private proxies: BenchProxy[] = []
  private next = 0
  private synced = 0
  private address = ''
  private startedAt = 0

  start(m: Extract<ToWorker, { type: 'start' }>): void {
    this.validate = m.validate
    this.address = m.address
    this.startedAt = performance.now()
    this.proxies = m.proxies.map((p) => new BenchProxy(p, this))
    this.stats.proxies = this.proxies.length
    if (m.sync === 'warm') {
      // the first proxy of each namespace syncs in full, the others follow it
      const seen = new Set<string>()
      this.queue = []
      for (const [i, p] of m.proxies.entries()) {
        if (!seen.has(p.namespace)) {
          seen.add(p.namespace)
          this.queue.push(this.proxies[i])
          continue
        }
        const list = this.followers.get(p.namespace)
        if (list === undefined) this.followers.set(p.namespace, [this.proxies[i]])
        else list.push(this.proxies[i])
      }
    } else this.queue = [...this.proxies]
    // At most `concurrency` proxies wait for their first (complete) snapshot at a time: the
    // control plane's send buffers and this process's decoding stay bounded.
    for (let i = 0; i < Math.max(1, m.concurrency); i++) this.connectNext()
    if (this.proxies.length === 0) send({ type: 'ready', synced: 0, ms: 0 })
  }

  private queue: BenchProxy[] = []
  private readonly followers = new Map<string, BenchProxy[]>()

  private connectNext(): void {
    if (this.next >= this.queue.length) return
    this.queue[this.next++].connect(this.address)
  }

  onSynced(p: BenchProxy, namespace: string): void {
    this.synced++
    const follow = this.followers.get(namespace)
    if (follow !== undefined) {
      this.followers.delete(namespace)
      for (const f of follow) {
        f.connect(this.address, p.shared)
        f.synced = true
        this.synced++
      }
    }
    if (this.synced % 50 === 0) send({ type: 'progress', synced: this.synced })
    if (this.synced === this.proxies.length) {
      // the sync's garbage is collected now, not during the first measured change
      ;(globalThis as { gc?: () => void }).gc?.()
      send({ type: 'ready', synced: this.synced, ms: performance.now() - this.startedAt })
    }
    else this.connectNext()
  }

  /** One more holder of a shared state. */
  share(s: Shared): Shared {
    s.refs++
    return s
  }

  /** The shared state for these versions; `prev` is released. */
  intern(a: Accepted, prev: Shared | null): Shared {
    const key = [...a.versions].sort().map(([t, v]) => `${t}=${v}`).join(',')
    let s = this.shared.get(key)
    if (s === undefined) this.shared.set(key, (s = { key, accepted: a, refs: 0 }))
    s.refs++
    if (prev !== null && --prev.refs === 0) this.shared.delete(prev.key)
    this.stats.states = this.shared.size
    return s
  }

  stop(): void {
    this.stopping = true
    for (const p of this.proxies) p.close()
  }
}

function send(m: FromWorker): void {
  process.send?.(m)
}

const worker = new Worker()
process.on('message', (m: ToWorker) => {
  try {
    if (m.type === 'start') worker.start(m)
    else if (m.type === 'stats') send({ type: 'stats', stats: worker.stats })
    else if (m.type === 'stop') {
      worker.stop()
      process.disconnect?.()
      setTimeout(() => process.exit(0), 200).unref()
    }
  } catch (err) {
    send({ type: 'error', message: (err as Error).stack ?? String(err) })
  }
})
process.on('disconnect', () => {
  worker.stop()
  setTimeout(() => process.exit(0), 200).unref()
})
