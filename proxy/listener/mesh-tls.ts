// Mutual TLS on an accepted connection: the listener found a TLS ClientHello where mesh TLS is on.
// The bytes detection read are put back, the socket is wrapped as a TLS server with the proxy's
// SVID (TLS 1.3, client certificate required and checked against the trust bundle), and once the
// handshake is done the client's SPIFFE ID must be of the trust domain. Until then the handshake is
// a connection of the listener of its own: swept after the request head timeout, closed on drain.
import { TLSSocket } from 'node:tls'
import type { Socket } from 'node:net'
import type { IdentityManager } from '../identity/identity.ts'
import { MESH_ALPN, peerSpiffeId } from '../identity/spiffe.ts'
import { peerIdentity, type PeerIdentity } from '../identity/authz.ts'

/** Counted per listener (weft_proxy_mtls_total{result}). */
export interface MtlsStats {
  /** handshakes completed with a valid mesh identity */
  accepted: number
  /** ... of which resumed a session (TLS 1.3 ticket: no certificate exchange) */
  resumed: number
  /** plain text served in permissive mode */
  plaintext: number
  /** plain text refused in strict mode */
  plaintextRefused: number
  /** handshakes that failed (no or untrusted client certificate, bad TLS, timeout, no identity yet) */
  handshakeFailed: number
  /** a trusted certificate without a SPIFFE ID of the trust domain */
  peerRejected: number
}

export function newMtlsStats(): MtlsStats {
  return { accepted: 0, resumed: 0, plaintext: 0, plaintextRefused: 0, handshakeFailed: 0, peerRejected: 0 }
}

/** What a listener's connection is to it (listener.ts ListenerConnection). */
interface Tracked {
  readonly socket: Socket
  sweep(now: number): void
  drain(closeIdle: boolean): void
}

export interface TlsOwner {
  readonly identity: IdentityManager | null
  readonly counters: { mtls: MtlsStats; cxActive: number }
  readonly config: { readonly limits: { readonly requestHeadTimeoutMs: number } }
  now(): number
  trackHandshake(c: Tracked): void
  /** the handshake is done and the client is `peer`: serve the inner protocol */
  secured(hs: Tracked, t: TLSSocket, peer: PeerIdentity, alpn: string): void
  connectionClosed(c: Tracked): void
}

class Handshake implements Tracked {
  readonly socket: Socket
  readonly tls: TLSSocket
  private readonly startedAt: number
  private readonly owner: TlsOwner
  /** the handshake ended (either way) */
  done = false
  /** ... and the connection went on to the inner protocol */
  secured = false

  constructor(owner: TlsOwner, socket: Socket, tls: TLSSocket) {
    this.owner = owner
    this.socket = socket
    this.tls = tls
    this.startedAt = owner.now()
  }

  sweep(now: number): void {
    if (!this.done && now - this.startedAt > this.owner.config.limits.requestHeadTimeoutMs) this.tls.destroy()
  }

  drain(closeIdle: boolean): void {
    if (closeIdle && !this.done) this.tls.destroy()
  }
}

/** Terminate mesh TLS on `s`, whose first bytes (`first`, a ClientHello's start) were read already. */
export function acceptMeshTls(owner: TlsOwner, s: Socket, first: Buffer): void {
  const id = owner.identity
  const stats = owner.counters.mtls
  if (id === null || !id.ready) {
    // no certificate to answer with (the CA has not answered yet): the client retries elsewhere
    stats.handshakeFailed++
    s.destroy()
    owner.counters.cxActive--
    return
  }
  const svid = id.current
  // the bytes read so far go back in front of the socket's stream; the TLS layer reads them first
  s.pause()
  s.unshift(Buffer.from(first))
  const t = new TLSSocket(s, {
    isServer: true,
    secureContext: svid.server,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: MESH_ALPN,
  })
  const hs = new Handshake(owner, s, t)
  owner.trackHandshake(hs)
  t.on('error', () => {
    if (!hs.done) {
      hs.done = true
      stats.handshakeFailed++
    }
  })
  t.once('close', () => {
    if (!hs.secured) owner.connectionClosed(hs)
  })
  t.once('secure', () => {
    if (hs.done) return
    hs.done = true
    const cert = t.getPeerCertificate()
    // A TLSSocket made around an accepted socket (not by a tls.Server) is not verified by Node's
    // server code: the chain's verdict is read here, as tls.Server does; without it, refused.
    const verify = (t as unknown as { _handle?: { verifyError?: () => Error | null } })._handle?.verifyError
    const verdict = typeof verify === 'function' ? verify.call((t as unknown as { _handle: unknown })._handle) : new Error('no verification available')
    if (verdict !== null || cert === undefined || cert.raw === undefined) {
      stats.handshakeFailed++
      t.destroy()
      return
    }
    const spiffe = peerSpiffeId(cert.subjectaltname)
    if (spiffe === null || !spiffe.startsWith(`spiffe://${id.settings.trustDomain}/`)) {
      stats.peerRejected++
      t.destroy()
      return
    }
    stats.accepted++
    if (t.isSessionReused()) stats.resumed++
    hs.secured = true
    const hash = cert.fingerprint256.replaceAll(':', '').toLowerCase()
    owner.secured(hs, t, peerIdentity(spiffe, svid.spiffeId, hash), typeof t.alpnProtocol === 'string' ? t.alpnProtocol : '')
  })
}
