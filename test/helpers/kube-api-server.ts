// A Kubernetes API server for tests, on node:http (127.0.0.1, port 0), serving the five collections
// Weft watches. Kubernetes itself cannot run on these machines, so this one follows the real
// server's list/watch protocol as closely as the tests need, and the test drives it:
//
// - one resourceVersion counter for every kind (etcd's revision), set on every write;
// - LIST: {kind: "<Kind>List", apiVersion, metadata: {resourceVersion, continue?, remainingItemCount?},
//   items}, items ordered by namespace/name (etcd key order); built-in kinds' items carry no
//   apiVersion/kind (typed lists leave TypeMeta empty), custom resources' items do; limit/continue
//   page through one consistent snapshot, and a continue token whose snapshot was compacted gets
//   410 Expired;
// - WATCH (?watch=true): 200 with a chunked body of newline-delimited {type, object} events;
//   resourceVersion N replays the kind's events after N from a bounded history, "" or "0" starts
//   with a synthetic ADDED per existing object; an N older than the history gets 200, one ERROR
//   event with a Status 410 "Expired" and the end of the stream (the watch cache's errWatcher);
//   BOOKMARK events (only with allowWatchBookmarks=true) carry just metadata.resourceVersion;
//   DELETED carries the object's last state with the resourceVersion of the deletion;
//   timeoutSeconds ends the stream as the server would;
// - errors are Status objects (NotFound, Unauthorized, BadRequest, ...), with the HTTP status as code;
// - POST of a Pod runs the mutating admission webhooks (MutatingWebhookConfigurations in `cluster`)
//   over HTTPS, as kube-apiserver does, then stores it;
// - TokenReview (authentication.k8s.io/v1, POST): a token made by serviceAccountToken() is
//   authenticated as system:serviceaccount:<ns>:<sa>, any other is not (status.authenticated false);
// - Secrets, one at a time: GET and POST (create; 409 AlreadyExists) in a namespace.
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import { ClusterObjects } from './kube-api-objects.ts'
// RFC 6902, as kube-apiserver applies a webhook's patch (the product's implementation, tested on its own)
import { apply as applyJsonPatch, type PatchOp } from '../../control-plane/webhook/json-patch.ts'

export type KubeKind = 'Service' | 'Pod' | 'EndpointSlice' | 'HTTPRoute' | 'TrafficPolicy' | 'PeerAuthentication' | 'AuthorizationPolicy'

export interface KubeObject {
  apiVersion?: string
  kind?: string
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; [field: string]: unknown }
  [field: string]: unknown
}

interface ResourceType {
  kind: KubeKind
  group: string
  version: string
  plural: string
  /** built-in types are encoded as typed lists: their items have no apiVersion/kind */
  builtin: boolean
}

