// The authorization filter of an inbound listener: first in its listener filter chain, for HTTP/1
// and HTTP/2 alike. A denied request gets 403 (gRPC: PERMISSION_DENIED), flag RBAC, code
// WEFT_ERR_RBAC_DENIED, and counts in weft_proxy_decisions_total{decision="authz_denied"}.
import { CONTINUE, STOP, type Filter, type FilterExchange, type FilterStatus } from '../filters/filter.ts'
import { AUTHZ_DENY, type AuthzRequest, type CompiledAuthorization } from './authz.ts'

class AuthzFilter implements Filter {
  private readonly authz: CompiledAuthorization
  private readonly port: number
  constructor(authz: CompiledAuthorization, port: number) {
    this.authz = authz
    this.port = port
  }

  onRequest(x: FilterExchange): FilterStatus {
    const p = x.path
    const q = p.indexOf('?')
    const req: AuthzRequest = {
      peer: x.peer,
      port: this.port,
      http: true,
      method: x.method,
      path: q === -1 ? p : p.slice(0, q),
      header: (n) => x.header(n),
    }
    const d = this.authz.decide(req)
    if (d.audited.length > 0) x.counters.authzAudited++
    if (x.explain !== null) x.explain.note('authorization', { verdict: d.verdict === AUTHZ_DENY ? 'deny' : 'allow', policy: d.policy, rule: d.rule, reason: d.reason, principal: x.peer?.principal ?? null, audited: d.audited })
    if (d.verdict !== AUTHZ_DENY) return CONTINUE
    x.counters.authzDenied++
    x.localReply(403, 'RBAC', 'WEFT_ERR_RBAC_DENIED', `RBAC: access denied (${d.reason})`)
    return STOP
  }
}

export function authzFilter(authz: CompiledAuthorization, port: number): Filter {
  return new AuthzFilter(authz, port)
}
