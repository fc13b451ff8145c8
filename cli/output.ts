// `-o table|json|yaml` for every read command. JSON and YAML print the same object (stable field
// names, documented in the README) so scripts can rely on them; the table is for people.
import { stringify } from 'yaml'
import type { Out } from './tap.ts'

export type OutputFormat = 'table' | 'json' | 'yaml'

export function parseOutput(s: string | undefined): OutputFormat {
  const v = (s ?? 'table').toLowerCase()
  if (v === 'table' || v === 'json' || v === 'yaml') return v
  throw new RangeError(`-o/--output must be table, json or yaml, got ${JSON.stringify(s)}`)
}

/** Print `value` as JSON (2-space indent) or YAML. */
export function emit(out: Out, format: 'json' | 'yaml', value: unknown): void {
  out.write(format === 'json' ? JSON.stringify(value, null, 2) + '\n' : stringify(value))
}

/** Columns padded to their widest cell, separated by 3 spaces, with a trailing newline. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [head, ...rows]
  const width = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return all.map((r) => r.map((c, i) => (c ?? '').padEnd(width[i])).join('   ').trimEnd()).join('\n') + '\n'
}

/** parseOutput for a command's action: on a bad value, says so on stderr, sets exit code 2 and returns null. */
export function outputOption(cmd: string, s: string | undefined): OutputFormat | null {
  try {
    return parseOutput(s)
  } catch (e) {
    process.stderr.write(`weft ${cmd}: ${(e as Error).message}\n`)
    process.exitCode = 2
    return null
  }
}
