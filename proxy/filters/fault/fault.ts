// Fault injection (Envoy's fault filter, Istio's HTTPFaultInjection): for a percentage of a
// route's requests, a fixed delay before the request goes on (flag DI), and/or an abort with an
// HTTP status instead of forwarding (flag FI). Decided per request with one random number each.
import type { FaultPolicy } from '../../../api/schema.ts'
import { parseDuration } from '../../../api/duration.ts'

export class CompiledFault {
  /** fraction 0..1 of requests delayed, and by how long */
  readonly delayRatio: number
  readonly delayMs: number
  readonly abortRatio: number
  readonly abortStatus: number
  private readonly random: () => number
  /** counters */
  delays = 0
  aborts = 0

  constructor(p: FaultPolicy, random: () => number = Math.random) {
    this.delayRatio = p.delay === undefined ? 0 : p.delay.percent / 100
    this.delayMs = p.delay === undefined ? 0 : parseDuration(p.delay.fixedDelay)
    this.abortRatio = p.abort === undefined ? 0 : p.abort.percent / 100
    this.abortStatus = p.abort?.status ?? 503
    this.random = random
  }

  /** ms to delay this request, 0 for none */
  delay(): number {
    if (this.delayRatio === 0 || this.random() >= this.delayRatio) return 0
    this.delays++
    return this.delayMs
  }

  /** status to abort this request with, 0 for none */
  abort(): number {
    if (this.abortRatio === 0 || this.random() >= this.abortRatio) return 0
    this.aborts++
    return this.abortStatus
  }
}
