// The config client's metrics, registered into the proxy's Prometheus registry (ProxyMetrics,
// served on the admin /metrics). The proxy replaces its registry when telemetry.metrics changes,
// so the client attaches the same metric objects again after every apply: counters never reset.
// They are plain numbers read at scrape time (Collected, as the proxy's own metrics), not
// prom-client objects: a sidecar with metrics off never loads prom-client, and one with metrics
// on loads it when its first config makes the registry, not before its connect.
import type { Metric, Registry } from 'prom-client'
import { Collected } from '../telemetry/metrics.ts'

export class XdsMetrics {
  /** "type\0result" -> responses handled */
  private readonly updates = new Map<string, { labels: { type: string; result: string }; value: number }>()
  private reconnects = 0
  private readonly read: { connected(): boolean; staleSeconds(): number }
  private metrics: Collected[] | null = null
  private attachedTo: Registry | null = null

  constructor(read: { connected(): boolean; staleSeconds(): number }) {
    this.read = read
  }

  /** A control-plane response handled: ack (applied) or nack (rejected). */
  countUpdate(type: string, result: 'ack' | 'nack'): void {
    const key = `${type}\0${result}`
    const u = this.updates.get(key)
    if (u !== undefined) u.value++
    else this.updates.set(key, { labels: { type, result }, value: 1 })
  }

  /** A connection attempt after the first. */
  countReconnect(): void {
    this.reconnects++
  }

  /** Register into the proxy's current registry (null: metrics disabled). */
  attach(registry: Registry | null): void {
    if (registry === null || registry === this.attachedTo) return
    this.metrics ??= [
      new Collected('weft_xds_connected', '1 while the config stream to the control plane is up.', 'gauge', () => [{ labels: {}, value: this.read.connected() ? 1 : 0 }]),
      new Collected('weft_xds_config_staleness_seconds', 'Seconds since the config was last known current (0 while connected to the control plane).', 'gauge', () => [{ labels: {}, value: this.read.staleSeconds() }]),
      new Collected('weft_xds_updates_total', 'Control-plane responses handled, by resource type and result (ack: applied; nack: rejected, the last good config kept serving).', 'counter', () => [...this.updates.values()].map((u) => ({ labels: u.labels, value: u.value }))),
      new Collected('weft_xds_reconnects_total', 'Connection attempts to the control plane after the first.', 'counter', () => [{ labels: {}, value: this.reconnects }]),
    ]
    for (const m of this.metrics) if (registry.getSingleMetric(m.name) === undefined) registry.registerMetric(m as unknown as Metric)
    this.attachedTo = registry
  }
}
