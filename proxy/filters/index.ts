// The registered route filters, in the order they run (Envoy's: rate limit, then redirect, then
// fault). Adding a filter: its folder (config compile, Filter, flags, counters) and one line here;
// the route compiler, the decision counters, the metrics' decision labels and the response flags
// are derived from this list.
import type { Route } from '../../api/schema.ts'
import type { Filter, RouteContext } from './filter.ts'
import { fault } from './fault/filter.ts'
import { rateLimit } from './ratelimit/filter.ts'
import { globalRateLimit } from './ratelimit/global.ts'
import { redirect } from './redirect/filter.ts'

export const FILTERS = [rateLimit, globalRateLimit, redirect, fault] as const

type Registered = (typeof FILTERS)[number]
type UnionToIntersection<U> = (U extends unknown ? (k: U) => void : never) extends (k: infer I) => void ? I : never

/** Decisions of the listener-only filters (authorization, proxy/identity/authz-filter.ts). */
const LISTENER_ONLY = { authzDenied: 'authz_denied', authzAudited: 'authz_audit' } as const

/** The decision counters of every registered filter (part of each listener's counters). */
export type FilterCounters = { -readonly [K in keyof UnionToIntersection<Registered['counters']> | keyof typeof LISTENER_ONLY]: number }

/** Response flags of every registered filter, by name (merged into the Flags table). */
export const FILTER_FLAGS = Object.assign({}, ...FILTERS.map((f) => f.flags)) as UnionToIntersection<Registered['flags']>

/** [counter key, decision label] of every registered filter, for weft_proxy_decisions_total. */
export const FILTER_DECISIONS: readonly (readonly [keyof FilterCounters, string])[] = [...FILTERS, { counters: LISTENER_ONLY }].flatMap((f) =>
  Object.entries(f.counters).map(([k, label]) => [k as keyof FilterCounters, label] as const))

/** Every filter counter at 0. */
export function newFilterCounters(): FilterCounters {
  const c: Record<string, number> = {}
  for (const [k] of FILTER_DECISIONS) c[k] = 0
  return c as FilterCounters
}

/** The filter configs of a route, or of a listener (some of them). */
export type FilterConfigs = { readonly [K in Registered['name']]?: Route[K] }

/**
 * A route's (or a listener's) filter chain, compiled once; null when there is none (one
 * comparison per request).
 */
export function compileFilters(r: FilterConfigs, ctx: RouteContext): readonly Filter[] | null {
  let out: Filter[] | null = null
  for (const f of FILTERS) {
    const config = r[f.name]
    if (config === undefined) continue
    ;(out ??= []).push((f.compile as (c: unknown, ctx: RouteContext) => Filter)(config, ctx))
  }
  return out
}
