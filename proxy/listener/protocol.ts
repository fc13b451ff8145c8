// What a listener's connections speak, compiled from its config (proxy/config/compile.ts): the
// listener reads it, the compiler writes it, so it lives here with the listener, below the compiler.
import type { ClusterRuntime } from '../cluster/cluster.ts'

export const PROTOCOL_DETECT = 0
export const PROTOCOL_HTTP = 1
export const PROTOCOL_TCP = 2
export const PROTOCOL_HTTP2 = 3

/** A listener's protocol settings in milliseconds, the TCP target resolved. */
export interface ListenerProtocol {
  /** PROTOCOL_DETECT, PROTOCOL_HTTP, PROTOCOL_TCP or PROTOCOL_HTTP2 */
  readonly mode: number
  /** detect with a TCP target: a silent client is tunnelled after this */
  readonly detectTimeoutMs: number
  /** where opaque TCP goes; null: nowhere (detect falls back to the HTTP/1 codec) */
  readonly tcp: { readonly cluster: ClusterRuntime; readonly idleTimeoutMs: number } | null
  /** the listener's `interception`; null: connections are not redirected ones */
  readonly interception: Interception | null
}

/** An intercepting listener's decision table, compiled from its route table's IP-literal domains. */
export interface Interception {
  readonly inbound: boolean
  /** outbound: destinations served by the normal path, "ip:port" ("[v6]:port") */
  readonly services: ReadonlySet<string>
  /** passed-through tunnels: idle timeout and connect timeout */
  readonly idleTimeoutMs: number
  readonly connectTimeoutMs: number
}