const TYPES: readonly ResourceType[] = [
  { kind: 'Service', group: '', version: 'v1', plural: 'services', builtin: true },
  { kind: 'Pod', group: '', version: 'v1', plural: 'pods', builtin: true },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', builtin: true },
  { kind: 'HTTPRoute', group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', builtin: false },
  { kind: 'TrafficPolicy', group: 'policy.weft.io', version: 'v1alpha1', plural: 'trafficpolicies', builtin: false },
  { kind: 'PeerAuthentication', group: 'security.weft.io', version: 'v1alpha1', plural: 'peerauthentications', builtin: false },
  { kind: 'AuthorizationPolicy', group: 'security.weft.io', version: 'v1alpha1', plural: 'authorizationpolicies', builtin: false },
]

function apiVersionOf(t: ResourceType): string {
  return t.group === '' ? t.version : `${t.group}/${t.version}`
}

/** The collection path of a kind, across namespaces or in one. */
export function collectionPath(kind: KubeKind, namespace?: string): string {
  const t = TYPES.find((x) => x.kind === kind)!
  const base = t.group === '' ? `/api/${t.version}` : `/apis/${t.group}/${t.version}`
  return namespace === undefined ? `${base}/${t.plural}` : `${base}/namespaces/${namespace}/${t.plural}`
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED'

interface StoredEvent {
  type: EventType
  rv: number
  object: KubeObject
}

interface Watcher {
  namespace: string | undefined
  bookmarks: boolean
  res: ServerResponse
  timer: NodeJS.Timeout | undefined
}

interface Snapshot {
  rv: number
  items: KubeObject[]
}

interface Store {
  type: ResourceType
  objects: Map<string, KubeObject>
  history: StoredEvent[]
  /** events up to this resourceVersion are gone: a watch from an older one gets 410 */
  compacted: number
  watchers: Set<Watcher>
  /** list snapshots that continue tokens point to, by resourceVersion */
  snapshots: Map<number, Snapshot>
  installed: boolean
  lists: number
  watches: number
  failures: { verb: 'list' | 'watch'; code: number }[]
}

export interface RecordedRequest {
  kind: KubeKind
  verb: 'list' | 'watch'
  namespace: string | undefined
  query: Record<string, string>
}

export interface KubeApiServerOptions {
  /** events kept per kind for watches to resume from (default 1000) */
  historyLimit?: number
  /** kinds whose API is not there (a CRD not installed): 404 */
  notInstalled?: KubeKind[]
  /** require "Authorization: Bearer <token>" (401 otherwise) */
  token?: string
  /**
   * Admission: where a webhook's `clientConfig.service` is reached (kube-apiserver resolves the
   * Service; here the test says where its server listens). Without it only `clientConfig.url` works.
   * With `socketPath`, the HTTPS connection goes through that Unix socket (e.g. a forwarder into a
   * network namespace the test made) while the URL's host is still the name the certificate must hold.
   */
  resolveService?: (namespace: string, name: string, port: number) => string | { url: string; socketPath: string }
  /** also serve on this Unix socket (reachable from other network namespaces, unlike 127.0.0.1) */
  unixSocket?: string
}

export interface ListPage {
  resourceVersion: string
  continue?: string
}

const SNAPSHOTS_KEPT = 16

export class KubeApiServer {
  readonly server: Server
  readonly requests: RecordedRequest[] = []
  /** cluster-scoped objects read and patched one at a time (MutatingWebhookConfiguration, CRDs): ./kube-api-objects.ts */
  readonly cluster = new ClusterObjects(() => ++this.#rv)
  #stores = new Map<KubeKind, Store>()
  #rv = 0
  #historyLimit: number
  #token: string | undefined
  #resolveService: KubeApiServerOptions['resolveService']
  /** namespaces' labels, for webhooks' namespaceSelector (kubernetes.io/metadata.name is added) */
  readonly namespaceLabels = new Map<string, Record<string, string>>()
  /** admission calls made on Pod creation: webhook name and the outcome */
  readonly admissions: { webhook: string; namespace: string; outcome: string }[] = []
  /** ServiceAccount tokens TokenReview knows: token -> who */
  readonly #saTokens = new Map<string, { namespace: string; serviceAccount: string }>()
  /** TokenReviews answered: the user they named, or "" when not authenticated */
  readonly tokenReviews: string[] = []
  /** Secrets by "namespace/name" */
  readonly secrets = new Map<string, KubeObject>()

  /** A token TokenReview will authenticate as the ServiceAccount (what kubelet projects into a pod). */
  serviceAccountToken(namespace: string, serviceAccount: string): string {
    const token = `sa.${namespace}.${serviceAccount}.${randomUUID()}`
    this.#saTokens.set(token, { namespace, serviceAccount })
    return token
  }

  /** TokenReview and Secrets; true when the request was one of them. */
  #auth(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const body = (): Promise<any> => new Promise((resolve) => {
      const parts: Buffer[] = []
      req.on('data', (b: Buffer) => parts.push(b))
      req.on('end', () => {
        try { resolve(JSON.parse(Buffer.concat(parts).toString('utf8'))) } catch { resolve(undefined) }
      })
    })
    const json = (code: number, obj: unknown): void => {
      res.statusCode = code
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(obj))
    }
    if (path === '/apis/authentication.k8s.io/v1/tokenreviews' && req.method === 'POST') {
      void body().then((review) => {
        const token = review?.spec?.token
        if (review?.kind !== 'TokenReview' || typeof token !== 'string') return reply(res, status(400, 'BadRequest', 'not a TokenReview with spec.token'))
        const who = this.#saTokens.get(token)
        this.tokenReviews.push(who === undefined ? '' : `system:serviceaccount:${who.namespace}:${who.serviceAccount}`)
        json(201, {
          apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', metadata: { creationTimestamp: null }, spec: review.spec,
          status: who === undefined
            ? { authenticated: false, error: '[invalid bearer token, service account token has been invalidated]' }
            : { authenticated: true, user: { username: `system:serviceaccount:${who.namespace}:${who.serviceAccount}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${who.namespace}`, 'system:authenticated'] }, audiences: review.spec.audiences ?? ['https://kubernetes.default.svc'] },
        })
      })
      return true
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(path)
    if (m === null) return false
    const ns = m[1]
    if (req.method === 'GET' && m[2] !== undefined) {
      const s = this.secrets.get(`${ns}/${m[2]}`)
      if (s === undefined) reply(res, status(404, 'NotFound', `secrets "${m[2]}" not found`))
      else json(200, s)
      return true
    }
    if (req.method === 'POST' && m[2] === undefined) {
      void body().then((s) => {
        const name = s?.metadata?.name
        if (typeof name !== 'string') return reply(res, status(400, 'BadRequest', 'a Secret needs metadata.name'))
        if (this.secrets.has(`${ns}/${name}`)) return reply(res, status(409, 'AlreadyExists', `secrets "${name}" already exists`))
        const stored = { ...s, apiVersion: 'v1', kind: 'Secret', metadata: { ...s.metadata, namespace: ns, uid: randomUUID(), resourceVersion: String(++this.#rv) } }
        this.secrets.set(`${ns}/${name}`, stored)
        json(201, stored)
      })
      return true
    }
    reply(res, status(405, 'MethodNotAllowed', `the test API server serves GET and POST of secrets, not ${req.method}`))
    return true
  }

  private constructor(server: Server, opts: KubeApiServerOptions) {
    this.server = server
    this.#resolveService = opts.resolveService
    this.#historyLimit = opts.historyLimit ?? 1000
    this.#token = opts.token
    for (const type of TYPES) {
      this.#stores.set(type.kind, {
        type,
        objects: new Map(),
        history: [],
        compacted: 0,
        watchers: new Set(),
        snapshots: new Map(),
        installed: !(opts.notInstalled ?? []).includes(type.kind),
        lists: 0,
        watches: 0,
        failures: [],
      })
    }
  }

  static async start(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const server = createServer()
    const api = new KubeApiServer(server, opts)
    server.on('request', (req, res) => api.#handle(req, res))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    if (opts.unixSocket !== undefined) {
      const unix = createServer((req, res) => api.#handle(req, res))
      api.#unix = unix
      await new Promise<void>((resolve) => unix.listen(opts.unixSocket, resolve))
    }
    return api
  }

  #unix: Server | undefined

  get port(): number {
    return (this.server.address() as AddressInfo).port
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** The current resourceVersion (of the last write, any kind). */
  get resourceVersion(): string {
    return String(this.#rv)
  }

  // ---- the test's side: writes -------------------------------------------------------------

  /** Create an object as the API server would store it (uid, resourceVersion, creationTimestamp set); ADDED. */
  create(kind: KubeKind, obj: KubeObject): KubeObject {
    const s = this.#store(kind)
    const namespace = obj.metadata.namespace ?? 'default'
    const key = `${namespace}/${obj.metadata.name}`
    if (s.objects.has(key)) throw new Error(`${kind} ${key} already exists`)
    const stored = clone(obj)
    stored.apiVersion = apiVersionOf(s.type)
    stored.kind = kind
    stored.metadata.namespace = namespace
    stored.metadata.uid = randomUUID()
    stored.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    if (!s.type.builtin) stored.metadata.generation = 1
    return this.#write(s, 'ADDED', key, stored)
  }

  /** Replace an existing object (uid and creationTimestamp kept, generation bumped on a spec change); MODIFIED. */
  update(kind: KubeKind, obj: KubeObject): KubeObject {
    const s = this.#store(kind)
    const key = `${obj.metadata.namespace ?? 'default'}/${obj.metadata.name}`
    const old = s.objects.get(key)
    if (old === undefined) throw new Error(`${kind} ${key} not found`)
    const stored = clone(obj)
    stored.apiVersion = old.apiVersion
    stored.kind = kind
    stored.metadata.namespace = old.metadata.namespace
    stored.metadata.uid = old.metadata.uid
    stored.metadata.creationTimestamp = old.metadata.creationTimestamp
    if (typeof old.metadata.generation === 'number') {
      const specChanged = JSON.stringify(old.spec) !== JSON.stringify(stored.spec)
      stored.metadata.generation = old.metadata.generation + (specChanged ? 1 : 0)
    }
    return this.#write(s, 'MODIFIED', key, stored)
  }

  /** Delete an object; DELETED carries its last state with the deletion's resourceVersion. */
  delete(kind: KubeKind, ref: { metadata: { name: string; namespace?: string } }): KubeObject {
    const s = this.#store(kind)
    const key = `${ref.metadata.namespace ?? 'default'}/${ref.metadata.name}`
    const old = s.objects.get(key)
    if (old === undefined) throw new Error(`${kind} ${key} not found`)
    return this.#write(s, 'DELETED', key, clone(old))
  }

  /** The stored object, or undefined. */
  get(kind: KubeKind, namespace: string, name: string): KubeObject | undefined {
    const o = this.#store(kind).objects.get(`${namespace}/${name}`)
    return o === undefined ? undefined : clone(o)
  }

  // ---- the test's side: the watch protocol -------------------------------------------------

  /** Send a BOOKMARK at the current resourceVersion to the watches that allow bookmarks. */
  bookmark(kind?: KubeKind): void {
    for (const s of this.#selected(kind)) {
      const object = { kind: s.type.kind, apiVersion: apiVersionOf(s.type), metadata: { resourceVersion: String(this.#rv) } }
      for (const w of s.watchers) if (w.bookmarks) send(w.res, { type: 'BOOKMARK', object })
    }
  }

  /**
   * Compact: forget every event up to now, as etcd compaction or a full watch cache does. Watches
   * already open go on; a watch (or a continue token) from an older resourceVersion gets 410.
   */
  expireHistory(kind?: KubeKind): void {
    for (const s of this.#selected(kind)) {
      s.compacted = this.#rv
      s.history = []
      s.snapshots.clear()
    }
  }

  /**
   * End the open watch streams, as the server does when a watch times out. With `expired`, each
   * first gets the ERROR 410 event the server sends when it can no longer serve the watch.
   */
  closeWatches(kind?: KubeKind, opts: { expired?: boolean } = {}): number {
    let n = 0
    for (const s of this.#selected(kind)) {
      for (const w of [...s.watchers]) {
        if (opts.expired) send(w.res, { type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${s.compacted} (${this.#rv})`) })
        endWatch(s, w)
        n++
      }
    }
    return n
  }

  /** Make the API of a kind appear or disappear (a CRD installed or removed); open watches end. */
  setInstalled(kind: KubeKind, installed: boolean): void {
    const s = this.#store(kind)
    s.installed = installed
    if (!installed) for (const w of [...s.watchers]) endWatch(s, w)
  }

  /** The next `count` requests of this verb for the kind fail with a Status of this HTTP code. */
  failNext(kind: KubeKind, verb: 'list' | 'watch', code: number, count = 1): void {
    for (let i = 0; i < count; i++) this.#store(kind).failures.push({ verb, code })
  }

  // ---- the test's side: what happened ------------------------------------------------------

  /** LIST requests received for a kind (each page counts, and so does a failed one). */
  lists(kind: KubeKind): number {
    return this.#store(kind).lists
  }

  /** WATCH requests received for a kind (a failed one too). */
  watches(kind: KubeKind): number {
    return this.#store(kind).watches
  }

  /** Watch streams open now. */
  openWatches(kind?: KubeKind): number {
    let n = 0
    for (const s of this.#selected(kind)) n += s.watchers.size
    return n
  }

  async stop(): Promise<void> {
    for (const s of this.#stores.values()) for (const w of [...s.watchers]) endWatch(s, w)
    this.server.closeAllConnections()
    this.#unix?.closeAllConnections()
    await Promise.all([this.server, ...(this.#unix !== undefined ? [this.#unix] : [])].map((srv) => new Promise<void>((resolve) => srv.close(() => resolve()))))
  }

  // ---- the server's side -------------------------------------------------------------------

  #store(kind: KubeKind): Store {
    const s = this.#stores.get(kind)
    if (s === undefined) throw new Error(`unknown kind ${kind}`)
    return s
  }

  #selected(kind: KubeKind | undefined): Store[] {
    return kind === undefined ? [...this.#stores.values()] : [this.#store(kind)]
  }

  #write(s: Store, type: EventType, key: string, obj: KubeObject): KubeObject {
    const rv = ++this.#rv
    obj.metadata.resourceVersion = String(rv)
    if (type === 'DELETED') s.objects.delete(key)
    else s.objects.set(key, obj)
    s.history.push({ type, rv, object: obj })
    while (s.history.length > this.#historyLimit) s.compacted = s.history.shift()!.rv
    for (const w of s.watchers) {
      if (w.namespace === undefined || w.namespace === obj.metadata.namespace) send(w.res, { type, object: obj })
    }
    return clone(obj)
  }

  /**
   * Create a Pod as kube-apiserver does: the mutating admission webhooks whose rules take pods on
   * CREATE and whose namespaceSelector selects the namespace are called over HTTPS (AdmissionReview
   * v1, trusting the caBundle), their JSON Patches applied in order; failurePolicy Fail refuses the
   * pod when a webhook cannot be called, Ignore creates it unmutated. 201 with the stored Pod.
   */
  async #createPod(req: IncomingMessage, res: ServerResponse, namespace: string): Promise<void> {
    let text = ''
    for await (const c of req as AsyncIterable<Buffer>) text += c.toString('utf8')
    let pod: KubeObject
    try { pod = JSON.parse(text) as KubeObject } catch { return reply(res, status(400, 'BadRequest', 'the body is not JSON')) }
    pod.metadata = { ...pod.metadata, namespace }
    const labels = { ...this.namespaceLabels.get(namespace), 'kubernetes.io/metadata.name': namespace }
    for (const mwc of this.cluster.list('MutatingWebhookConfiguration')) {
      for (const w of (mwc.webhooks ?? []) as { name: string; clientConfig: { url?: string; caBundle?: string; service?: { namespace: string; name: string; port?: number; path?: string } }; rules?: { operations: string[]; resources: string[] }[]; namespaceSelector?: Parameters<typeof selects>[0]; failurePolicy?: string; timeoutSeconds?: number }[]) {
        if (!(w.rules ?? []).some((r) => r.operations.includes('CREATE') && r.resources.includes('pods'))) continue
        if (!selects(w.namespaceSelector, labels)) continue
        const svc = w.clientConfig.service
        const resolved = w.clientConfig.url ?? (svc !== undefined && this.#resolveService !== undefined ? this.#resolveService(svc.namespace, svc.name, svc.port ?? 443) : undefined)
        const base = typeof resolved === 'object' ? resolved.url : resolved
        const url = base === undefined ? undefined : w.clientConfig.url !== undefined ? base : base + (svc?.path ?? '')
        const socketPath = typeof resolved === 'object' ? resolved.socketPath : undefined
        try {
          if (url === undefined) throw new Error('no URL for the webhook (clientConfig.service and no resolveService)')
          if (w.clientConfig.caBundle === undefined) throw new Error('no caBundle')
          const out = await callWebhook(url, socketPath, Buffer.from(w.clientConfig.caBundle, 'base64').toString('utf8'), {
            apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
            request: { uid: randomUUID(), kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace, operation: 'CREATE', object: pod },
          }, (w.timeoutSeconds ?? 10) * 1000)
          if (out.response?.allowed !== true) {
            this.admissions.push({ webhook: w.name, namespace, outcome: 'denied' })
            return reply(res, status(403, 'Forbidden', `admission webhook "${w.name}" denied the request: ${out.response?.status?.message ?? ''}`))
          }
          if (out.response.patch !== undefined) pod = applyJsonPatch(pod, JSON.parse(Buffer.from(out.response.patch, 'base64').toString('utf8')) as PatchOp[]) as KubeObject
          this.admissions.push({ webhook: w.name, namespace, outcome: out.response.patch === undefined ? 'allowed' : 'patched' })
        } catch (err) {
          this.admissions.push({ webhook: w.name, namespace, outcome: `error: ${(err as Error).message}` })
          if (w.failurePolicy !== 'Ignore') return reply(res, status(500, 'InternalError', `Internal error occurred: failed calling webhook "${w.name}": ${(err as Error).message}`))
        }
      }
    }
    try {
      const stored = this.create('Pod', pod)
      res.statusCode = 201
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(stored))
    } catch (err) {
      reply(res, status(409, 'AlreadyExists', (err as Error).message))
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost')
    if (this.#token !== undefined && req.headers.authorization !== `Bearer ${this.#token}`) {
      reply(res, status(401, 'Unauthorized', 'Unauthorized'))
      return
    }
    if (this.cluster.handle(req, res, url.pathname, reply, status)) return
    if (this.#auth(req, res, url.pathname)) return
    const route = this.#route(url.pathname)
    if (route === undefined) {
      reply(res, status(404, 'NotFound', 'the server could not find the requested resource'))
      return
    }
    if (req.method === 'POST' && route.store.type.kind === 'Pod' && route.namespace !== undefined) {
      void this.#createPod(req, res, route.namespace)
      return
    }
    if (req.method !== 'GET') {
      reply(res, status(405, 'MethodNotAllowed', `the test API server only serves list and watch, and creates pods, not ${req.method}`))
      return
    }
    const query = Object.fromEntries(url.searchParams)
    const watch = query.watch === 'true' || query.watch === '1'
    const verb = watch ? 'watch' : 'list'
    this.requests.push({ kind: route.store.type.kind, verb, namespace: route.namespace, query })
    if (watch) route.store.watches++
    else route.store.lists++
    if (!route.store.installed) {
      reply(res, status(404, 'NotFound', 'the server could not find the requested resource'))
      return
    }
    for (const unsupported of ['labelSelector', 'fieldSelector']) {
      if (query[unsupported]) {
        reply(res, status(400, 'BadRequest', `${unsupported} is not supported by the test API server`))
        return
      }
    }
    const failure = route.store.failures.findIndex((f) => f.verb === verb)
    if (failure >= 0) {
      const { code } = route.store.failures.splice(failure, 1)[0]
      reply(res, status(code, code === 410 ? 'Expired' : code === 429 ? 'TooManyRequests' : 'InternalError', `injected ${code} by the test`))
      return
    }
    if (watch) this.#watch(route.store, route.namespace, query, res)
    else this.#list(route.store, route.namespace, query, res)
  }

  #route(path: string): { store: Store; namespace: string | undefined } | undefined {
    for (const store of this.#stores.values()) {
      const t = store.type
      const base = t.group === '' ? `/api/${t.version}` : `/apis/${t.group}/${t.version}`
      if (path === `${base}/${t.plural}`) return { store, namespace: undefined }
      const m = path.startsWith(`${base}/namespaces/`) ? /^([^/]+)\/([^/]+)$/.exec(path.slice(base.length + 12)) : null
      if (m !== null && m[2] === t.plural) return { store, namespace: decodeURIComponent(m[1]) }
    }
    return undefined
  }

  #list(s: Store, namespace: string | undefined, query: Record<string, string>, res: ServerResponse): void {
    const limit = query.limit === undefined ? 0 : Number(query.limit)
    if (!Number.isInteger(limit) || limit < 0) {
      reply(res, status(400, 'BadRequest', `invalid limit: ${query.limit}`))
      return
    }
    let snap: Snapshot
    let after = ''
    if (query.continue) {
      let token: { rv: number; start: string }
      try {
        token = JSON.parse(Buffer.from(query.continue, 'base64url').toString('utf8'))
      } catch {
        reply(res, status(400, 'BadRequest', 'continue key is not valid'))
        return
      }
      const found = s.snapshots.get(token.rv)
      if (found === undefined) {
        reply(res, status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.'))
        return
      }
      snap = found
      after = token.start
    } else {
      const rv = query.resourceVersion
      if (query.resourceVersionMatch === 'Exact' && rv !== undefined && Number(rv) !== this.#rv) {
        reply(res, status(410, 'Expired', `too old resource version: ${rv} (${this.#rv})`))
        return
      }
      const items = [...s.objects.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, o]) => o)
      snap = { rv: this.#rv, items }
      if (limit > 0) {
        s.snapshots.set(snap.rv, snap)
        while (s.snapshots.size > SNAPSHOTS_KEPT) s.snapshots.delete(s.snapshots.keys().next().value!)
      }
    }
    const visible = snap.items.filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && keyOf(o) > after)
    const page = limit > 0 ? visible.slice(0, limit) : visible
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) }
    if (page.length < visible.length) {
      metadata.continue = Buffer.from(JSON.stringify({ rv: snap.rv, start: keyOf(page[page.length - 1]) })).toString('base64url')
      metadata.remainingItemCount = visible.length - page.length
    }
    const items = page.map((o) => {
      const item = clone(o)
      if (s.type.builtin) {
        delete item.apiVersion
        delete item.kind
      }
      return item
    })
    reply(res, { kind: `${s.type.kind}List`, apiVersion: apiVersionOf(s.type), metadata, items }, 200)
  }

  #watch(s: Store, namespace: string | undefined, query: Record<string, string>, res: ServerResponse): void {
    const rvParam = query.resourceVersion ?? ''
    let replay: { type: string; object: KubeObject }[]
    if (rvParam === '' || rvParam === '0') {
      const items = [...s.objects.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, o]) => o)
      replay = items.map((object) => ({ type: 'ADDED', object }))
    } else {
      const rv = Number(rvParam)
      if (!/^[0-9]+$/.test(rvParam)) {
        reply(res, status(400, 'BadRequest', `invalid resource version: ${rvParam}`))
        return
      }
      if (rv < s.compacted) {
        // The watch cache answers an expired resourceVersion inside a 200 watch: one ERROR event, then the end.
        startStream(res)
        send(res, { type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${rv} (${s.compacted})`) })
        res.end()
        return
      }
      replay = s.history.filter((e) => e.rv > rv)
    }
    startStream(res)
    const w: Watcher = { namespace, bookmarks: query.allowWatchBookmarks === 'true', res, timer: undefined }
    for (const e of replay) if (namespace === undefined || e.object.metadata.namespace === namespace) send(res, { type: e.type, object: e.object })
    s.watchers.add(w)
    res.on('close', () => endWatch(s, w))
    const timeout = Number(query.timeoutSeconds)
    if (timeout > 0) {
      w.timer = setTimeout(() => endWatch(s, w), timeout * 1000)
      w.timer.unref()
    }
  }
}

function keyOf(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T
}

/** A metav1.Status, as the API server writes errors. */
/** Does a label selector (matchLabels, matchExpressions: In, NotIn, Exists, DoesNotExist) select these labels? */
function selects(sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined, labels: Record<string, string>): boolean {
  if (sel === undefined) return true
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key)
    const v = labels[e.key]
    if (e.operator === 'In' && !(has && (e.values ?? []).includes(v!))) return false
    if (e.operator === 'NotIn' && has && (e.values ?? []).includes(v!)) return false
    if (e.operator === 'Exists' && !has) return false
    if (e.operator === 'DoesNotExist' && has) return false
  }
  return true
}

/** POST an AdmissionReview over HTTPS, trusting only the webhook's caBundle. */
function callWebhook(url: string, socketPath: string | undefined, caPem: string, review: unknown, timeoutMs: number): Promise<{ response?: { allowed?: boolean; patch?: string; status?: { message?: string } } }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(review)
    // through a Unix socket: still verified against the URL's host name (servername), as over TCP
    const via = socketPath === undefined ? {} : { socketPath, servername: new URL(url).hostname }
    const r = httpsRequest(url, { method: 'POST', ...via, ca: caPem, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`webhook answered ${res.statusCode}: ${text.slice(0, 200)}`))
        try { resolve(JSON.parse(text)) } catch (err) { reject(err as Error) }
      })
    })
    r.on('timeout', () => r.destroy(new Error('webhook timed out')))
    r.on('error', reject)
    r.end(body)
  })
}

export function status(code: number, reason: string, message: string): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }
}

function reply(res: ServerResponse, body: Record<string, unknown>, code = Number(body.code)): void {
  const text = JSON.stringify(body)
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function startStream(res: ServerResponse): void {
  // no content-length: node:http sends the body chunked, as the API server does
  res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache, private' })
  res.flushHeaders()
}

function send(res: ServerResponse, event: { type: string; object: unknown }): void {
  if (!res.writableEnded) res.write(`${JSON.stringify(event)}\n`)
}

function endWatch(s: Store, w: Watcher): void {
  s.watchers.delete(w)
  if (w.timer !== undefined) clearTimeout(w.timer)
  if (!w.res.writableEnded) w.res.end()
}

/** Wait until cond() holds, checking every few milliseconds; fails after timeoutMs. */
export async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}
