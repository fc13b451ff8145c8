// The gRPC side of the control plane: ConfigDiscovery.StreamConfig over @grpc/grpc-js, one
// ConfigStream (./stream.ts) per proxy. Snapshots come from the cache; who fills the cache
// (translate from Kubernetes, the local files, a test) is none of this file's business.
import { randomBytes } from 'node:crypto'
import { Metadata, Server, ServerCredentials, status, type ServerDuplexStream } from '@grpc/grpc-js'
import pino, { type Logger } from 'pino'
import { configDiscoveryService, type ConfigDiscoveryHandlers, type ConfigRequest__Output, type ConfigResponse, type Node__Output } from '../../protos/api.ts'
import type { SnapshotCache } from '../snapshot/cache.ts'
import { DEFAULT_PUSH_THROTTLE, DEFAULT_SEND_BUDGET_BYTES, SendBudget } from './budget.ts'
import { ProxyRegistry } from './registry.ts'
import { ConfigStream, type Answer } from './stream.ts'
import { framedPieces, reusingSerializer } from './wire.ts'
import { DirectWriter, http2StreamOf } from './direct.ts'
import { DEFAULT_COMPACT_AFTER_BYTES, HeapCompactor } from './compact.ts'

export type { Answer } from './stream.ts'

export interface ConfigServerOptions {
  cache: SnapshotCache
  /** host:port; port 0 picks a free port. Default 127.0.0.1:15010 */
  address?: string
  log?: Logger
  /** the cache key of a proxy's snapshot; default node.id (one snapshot per proxy) */
  nodeKey?: (node: Node__Output) => string
  /** a proxy said hello: a source may publish its snapshot now */
  onStreamOpen?: (key: string, node: Node__Output) => void
  /** a proxy ACKed or NACKed a response (called as the answer is processed) */
  onAnswer?: (a: Answer) => void
  /** HTTP/2 keepalive pings, so a proxy that vanished without a FIN is noticed; default 30 s */
  keepaliveMs?: number
  /**
   * Bytes of responses being written at a time, over all streams (./budget.ts): a complete
   * snapshot waits while others are written; small ones (endpoint updates) never wait. Default
   * 64 MB; 0: no limit.
   */
  sendBudgetBytes?: number
  /**
   * The push throttle: complete snapshots (batches over 256 KB) being written at a time, over all
   * streams (`weft control-plane --push-throttle`). Each is a buffer of the snapshot's size until
   * the socket took it: this bounds the memory of many proxies syncing at once. Default 2; 0: only
   * sendBudgetBytes limits them.
   */
  pushThrottle?: number
  /**
   * After at least this many bytes of complete snapshots were written (proxies syncing), or 256
   * config streams were opened (proxies reconnecting), once the
   * push queue is empty, run one compacting collection that gives the heap's pages back
   * (./compact.ts; logged as "heap compacted after a push burst", metric
   * weft_cp_heap_compactions_total). Default 64 MB, or the environment's
   * WEFT_CP_HEAP_COMPACT_MB (in MB); 0: never. Needs the send budget or the push throttle.
   */
  compactAfterBytes?: number
}

export interface ConfigServer {
  readonly address: string
  readonly port: number
  readonly registry: ProxyRegistry
  readonly cache: SnapshotCache
  /** responses written to the HTTP/2 stream directly (framedPieces) or through grpc-js's serializer */
  readonly writes: { direct: number; serialized: number }
  /** the send budget, if any (bytes in use, streams waiting) */
  readonly budget: SendBudget | undefined
  /** the compaction after a burst of complete snapshots (./compact.ts), if on */
  readonly compactor: HeapCompactor | undefined
  /** Close every stream (proxies keep serving and reconnect) and stop listening. */
  stop(): Promise<void>
}

export { DEFAULT_XDS_ADDRESS } from './defaults.ts'
import { DEFAULT_XDS_ADDRESS } from './defaults.ts'

