// What a listener's connections speak, compiled from its config (proxy/config/compile.ts): the
// listener reads it, the compiler writes it, so it lives here with the listener, below the compiler.
import type { ClusterRuntime } from '../cluster/cluster.ts'
import type { CompiledAuthorization } from '../identity/authz.ts'

export const PROTOCOL_DETECT = 0
export const PROTOCOL_HTTP = 1
export const PROTOCOL_TCP = 2
export const PROTOCOL_HTTP2 = 3

export const MTLS_DISABLE = 0
/** mesh TLS and plain text, told apart by the first byte */
export const MTLS_PERMISSIVE = 1
/** mesh TLS only */
export const MTLS_STRICT = 2

/** x-forwarded-client-cert toward the app */
export const XFCC_KEEP = 0
export const XFCC_SANITIZE = 1
export const XFCC_SANITIZE_SET = 2

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
  /** MTLS_DISABLE, MTLS_PERMISSIVE or MTLS_STRICT */
  readonly mtls: number
  /** the listener's authorization policies (TCP connections are decided here; HTTP requests by the listener filter); null: none */
  readonly authz: CompiledAuthorization | null
  /** XFCC_* (inbound listeners sanitize; outbound keep what the app sends) */
  readonly forwardClientCert: number
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
