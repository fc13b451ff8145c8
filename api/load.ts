// Loads the static bootstrap YAML: parse (keeping node positions), validate against the schema,
// then check what the schema cannot say (./semantics.ts: references, duplicates, conflicting
// fields, regexes). Every error carries file:line:column of the offending field and a message a
// person can act on. Nothing here mutates the config: defaults are applied later, by the compiler.
import { readFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { LineCounter, parseDocument } from 'yaml'
import type { Document } from 'yaml'
import type { Bootstrap as BootstrapConfig } from './schema.ts'
import { ConfigErrorCode, formatPath } from './errors.ts'
import type { ConfigError } from './errors.ts'
import { checkSemantics } from './semantics.ts'
import type { ExternalNames } from './semantics.ts'
import {
  dedupe,
  errorText,
  nodeOffset,
  oneLine,
  positions,
  readError,
  schemaProblems,
  sortErrors,
  syntaxErrors,
} from './yaml-errors.ts'
import type { Position, SchemaMessages, Seg, Target } from './yaml-errors.ts'

export type LoadResult =
  | { ok: true; config: BootstrapConfig }
  /** `schemaValid`: the document, when it passed the schema and only the later checks failed */
  | { ok: false; errors: ConfigError[]; schemaValid?: BootstrapConfig }

// Precompiled by the build, or compiled on first use (./validator.ts).
import { bootstrapSchema, bootstrapValidator } from './validator.ts'
import { matchesSchema } from './schema-check.ts'

const MESSAGES: SchemaMessages = { root: 'the config must be a mapping with listeners, routeTables and clusters' }

/**
 * Parse and check bootstrap YAML text. file is only used in the errors. external: route tables
 * and clusters another source adds (static mode), which references may name.
 */
export function parseBootstrap(text: string, file: string, external?: ExternalNames): LoadResult {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false })
  return checkBootstrapDocument(doc, positions(lineCounter), file, external)
}

/**
 * Check one parsed YAML document as a bootstrap (also used for a bootstrap document inside a
 * multi-document resources file). pos turns source offsets into positions.
 */
export function checkBootstrapDocument(
  doc: Document,
  pos: (offset: number | undefined) => Position,
  file: string,
  external?: ExternalNames,
): LoadResult {
  // 1. YAML syntax.
  const syntax = syntaxErrors(doc, file, pos)
  if (syntax.length > 0) return { ok: false, errors: sortErrors(syntax) }

  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: 1000 })
  } catch (err) {
    return {
      ok: false,
      errors: [{ code: ConfigErrorCode.SYNTAX, file, line: 1, column: 1, path: '', message: oneLine(errorText(err)) }],
    }
  }
  if (data === null || data === undefined) {
    return {
      ok: false,
      errors: [{
        code: ConfigErrorCode.SCHEMA,
        file,
        line: 1,
        column: 1,
        path: '',
        message: 'the file is empty: expected a mapping with listeners, routeTables and clusters',
      }],
    }
  }
  const locate = (segs: Seg[], target: Target = 'value'): Position => pos(nodeOffset(doc, segs, target))
  return checkData(data, file, locate, external)
}

/**
 * The same checks for a config built in memory (static mode merges translated resources into
 * the bootstrap). Its errors have no place in a file (line 0, column 0).
 */
export function checkBootstrapConfig(config: unknown, file: string): LoadResult {
  return checkData(config, file, () => ({ line: 0, column: 0 }))
}

function checkData(data: unknown, file: string, locate: (segs: Seg[], target?: Target) => Position, external?: ExternalNames): LoadResult {
  // 2. Schema. A valid config passes the quick check (./schema-check.ts); otherwise Ajv's validator
  // (loaded then) decides and finds the errors.
  if (!matchesSchema(bootstrapSchema(), data)) {
    const validate = bootstrapValidator()
    if (!validate(data)) {
      const errors = schemaProblems(validate.errors ?? [], data, MESSAGES).map((d): ConfigError => ({
        code: ConfigErrorCode.SCHEMA, file, ...locate(d.segs, d.target), path: formatPath(d.segs), message: d.message,
      }))
      return { ok: false, errors: sortErrors(dedupe(errors)) }
    }
  }

  // 3. Semantics.
  const config = data as BootstrapConfig
  const errors = checkSemantics(config, (code, segs, message, target) => {
    return { code, file, ...locate(segs, target), path: formatPath(segs), message }
  }, (segs) => locate(segs).line, external)
  if (errors.length > 0) return { ok: false, errors: sortErrors(dedupe(errors)), schemaValid: config }
  return { ok: true, config }
}

/** Read and check a bootstrap YAML file. */
export async function loadBootstrapFile(path: string, external?: ExternalNames): Promise<LoadResult> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    return { ok: false, errors: [readError(path, err)] }
  }
  return parseBootstrap(text, path, external)
}

/** Same as loadBootstrapFile, synchronously (for startup paths and the CLI). */
export function loadBootstrapFileSync(path: string): LoadResult {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    return { ok: false, errors: [readError(path, err)] }
  }
  return parseBootstrap(text, path)
}

export { serviceDomains, virtualHostDomains } from './domains.ts'
export { isReservedHeader } from './semantics.ts'
export type { ExternalNames } from './semantics.ts'
