// A yes/no answer to "does this config match the bootstrap schema?", read from the schema as data
// (bootstrapSchema(), which a start loads anyway for the duration checks), without Ajv's code.
//
// Why: the precompiled Ajv validator (dist/api/bootstrap-validate.cjs) is ~750 KB of generated
// code; a sidecar start spent ~25 ms reading its cached bytecode, and its source string and
// bytecode stayed in the heap for the life of the process (README, *Footprint*), to validate one
// small file that is valid nearly every time. This check answers for the valid file; only when it
// says no (or meets a keyword it does not know) does the loader run Ajv, which then finds the
// errors and their messages exactly as before (api/load.ts). So it must never say yes where Ajv
// says no: it knows the keywords the schema uses, with Ajv's meaning (ajv/lib/vocabularies, for
// the options of api/validator.ts: no coercion, no defaults, unicode regular expressions), and
// answers "not sure" (false) to any other; test/schema-check.test.ts compares it with Ajv on the
// test configs and on mutations of them.

type Schema = Record<string, unknown>

/** Keywords without a meaning for validation. */
const ANNOTATIONS = new Set(['description', 'default', 'title', 'examples', '$schema', '$id'])

/**
 * Every keyword matchesSchema knows (the cases of its switch, and the annotations).
 * test/schema-check.test.ts fails when the bootstrap schema uses another one: that schema would
 * still be checked correctly (by Ajv), but every sidecar start would pay for loading Ajv.
 */
export const KNOWN_KEYWORDS: ReadonlySet<string> = new Set([
  'type', 'const', 'enum', 'anyOf', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems',
  'uniqueItems', 'items', 'required', 'properties', 'patternProperties', 'additionalProperties', ...ANNOTATIONS,
])

const patterns = new Map<string, RegExp>()
function pattern(p: string): RegExp {
  let re = patterns.get(p)
  if (re === undefined) {
    re = new RegExp(p, 'u') // as Ajv (unicodeRegExp)
    patterns.set(p, re)
  }
  return re
}

/** Length in code points, as Ajv's ucs2length (a surrogate pair is one character). */
function ucs2length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    n++
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
    }
  }
  return n
}

/** Deep equality of JSON values, as Ajv's (fast-deep-equal) for YAML/JSON data. */
function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return a !== a && b !== b // NaN
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const bb = b as unknown[]
    return a.length === bb.length && a.every((x, i) => equal(x, bb[i]))
  }
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  return ka.every((k) => Object.hasOwn(b, k) && equal((a as Schema)[k], (b as Schema)[k]))
}

function typeOk(type: unknown, d: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof d === 'string'
    case 'integer':
      return typeof d === 'number' && Number.isInteger(d)
    case 'number':
      return typeof d === 'number' && Number.isFinite(d)
    case 'boolean':
      return typeof d === 'boolean'
    case 'array':
      return Array.isArray(d)
    case 'object':
      return typeof d === 'object' && d !== null && !Array.isArray(d)
    case 'null':
      return d === null
    default:
      return false // a list of types, or unknown: not sure
  }
}

/** True only if data is valid against schema for certain; false if invalid or not sure. */
export function matchesSchema(schema: unknown, d: unknown): boolean {
  if (schema === true) return true
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return false
  const s = schema as Schema
  for (const k in s) {
    const v = s[k]
    switch (k) {
      case 'type':
        if (!typeOk(v, d)) return false
        break
      case 'const':
        if (!equal(v, d)) return false
        break
      case 'enum':
        if (!Array.isArray(v) || !v.some((e) => equal(e, d))) return false
        break
      case 'anyOf':
        if (!Array.isArray(v) || !v.some((b) => matchesSchema(b, d))) return false
        break
      case 'pattern':
        if (typeof v !== 'string') return false
        if (typeof d === 'string' && !pattern(v).test(d)) return false
        break
      case 'minLength':
      case 'maxLength':
        if (typeof v !== 'number') return false
        if (typeof d === 'string' && (k === 'minLength' ? ucs2length(d) < v : ucs2length(d) > v)) return false
        break
      case 'minimum':
      case 'maximum':
        if (typeof v !== 'number') return false
        if (typeof d === 'number' && (k === 'minimum' ? !(d >= v) : !(d <= v))) return false
        break
      case 'minItems':
      case 'maxItems':
        if (typeof v !== 'number') return false
        if (Array.isArray(d) && (k === 'minItems' ? d.length < v : d.length > v)) return false
        break
      case 'uniqueItems':
        if (typeof v !== 'boolean') return false
        if (v && Array.isArray(d)) {
          for (let i = 1; i < d.length; i++) for (let j = 0; j < i; j++) if (equal(d[i], d[j])) return false
        }
        break
      case 'items':
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return false // tuples: not sure
        if (Array.isArray(d) && !d.every((x) => matchesSchema(v, x))) return false
        break
      case 'required':
        if (!Array.isArray(v)) return false
        if (typeOk('object', d) && v.some((p) => (d as Schema)[p as string] === undefined)) return false
        break
      case 'properties':
        if (typeof v !== 'object' || v === null) return false
        if (typeOk('object', d)) {
          for (const p in v as Schema) {
            const x = (d as Schema)[p]
            if (x !== undefined && !matchesSchema((v as Schema)[p], x)) return false
          }
        }
        break
      case 'patternProperties':
        if (typeof v !== 'object' || v === null) return false
        if (typeOk('object', d)) {
          for (const p in v as Schema) {
            const re = pattern(p)
            for (const key in d as Schema) if (re.test(key) && !matchesSchema((v as Schema)[p], (d as Schema)[key])) return false
          }
        }
        break
      case 'additionalProperties':
        if (typeOk('object', d)) {
          const props = (s.properties ?? {}) as Schema
          const pats = Object.keys((s.patternProperties ?? {}) as Schema).map(pattern)
          for (const key in d as Schema) {
            if (Object.hasOwn(props, key) || pats.some((re) => re.test(key))) continue
            if (!matchesSchema(v, (d as Schema)[key])) return false // false: no extra key allowed
          }
        }
        break
      default:
        if (!ANNOTATIONS.has(k)) return false // a keyword this check does not know: not sure
    }
  }
  return true
}
