// Static mode, assembled here rather than in the proxy: the bootstrap file plus resource files
// (Services, EndpointSlices, HTTPRoutes, TrafficPolicies) translated by the control plane's code
// into the route table "outbound" and its clusters. The proxy only sees a ConfigSource, so it never
// imports the control plane (test/layers.test.ts); the CLI, above both, joins them.
import { loadStaticConfig } from '../control-plane/sources/static.ts'
import { startSidecar, type ConfigSource, type Sidecar, type StartOptions } from '../proxy/main.ts'

export function staticSource(configFile: string, resources: readonly string[]): ConfigSource {
  return {
    load: () => loadStaticConfig(configFile, resources),
    name: `${configFile} + ${resources.join(', ')}`,
    paths: [configFile, ...resources],
  }
}

/** startSidecar in static mode (tests and examples use it as `weft proxy --resources` does). */
export function startStaticSidecar(opts: Omit<StartOptions, 'source'> & { resources: readonly string[] }): Promise<Sidecar> {
  const { resources, ...rest } = opts
  return startSidecar({ ...rest, source: staticSource(opts.configFile, resources) })
}
