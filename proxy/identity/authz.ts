// Authorization of an inbound listener (Istio's AuthorizationPolicy semantics), compiled once per
// config into matcher closures; per request one pass over the compiled rules. Used by the
// listener filter (HTTP requests), the listener (opaque TCP connections) and `weft authz check`,
// which prints the same decision with the rule that made it.
import type { AuthorizationPolicy, AuthorizationRule } from '../../api/schema.ts'

/** Who is calling, from the mTLS peer certificate (null: plain text, unauthenticated). */
export interface PeerIdentity {
  /** spiffe://<td>/ns/<ns>/sa/<sa> */
  readonly principal: string
  /** the principal without "spiffe://" (Istio's form in policies) */
  readonly short: string
  readonly namespace: string
  /** x-forwarded-client-cert value for the app (By, Hash, URI), made once per connection */
  readonly xfcc: string
}

export function peerIdentity(principal: string, by: string, certHash: string): PeerIdentity {
  const short = principal.startsWith('spiffe://') ? principal.slice(9) : principal
  const m = /\/ns\/([^/]+)\//.exec(short)
  return { principal, short, namespace: m === null ? '' : m[1], xfcc: `By=${by};Hash=${certHash};URI=${principal}` }
}

/** What a decision is made on. HTTP fields are absent for a TCP connection. */
export interface AuthzRequest {
  readonly peer: PeerIdentity | null
  readonly port: number
  readonly http: boolean
  readonly method: string
  /** the path without its query */
  readonly path: string
  header(name: string): string | undefined
}

export const AUTHZ_ALLOW = 0
export const AUTHZ_DENY = 1

export interface AuthzDecision {
  readonly verdict: typeof AUTHZ_ALLOW | typeof AUTHZ_DENY
  /** the policy and rule that decided ("" when no policy matched), for logs and `weft authz check` */
  readonly policy: string
  readonly rule: number
  readonly reason: string
  /** AUDIT policies that matched */
  readonly audited: readonly string[]
}

type Pred = (r: AuthzRequest) => boolean

interface CompiledPolicy {
  readonly name: string
  readonly action: 'ALLOW' | 'DENY' | 'AUDIT'
  /** per rule: matches(request) */
  readonly rules: readonly Pred[]
  /** per rule: the decision it makes (made once here, not per request) */
  readonly decisions: readonly AuthzDecision[]
}

/** Istio's string match: "*", "prefix*", "*suffix", or exact. */
function strMatcher(v: string): (s: string) => boolean {
  if (v === '*') return (s) => s !== ''
  if (v.endsWith('*')) {
    const p = v.slice(0, -1)
    return (s) => s.startsWith(p)
  }
  if (v.startsWith('*')) {
    const p = v.slice(1)
    return (s) => s.endsWith(p)
  }
  return (s) => s === v
}

function anyOf(values: readonly string[] | undefined, norm: (v: string) => string = (v) => v): ((s: string) => boolean) | null {
  if (values === undefined) return null
  const ms = values.map((v) => strMatcher(norm(v)))
  return (s) => {
    for (let i = 0; i < ms.length; i++) if (ms[i](s)) return true
    return false
  }
}

/** one of the alternatives matches (a loop: no closure per request) */
function anyAlt(alts: readonly Pred[]): Pred {
  return (q) => {
    for (let i = 0; i < alts.length; i++) if (alts[i](q)) return true
    return false
  }
}

const shortPrincipal = (v: string): string => (v.startsWith('spiffe://') ? v.slice(9) : v)

