// `weft inject -f FILE|-` and `weft uninject -f FILE|-`: kubectl-style. A multi-document YAML
// stream in, the same stream out on stdout with the pod templates of Pod, Deployment,
// StatefulSet, DaemonSet, ReplicaSet, Job and CronJob objects (also inside a `List`) injected or
// uninjected by control-plane/inject/. The changes are applied to the parsed YAML documents as
// patches, so comments, key order and formatting elsewhere survive (the yaml library re-renders
// flow collections with its own spacing). Invalid YAML: "file:line:column: message" on stderr,
// exit 1, nothing on stdout.
import { readFile } from 'node:fs/promises'
import { isSeq, parseAllDocuments, type Document } from 'yaml'
import { DEFAULT_MESH, inject, uninject, type KubeObject, type MeshConfig } from '../control-plane/inject/index.ts'
import { diff, type PatchOp } from '../control-plane/webhook/json-patch.ts'

export interface Out {
  write(s: string): unknown
}

export interface InjectCliOptions {
  file: string
  mode: 'inject' | 'uninject'
  mesh?: MeshConfig
  /** stdin contents when file is "-" (tests) */
  stdin?: string
}

export async function runInject(o: InjectCliOptions, out: Out, err: Out): Promise<number> {
  let src: string
  const name = o.file === '-' ? '<stdin>' : o.file
  try {
    src = o.file === '-' ? (o.stdin ?? await readStdin()) : await readFile(o.file, 'utf8')
  } catch (e) {
    err.write(`weft ${o.mode}: ${name}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}\n`)
    return 1
  }
  const docs = parseAllDocuments(src, { keepSourceTokens: false })
  if (!Array.isArray(docs)) {
    err.write(`weft ${o.mode}: ${name}: not a YAML stream\n`)
    return 1
  }
  const errors = docs.flatMap((d) => d.errors)
  if (errors.length > 0) {
    for (const e of errors) {
      const pos = e.linePos?.[0]
      err.write(`${name}:${pos?.line ?? 1}:${pos?.col ?? 1}: ${e.message.split('\n')[0]}\n`)
    }
    return 1
  }
  const mesh = o.mesh ?? DEFAULT_MESH
  // keep the file's own flow style ({a: b} or { a: b }) in the documents that change
  const flowCollectionPadding = !/[[{][^\s\]}]/.test(src) || /[[{] \S/.test(src)
  const parts: string[] = []
  let changed = 0
  let prevEnd = 0
  for (const doc of docs) {
    // the source text of this document: from the end of the previous one (its "---" and comments included)
    const end = doc.range[2]
    const text = src.slice(prevEnd, end)
    prevEnd = end
    const js = doc.toJS() as unknown
    const before = changed
    if (js !== null && typeof js === 'object' && !Array.isArray(js)) {
      const obj = js as KubeObject
      if (obj.kind === 'List' && Array.isArray(obj.items)) {
        obj.items.forEach((item, i) => { changed += one(doc, ['items', i], item as KubeObject, o.mode, mesh, err) })
      } else {
        changed += one(doc, [], obj, o.mode, mesh, err)
      }
    }
    // a document left alone is written as it was read
    parts.push(changed === before ? text : doc.toString({ flowCollectionPadding }))
  }
  out.write(parts.join('') + src.slice(prevEnd))
  err.write(`weft ${o.mode}: ${changed} ${changed === 1 ? 'workload' : 'workloads'} ${o.mode}ed\n`)
  return 0
}

function one(doc: Document, at: (string | number)[], obj: KubeObject, mode: 'inject' | 'uninject', mesh: MeshConfig, err: Out): number {
  if (obj === null || typeof obj !== 'object') return 0
  let next: KubeObject
  if (mode === 'inject') {
    const r = inject(obj, mesh)
    for (const w of r.warnings) err.write(`${w}\n`)
    if (!r.injected) return 0
    next = r.workload
  } else {
    const r = uninject(obj)
    if (!r.uninjected) return 0
    next = r.workload
  }
  applyToDocument(doc, at, diff(obj, next))
  return 1
}

/** Apply JSON Patch ops to a YAML document under `at`, node by node. */
function applyToDocument(doc: Document, at: (string | number)[], ops: PatchOp[]): void {
  for (const op of ops) {
    const keys = op.path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
    const path = [...at, ...keys]
    const parentPath = path.slice(0, -1)
    const last = path[path.length - 1]!
    const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true)
    if (isSeq(parent)) {
      const i = last === '-' ? parent.items.length : Number(last)
      if (op.op === 'add') parent.items.splice(i, 0, doc.createNode(op.value))
      else if (op.op === 'remove') parent.items.splice(i, 1)
      else parent.items[i] = doc.createNode((op as { value: unknown }).value)
    } else if (op.op === 'remove') {
      doc.deleteIn(path)
    } else {
      doc.setIn(path, doc.createNode(op.value))
    }
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
