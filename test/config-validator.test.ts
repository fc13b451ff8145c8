// The bootstrap validator the build precompiles (ajv standalone, dist/api/bootstrap-validate.cjs)
// answers exactly as the one compiled at run time from the sources: same verdict, same errors.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parse } from 'yaml'
import type { ValidateFunction } from 'ajv'
import { bootstrapSchema, compileValidator, eagerlyCompiled, standaloneSource } from '../api/validator.ts'
import { Bootstrap, Cluster, Listener, RouteTable } from '../api/schema.ts'
import { ROOT } from './helpers/sidecar.ts'

const require = createRequire(import.meta.url)

t.test('precompiled and run-time validators agree', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-validator-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // the generated code requires ajv's runtime helpers: point them at this checkout's ajv
  const ajvDir = dirname(require.resolve('ajv/package.json'))
  const file = join(dir, 'bootstrap-validate.cjs')
  writeFileSync(file, (await standaloneSource()).replaceAll('require("ajv/', `require("${ajvDir}/`))
  const pre = require(file) as ValidateFunction
  const live = compileValidator()

  const good = parse(readFileSync(join(ROOT, 'examples', 'bootstrap.yaml'), 'utf8')) as Record<string, unknown>
  const cases: [string, unknown][] = [
    ['examples/bootstrap.yaml', good],
    ['not a mapping', 'listeners'],
    ['missing clusters', { ...good, clusters: undefined }],
    ['unknown field', { ...good, listenerz: [] }],
    ['bad port', { ...good, admin: { address: '127.0.0.1', port: 70000 } }],
    ['bad name pattern and type', { ...good, node: { id: 1, workload: 'Bad Name!' } }],
    ['bad duration', { ...good, drainTimeout: 'ten seconds' }],
  ]
  for (const [name, data] of cases) {
    const a = pre(structuredClone(data))
    const b = live(structuredClone(data))
    t.equal(a, b, `${name}: same verdict (${b})`)
    t.same(pre.errors ?? null, live.errors ?? null, `${name}: same errors`)
  }
  t.equal(pre(good), true, 'the example config is valid')
  t.ok((pre({ ...good, admin: { port: 70000 } }) as boolean) === false && (pre.errors?.length ?? 0) > 0, 'a bad port is reported')
})

t.test('the schema as data is the schema', async (t) => {
  t.same(JSON.parse(JSON.stringify(bootstrapSchema())), JSON.parse(JSON.stringify(Bootstrap)))
  const built = join(ROOT, 'dist', 'api', 'bootstrap-schema.json')
  if (existsSync(built)) t.same(JSON.parse(readFileSync(built, 'utf8')), JSON.parse(JSON.stringify(Bootstrap)), 'the build\'s JSON file too')
})

t.test('the lists\' item schemas (proxy/xds/assemble.ts reads them from the data) are the models', async (t) => {
  const p = (bootstrapSchema() as { properties: Record<string, { items: unknown }> }).properties
  const json = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown
  t.same(p.listeners.items, json(Listener))
  t.same(p.routeTables.items, json(RouteTable))
  t.same(p.clusters.items, json(Cluster))
})

t.test('the precompiled validator is compiled with its module (so the compile cache holds it)', async (t) => {
  const src = await standaloneSource()
  // a parenthesized function expression: V8 compiles it eagerly (a declaration waits for its first call)
  t.match(src, /^"use strict";[^]*const validate\d+ = \(function validate\d+\(/, 'the validate function is a parenthesized expression')
  t.match(src, /module\.exports = (validate\d+);module\.exports\.default = \1;\n$/, 'exported at the end')
  const other = '"use strict";module.exports = v;function v(){return true}\nv.x = 1'
  t.equal(eagerlyCompiled(other), other, 'another layout is left as it is')
  t.equal(eagerlyCompiled('"use strict";module.exports = v;module.exports.default = v;function v(){return 1}}'), '"use strict";module.exports = v;module.exports.default = v;function v(){return 1}}', 'a layout that would not parse is left as it is')
})
