// Explain: the decision trace of one request (issue 16), recorded only for the requests someone
// asked about, kept in a bounded ring per proxy and read with `GET /explain/<x-request-id>` on the
// admin listener (`weft explain --admin HOST:PORT <id>`) or streamed with `weft tap --explain`.
//
// Which requests (telemetry.explain in the config):
//   - a request carrying `x-weft-explain: 1` on a listener whose direction is outbound, i.e. sent by
//     the application in this pod (the trusted source: a caller from another pod cannot make this
//     proxy record, so nobody outside the pod can fill the ring or learn its routing); the response
//     then carries `x-weft-explain-id: <x-request-id>` to look it up with;
//   - `sampling`: a percentage of all requests, on every listener;
//   - every request while a `weft tap --explain` is connected (its filters choose what it prints).
// When none applies, a request pays one boolean read (ExplainSource.on) and nothing else; the
// header is looked for only on outbound listeners and only when `header` is on (the default).
//
// A trace is a list of steps, each {stage, atUs (µs since the request head was parsed), ...}:
//   request   listener, direction, protocol, method, authority, path, selectedBy
//   route     virtualHost, route, and for the routes tried before it, the first condition each
//             failed (skipped: [{route, reason}]); no virtual host / no route says so
//   split     backends [{cluster, weight}] and the one picked (only when there is a choice)
//   dispatch  per try: cluster, its requests in flight and cap, the breaker's answer, the endpoint
//             and the balancer's reasons (candidates and their scores, or the hash), ejected
//             endpoints skipped; or the refusal (max requests, breaker open, no healthy endpoint)
//   response  per try: status and the endpoint; retry: the reason, the policy's and the budget's
//             answer, the backoff; local-reply: status, flag, code, message; fault-delay: ms
//   done      status, flags, duration
import type { RequestRecord } from './types.ts'

export const EXPLAIN_HEADER = 'x-weft-explain'
export const EXPLAIN_ID_HEADER = 'x-weft-explain-id'
const DEFAULT_RING = 256

export interface ExplainSettings {
  /** honour x-weft-explain from the local application (outbound listeners); default true */
  readonly header: boolean
  /** percent of all requests traced, 0-100; default 0 */
  readonly sampling: number
  /** traces kept (the oldest dropped first); default 256 */
  readonly keep: number
}

export const DEFAULT_EXPLAIN: ExplainSettings = { header: true, sampling: 0, keep: DEFAULT_RING }

export interface ExplainStep {
  readonly stage: string
  readonly atUs: number
  readonly [field: string]: unknown
}

/** One request's trace while it runs. */
export class ExplainTrace {
  readonly selectedBy: 'header' | 'sampling' | 'tap'
  readonly steps: ExplainStep[] = []
  private readonly t0 = performance.now()

  constructor(selectedBy: ExplainTrace['selectedBy']) {
    this.selectedBy = selectedBy
  }

  note(stage: string, fields: Record<string, unknown>): void {
    this.steps.push({ stage, atUs: Math.round((performance.now() - this.t0) * 1000), ...fields })
  }
}

export interface ExplainedRequest {
  requestId: string
  time: string
  listener: string
  status: number
  flags: string
  durationMs: number
  selectedBy: string
  steps: readonly ExplainStep[]
}

/** A listener's view of the proxy's recorder: decides per request, with the listener's name and trust. */
export interface ExplainSource {
  /** false: nothing can select a request; the request path reads only this */
  readonly on: boolean
  begin(names: readonly string[], values: readonly string[]): ExplainTrace | null
  finish(trace: ExplainTrace, r: RequestRecord): void
}

/** One per proxy: the settings of the current config, the ring of finished traces, tap's interest. */
export class ExplainRecorder {
  private settings: ExplainSettings = DEFAULT_EXPLAIN
  private readonly ring = new Map<string, ExplainedRequest>()
  private tapWanted = 0
  /** traces recorded since start */
  recorded = 0
  /** whether anything can select a request on a trusted (outbound) / other listener */
  private onTrusted = true
  private onOther = false
  private readonly random: () => number

  constructor(random: () => number = Math.random) {
    this.random = random
  }

  configure(s: Partial<ExplainSettings> | undefined): void {
    this.settings = { ...DEFAULT_EXPLAIN, ...s }
    while (this.ring.size > this.settings.keep) this.ring.delete(this.ring.keys().next().value!)
    this.refresh()
  }

  /** `weft tap --explain` connected (+1) or gone (-1): while any is, every request is traced. */
  tapInterest(delta: number): void {
    this.tapWanted = Math.max(0, this.tapWanted + delta)
    this.refresh()
  }

  private refresh(): void {
    this.onOther = this.tapWanted > 0 || this.settings.sampling > 0
    this.onTrusted = this.onOther || this.settings.header
  }

  /** The source for a listener; `trusted`: its requests come from this pod's application (outbound). */
  forListener(listener: string, trusted: boolean): ExplainSource {
    const rec = this
    return {
      get on(): boolean {
        return trusted ? rec.onTrusted : rec.onOther
      },
      begin(names: readonly string[], values: readonly string[]): ExplainTrace | null {
        const s = rec.settings
        if (rec.tapWanted > 0) return new ExplainTrace('tap')
        if (trusted && s.header) {
          // indexOf: the engine's own search, cheaper than a loop here (every request of an outbound listener)
          const i = names.indexOf(EXPLAIN_HEADER)
          if (i >= 0) {
            const v = values[i]!.trim().toLowerCase()
            if (v === '1' || v === 'true' || v === 'on') return new ExplainTrace('header')
          }
        }
        if (s.sampling > 0 && rec.random() * 100 < s.sampling) return new ExplainTrace('sampling')
        return null
      },
      finish(trace: ExplainTrace, r: RequestRecord): void {
        rec.store({
          requestId: r.requestId,
          time: new Date(r.startTime).toISOString(),
          listener,
          status: r.status,
          flags: r.flags === '' ? '-' : r.flags,
          durationMs: Math.round(r.durationMs * 1000) / 1000,
          selectedBy: trace.selectedBy,
          steps: trace.steps,
        })
      },
    }
  }

  private store(e: ExplainedRequest): void {
    this.recorded++
    // a request without an id (a local reply before routing) is kept under a generated one
    const id = e.requestId !== '' ? e.requestId : `local-${this.recorded}`
    this.ring.delete(id)
    this.ring.set(id, e.requestId === '' ? { ...e, requestId: id } : e)
    if (this.ring.size > this.settings.keep) this.ring.delete(this.ring.keys().next().value!)
  }

  get(id: string): ExplainedRequest | undefined {
    return this.ring.get(id)
  }

  /** The kept traces, newest first (summaries without steps). */
  list(): Omit<ExplainedRequest, 'steps'>[] {
    return [...this.ring.values()].reverse().map(({ steps: _s, ...rest }) => rest)
  }

  get size(): number {
    return this.ring.size
  }
}