/** for DENY rules a TCP connection meets HTTP-only conditions (stricter); for ALLOW it does not */
function compileRule(r: AuthorizationRule, deny: boolean): Pred {
  const preds: Pred[] = []
  if (r.from !== undefined) {
    const alts = r.from.map((f) => {
      const p = anyOf(f.principals, shortPrincipal)
      const np = anyOf(f.notPrincipals, shortPrincipal)
      const n = anyOf(f.namespaces)
      const nn = anyOf(f.notNamespaces)
      return (q: AuthzRequest): boolean => {
        const who = q.peer === null ? '' : q.peer.short
        const ns = q.peer === null ? '' : q.peer.namespace
        if (p !== null && !p(who)) return false
        if (np !== null && np(who)) return false
        if (n !== null && !n(ns)) return false
        if (nn !== null && nn(ns)) return false
        return true
      }
    })
    preds.push(anyAlt(alts))
  }
  if (r.to !== undefined) {
    const alts = r.to.map((t) => {
      const ports = t.ports === undefined ? null : new Set(t.ports)
      const notPorts = t.notPorts === undefined ? null : new Set(t.notPorts)
      const m = anyOf(t.methods)
      const nm = anyOf(t.notMethods)
      const p = anyOf(t.paths)
      const np = anyOf(t.notPaths)
      const httpOnly = m !== null || nm !== null || p !== null || np !== null
      return (q: AuthzRequest): boolean => {
        if (ports !== null && !ports.has(q.port)) return false
        if (notPorts !== null && notPorts.has(q.port)) return false
        if (!q.http) return !httpOnly || deny
        if (m !== null && !m(q.method)) return false
        if (nm !== null && nm(q.method)) return false
        if (p !== null && !p(q.path)) return false
        if (np !== null && np(q.path)) return false
        return true
      }
    })
    preds.push(anyAlt(alts))
  }
  if (r.when !== undefined) {
    const conds = r.when.map((w) => {
      const name = w.header.toLowerCase()
      const v = anyOf(w.values)
      const nv = anyOf(w.notValues)
      return (q: AuthzRequest): boolean => {
        if (!q.http) return deny
        const h = q.header(name) ?? ''
        if (v !== null && !v(h)) return false
        if (nv !== null && nv(h)) return false
        return true
      }
    })
    preds.push((q) => {
      for (let i = 0; i < conds.length; i++) if (!conds[i](q)) return false
      return true
    })
  }
  return (q) => {
    for (let i = 0; i < preds.length; i++) if (!preds[i](q)) return false
    return true
  }
}

export class CompiledAuthorization {
  private readonly deny: CompiledPolicy[] = []
  private readonly allow: CompiledPolicy[] = []
  private readonly audit: CompiledPolicy[] = []
  readonly policies: readonly AuthorizationPolicy[]

  private readonly noAllow: AuthzDecision
  private readonly noneMatch: AuthzDecision

  constructor(policies: readonly AuthorizationPolicy[]) {
    this.policies = policies
    for (const p of policies) {
      const action = p.action ?? 'ALLOW'
      const rules = (p.rules ?? []).map((r) => compileRule(r, action === 'DENY'))
      const decisions = rules.map((_, i): AuthzDecision => ({
        verdict: action === 'DENY' ? AUTHZ_DENY : AUTHZ_ALLOW, policy: p.name, rule: i, reason: `${action} policy ${p.name} rule ${i} matches`, audited: NONE,
      }))
      const c: CompiledPolicy = { name: p.name, action, rules, decisions }
      ;(action === 'DENY' ? this.deny : action === 'AUDIT' ? this.audit : this.allow).push(c)
    }
    this.noAllow = { verdict: AUTHZ_ALLOW, policy: '', rule: -1, reason: 'no ALLOW policy on this listener', audited: NONE }
    this.noneMatch = { verdict: AUTHZ_DENY, policy: '', rule: -1, reason: `no ALLOW policy matches (${this.allow.map((p) => p.name).join(', ')})`, audited: NONE }
  }

  /** The decision for q: one of the objects made at config time (a new one only when AUDIT policies match). */
  decide(q: AuthzRequest): AuthzDecision {
    let audited: string[] | null = null
    for (const p of this.audit) if (firstMatch(p, q) >= 0) (audited ??= []).push(p.name)
    const d = this.verdict(q)
    return audited === null ? d : { ...d, audited }
  }

  private verdict(q: AuthzRequest): AuthzDecision {
    for (const p of this.deny) {
      const i = firstMatch(p, q)
      if (i >= 0) return p.decisions[i]
    }
    if (this.allow.length === 0) return this.noAllow
    for (const p of this.allow) {
      const i = firstMatch(p, q)
      if (i >= 0) return p.decisions[i]
    }
    return this.noneMatch
  }
}

const NONE: readonly string[] = []

function firstMatch(p: CompiledPolicy, q: AuthzRequest): number {
  for (let i = 0; i < p.rules.length; i++) if (p.rules[i](q)) return i
  return -1
}
