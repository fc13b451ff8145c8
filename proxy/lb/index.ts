// Balancer registry: createBalancer(policy, endpoints, opts) builds the policy's tables at config
// time; pick() is then allocation-free on the request path.

import type { Balancer, BalancerOptions, BalancerPolicy, LbEndpoint } from './types.ts'
import { RoundRobinBalancer } from './round-robin.ts'
import { LeastRequestBalancer } from './least-request.ts'
import { PeakEwmaBalancer } from './peak-ewma.ts'
import { RingHashBalancer } from './ring-hash.ts'
import { MaglevBalancer } from './maglev.ts'

export type { Balancer, BalancerOptions, BalancerPolicy, Clock, LbEndpoint } from './types.ts'
export { RoundRobinBalancer } from './round-robin.ts'
export { LeastRequestBalancer } from './least-request.ts'
export { PeakEwmaBalancer } from './peak-ewma.ts'
export { RingHashBalancer } from './ring-hash.ts'
export { MaglevBalancer, DEFAULT_MAGLEV_TABLE_SIZE } from './maglev.ts'
export { hash32, hash32b, murmur3, murmur3Series } from './hash.ts'

export type BalancerFactory = <E extends LbEndpoint>(endpoints: readonly E[], opts?: BalancerOptions) => Balancer<E>

const factories = new Map<BalancerPolicy, BalancerFactory>()

/** Register (or replace) the factory of a policy. */
export function registerBalancer(policy: BalancerPolicy, factory: BalancerFactory): void {
  factories.set(policy, factory)
}

registerBalancer('roundRobin', (eps, opts) => new RoundRobinBalancer(eps, opts))
registerBalancer('leastRequest', (eps, opts) => new LeastRequestBalancer(eps, opts))
registerBalancer('peakEwma', (eps, opts) => new PeakEwmaBalancer(eps, opts))
registerBalancer('ringHash', (eps, opts) => new RingHashBalancer(eps, opts))
registerBalancer('maglev', (eps, opts) => new MaglevBalancer(eps, opts))

/** The policies with a registered factory. */
export function balancerPolicies(): BalancerPolicy[] {
  return [...factories.keys()]
}

class EmptyBalancer<E extends LbEndpoint> implements Balancer<E> {
  pick(_hashKey?: string, _avoid?: E): E | undefined {
    return undefined
  }
  observe(_e: E, _latencyMs: number): void {}
}

/**
 * Build the balancer of `policy` over `endpoints` (the array is copied; the endpoint objects are
 * shared, their `active` and `healthy` are read live). An empty list gives a balancer whose pick
 * returns undefined. Throws on an unknown policy or invalid options (e.g. non-prime maglev size).
 */
export function createBalancer<E extends LbEndpoint>(
  policy: BalancerPolicy,
  endpoints: readonly E[],
  opts?: BalancerOptions,
): Balancer<E> {
  const factory = factories.get(policy)
  if (factory === undefined) throw new Error(`unknown load balancing policy: ${String(policy)}`)
  if (endpoints.length === 0) return new EmptyBalancer<E>()
  return factory(endpoints, opts)
}
