// The quick schema check (api/schema-check.ts) that a valid config takes instead of Ajv's validator
// must answer as Ajv does: never "valid" where Ajv finds an error (a bad config would be served), and
// "valid" for what Ajv accepts (else every start pays for loading Ajv's code). Compared on the
// example and bench configs, on configs made at random from the schema (every anyOf branch,
// pattern, bound and list), and on random mutations of all of them. And the loader's errors for a
// bad file are Ajv's, as before (test/config-load.test.ts has the messages).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { KNOWN_KEYWORDS, matchesSchema } from '../api/schema-check.ts'
import { bootstrapSchema, compileValidator } from '../api/validator.ts'
import { parseBootstrap } from '../api/load.ts'
import { variantTelemetry, weftBenchConfig, withBenchPolicy, withTcpListener } from '../bench/peers/weft.ts'
import { ROOT } from './helpers/sidecar.ts'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type Schema = Record<string, unknown>

const schema = bootstrapSchema() as Schema
const ajv = compileValidator()

/** mulberry32: the same configs on every run */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const STRINGS = ['a', 'app', 'x-y', 'out', '1s', '250ms', '10s', '/', '/api', '127.0.0.1', '::1', 'app.test', '*.test', '*', 'GET', 'x-user', 'http://127.0.0.1:9411/api/v2/spans',
  'spiffe://cluster.local/ns/default/sa/app', 'cluster.local', 'default', '5xx', 'b3multi', 'ALLOW', '200', 'text/plain', 'a.b', '0.5', 'é', '😀😀', '', 'Bad Name!']

/** A value for a schema: mostly valid (a string that matches the pattern when one of STRINGS does). */
function generate(s: Schema, rnd: () => number, depth = 0): Json {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]
  if ('const' in s) return s.const as Json
  if (Array.isArray(s.anyOf)) return generate(pick(s.anyOf as Schema[]), rnd, depth)
  switch (s.type) {
    case 'object': {
      const o: Record<string, Json> = {}
      const props = (s.properties ?? {}) as Record<string, Schema>
      const required = new Set((s.required ?? []) as string[])
      for (const [k, v] of Object.entries(props)) if (required.has(k) || (depth < 6 && rnd() < 0.5)) o[k] = generate(v, rnd, depth + 1)
      return o
    }
    case 'array': {
      const min = (s.minItems as number | undefined) ?? 0
      const n = depth < 6 ? min + Math.floor(rnd() * 3) : min
      return Array.from({ length: n }, () => generate(s.items as Schema, rnd, depth + 1))
    }
    case 'string': {
      const re = typeof s.pattern === 'string' ? new RegExp(s.pattern, 'u') : null
      const fits = STRINGS.filter((x) => (re === null || re.test(x)) && x.length >= ((s.minLength as number | undefined) ?? 0))
      return fits.length > 0 ? pick(fits) : pick(STRINGS)
    }
    case 'integer': {
      const lo = (s.minimum as number | undefined) ?? 0
      const hi = Math.min((s.maximum as number | undefined) ?? lo + 1000, lo + 100000)
      return lo + Math.floor(rnd() * (hi - lo + 1))
    }
    case 'number':
      return ((s.minimum as number | undefined) ?? 0) + rnd() * 10
    case 'boolean':
      return rnd() < 0.5
    default:
      return null
  }
}

const ODD: Json[] = [null, true, 0, -1, 0.5, 70000, 1e21, '', 'Bad Name!', '😀', 'é', [], [1], {}, { x: 1 }, 'ALLOW', '10s']

/** One random change somewhere in the tree: a field removed, replaced, added, or a list item doubled. */
function mutate(v: Json, rnd: () => number): Json {
  const c = structuredClone(v)
  const nodes: { parent: Json[] | Record<string, Json>; key: string | number }[] = []
  const walk = (x: Json) => {
    if (Array.isArray(x)) x.forEach((e, i) => (nodes.push({ parent: x, key: i }), walk(e)))
    else if (x !== null && typeof x === 'object') for (const k of Object.keys(x)) nodes.push({ parent: x, key: k }), walk(x[k])
  }
  walk(c)
  if (nodes.length === 0) return ODD[Math.floor(rnd() * ODD.length)]
  const { parent, key } = nodes[Math.floor(rnd() * nodes.length)]
  const r = rnd()
  const at = (parent as Record<string, Json>)[key as string]
  if (r < 0.25 && !Array.isArray(parent)) delete parent[key as string]
  else if (r < 0.35 && !Array.isArray(parent)) parent['unknownField'] = 1
  else if (r < 0.45 && Array.isArray(parent)) parent.push(structuredClone(at))
  else if (r < 0.55 && typeof at === 'number') (parent as Record<string, Json>)[key as string] = Math.round(at) + (rnd() < 0.5 ? -1 : 1) * Math.floor(1 + rnd() * 3)
  else (parent as Record<string, Json>)[key as string] = ODD[Math.floor(rnd() * ODD.length)]
  return c
}

function bases(): Json[] {
  const yaml = (f: string) => parse(readFileSync(join(ROOT, f), 'utf8')) as Json
  const bench = (tele?: Parameters<typeof variantTelemetry>[0]) =>
    weftBenchConfig({ port: 8080, adminPort: 15000, upstreamPorts: [9001, 9002], telemetry: tele === undefined ? undefined : variantTelemetry(tele, { zipkinUrl: 'http://127.0.0.1:9411/api/v2/spans', accessLogPath: '/tmp/a.log' }) })
  return [yaml('examples/bootstrap.yaml'), yaml('examples/mesh/bootstrap.yaml'), bench(), bench('metrics'), bench('tracing'), bench('accesslog'), bench('explain'),
    withBenchPolicy(bench('plain')), withTcpListener(bench('plain'))].map((c) => JSON.parse(JSON.stringify(c)) as Json)
}

