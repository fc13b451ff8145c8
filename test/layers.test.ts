// Layers point one way. api/ (the shared resource schema, errors, durations, checks) imports
// neither side; the proxy never imports the control plane nor the CLI; the control plane never
// imports the proxy; protos/ imports only api/. The CLI, above all of them, assembles static mode.
// The import graph is read from the source files, static and dynamic imports alike.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import t from 'tap'

const root = resolve(import.meta.dirname, '..')

const FORBIDDEN: Record<string, readonly string[]> = {
  api: ['proxy', 'control-plane', 'cli', 'protos', 'test', 'bench', 'examples'],
  protos: ['proxy', 'control-plane', 'cli', 'test', 'bench', 'examples'],
  proxy: ['control-plane', 'cli', 'test', 'bench', 'examples'],
  'control-plane': ['proxy', 'cli', 'test', 'bench', 'examples'],
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm

/** Relative import specifiers of a source text. */
export function importsOf(text: string): string[] {
  return [...text.matchAll(IMPORT)].map((m) => m[1])
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : tsFiles(p)
    return e.name.endsWith('.ts') ? [p] : []
  })
}

t.test('the import reader sees every form of import', async (t) => {
  const text = [
    "import { a } from '../control-plane/x.ts'",
    "import type { B } from \"./b.ts\"",
    "export { c } from '../c.ts'",
    "const m = await import('../../cli/d.ts')",
    "import './side-effect.ts'",
    "import Type from 'typebox'",
  ].join('\n')
  t.same(importsOf(text), ['../control-plane/x.ts', './b.ts', '../c.ts', '../../cli/d.ts', './side-effect.ts'])
})

t.test('no layer imports one it must not', async (t) => {
  const violations: string[] = []
  let edges = 0
  for (const [layer, banned] of Object.entries(FORBIDDEN)) {
    for (const file of tsFiles(join(root, layer))) {
      for (const spec of importsOf(readFileSync(file, 'utf8'))) {
        edges++
        const target = relative(root, resolve(dirname(file), spec))
        const top = target.split('/')[0]
        if (banned.includes(top)) violations.push(`${relative(root, file)} imports ${target}`)
      }
    }
  }
  t.ok(edges > 300, `the walk read the graph (${edges} imports)`)
  t.same(violations, [], 'no upward or sideways import')
})

t.test('the config compiler sits above what it compiles: only proxy/proxy.ts imports proxy/config/', async (t) => {
  const importers: string[] = []
  for (const file of tsFiles(join(root, 'proxy'))) {
    const rel = relative(root, file)
    if (rel.startsWith('proxy/config/') || rel === 'proxy/proxy.ts') continue
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      if (relative(root, resolve(dirname(file), spec)).startsWith('proxy/config/')) importers.push(`${rel} imports ${spec}`)
    }
  }
  t.same(importers, [])
})

t.test('ClusterSpec and Clock are defined once, in api/', async (t) => {
  const defs: Record<string, string[]> = { ClusterSpec: [], Clock: [] }
  for (const layer of ['api', 'proxy', 'control-plane', 'cli', 'protos']) {
    for (const file of tsFiles(join(root, layer))) {
      const text = readFileSync(file, 'utf8')
      for (const name of Object.keys(defs)) {
        if (new RegExp(`^export (?:type|interface) ${name}\\b`, 'm').test(text)) defs[name].push(relative(root, file))
      }
    }
  }
  t.same(defs, { ClusterSpec: ['api/schema.ts'], Clock: ['api/clock.ts'] })
})
