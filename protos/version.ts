// The Weft release, reported by the CLI (`weft version`), the proxy (admin /version, and the
// proxyVersion it sends the control plane) and the control plane (admin /version). Kept equal to
// package.json's "version" (test/cli-version.test.ts checks it).
export const WEFT_VERSION = '0.1.0'

/** What an admin /version answers. */
export interface VersionInfo {
  component: 'proxy' | 'control-plane'
  version: string
  /** the Node.js it runs on */
  node: string
}

export function versionInfo(component: VersionInfo['component']): VersionInfo {
  return { component, version: WEFT_VERSION, node: process.version }
}
