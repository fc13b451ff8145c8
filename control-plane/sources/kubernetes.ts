// The Kubernetes source: one @kubernetes/client-node informer (ListWatch: list, then watch from the
// list's resourceVersion, re-list on 410 Gone, bookmarks) per kind of ./kube-objects.ts, and a
// coalesced onChange with the whole cluster state (./cluster-state.ts) after changes.
//
// - No state before every kind has listed once: translating Services before their EndpointSlices
//   are known would publish empty endpoint sets.
// - ListWatch gives up on any error other than 410 (a failed list, a refused or broken watch); the
//   source starts it again after an exponential backoff. It keeps the resourceVersion it had, so
//   the restart watches from there and lists only if it has none.
// - A custom resource whose API is missing (404: the CRD is not installed) counts as listed and
//   empty, is logged once, and is tried again every backoff.maxMs.
// - Objects that fail their schema are skipped, logged once per version and listed in
//   state.rejected; the source carries on.
import pino from 'pino'
import type { Logger } from 'pino'
import { ListWatch } from '@kubernetes/client-node'
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node'
import { errorText } from '../../api/yaml-errors.ts'
import { emptyResourceSet } from '../resources/load.ts'
import type { Located } from '../resources/load.ts'
import type { AuthorizationPolicy, EndpointSlice, HTTPRoute, PeerAuthentication, Service, TrafficPolicy } from '../resources/schema.ts'
import type { ClusterState, Pod, Rejected, SourceKind } from './cluster-state.ts'
import { realTimers, type Timers } from '../../api/clock.ts'
import { Coalescer, sleep } from './coalesce.ts'
import { KubeApiError, SourceWatch, describeError, listAll, loadKubeConfig, describeKubeConfig } from './kube-api.ts'
import type { KubeConfigOption } from './kube-api.ts'
import { WATCHED_KINDS, checkObject, trimObject } from './kube-objects.ts'
import type { RawObject, WatchedKind } from './kube-objects.ts'

export type { ClusterState, Pod, Rejected, SourceKind } from './cluster-state.ts'

/** Stable codes in the source's log lines. */
export const KubeSourceCode = {
  /** a list or watch failed; the informer starts again after a backoff */
  WATCH: 'WEFT_ERR_K8S_WATCH',
  /** the API of a custom resource is not served (CRD not installed) */
  KIND_MISSING: 'WEFT_ERR_K8S_KIND_MISSING',
  /** an object does not match its schema and is left out */
  REJECTED: 'WEFT_ERR_K8S_REJECTED',
  /** onChange threw or its promise rejected (or the state could not be assembled) */
  ON_CHANGE: 'WEFT_ERR_K8S_ON_CHANGE',
} as const

export interface KubernetesSourceOptions {
  /** a KubeConfig, 'cluster' (in-cluster service account) or 'default' (kubeconfig, then in-cluster); default 'default' */
  kubeConfig?: KubeConfigOption
  /** the full state after a burst of changes; never two calls at once (an async one is awaited) */
  onChange(state: ClusterState): void | Promise<void>
  /** quiet time after the last change before onChange (default 100 ms) */
  debounceMs?: number
  /** the longest a change waits for onChange, however busy the cluster (default 1000 ms) */
  maxDelayMs?: number
  log?: Logger
  /** restarts after errors: initialMs doubling up to maxMs (defaults 1000 and 30000); maxMs also caps ListWatch's own reconnect delay */
  backoff?: { initialMs?: number; maxMs?: number }
  /** items per LIST page (default 500) */
  pageSize?: number
  /** every timer of the source (debounce, backoff, reconnect delay); tests pass a manual one */
  clock?: Timers
}

export interface KindStatus {
  /** listed at least once (or its API is missing) */
  synced: boolean
  /** a custom resource whose API the server does not serve */
  missing: boolean
  resourceVersion: string
  objects: number
  lists: number
  errors: number
  lastError: string | undefined
}

export interface SourceStatus {
  /** every kind synced: onChange has been or is about to be called */
  synced: boolean
  kinds: Record<SourceKind, KindStatus>
  /** add/update/delete notifications received */
  events: number
  /** onChange calls */
  emits: number
}

export interface KubernetesSource {
  status(): SourceStatus
  /** the state last given to onChange */
  current(): ClusterState | undefined
  stop(): Promise<void>
}

