// Cluster-scoped objects the control plane reads and patches one at a time (the
// MutatingWebhookConfiguration whose caBundle it keeps, the CRDs `weft check` reads), for the
// test API server (./kube-api-server.ts). As the real server:
// - GET /apis/<group>/<version>/<plural>/<name>: the object, or 404 NotFound Status;
// - PATCH with content-type application/json-patch+json (RFC 6902: add, remove, replace, test):
//   applied atomically, resourceVersion (the server's one counter) and generation bumped, the new
//   object returned; a failed `test` op is 422 Invalid and changes nothing; another content type
//   is 415 UnsupportedMediaType;
// - GET of the collection: a List of them.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { randomUUID } from 'node:crypto'

interface Kind { group: string; version: string; plural: string; kind: string }
export const CLUSTER_KINDS: readonly Kind[] = [
  { group: 'admissionregistration.k8s.io', version: 'v1', plural: 'mutatingwebhookconfigurations', kind: 'MutatingWebhookConfiguration' },
  { group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', kind: 'CustomResourceDefinition' },
]

type Obj = { metadata: { name: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown }
type Reply = (res: ServerResponse, body: Record<string, unknown>, code?: number) => void
type Status = (code: number, reason: string, message: string) => Record<string, unknown>

export class ClusterObjects {
  readonly #objects = new Map<string, Obj>()
  readonly #nextRv: () => number
  readonly patches: { plural: string; name: string; ops: unknown[] }[] = []

  constructor(nextRv: () => number) {
    this.#nextRv = nextRv
  }

  put(kind: string, obj: Obj): Obj {
    const k = CLUSTER_KINDS.find((x) => x.kind === kind)!
    const stored = structuredClone(obj)
    const old = this.#objects.get(`${k.plural}/${obj.metadata.name}`)
    stored.apiVersion = `${k.group}/${k.version}`
    stored.kind = k.kind
    stored.metadata.uid = old?.metadata.uid ?? randomUUID()
    stored.metadata.generation = ((old?.metadata.generation as number | undefined) ?? 0) + 1
    stored.metadata.resourceVersion = String(this.#nextRv())
    this.#objects.set(`${k.plural}/${obj.metadata.name}`, stored)
    return structuredClone(stored)
  }

  get(kind: string, name: string): Obj | undefined {
    const k = CLUSTER_KINDS.find((x) => x.kind === kind)!
    const o = this.#objects.get(`${k.plural}/${name}`)
    return o === undefined ? undefined : structuredClone(o)
  }

  list(kind: string): Obj[] {
    const k = CLUSTER_KINDS.find((x) => x.kind === kind)!
    return [...this.#objects.entries()].filter(([key]) => key.startsWith(`${k.plural}/`)).map(([, o]) => structuredClone(o))
  }

  delete(kind: string, name: string): void {
    const k = CLUSTER_KINDS.find((x) => x.kind === kind)!
    this.#objects.delete(`${k.plural}/${name}`)
  }

  /** true when the request was one of ours (answered) */
  handle(req: IncomingMessage, res: ServerResponse, path: string, reply: Reply, status: Status): boolean {
    const m = /^\/apis\/([^/]+)\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(path)
    const k = m === null ? undefined : CLUSTER_KINDS.find((x) => x.group === m[1] && x.version === m[2] && x.plural === m[3])
    if (m === null || k === undefined) return false
    const name = m[4]
    if (name === undefined) {
      if (req.method !== 'GET') { reply(res, status(405, 'MethodNotAllowed', `${req.method} on a collection`)); return true }
      const items = [...this.#objects].filter(([key]) => key.startsWith(`${k.plural}/`)).map(([, o]) => o)
      reply(res, { apiVersion: `${k.group}/${k.version}`, kind: `${k.kind}List`, metadata: { resourceVersion: String(this.#nextRv()) }, items }, 200)
      return true
    }
    const key = `${k.plural}/${name}`
    const current = this.#objects.get(key)
    const notFound = () => reply(res, status(404, 'NotFound', `${k.plural}.${k.group} "${name}" not found`))
    if (req.method === 'GET') {
      if (current === undefined) notFound()
      else reply(res, current, 200)
      return true
    }
    if (req.method !== 'PATCH') { reply(res, status(405, 'MethodNotAllowed', `the test API server does not ${req.method} ${k.plural}`)); return true }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.headers['content-type'] !== 'application/json-patch+json') {
        reply(res, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json`))
        return
      }
      if (current === undefined) return notFound()
      let ops: { op: string; path: string; value?: unknown }[]
      try {
        ops = JSON.parse(Buffer.concat(chunks).toString())
        if (!Array.isArray(ops)) throw new Error('not a list')
      } catch (err) {
        reply(res, status(400, 'BadRequest', `error decoding patch: ${(err as Error).message}`))
        return
      }
      this.patches.push({ plural: k.plural, name, ops })
      const next: any = structuredClone(current)
      for (const op of ops) {
        const keys = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
        const last = keys.pop()!
        let parent: any = next
        for (const key of keys) parent = parent?.[key]
        if (parent === undefined || parent === null) {
          reply(res, status(422, 'Invalid', `the server rejected our request due to an error in our request: doc is missing path: "${op.path}"`))
          return
        }
        if (op.op === 'test') {
          if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) {
            reply(res, status(422, 'Invalid', `the server rejected our request due to an error in our request: testing value ${op.path} failed`))
            return
          }
        } else if (op.op === 'remove') {
          if (Array.isArray(parent)) parent.splice(Number(last), 1)
          else delete parent[last]
        } else if (op.op === 'add' && Array.isArray(parent)) {
          parent.splice(last === '-' ? parent.length : Number(last), 0, op.value)
        } else if (op.op === 'add' || op.op === 'replace') {
          parent[last] = op.value
        } else {
          reply(res, status(422, 'Invalid', `unsupported patch op ${op.op}`))
          return
        }
      }
      next.metadata.resourceVersion = String(this.#nextRv())
      this.#objects.set(key, next)
      reply(res, next, 200)
    })
    return true
  }
}
