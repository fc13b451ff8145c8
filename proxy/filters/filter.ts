// The request filter chain (Envoy's filter manager, reduced): a route's filters are compiled once
// from its config into objects that answer each request with CONTINUE or STOP (a local reply was
// sent, nothing after it runs). Both codecs' exchanges implement FilterExchange, so a filter is
// written once for HTTP/1 and HTTP/2. What runs around the upstream tries (timers, retries, the
// mirror) is the exchange's, not a filter's.
import type { Route } from '../../api/schema.ts'
import type { FilterCounters } from './index.ts'
import type { PeerIdentity } from '../identity/authz.ts'

export const CONTINUE = 0
export const STOP = 1
export type FilterStatus = typeof CONTINUE | typeof STOP

/** What a filter sees of, and may do to, the request it runs for (either codec). */
export interface FilterExchange {
  readonly method: string
  readonly authority: string
  /** the path with its query, as received */
  readonly path: string
  readonly downstreamAddress: string
  /**
   * The calling workload as this proxy knows it: on an outbound listener the pod's own
   * "namespace/workload" (the bootstrap's node); on an inbound one the caller's SPIFFE ID when it
   * came over mutual TLS, else "unknown/unknown".
   */
  readonly sourceIdentity: string
  /** the caller's identity from its mutual TLS certificate; null: plain text (unauthenticated) */
  readonly peer: PeerIdentity | null
  /** a request header's value (lower-case name), the first when repeated */
  header(name: string): string | undefined
  /**
   * Answer locally: the status, the response flag, the WEFT_ERR_* code and a message go to the
   * client (x-weft-response-flags, x-weft-error; grpc-status on gRPC) and the access log. extra:
   * more header fields as "name: value\r\n" lines.
   */
  localReply(status: number, flag: string, code: string, message: string, extra?: string): void
  /** Answer with a redirect to `location` (flag DR, the route's response headers added). */
  redirect(status: number, location: string): void
  /** Hold the request for ms before its first try; `flag` marks the response unless another does. */
  delay(ms: number, flag: string): void
  /**
   * Hold the request until an asynchronous decision (a rate limit service): the filter returns
   * CONTINUE, and later either calls the returned function (the request goes on to its first try)
   * or answers with localReply. Never call the function synchronously.
   */
  hold(): () => void
  /** the listener's decision counters (weft_proxy_decisions_total) */
  readonly counters: FilterCounters
  /** the request's decision trace when it has one (telemetry/explain.ts): a filter notes its decision there */
  readonly explain: { note(stage: string, fields: Record<string, unknown>): void } | null
}

export interface Filter {
  onRequest(x: FilterExchange): FilterStatus
}

/** What a filter's compile step may know of its route besides its own config. */
export interface RouteContext {
  /** the route's path prefix, "/" when it has none (for prefix rewrites) */
  readonly matchedPrefix: string
  /** the route's name (for descriptors that name it); "" for listener filters */
  readonly routeName?: string
}

/**
 * A filter kind, registered by name in ./index.ts. The name is the route's field holding its
 * config (api/schema.ts); flags and counters are what its decisions are counted and logged as.
 */
export interface FilterFactory<K extends keyof Route = keyof Route> {
  readonly name: K
  /** response flags it sets: name -> the flag in the access log and x-weft-response-flags */
  readonly flags: Readonly<Record<string, string>>
  /** decision counters it increments: counter key -> the `decision` label of weft_proxy_decisions_total */
  readonly counters: Readonly<Record<string, string>>
  compile(config: NonNullable<Route[K]>, route: RouteContext): Filter
}
