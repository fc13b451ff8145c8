// The control plane's own metrics (prom-client, its own registry, served on its admin listener).
import { Counter, Gauge, Registry } from 'prom-client'

export class ControlPlaneMetrics {
  readonly registry = new Registry()
  readonly nacks = new Counter({ name: 'weft_cp_nacks_total', help: 'Responses a proxy rejected (NACK), by resource type.', labelNames: ['type'], registers: [this.registry] })
  readonly acks = new Counter({ name: 'weft_cp_acks_total', help: 'Responses a proxy applied (ACK), by resource type.', labelNames: ['type'], registers: [this.registry] })
  readonly responses = new Counter({
    name: 'weft_cp_responses_total',
    help: 'Responses sent to proxies, by resource type and whether they were incremental.',
    labelNames: ['type', 'incremental'],
    registers: [this.registry],
  })
  readonly staleRequests = new Counter({
    name: 'weft_cp_stale_requests_total',
    help: 'Requests ignored because their nonce was not the latest sent for the type (xDS rule).',
    labelNames: ['type'],
    registers: [this.registry],
  })
  readonly withheld = new Counter({
    name: 'weft_cp_withheld_total',
    help: 'Resource versions not sent because the proxy rejected them before (sent again only with a newer version of what was rejected with them).',
    labelNames: ['type'],
    registers: [this.registry],
  })
  readonly streams: Gauge
  private pushes: PushState | null = null
  readonly pushesSending: Gauge
  readonly pushesWaiting: Gauge
  readonly pushesThrottled = new Counter({
    name: 'weft_cp_push_throttled_total',
    help: 'Batches that waited for their turn (the push throttle or the send budget) before being written.',
    registers: [this.registry],
  })

  readonly heapCompactions = new Counter({
    name: 'weft_cp_heap_compactions_total',
    help: 'Compacting collections run once the push queue emptied after a burst of complete snapshots (proxies syncing).',
    registers: [this.registry],
  })
  readonly heapCompactionPause = new Gauge({
    name: 'weft_cp_heap_compaction_pause_seconds',
    help: 'How long the last compaction after a push burst paused the control plane.',
    registers: [this.registry],
  })

  /** A compaction after a push burst ran (./compact.ts). */
  compacted(pauseMs: number): void {
    this.heapCompactions.inc()
    this.heapCompactionPause.set(pauseMs / 1000)
  }

  constructor(connected: () => number) {
    this.streams = new Gauge({
      name: 'weft_cp_connected_proxies',
      help: 'Proxies with an open config stream.',
      registers: [this.registry],
      collect() {
        this.set(connected())
      },
    })
    const pushes = () => this.pushes
    this.pushesSending = new Gauge({
      name: 'weft_cp_push_sending',
      help: 'Complete snapshots (batches over 256 KB) being written to proxies now (at most --push-throttle).',
      registers: [this.registry],
      collect() {
        this.set(pushes()?.sending ?? 0)
      },
    })
    this.pushesWaiting = new Gauge({
      name: 'weft_cp_push_waiting',
      help: 'Proxies waiting for their turn to be written a complete snapshot (the push throttle).',
      registers: [this.registry],
      collect() {
        this.set(pushes()?.queued ?? 0)
      },
    })
  }

  /** The send budget whose state the push gauges report (xds/server.ts). */
  observePushes(p: PushState): void {
    this.pushes = p
  }
}

/** What the push gauges read (./budget.ts SendBudget). */
export interface PushState {
  readonly sending: number
  readonly queued: number
}
