// Static mode: a proxy configured from files, without the control plane. The bootstrap file gives
// node, admin, listeners, limits, telemetry (and any tables or clusters of its own); the resource
// files (Services, EndpointSlices, HTTPRoutes, TrafficPolicies) are validated and translated into
// the route table "outbound" and one cluster per Service port, which are added to it. The result
// goes through the proxy's own checks once more before it may be applied.
import { readFile } from 'node:fs/promises'
import { ConfigErrorCode } from '../../api/errors.ts'
import type { ConfigError } from '../../api/errors.ts'
import { checkBootstrapConfig, parseBootstrap } from '../../api/load.ts'
import type { ExternalNames, LoadResult } from '../../api/load.ts'
import { readError, sortErrors } from '../../api/yaml-errors.ts'
import { OUTBOUND_TABLE, clusterName, namespaceOf, routedPorts } from '../resources/model.ts'
import { loadResources } from '../resources/validate.ts'
import { resourcesOf, translate } from '../translate/translate.ts'

export const RESOURCES_SOURCE = 'the resources (--resources)'

/** Load the bootstrap and the resources, translate, merge, check. Errors of both are reported together. */
export async function loadStaticConfig(configFile: string, resourcePaths: readonly string[]): Promise<LoadResult> {
  const res = await loadResources(resourcePaths)
  const errors: ConfigError[] = res.ok ? [] : [...res.errors]
  for (const b of res.resources.bootstraps) {
    errors.push({
      code: ConfigErrorCode.INVALID,
      file: b.file,
      line: b.line,
      column: b.column,
      path: '',
      message: 'a proxy bootstrap among the resources: in static mode the bootstrap is the --config file',
    })
  }

  // The names the resources will produce do not depend on the bootstrap (only the host names do),
  // so the bootstrap can be checked against them first, with its own positions.
  const external: ExternalNames = {
    routeTables: new Set([OUTBOUND_TABLE]),
    clusters: new Set(res.resources.services.flatMap((s) =>
      routedPorts(s.obj).map((p) => clusterName(p.port, s.obj.metadata.name, namespaceOf(s.obj))))),
    from: RESOURCES_SOURCE,
  }
  let text: string | undefined
  try {
    text = await readFile(configFile, 'utf8')
  } catch (err) {
    errors.unshift(readError(configFile, err))
  }
  const boot = text === undefined ? undefined : parseBootstrap(text, configFile, external)
  if (boot !== undefined && !boot.ok) errors.unshift(...boot.errors)
  if (errors.length > 0 || boot === undefined || !boot.ok) {
    return { ok: false, errors: sortErrors(errors, [configFile, ...resourcePaths, ...res.resources.files]) }
  }

  const t = translate(resourcesOf(res.resources), { namespace: boot.config.node?.namespace })
  const merged = {
    ...boot.config,
    routeTables: [...boot.config.routeTables, ...t.routeTables],
    clusters: [...boot.config.clusters, ...t.clusters],
  }
  // A safety net: translation of valid resources should always pass. If it does not, that is a
  // bug, reported like any config error rather than a crash, and the last good config stays.
  return checkBootstrapConfig(merged, `${configFile} + ${RESOURCES_SOURCE}`)
}
