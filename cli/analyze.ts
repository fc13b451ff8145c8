// `weft analyze DIR`: cross-resource problems in a folder of resources, the way the control plane
// would see them: routes to missing Services, shadowed rules, policies selecting nothing (all from
// the checks `weft validate` and the control plane share), Services without endpoints; kinds Weft
// does not read (a Deployment in the same folder) are noted and ignored, not errors.
import type { Command } from 'commander'
import { formatConfigError, type ConfigError } from '../proxy/config/errors.ts'
import { parseResources, readResourceFiles } from '../control-plane/resources/load.ts'
import { checkResources } from '../control-plane/resources/validate.ts'
import { sortErrors } from '../proxy/config/yaml-errors.ts'
import { EXIT } from './errors.ts'
import { emit, outputOption, table, type OutputFormat } from './output.ts'
import type { Out } from './tap.ts'

export interface Finding {
  /** error: the control plane leaves the resource out or it cannot work; warning: works, but probably not as meant; note: ignored */
  level: 'error' | 'warning' | 'note'
  code: string
  file: string
  line: number
  column: number
  message: string
}

export interface Analysis {
  paths: string[]
  resources: { services: number; endpointSlices: number; httpRoutes: number; trafficPolicies: number; ignored: number }
  findings: Finding[]
}

const UNKNOWN_KIND = /^unknown kind "([^"]*)"/

function finding(level: Finding['level'], e: ConfigError): Finding {
  return { level, code: e.code, file: e.file, line: e.line, column: e.column, message: e.path === '' ? e.message : `${e.path}: ${e.message}` }
}

export async function analyze(paths: string[]): Promise<Analysis> {
  const { files, errors: readErrors } = await readResourceFiles(paths)
  const parsed = parseResources(files)
  const set = parsed.resources
  const findings: Finding[] = readErrors.map((e) => finding('error', e))
  let ignored = 0
  const parseErrors = parsed.ok ? [] : parsed.errors
  for (const e of sortErrors(parseErrors, [...paths, ...set.files])) {
    const m = UNKNOWN_KIND.exec(e.message)
    if (m !== null) {
      ignored++
      findings.push({ level: 'note', code: 'WEFT_ANALYZE_IGNORED_KIND', file: e.file, line: e.line, column: e.column, message: `${m[1]} ignored: Weft reads Service, EndpointSlice, HTTPRoute and TrafficPolicy` })
    } else findings.push(finding('error', e))
  }
  for (const e of sortErrors(checkResources(set), [...paths, ...set.files])) findings.push(finding('error', e))
  // Services that no EndpointSlice serves: requests to them get 503 (no healthy upstream)
  const served = new Set(set.endpointSlices.map((s) => `${s.namespace}/${(s.obj as { metadata: { labels?: Record<string, string> } }).metadata.labels?.['kubernetes.io/service-name'] ?? ''}`))
  // a Service an HTTPRoute attaches to sends its traffic to the route's backends instead
  const parents = new Set(set.httpRoutes.flatMap((r) => r.obj.spec.parentRefs.map((p) => `${p.namespace ?? r.namespace}/${p.name}`)))
  for (const s of set.services) {
    if (!served.has(s.id) && !parents.has(s.id)) {
      const at = s.locate(['metadata', 'name'])
      findings.push({ level: 'warning', code: 'WEFT_ANALYZE_NO_ENDPOINTS', file: s.file, line: at.line, column: at.column, message: `Service ${s.id} has no EndpointSlice (label kubernetes.io/service-name: ${s.name}): requests to it would be answered 503` })
    }
  }
  return {
    paths,
    resources: { services: set.services.length, endpointSlices: set.endpointSlices.length, httpRoutes: set.httpRoutes.length, trafficPolicies: set.trafficPolicies.length, ignored },
    findings,
  }
}

export function formatAnalysis(a: Analysis): string {
  const r = a.resources
  let s = `${r.services} Services, ${r.endpointSlices} EndpointSlices, ${r.httpRoutes} HTTPRoutes, ${r.trafficPolicies} TrafficPolicies${r.ignored > 0 ? `, ${r.ignored} ignored` : ''}\n`
  if (a.findings.length === 0) return s + 'no problems found\n'
  s += table(['LEVEL', 'WHERE', 'PROBLEM'], a.findings.map((f) => [f.level.toUpperCase(), `${f.file}:${f.line}:${f.column}`, f.message]))
  return s
}

export async function runAnalyze(paths: string[], output: OutputFormat, out: Out): Promise<number> {
  const a = await analyze(paths)
  if (output === 'table') out.write(formatAnalysis(a))
  else emit(out, output, a)
  return a.findings.some((f) => f.level === 'error') ? EXIT.FAILED : EXIT.OK
}

export function registerAnalyze(program: Command): void {
  program
    .command('analyze')
    .description('cross-resource problems in resource files: routes to missing Services, shadowed rules, policies selecting nothing, Services without endpoints; other kinds are noted and ignored (exit 0: no errors, 1: errors found, 2: bad usage)')
    .argument('<paths...>', 'resource files or folders')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (paths: string[], opts: { output: string }) => {
      const output = outputOption('analyze', opts.output)
      if (output === null) return
      process.exitCode = await runAnalyze(paths, output, process.stdout)
    })
}
