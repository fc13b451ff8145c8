// The config client's metrics, registered into the proxy's Prometheus registry (ProxyMetrics,
// served on the admin /metrics). The proxy replaces its registry when telemetry.metrics changes,
// so the client attaches the same metric objects again after every apply: counters never reset.
import type { Gauge, Metric, Registry } from 'prom-client'
import { promClient } from '../telemetry/metrics.ts'

// prom-client's parts, not its index (see promClient)
const { Counter, Gauge: GaugeC } = promClient()

export class XdsMetrics {
  readonly connected: Gauge
  readonly staleness: Gauge
  readonly updates = new Counter({
    name: 'weft_xds_updates_total',
    help: 'Control-plane responses handled, by resource type and result (ack: applied; nack: rejected, the last good config kept serving).',
    labelNames: ['type', 'result'],
    registers: [],
  })
  readonly reconnects = new Counter({ name: 'weft_xds_reconnects_total', help: 'Connection attempts to the control plane after the first.', registers: [] })
  private attachedTo: Registry | null = null

  constructor(read: { connected(): boolean; staleSeconds(): number }) {
    this.connected = new GaugeC({
      name: 'weft_xds_connected',
      help: '1 while the config stream to the control plane is up.',
      registers: [],
      collect() {
        this.set(read.connected() ? 1 : 0)
      },
    })
    this.staleness = new GaugeC({
      name: 'weft_xds_config_staleness_seconds',
      help: 'Seconds since the config was last known current (0 while connected to the control plane).',
      registers: [],
      collect() {
        this.set(read.staleSeconds())
      },
    })
  }

  /** Register into the proxy's current registry (null: metrics disabled). */
  attach(registry: Registry | null): void {
    if (registry === null || registry === this.attachedTo) return
    const all: [string, Metric][] = [
      ['weft_xds_connected', this.connected],
      ['weft_xds_config_staleness_seconds', this.staleness],
      ['weft_xds_updates_total', this.updates],
      ['weft_xds_reconnects_total', this.reconnects],
    ]
    for (const [name, m] of all) if (registry.getSingleMetric(name) === undefined) registry.registerMetric(m)
    this.attachedTo = registry
  }
}
