// The authorization filter of an inbound listener: first in its listener filter chain, for HTTP/1
// and HTTP/2 alike. A denied request gets 403 (gRPC: PERMISSION_DENIED), flag RBAC, code
// WEFT_ERR_RBAC_DENIED, and counts in weft_proxy_decisions_total{decision="authz_denied"}.
import { CONTINUE, STOP, type Filter, type FilterExchange, type FilterStatus } from '../filters/filter.ts'
import { AUTHZ_DENY, type AuthzRequest, type CompiledAuthorization } from './authz.ts'

/** The request being decided: one per filter, filled per request (decide() is synchronous, nothing keeps it). */
class Scratch implements AuthzRequest {
  peer: AuthzRequest['peer'] = null
  port = 0
  readonly http = true
  method = ''
  path = ''
  x: FilterExchange | null = null
  header(name: string): string | undefined {
    return this.x!.header(name)
  }
}

class AuthzFilter implements Filter {
  private readonly authz: CompiledAuthorization
  private readonly q = new Scratch()
  constructor(authz: CompiledAuthorization, port: number) {
    this.authz = authz
    this.q.port = port
  }

  onRequest(x: FilterExchange): FilterStatus {
    const p = x.path
    const i = p.indexOf('?')
    const req = this.q
    req.peer = x.peer
    req.method = x.method
    req.path = i === -1 ? p : p.slice(0, i)
    req.x = x
    const d = this.authz.decide(req)
    req.x = null
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
