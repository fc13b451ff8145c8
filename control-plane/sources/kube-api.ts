// The calls the Kubernetes source makes, through @kubernetes/client-node: the kubeconfig, a paged
// LIST, and the library's Watch with two additions.
//
// LIST goes through the library's own HTTP stack (RequestContext, the kubeconfig's authentication
// and TLS dispatcher, its fetch) but keeps the JSON as the API server sent it: the typed API
// clients would turn creationTimestamp into a Date and drop fields their models lack, while watch
// events arrive as plain JSON, and both must look the same to the schema.
import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { delimiter, join } from 'node:path'
import { HttpMethod, IsomorphicFetchHttpLibrary, KubeConfig, RequestContext, Watch } from '@kubernetes/client-node'
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node'
import { isObject } from '../../api/yaml-errors.ts'

export type KubeConfigOption = KubeConfig | 'cluster' | 'default' | { kubeconfig?: string; context?: string }

/** Where a kubeconfig came from and what it points at, for start-up logs and errors. */
export function describeKubeConfig(kc: KubeConfig): { context: string; cluster: string; server: string } {
  const c = kc.getCurrentCluster()
  return { context: kc.getCurrentContext(), cluster: c?.name ?? '', server: c?.server ?? '' }
}

/**
 * 'cluster': the Pod's service account; 'default': $KUBECONFIG, ~/.kube/config, then in-cluster;
 * { kubeconfig, context }: that file (else as 'default') and that context (else its current-context).
 * Throws an error naming what was tried and what is wrong (no kubeconfig at all, an unknown
 * context, a plain-HTTP server without TLS settings) instead of failing later on every request.
 */
export function loadKubeConfig(opt: KubeConfigOption = 'default'): KubeConfig {
  if (opt instanceof KubeConfig) return opt
  const kc = new KubeConfig()
  if (opt === 'cluster') {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error('in-cluster Kubernetes config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a Pod?)')
    }
    kc.loadFromCluster()
    return kc
  }
  const file = typeof opt === 'object' ? opt.kubeconfig : undefined
  const context = typeof opt === 'object' ? opt.context : undefined
  let tried: string
  if (file !== undefined) {
    if (!existsSync(file)) throw new Error(`kubeconfig ${file} (--kubeconfig): no such file`)
    kc.loadFromFile(file)
    tried = `kubeconfig ${file}`
  } else {
    const env = process.env.KUBECONFIG
    const home = join(homedir(), '.kube', 'config')
    const files = env ? env.split(delimiter).filter((f) => f !== '') : [home]
    const present = files.filter((f) => existsSync(f))
    if (present.length === 0) {
      if (process.env.KUBERNETES_SERVICE_HOST && process.env.KUBERNETES_SERVICE_PORT) {
        kc.loadFromCluster()
        return kc
      }
      throw new Error(
        `no Kubernetes config: ${env ? `$KUBECONFIG (${env}) names no existing file` : `${home} does not exist and $KUBECONFIG is not set`}, ` +
          'and this is not a Pod (KUBERNETES_SERVICE_HOST is not set): give --kubeconfig FILE, set $KUBECONFIG, or use --kubernetes cluster inside the cluster',
      )
    }
    kc.loadFromDefault()
    tried = env ? `kubeconfig $KUBECONFIG=${env}` : `kubeconfig ${home}`
  }
  if (context !== undefined) {
    if (kc.getContextObject(context) === null) {
      throw new Error(`${tried}: no context ${JSON.stringify(context)} (contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`)
    }
    kc.setCurrentContext(context)
  }
  const cur = kc.getCurrentContext()
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error(`${tried}: context ${JSON.stringify(cur)} names no cluster (check current-context and the contexts' cluster fields, or give --context)`)
  if (/^http:/i.test(cluster.server) && cluster.skipTLSVerify !== true) {
    throw new Error(
      `${tried}: context ${JSON.stringify(cur)}, cluster ${JSON.stringify(cluster.name)}: server ${cluster.server} is plain HTTP, ` +
        'which the Kubernetes client accepts only with insecure-skip-tls-verify: true on the cluster: use the https:// address of the API server, or set insecure-skip-tls-verify for a local test server',
    )
  }
  return kc
}

/** A failed API call: statusCode is the HTTP status (ListWatch re-lists on 410), reason the Status reason. */
export class KubeApiError extends Error {
  readonly statusCode: number
  readonly reason: string | undefined
  constructor(statusCode: number, reason: string | undefined, message: string) {
    super(message)
    this.name = 'KubeApiError'
    this.statusCode = statusCode
    this.reason = reason
  }
}

