// Originating mesh TLS to an endpoint's sidecar: TLS 1.3 with the proxy's SVID as client
// certificate, the peer's chain checked against the trust bundle, and its SPIFFE ID checked
// instead of a host name: of the trust domain, and one of the cluster's `tls.identities` when it
// names them (secure naming: only the service's workloads may serve it). ALPN says what is inside.
// Sessions are resumed per endpoint pool (TLS 1.3 tickets).
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from 'node:tls'
import type { IdentityManager } from './identity.ts'
import { peerSpiffeId } from './spiffe.ts'

/** A cluster's mesh TLS, compiled (proxy/cluster/cluster.ts buildCluster). */
export interface UpstreamTls {
  /** the proxy's identity: read at each connect (it is renewed) */
  readonly identity: { current: IdentityManager | null }
  /** http/1.1, h2 (HTTP/2 clusters) */
  readonly alpn: string
  /** SPIFFE IDs the endpoints may present; null: any of the trust domain */
  readonly allowed: ReadonlySet<string> | null
}

/** A place to keep the last TLS session of an endpoint, for resumption. */
export interface SessionCache {
  tlsSession: Buffer | null
}

export class UpstreamTlsError extends Error {}

/**
 * Connect to host:port with mesh TLS. The socket is usable (as a net.Socket) right away; writes
 * wait for the handshake. `secureConnect` says it is done; a refused peer is an 'error'.
 * Throws UpstreamTlsError when the proxy has no certificate yet.
 */
export function connectMeshTls(
  host: string,
  port: number,
  tls: UpstreamTls,
  alpn: string,
  cache: SessionCache,
  onread?: { buffer: () => Buffer; callback: (n: number, buf: Buffer) => boolean },
): TLSSocket {
  const id = tls.identity.current
  if (id === null || !id.ready) throw new UpstreamTlsError('WEFT_ERR_NO_IDENTITY: this proxy has no certificate yet')
  const svid = id.current
  const prefix = `spiffe://${id.settings.trustDomain}/`
  const allowed = tls.allowed
  // onread: Node's tls.connect takes net.connect's (its types do not say so)
  const opts: ConnectionOptions & { onread?: typeof onread; noDelay?: boolean } = {
    host,
    port,
    secureContext: svid.client,
    ALPNProtocols: [alpn],
    // the name is the SPIFFE ID, checked below; no SNI (Istio sends the cluster name: nothing routes on it here)
    servername: '',
    session: cache.tlsSession ?? undefined,
    noDelay: true,
    onread,
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      const who = peerSpiffeId(cert.subjectaltname)
      if (who === null) return new Error('WEFT_ERR_UPSTREAM_IDENTITY: the peer certificate has no SPIFFE ID')
      if (!who.startsWith(prefix)) return new Error(`WEFT_ERR_UPSTREAM_IDENTITY: ${who} is not of trust domain ${id.settings.trustDomain}`)
      if (allowed !== null && !allowed.has(who)) return new Error(`WEFT_ERR_UPSTREAM_IDENTITY: ${who} may not serve this cluster`)
      return undefined
    },
  }
  const s = tlsConnect(opts)
  s.on('session', (b: Buffer) => {
    cache.tlsSession = b
  })
  return s
}
