// `weft analyze DIR`: cross-resource problems in a folder of resources, the way the control plane
// would see them: routes to missing Services, shadowed rules, policies selecting nothing (all from
// the checks `weft validate` and the control plane share), Services without endpoints; kinds Weft
// does not read (a Deployment in the same folder) are noted and ignored, not errors.
import type { Command } from 'commander'
import { formatConfigError, type ConfigError } from '../api/errors.ts'
import { parseResources, readResourceFiles } from '../control-plane/resources/load.ts'
import { checkResources } from '../control-plane/resources/validate.ts'
import { sortErrors } from '../api/yaml-errors.ts'
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
  return analyzeTexts(paths, files, readErrors)
}

/**
 * The objects of a cluster (Services, EndpointSlices, HTTPRoutes, TrafficPolicies: what the
 * control plane watches), one pseudo file per kind ("kubernetes:CONTEXT/Kind", line = the
 * object's place in it), analyzed as files are. A kind whose API is not served counts as none.
 */
export async function analyzeKubernetes(kubeconfig: string | undefined, context: string | undefined): Promise<Analysis> {
  const { loadKubeConfig, listAll, describeKubeConfig, KubeApiError } = await import('../control-plane/sources/kube-api.ts')
  const { WATCHED_KINDS, trimObject } = await import('../control-plane/sources/kube-objects.ts')
  const { stringify } = await import('yaml')
  const kc = loadKubeConfig({ kubeconfig, context })
  const where = describeKubeConfig(kc)
  const files: { file: string; text: string }[] = []
  const signal = AbortSignal.timeout(30_000)
  for (const k of WATCHED_KINDS) {
    if (k.kind === 'Pod') continue
    let items: unknown[]
    try {
      items = (await listAll(kc, k.path, { signal })).items
    } catch (e) {
      if (e instanceof KubeApiError && e.statusCode === 404 && k.custom) continue
      // an HTTP error of the API server says what it is; no answer at all gets the server, context and next step
      if (e instanceof KubeApiError && e.statusCode !== 401 && e.statusCode !== 403) throw e
      const { describeKubeApiError } = await import('./errors.ts')
      throw new Error(describeKubeApiError(where, e))
    }
    const docs = items.map((o) => stringify(trimObject(k, o as Record<string, unknown>)))
    files.push({ file: `kubernetes:${where.context}/${k.kind}`, text: docs.join('---\n') })
  }
  return analyzeTexts([`kubernetes:${where.context} (${where.server})`], files, [])
}

function analyzeTexts(paths: string[], files: { file: string; text: string }[], readErrors: ConfigError[]): Analysis {
  const parsed = parseResources(files)
  const set = parsed.resources
  const findings: Finding[] = readErrors.map((e) => finding('error', e))
  let ignored = 0
  const parseErrors = parsed.ok ? [] : parsed.errors
  for (const e of sortErrors(parseErrors, [...paths, ...set.files])) {
    const m = UNKNOWN_KIND.exec(e.message)
    if (m !== null) {
      ignored++
      findings.push({ level: 'note', code: 'WEFT_ANALYZE_IGNORED_KIND', file: e.file, line: e.line, column: e.column, message: `${m[1]} ignored: Weft reads Service, EndpointSlice, HTTPRoute, TrafficPolicy, PeerAuthentication and AuthorizationPolicy` })
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

export async function runAnalyze(paths: string[], output: OutputFormat, out: Out, kube?: { kubeconfig?: string; context?: string }): Promise<number> {
  const a = kube === undefined ? await analyze(paths) : await analyzeKubernetes(kube.kubeconfig, kube.context)
  if (output === 'table') out.write(formatAnalysis(a))
  else emit(out, output, a)
  return a.findings.some((f) => f.level === 'error') ? EXIT.FAILED : EXIT.OK
}

export function registerAnalyze(program: Command): void {
  program
    .command('analyze')
    .description('cross-resource problems in resource files: routes to missing Services, shadowed rules, policies selecting nothing, Services without endpoints; other kinds are noted and ignored (exit 0: no errors, 1: errors found, 2: bad usage)')
    .argument('[paths...]', 'resource files or folders')
    .option('--kubernetes', "analyze the cluster's objects instead of files")
    .option('--kubeconfig <file>', 'with --kubernetes: this kubeconfig (default $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'with --kubernetes: this context (default the current-context)')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .action(async (paths: string[], opts: { output: string; kubernetes?: boolean; kubeconfig?: string; context?: string }) => {
      const usage = (m: string): void => {
        process.stderr.write(`weft analyze: ${m}\n`)
        process.exitCode = EXIT.USAGE
      }
      if (opts.kubernetes === true && paths.length > 0) return usage('give PATH... or --kubernetes, not both')
      if (opts.kubernetes !== true && paths.length === 0) return usage('give resource files or folders, or --kubernetes')
      if (opts.kubernetes !== true && (opts.kubeconfig !== undefined || opts.context !== undefined)) return usage('--kubeconfig and --context go with --kubernetes')
      const output = outputOption('analyze', opts.output)
      if (output === null) return
      try {
        process.exitCode = await runAnalyze(paths, output, process.stdout, opts.kubernetes === true ? { kubeconfig: opts.kubeconfig, context: opts.context } : undefined)
      } catch (e) {
        // no usable kubeconfig, or the API server did not answer
        process.stderr.write(`weft analyze: ${(e as Error).message}\n`)
        process.exitCode = EXIT.UNREACHABLE
      }
    })
}