const http = new IsomorphicFetchHttpLibrary()

async function getJson(kc: KubeConfig, url: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const ctx = new RequestContext(url, HttpMethod.GET)
  ctx.setHeaderParam('Accept', 'application/json')
  ctx.setSignal(signal)
  await kc.applySecurityAuthentication(ctx)
  const res = await http.send(ctx).toPromise()
  const text = await res.body.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    body = undefined
  }
  if (res.httpStatusCode < 200 || res.httpStatusCode > 299) {
    const st = isObject(body) ? body : {}
    const message = typeof st.message === 'string' ? st.message : text.slice(0, 200)
    throw new KubeApiError(res.httpStatusCode, typeof st.reason === 'string' ? st.reason : undefined, `GET ${new URL(url).pathname}: ${res.httpStatusCode} ${message}`)
  }
  if (!isObject(body)) throw new KubeApiError(res.httpStatusCode, undefined, `GET ${new URL(url).pathname}: the response is not a JSON object`)
  return body
}

export interface ListOptions {
  /** items per page (the API server's chunking; default 500, as client-go's pager) */
  limit?: number
  signal: AbortSignal
}

/**
 * LIST a collection, page by page. The result's resourceVersion is the first page's: every page
 * comes from that one snapshot. When the snapshot is compacted between pages (410 on a continue
 * token) the list starts over once without paging, as client-go's pager does.
 */
export async function listAll<T extends KubernetesObject>(kc: KubeConfig, path: string, opts: ListOptions): Promise<KubernetesListObject<T>> {
  const server = kc.getCurrentCluster()?.server
  if (server === undefined) throw new Error('Kubernetes config: no current cluster')
  const limit = opts.limit ?? 500
  const items: T[] = []
  let resourceVersion = ''
  let token: string | undefined
  do {
    const url = new URL(server + path)
    if (limit > 0) url.searchParams.set('limit', String(limit))
    if (token !== undefined) url.searchParams.set('continue', token)
    let page: Record<string, unknown>
    try {
      page = await getJson(kc, url.toString(), opts.signal)
    } catch (err) {
      if (token !== undefined && err instanceof KubeApiError && err.statusCode === 410) return listAll(kc, path, { ...opts, limit: 0 })
      throw err
    }
    const meta = isObject(page.metadata) ? page.metadata : {}
    if (token === undefined) resourceVersion = typeof meta.resourceVersion === 'string' ? meta.resourceVersion : ''
    if (Array.isArray(page.items)) items.push(...(page.items as T[]))
    token = typeof meta.continue === 'string' && meta.continue !== '' ? meta.continue : undefined
  } while (token !== undefined)
  return { metadata: { resourceVersion }, items }
}

type WatchCallback = (phase: string, apiObj: any, watchObj?: any) => void

/**
 * The library's Watch, plus: bookmarks requested; a transform of each ADDED/MODIFIED object before the informer caches
 * it; and close(), after which no new watch connects and the open ones are aborted. ListWatch
 * starts a watch after awaits it does not re-check stop() across (the list, its reconnect
 * delay, the response headers), so stopping it alone can leave a watch open.
 */
export class SourceWatch extends Watch {
  #transform: (obj: unknown) => unknown
  #closed = false
  #open = new Set<AbortController>()

  constructor(kc: KubeConfig, transform: (obj: unknown) => unknown) {
    super(kc)
    this.#transform = transform
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: (err: any) => void,
  ): Promise<AbortController> {
    if (this.#closed) {
      const dead = new AbortController()
      dead.abort()
      return dead
    }
    const transform = this.#transform
    const controller = await super.watch(
      path,
      // ListWatch handles BOOKMARK events but does not ask for them
      { ...queryParams, allowWatchBookmarks: true },
      (phase, obj, watchObj) => callback(phase, phase === 'ADDED' || phase === 'MODIFIED' ? transform(obj) : obj, watchObj),
      done,
    )
    if (this.#closed) {
      controller.abort()
    } else if (!controller.signal.aborted) {
      this.#open.add(controller)
      controller.signal.addEventListener('abort', () => this.#open.delete(controller), { once: true })
    }
    return controller
  }

  close(): void {
    this.#closed = true
    for (const c of this.#open) c.abort()
    this.#open.clear()
  }
}

/** An error in one line, with the HTTP status when there is one and the cause of a network error. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  if (err instanceof KubeApiError) return err.message
  const status = (err as { statusCode?: unknown }).statusCode
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
  return typeof status === 'number' ? `HTTP ${status} ${err.message}${cause}` : `${err.message}${cause}`
}