t.test('the example and bench configs pass the quick check', async (t) => {
  for (const c of bases()) {
    t.equal(ajv(c), true, 'Ajv: valid')
    t.equal(matchesSchema(schema, c), true, 'quick check: valid')
  }
})

t.test('the quick check answers as Ajv on random configs and their mutations', async (t) => {
  const rnd = prng(14)
  const configs: Json[] = bases()
  for (let i = 0; i < 300; i++) configs.push(generate(schema, rnd))
  let valid = 0
  let checked = 0
  const disagree: string[] = []
  for (const base of configs) {
    let c = base
    for (let m = 0; m < 8; m++) {
      const quick = matchesSchema(schema, c)
      const full = ajv(c) as boolean
      checked++
      if (full) valid++
      if (quick !== full && disagree.length < 5) disagree.push(`quick ${quick}, Ajv ${full}: ${JSON.stringify(c).slice(0, 400)} ${JSON.stringify(ajv.errors?.slice(0, 2))}`)
      c = mutate(c, rnd)
    }
  }
  t.same(disagree, [], `the same answer for ${checked} configs`)
  t.ok(valid > checked / 10 && valid < checked - checked / 10, `both valid and invalid configs among them (${valid} valid of ${checked})`)
})

t.test('a keyword the quick check does not know: "not sure", so Ajv decides', async (t) => {
  t.equal(matchesSchema({ type: 'string', format: 'email' }, 'a'), false)
  t.equal(matchesSchema({ oneOf: [{ type: 'string' }] }, 'a'), false)
  t.equal(matchesSchema({ type: ['string', 'null'] }, 'a'), false)
  t.equal(matchesSchema({ type: 'string', description: 'a name', default: 'x' }, 'a'), true, 'annotations are no keywords')
})

/** The keywords a schema uses (property names under properties/patternProperties are no keywords). */
function keywordsOf(s: unknown, into: Map<string, string>, at: string): Map<string, string> {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return into
  for (const [k, v] of Object.entries(s as Schema)) {
    if (!into.has(k)) into.set(k, `${at}/${k}`)
    if (k === 'properties' || k === 'patternProperties') {
      for (const [name, sub] of Object.entries(v as Schema)) keywordsOf(sub, into, `${at}/${k}/${name}`)
    } else if (k === 'anyOf' && Array.isArray(v)) v.forEach((sub, i) => keywordsOf(sub, into, `${at}/anyOf/${i}`))
    else if (k === 'items' || k === 'additionalProperties') keywordsOf(v, into, `${at}/${k}`)
  }
  return into
}

t.test('the bootstrap schema uses only keywords the quick check knows (else every start loads Ajv)', async (t) => {
  const used = keywordsOf(schema, new Map(), '#')
  const unknown = [...used].filter(([k]) => !KNOWN_KEYWORDS.has(k)).map(([k, at]) => `${k} (first at ${at})`)
  t.same(unknown, [], 'teach api/schema-check.ts each of these keywords, with Ajv\'s meaning')
  t.ok(used.has('anyOf') && used.has('additionalProperties') && used.has('pattern'), 'the walk reaches nested schemas')
  // the list and the check's switch say the same
  const src = readFileSync(join(ROOT, 'api/schema-check.ts'), 'utf8')
  const body = src.slice(src.indexOf('export function matchesSchema'))
  const cases = [...body.matchAll(/^\s+case '([^']+)':/gm)].map((m) => m[1]!)
  t.same(cases.filter((k) => !KNOWN_KEYWORDS.has(k)), [], 'every case of matchesSchema is in KNOWN_KEYWORDS')
  const rest = [...KNOWN_KEYWORDS].filter((k) => !cases.includes(k))
  t.same(rest.toSorted(), ['$id', '$schema', 'default', 'description', 'examples', 'title'], 'and the rest are the annotations')
  for (const k of rest) t.equal(matchesSchema({ [k]: 'x' }, 0), true, `${k} is ignored`)
})

t.test('Ajv\'s meanings: code points, unicode patterns, integers, deep const', async (t) => {
  t.equal(matchesSchema({ type: 'string', maxLength: 1 }, '😀'), true, 'one code point')
  t.equal(matchesSchema({ type: 'string', minLength: 2 }, '😀'), false)
  t.equal(matchesSchema({ type: 'string', pattern: '^.$' }, '😀'), true, 'a unicode regular expression')
  t.equal(matchesSchema({ type: 'integer' }, 1.5), false)
  t.equal(matchesSchema({ type: 'number' }, Infinity), false)
  t.equal(matchesSchema({ type: 'number' }, NaN), false)
  t.equal(matchesSchema({ type: 'array', uniqueItems: true, items: { type: 'object' } }, [{ a: 1 }, { a: 1 }]), false)
  t.equal(matchesSchema({ type: 'object', additionalProperties: false, properties: { a: {} }, patternProperties: { '^x-': {} } }, { a: 1, 'x-b': 2 }), true)
  t.equal(matchesSchema({ type: 'object', additionalProperties: false, properties: { a: {} } }, { b: 1 }), false)
})

t.test('a file that fails the quick check gets Ajv\'s errors, with line, column and path', async (t) => {
  const r = parseBootstrap('listeners: []\nrouteTables: []\nclusters: []\nadmin:\n  port: 70000\n', 'b.yaml')
  t.equal(r.ok, false)
  if (r.ok) return
  t.match(r.errors, [{ file: 'b.yaml', line: 5, column: 9, path: 'admin.port' }])
})
