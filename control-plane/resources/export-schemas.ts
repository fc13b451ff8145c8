// `npm run schemas`: writes the JSON Schema of every resource kind to ./schemas/<kind>.json, from
// the TypeBox source (./schema.ts). The files are committed (the base of the CRDs, and for editors
// and other tools); test/validate.test.ts fails when they are out of date.
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KINDS } from './schema.ts'

export const SCHEMA_DIR = join(dirname(fileURLToPath(import.meta.url)), 'schemas')

/** File name -> content of every schema file. */
export function schemaFiles(): Map<string, string> {
  const out = new Map<string, string>()
  for (const k of KINDS) {
    const doc = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      title: `${k.apiVersion} ${k.kind}`,
      description: `The ${k.kind} fields Weft reads (generated from control-plane/resources/schema.ts by npm run schemas; do not edit)`,
      ...k.schema,
    }
    out.set(`${k.file}.json`, JSON.stringify(doc, null, 2) + '\n')
  }
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(SCHEMA_DIR, { recursive: true })
  for (const [name, text] of schemaFiles()) {
    writeFileSync(join(SCHEMA_DIR, name), text)
    process.stdout.write(`wrote ${join('control-plane/resources/schemas', name)}\n`)
  }
}
