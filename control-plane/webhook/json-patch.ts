// An RFC 6902 JSON Patch from one JSON value to another: add/remove/replace only, with arrays
// that grew at the front or the end patched by index (the injector prepends init containers and
// appends volumes; uninject removes them), anything else replaced whole. Used for `weft inject`'s
// edits of YAML documents; the webhook writes its patch directly (control-plane/inject/patch.ts).
export type PatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }

export function diff(from: unknown, to: unknown, path = '', ops: PatchOp[] = []): PatchOp[] {
  if (same(from, to)) return ops
  if (Array.isArray(from) && Array.isArray(to)) {
    const n = from.length
    if (to.length >= n) {
      const prefix = to.length - n
      if (from.every((v, i) => same(v, to[prefix + i]))) {
        for (let i = 0; i < prefix; i++) ops.push({ op: 'add', path: `${path}/${i}`, value: to[i] })
        return ops
      }
      if (from.every((v, i) => same(v, to[i])) || to.length === n) {
        for (let i = 0; i < n; i++) diff(from[i], to[i], `${path}/${i}`, ops)
        for (let i = n; i < to.length; i++) ops.push({ op: 'add', path: `${path}/-`, value: to[i] })
        return ops
      }
    }
    if (to.length < n) {
      const cut = n - to.length
      if (to.every((v, i) => same(v, from[cut + i]))) {
        for (let i = 0; i < cut; i++) ops.push({ op: 'remove', path: `${path}/0` })
        return ops
      }
      if (to.every((v, i) => same(v, from[i]))) {
        for (let i = n - 1; i >= to.length; i--) ops.push({ op: 'remove', path: `${path}/${i}` })
        return ops
      }
    }
    ops.push({ op: 'replace', path, value: to })
    return ops
  }
  if (isObject(from) && isObject(to)) {
    for (const k of Object.keys(from)) if (!(k in to)) ops.push({ op: 'remove', path: `${path}/${escape(k)}` })
    for (const k of Object.keys(to)) {
      const p = `${path}/${escape(k)}`
      if (!(k in from)) ops.push({ op: 'add', path: p, value: to[k] })
      else diff(from[k], to[k], p, ops)
    }
    return ops
  }
  ops.push({ op: 'replace', path, value: to })
  return ops
}

/** Apply a patch made by diff() (tests, and `weft check`'s own webhook probe). */
export function apply(doc: unknown, ops: readonly PatchOp[]): unknown {
  let root = structuredClone(doc)
  for (const o of ops) {
    const keys = o.path.split('/').slice(1).map(unescape)
    if (keys.length === 0) { root = o.op === 'remove' ? undefined : structuredClone(o.value); continue }
    let parent: any = root
    for (const k of keys.slice(0, -1)) parent = parent[k]
    const last = keys[keys.length - 1]!
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last)
      if (o.op === 'add') parent.splice(i, 0, structuredClone(o.value))
      else if (o.op === 'remove') parent.splice(i, 1)
      else parent[i] = structuredClone(o.value)
    } else if (o.op === 'remove') delete parent[last]
    else parent[last] = structuredClone(o.value)
  }
  return root
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => same(v, b[i]))
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a)
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && same(a[k], b[k]))
  }
  return false
}
const escape = (k: string) => (k.includes('~') || k.includes('/') ? k.replace(/~/g, '~0').replace(/\//g, '~1') : k)
const unescape = (k: string) => k.replace(/~1/g, '/').replace(/~0/g, '~')
