// What both codecs' exchanges share as types: the compiled config a request is served with, the
// response flags and the listener's decision counters.
import type { ClusterRuntime } from '../cluster/cluster.ts'
import type { CompiledRouteTable } from '../route/table.ts'
import type { ListenerTelemetry } from '../telemetry/listener.ts'
import type { Filter } from '../filters/filter.ts'
import { FILTER_FLAGS, type FilterCounters } from '../filters/index.ts'

/** The compiled config a request is served with (captured when its head is parsed). */
export interface RouterConfig {
  readonly table: CompiledRouteTable
  readonly clusters: ReadonlyMap<string, ClusterRuntime>
  readonly telemetry: ListenerTelemetry
  /** the listener's request filters, run before routing (null: none) */
  readonly filters: readonly Filter[] | null
  /** x-forwarded-client-cert toward the upstream: XFCC_KEEP, XFCC_SANITIZE, XFCC_SANITIZE_SET (listener/protocol.ts) */
  readonly forwardClientCert: number
}

/** Flags explaining every response the proxy did not simply relay (Envoy's vocabulary). */
export const Flags = {
  NoRoute: 'NR',
  NoCluster: 'NC',
  NoHealthyUpstream: 'UH',
  UpstreamConnectFailure: 'UF',
  UpstreamConnectionTermination: 'UC',
  UpstreamProtocolError: 'UPE',
  UpstreamOverflow: 'UO',
  DownstreamProtocolError: 'DPE',
  DirectResponse: 'DR',
  DownstreamConnectionTermination: 'DC',
  /** the request or a try timed out (route timeout, per-try timeout) */
  UpstreamRequestTimeout: 'UT',
  /** a retriable failure that was not retried: attempts or the retry budget exhausted */
  UpstreamRetryLimitExceeded: 'URX',
  /** and those of the registered filters (proxy/filters/index.ts): RL, FI, DI, ... */
  ...FILTER_FLAGS,
} as const

export interface ExchangeCounters extends FilterCounters {
  noRoute: number
  localReplies: number
  upstreamErrors: number
  staleRetries: number
  /** policy decisions (weft_proxy_decisions_total) */
  retries: number
  retryLimitExceeded: number
  retryBudgetExhausted: number
  requestTimeouts: number
  perTryTimeouts: number
  circuitOpen: number
  overflow: number
  /** refused over a cluster's adaptive concurrency limit */
  concurrencyLimited: number
  mirrored: number
  mirrorFailed: number
  mirrorAbandoned: number
}
