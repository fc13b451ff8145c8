// `weft validate FILE|DIR...`: check traffic resources (Services, EndpointSlices, HTTPRoutes,
// TrafficPolicies; also proxy bootstraps) the way the proxy's static mode and the control plane
// will: YAML, schema, then the checks across resources. Every error is printed as
// "file:line:column: Kind namespace/name: field.path: message" on standard error.
//
// Exit status: 0 valid, 1 invalid (an unreadable path or a directory without resource files is
// an error like any other, printed the same way), 2 usage error (no path, unknown option).
import type { Command } from 'commander'
import { formatConfigError } from '../api/errors.ts'
import { emit, parseOutput, type OutputFormat } from './output.ts'
import { resourceCount } from '../control-plane/resources/load.ts'
import type { ResourceSet } from '../control-plane/resources/load.ts'
import { loadResources } from '../control-plane/resources/validate.ts'

export interface Out {
  write(s: string): unknown
}

/**
 * table: `ok: ...` on stdout, or each error on stderr. json / yaml: on stdout, `{valid, summary}` or
 * `{valid: false, errors: [{file, line, column, kind, name, path, message}]}` (the exit code is the same).
 */
export async function runValidate(paths: readonly string[], out: Out, err: Out, output: OutputFormat = 'table'): Promise<number> {
  const r = await loadResources(paths)
  if (output !== 'table') {
    if (r.ok) emit(out, output, { valid: true, summary: summary(r.resources) })
    else emit(out, output, { valid: false, errors: r.errors.map((e) => ({ ...e, text: formatConfigError(e) })) })
    return r.ok ? 0 : 1
  }
  if (!r.ok) {
    for (const e of r.errors) err.write(formatConfigError(e) + '\n')
    err.write(`weft validate: ${r.errors.length} ${r.errors.length === 1 ? 'error' : 'errors'}\n`)
    return 1
  }
  out.write(`ok: ${summary(r.resources)}\n`)
  return 0
}

/** "7 resources in 2 files (3 Service, 2 EndpointSlice, 1 HTTPRoute, 1 TrafficPolicy)" */
export function summary(set: ResourceSet): string {
  const n = resourceCount(set)
  const files = set.files.length
  const kinds = ([
    ['Service', set.services.length],
    ['EndpointSlice', set.endpointSlices.length],
    ['HTTPRoute', set.httpRoutes.length],
    ['TrafficPolicy', set.trafficPolicies.length],
    ['Bootstrap', set.bootstraps.length],
  ] as const).filter(([, c]) => c > 0).map(([k, c]) => `${c} ${k}`)
  return `${n} ${n === 1 ? 'resource' : 'resources'} in ${files} ${files === 1 ? 'file' : 'files'}${kinds.length > 0 ? ` (${kinds.join(', ')})` : ''}`
}

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check resource files (multi-document YAML) and directories of them; exit 0 valid, 1 invalid, 2 usage error')
    .argument('<paths...>', 'files, or directories whose *.yaml, *.yml and *.json files are read (not recursively)')
    // A usage error is not an invalid file: 2, so scripts can tell them apart.
    .option('-o, --output <format>', 'table (errors on stderr as file:line:column), json or yaml (on stdout)', 'table')
    .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2))
    .action(async (paths: string[], opts: { output: string }) => {
      let output: OutputFormat
      try {
        output = parseOutput(opts.output)
      } catch (e) {
        process.stderr.write(`weft validate: ${(e as Error).message}\n`)
        process.exitCode = 2
        return
      }
      process.exitCode = await runValidate(paths, process.stdout, process.stderr, output)
    })
}
