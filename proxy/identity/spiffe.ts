// The light part of identity, loaded by every proxy (the listener and the connects import it):
// the ALPN names of mesh TLS and reading a SPIFFE ID out of a certificate. What needs X.509 or
// gRPC (./identity.ts) is loaded only by a proxy that has an identity.

/** ALPN names of what runs inside a mesh TLS connection (the client offers one) */
export const ALPN_HTTP1 = 'http/1.1'
export const ALPN_H2 = 'h2'
export const ALPN_TCP = 'weft-tcp'
export const MESH_ALPN = [ALPN_H2, ALPN_HTTP1, ALPN_TCP]

/** The SPIFFE ID of a peer certificate's URI SAN ("URI:spiffe://..."), or null. */
export function peerSpiffeId(subjectaltname: string | undefined): string | null {
  if (subjectaltname === undefined) return null
  for (const part of subjectaltname.split(', ')) {
    if (part.startsWith('URI:spiffe://')) return part.slice(4)
  }
  return null
}
