// `--base-port N` for the single-process examples (examples/hello.ts, examples/mesh/start.ts):
// their config files name fixed ports; with a base port, a copy of them is written to a temporary
// directory with those ports moved to N, N+1, ... (in the order the example lists them).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { parseArgs } from 'node:util'

/** The --base-port option (or WEFT_EXAMPLE_BASE_PORT); null: the files' own ports. Exits 2 on a bad value. */
export function basePort(span: number): number | null {
  const { values } = parseArgs({ options: { 'base-port': { type: 'string' } }, strict: true })
  const raw = values['base-port'] ?? process.env.WEFT_EXAMPLE_BASE_PORT
  if (raw === undefined || raw === '') return null
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1024 || n + span > 65536) {
    process.stderr.write(`--base-port: expected a port from 1024 to ${65536 - span}, got ${raw}\n`)
    process.exit(2)
  }
  return n
}

/** `port: X` (matched by `re`, whose first group is what precedes the number) becomes map[X]; other ports stay. */
export function movePorts(text: string, map: ReadonlyMap<number, number>, re: RegExp): string {
  return text.replace(re, (m, key: string, n: string) => {
    const to = map.get(Number(n))
    return to === undefined ? m : key + String(to)
  })
}

/** A port bound on 127.0.0.1 (admin, listeners, endpoints): `address: 127.0.0.1` then `port: N`. */
export const BOUND_PORT = /(address:\s*127\.0\.0\.1[,\s]+port:\s*)(\d+)\b/g
/** Any `port: N` (EndpointSlice ports). */
export const ANY_PORT = /(\bport:\s*)(\d+)\b/g

/** A temporary directory removed at exit. */
export function tempCopyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-example-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Copy `file` into `dir` with its ports moved; returns the copy's path. */
export function moveFile(file: string, dir: string, map: ReadonlyMap<number, number>, re: RegExp): string {
  const to = join(dir, basename(file))
  writeFileSync(to, movePorts(readFileSync(file, 'utf8'), map, re))
  return to
}

/** Copy a directory (one level) into `dir`/`name`; returns the copy's path. */
export function copyDir(src: string, dir: string, name: string): string {
  const to = join(dir, name)
  cpSync(src, to, { recursive: true })
  return to
}