interface Runner {
  k: WatchedKind
  informer: ListWatch<KubernetesObject>
  watch: SourceWatch
  synced: boolean
  missing: boolean
  /** consecutive failures, for the backoff */
  failures: number
  lists: number
  errors: number
  lastError: string | undefined
  restart: unknown
}

export function startKubernetesSource(opts: KubernetesSourceOptions): KubernetesSource {
  const kc = loadKubeConfig(opts.kubeConfig)
  const log = opts.log ?? pino({ level: 'silent' })
  log.info(describeKubeConfig(kc), 'watching Kubernetes')
  const clock = opts.clock ?? realTimers
  const initialMs = opts.backoff?.initialMs ?? 1000
  const maxMs = opts.backoff?.maxMs ?? 30000
  const abort = new AbortController()
  let stopped = false
  let events = 0
  let emits = 0
  let last: ClusterState | undefined
  let inFlight = false
  let again = false
  const reported = new WeakSet<Rejected>()

  const coalescer = new Coalescer(emit, { debounceMs: opts.debounceMs ?? 100, maxDelayMs: opts.maxDelayMs ?? 1000, clock })
  const runners: Runner[] = WATCHED_KINDS.map(makeRunner)
  for (const r of runners) start(r)

  function makeRunner(k: WatchedKind): Runner {
    const transform = (obj: unknown): unknown => {
      try {
        const dropped: string[] = []
        const trimmed = trimObject(k, obj as RawObject, dropped)
        if (dropped.length > 0) log.debug({ kind: k.kind, id: idOf(trimmed), dropped }, 'fields Weft does not read were ignored')
        return trimmed
      } catch (err) {
        // the watch swallows exceptions of its callback: never let one cost an event
        log.warn({ kind: k.kind, err: errorText(err) }, 'could not trim an object; kept as received')
        return obj
      }
    }
    const watch = new SourceWatch(kc, transform)
    const list = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      if (stopped) throw new Error('the source is stopped')
      if (r.synced && !r.missing) log.info({ kind: k.kind }, 'listing again (resourceVersion expired or unknown)')
      r.lists++
      const result = await listAll<KubernetesObject>(kc, k.path, { limit: opts.pageSize, signal: abort.signal })
      result.items = result.items.map((o) => transform(o) as KubernetesObject)
      if (r.missing) log.info({ kind: k.kind }, 'the API is served again')
      r.missing = false
      r.failures = 0
      r.synced = true
      // The informer applies the list when this returns (its add/update/delete callbacks follow);
      // a timer fires only after that. A re-list always gives a fresh state, changed or not.
      changed()
      return result
    }
    const delayFn = (ms: number): Promise<void> => sleep(clock, Math.min(ms, maxMs), abort.signal)
    const informer = new ListWatch<KubernetesObject>(k.path, watch, list, false, undefined, undefined, { delayFn })
    const r: Runner = { k, informer, watch, synced: false, missing: false, failures: 0, lists: 0, errors: 0, lastError: undefined, restart: undefined }
    const onEvent = (): void => {
      events++
      r.failures = 0
      changed()
    }
    r.informer.on('add', onEvent)
    r.informer.on('update', onEvent)
    r.informer.on('delete', onEvent)
    r.informer.on('connect', () => log.debug({ kind: k.kind, resourceVersion: r.informer.latestResourceVersion() }, 'watching'))
    r.informer.on('error', (err) => failed(r, err))
    return r
  }

  function start(r: Runner): void {
    r.informer.start().catch((err: unknown) => failed(r, err))
  }

  function failed(r: Runner, err: unknown): void {
    if (stopped) return
    r.errors++
    r.failures++
    r.lastError = describeError(err)
    let delay: number
    if (r.k.custom && err instanceof KubeApiError && err.statusCode === 404) {
      if (!r.missing) log.warn({ code: KubeSourceCode.KIND_MISSING, kind: r.k.kind, path: r.k.path }, `the API server does not serve ${r.k.kind} (${r.k.apiVersion}): is its CRD installed? Taken as none until it is`)
      const first = !r.synced
      r.missing = true
      r.synced = true
      if (first) changed()
      delay = maxMs
    } else {
      delay = Math.min(maxMs, initialMs * 2 ** Math.min(r.failures - 1, 30)) * (1 + Math.random() * 0.2)
      log.warn({ code: KubeSourceCode.WATCH, kind: r.k.kind, err: r.lastError, failures: r.failures, retryInMs: Math.round(delay) }, `${r.k.kind}: list/watch failed; starting again`)
    }
    if (r.restart !== undefined) clock.clearTimeout(r.restart)
    r.restart = clock.setTimeout(() => {
      r.restart = undefined
      if (!stopped) start(r)
    }, delay)
  }

  function changed(): void {
    if (stopped) return
    if (runners.every((r) => r.synced)) coalescer.schedule()
  }

  function emit(): void {
    if (stopped) return
    if (inFlight) {
      again = true
      return
    }
    let state: ClusterState
    try {
      state = assemble()
    } catch (err) {
      // a bug, not a cluster problem: keep the last state and the source running
      log.error({ code: KubeSourceCode.ON_CHANGE, err: errorText(err) }, 'could not assemble the cluster state')
      return
    }
    last = state
    emits++
    inFlight = true
    let result: void | Promise<void>
    try {
      result = opts.onChange(state)
    } catch (err) {
      result = Promise.reject(err)
    }
    Promise.resolve(result)
      .catch((err: unknown) => log.error({ code: KubeSourceCode.ON_CHANGE, err: errorText(err) }, 'onChange failed'))
      .finally(() => {
        inFlight = false
        if (again) {
          again = false
          changed()
        }
      })
  }

  function assemble(): ClusterState {
    const resources = emptyResourceSet()
    const pods: Pod[] = []
    const rejected: Rejected[] = []
    const resourceVersions = {} as Record<SourceKind, string>
    for (const r of runners) {
      resourceVersions[r.k.kind] = r.informer.latestResourceVersion()
      const objects = [...r.informer.list()].map((o) => o as RawObject).sort(byNamespacedName)
      for (const o of objects) {
        const c = checkObject(r.k.kind, o)
        if (!c.ok) {
          rejected.push(c.rejected)
          if (!reported.has(c.rejected)) {
            reported.add(c.rejected)
            log.warn({ code: KubeSourceCode.REJECTED, ...c.rejected }, `${c.rejected.kind} ${c.rejected.id} left out: ${c.rejected.message}`)
          }
        } else if (c.kind === 'Pod') {
          pods.push(c.pod)
        } else {
          switch (c.kind) {
            case 'Service': resources.services.push(c.located as Located<Service>); break
            case 'EndpointSlice': resources.endpointSlices.push(c.located as Located<EndpointSlice>); break
            case 'HTTPRoute': resources.httpRoutes.push(c.located as Located<HTTPRoute>); break
            case 'TrafficPolicy': resources.trafficPolicies.push(c.located as Located<TrafficPolicy>); break
            case 'PeerAuthentication': resources.peerAuthentications.push(c.located as Located<PeerAuthentication>); break
            case 'AuthorizationPolicy': resources.authorizationPolicies.push(c.located as Located<AuthorizationPolicy>); break
          }
        }
      }
    }
    return { resources, pods, rejected, resourceVersions }
  }

  return {
    status(): SourceStatus {
      const kinds = {} as Record<SourceKind, KindStatus>
      for (const r of runners) {
        kinds[r.k.kind] = {
          synced: r.synced,
          missing: r.missing,
          resourceVersion: r.informer.latestResourceVersion(),
          objects: r.informer.list().length,
          lists: r.lists,
          errors: r.errors,
          lastError: r.lastError,
        }
      }
      return { synced: runners.every((r) => r.synced), kinds, events, emits }
    },
    current: () => last,
    async stop(): Promise<void> {
      if (stopped) return
      stopped = true
      coalescer.cancel()
      abort.abort()
      for (const r of runners) {
        if (r.restart !== undefined) clock.clearTimeout(r.restart)
        r.watch.close()
      }
      await Promise.all(runners.map((r) => r.informer.stop()))
    },
  }
}

function idOf(o: unknown): string {
  const meta = (o as RawObject | undefined)?.metadata
  return `${meta?.namespace ?? ''}/${meta?.name ?? ''}`
}

function byNamespacedName(a: RawObject, b: RawObject): number {
  const x = idOf(a)
  const y = idOf(b)
  return x < y ? -1 : x > y ? 1 : 0
}
