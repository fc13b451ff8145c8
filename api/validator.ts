// The bootstrap schema's validator, and the schema as data. Compiling the validator with Ajv takes
// ~0.4 s and ~10 MB at every start, and building the schema loads typebox (~370 modules, ~20 MB), so
// the build (npm run build, run by npm install) writes both next to the compiled loader
// (dist/api/bootstrap-validate.cjs, standalone Ajv code, and bootstrap-schema.json) and a
// sidecar started from dist/ only requires those. Run from the TypeScript sources (tests, a checkout
// without a build), they are made here on first use, with the same options: the same Ajv code for the
// same schema.
//
//   node api/validator.ts DIR     writes both files into DIR (the build step)
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { ValidateFunction } from 'ajv'

const require = createRequire(import.meta.url)

/** File names of the precompiled validator and the schema, next to this module's compiled JavaScript. */
export const STANDALONE_FILE = 'bootstrap-validate.cjs'
export const SCHEMA_FILE = 'bootstrap-schema.json'

// No useDefaults: the loader never mutates the config. verbose: the messages quote the schema.
const OPTIONS = { allErrors: true, strict: false, verbose: true }

let validator: ValidateFunction | null = null
let schema: unknown = null

// Without the build's files (running the sources), ./schema.ts is imported here: a dynamic import
// at the top level, since require() of an ES module is not possible under every loader (tap's).
const PREBUILT = existsSync(new URL(STANDALONE_FILE, import.meta.url)) && existsSync(new URL(SCHEMA_FILE, import.meta.url))
let Schema: typeof import('./schema.ts') | null = PREBUILT ? null : await import('./schema.ts')

/** The bootstrap JSON schema (what ./schema.ts builds): the build's JSON file when there, else built now. */
export function bootstrapSchema(): unknown {
  if (schema !== null) return schema
  try {
    schema = require(`./${SCHEMA_FILE}`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
    schema = schemaModule().Bootstrap
  }
  return schema
}

/** ./schema.ts, imported above when there is no prebuilt schema. */
function schemaModule(): typeof import('./schema.ts') {
  if (Schema === null) throw new Error('api/schema.ts not loaded (use loadSchemaModule)')
  return Schema
}

/** ./schema.ts, imported now if it was not. */
export async function loadSchemaModule(): Promise<typeof import('./schema.ts')> {
  Schema ??= await import('./schema.ts')
  return Schema
}

/** The validator: the precompiled one when it exists next to this module, else compiled now (once). */
export function bootstrapValidator(): ValidateFunction {
  if (validator !== null) return validator
  try {
    const m = require(`./${STANDALONE_FILE}`) as { default?: ValidateFunction } & ValidateFunction
    validator = m.default ?? m
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err
    validator = compileValidator()
  }
  return validator
}

/** Compiles the validator with Ajv (loads Ajv and the schema; synchronous). */
export function compileValidator(opts: { source?: boolean } = {}): ValidateFunction {
  const { Ajv } = require('ajv') as typeof import('ajv')
  const { Bootstrap } = schemaModule()
  const ajv = new Ajv({ ...OPTIONS, code: { source: opts.source === true } })
  return ajv.compile(Bootstrap)
}

/** The standalone CommonJS source of the validator (ajv/dist/standalone). */
export async function standaloneSource(): Promise<string> {
  const { Ajv } = require('ajv') as typeof import('ajv')
  const standalone = (require('ajv/dist/standalone') as { default: (ajv: InstanceType<typeof Ajv>, v: ValidateFunction) => string }).default
  const { Bootstrap } = await loadSchemaModule()
  const ajv = new Ajv({ ...OPTIONS, code: { source: true } })
  return eagerlyCompiled(standalone(ajv, ajv.compile(Bootstrap)))
}

/**
 * The standalone source with its validate function as a parenthesized function expression, which
 * V8 compiles with the module instead of on the first call. Then the compile cache (filled by the
 * build, see build/warm-cache.ts) holds its bytecode: a sidecar's first validation took ~50-60 ms
 * of CPU to compile ~550 KB of generated code, and V8's compiler zones for it left ~9 MB of
 * freed malloc memory in the process; read from the cache it takes ~25 ms and ~0.5 MB (README,
 * *Footprint*). Ajv's layout is checked; any other layout is returned unchanged (compiled lazily).
 */
export function eagerlyCompiled(src: string): string {
  const head = /^"use strict";module\.exports = (\w+);module\.exports\.default = \1;/.exec(src)
  if (head === null) return src
  const name = head[1]
  const decl = `function ${name}(`
  const at = src.indexOf(decl)
  // one declaration, the last statement of the file (a single function: nothing after its body)
  if (at < 0 || src.indexOf(decl, at + 1) >= 0 || !src.trimEnd().endsWith('}')) return src
  const body = src.slice(head[0].length, at) + `const ${name} = (${src.slice(at).trimEnd()});\n`
  const out = `"use strict";${body}module.exports = ${name};module.exports.default = ${name};\n`
  try {
    new Function(out) // eslint-disable-line no-new-func -- a syntax check of generated code, never run
  } catch {
    return src
  }
  return out
}

if (import.meta.main) {
  const dir = process.argv[2]
  if (!dir) {
    process.stderr.write('usage: node api/validator.ts DIR\n')
    process.exit(2)
  }
  const { writeFileSync } = await import('node:fs')
  const { join } = await import('node:path')
  writeFileSync(join(dir, STANDALONE_FILE), `// generated by api/validator.ts from api/schema.ts (npm run build)\n${await standaloneSource()}`)
  writeFileSync(join(dir, SCHEMA_FILE), `${JSON.stringify((await loadSchemaModule()).Bootstrap)}\n`)
}