export async function startConfigServer(opts: ConfigServerOptions): Promise<ConfigServer> {
  const log = opts.log ?? pino({ level: 'silent' })
  const registry = new ProxyRegistry()
  const streams = new Set<ConfigStream>()
  const writes = { direct: 0, serialized: 0 }
  const limit = opts.sendBudgetBytes ?? DEFAULT_SEND_BUDGET_BYTES
  const throttle = opts.pushThrottle ?? DEFAULT_PUSH_THROTTLE
  const budget = limit > 0 || throttle > 0 ? new SendBudget(limit, throttle, () => registry.metrics.pushesThrottled.inc()) : undefined
  if (budget !== undefined) registry.metrics.observePushes(budget)
  const compactAfter = opts.compactAfterBytes ?? compactAfterFromEnv()
  const compactor = budget !== undefined && compactAfter > 0
    ? new HeapCompactor({ minBytes: compactAfter, log, onCompact: (c) => registry.metrics.compacted(c.pauseMs) })
    : undefined
  if (compactor !== undefined) {
    compactor.watch(() => budget!.idle)
    budget!.observer = compactor
  }
  const deps = {
    budget,
    cache: opts.cache,
    registry,
    log,
    nodeKey: opts.nodeKey ?? ((n: Node__Output) => n.id),
    noncePrefix: randomBytes(4).toString('hex'),
    onOpen: opts.onStreamOpen,
    onAnswer: opts.onAnswer,
  }
  const handlers: ConfigDiscoveryHandlers = {
    StreamConfig(call: ServerDuplexStream<ConfigRequest__Output, ConfigResponse>) {
      let ended = false
      compactor?.opened()
      // responses go to the HTTP/2 stream directly, as pieces (./direct.ts), where grpc-js lets us
      const raw = http2StreamOf(call)
      const direct = raw === null ? null : new DirectWriter(raw)
      const stream = new ConfigStream(deps, {
        send: (r, written) => {
          if (ended) return
          const pieces = direct === null ? null : framedPieces(r)
          if (pieces === null) {
            writes.serialized++
            return void call.write(r, written)
          }
          writes.direct++
          direct!.write(pieces, written)
        },
        fail: (message) => {
          if (ended) return
          ended = true
          call.emit('error', { code: status.INVALID_ARGUMENT, details: message })
        },
      })
      streams.add(stream)
      // Headers at once: the proxy counts itself connected before any config exists for it.
      call.sendMetadata(new Metadata())
      const done = () => {
        streams.delete(stream)
        stream.close()
      }
      call.on('data', (req: ConfigRequest__Output) => {
        try {
          stream.onRequest(req)
        } catch (err) {
          // a bug in the stream must not take the control plane down: drop this stream only
          log.error({ err, stream: stream.id }, 'config stream failed')
          done()
          call.destroy(err as Error)
        }
      })
      call.on('end', () => {
        done()
        if (!ended) {
          ended = true
          call.end()
        }
      })
      call.on('cancelled', done)
      call.on('error', done)
      call.on('close', done)
    },
  }
  const server = new Server({
    'grpc.keepalive_time_ms': opts.keepaliveMs ?? 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
  })
  // The generated service, with a response serializer that reuses each resource's encoding (and,
  // for large responses, one output buffer: grpc-js copies each message at once).
  const service = configDiscoveryService()
  server.addService({ ...service, StreamConfig: { ...service.StreamConfig, responseSerialize: reusingSerializer() } }, handlers)
  const address = opts.address ?? DEFAULT_XDS_ADDRESS
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)))
  })
  const host = address.slice(0, address.lastIndexOf(':'))
  const bound = `${host}:${port}`
  log.info({ address: bound }, 'config server listening')
  let stopped: Promise<void> | null = null
  return {
    address: bound,
    port,
    registry,
    cache: opts.cache,
    budget,
    compactor,
    writes,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        compactor?.stop()
        for (const s of streams) s.close()
        streams.clear()
        // Streams never end by themselves: cancel them (the proxies see UNAVAILABLE and reconnect).
        server.forceShutdown()
        log.info({ address: bound }, 'config server stopped')
        resolve()
      })
      return stopped
    },
  }
}

/** WEFT_CP_HEAP_COMPACT_MB (MB; 0: off), else the default. */
function compactAfterFromEnv(): number {
  const v = process.env.WEFT_CP_HEAP_COMPACT_MB
  if (v === undefined || v === '') return DEFAULT_COMPACT_AFTER_BYTES
  const n = Number(v)
  return Number.isFinite(n) && n >= 0 ? n * 1048576 : DEFAULT_COMPACT_AFTER_BYTES
}
