// The control-plane benchmark itself (bench/control-plane.ts is its command line; the test
// test/bench-control-plane.test.ts runs it at a tiny size). See bench/README.md.
//
//   1. scratch:  a generated mesh (./generate.ts), trimmed as the Kubernetes source keeps it -> validate (checkResources) -> translate for
//                every namespace with proxies -> version, check and publish one snapshot per
//                namespace into the SnapshotCache, each step timed;
//   2. sync:     the real config server on 127.0.0.1:0, P proxies as real gRPC streams from W
//                forked processes (./worker.ts), until every one ACKed its first snapshot;
//   3. changes:  K times, one endpoint of one EndpointSlice moves and is published through the
//                source's path (validate what changed, translate, setSnapshot); per proxy, the
//                time from the change to its ACK of the new endpoints, taken when the server
//                receives the ACK (one clock: the control plane's).
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { constants as perfConstants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import { Session } from 'node:inspector/promises'
import v8 from 'node:v8'
import pino from 'pino'
import { TYPE } from '../../protos/api.ts'
import { emptyResourceSet, type ResourceSet } from '../../control-plane/resources/load.ts'
import { checkResources } from '../../control-plane/resources/validate.ts'
import { SnapshotCache } from '../../control-plane/snapshot/cache.ts'
import { NamespacePublisher } from '../../control-plane/snapshot/namespace-publisher.ts'
import { OUTBOUND_TABLE, resourcesOf, translate } from '../../control-plane/translate/translate.ts'
import { startConfigServer, type Answer } from '../../control-plane/xds/server.ts'
import { withoutControlPlaneEnv } from '../../control-plane/runtime.ts'
import { trimObject, WATCHED_KINDS, type RawObject } from '../../control-plane/sources/kube-objects.ts'
import { parseStatCpuSeconds, readCpuSeconds } from '../proc.ts'
import { changeOneEndpoint, generateMesh, namespaceName } from './generate.ts'
import type { FromWorker, SyncMode, ToWorker, WorkerProxy, WorkerStats } from './worker.ts'

export interface CpBenchOptions {
  services: number
  endpoints: number
  namespaces: number
  proxies: number
  workers: number
  changes: number
  /** changes made and waited for before the measured ones (not counted: JIT and GC settle after the sync) */
  warmupChanges: number
  /** proxies per worker waiting for their first snapshot at a time */
  concurrency: number
  /** the control plane's push throttle (startConfigServer pushThrottle); undefined: its default */
  pushThrottle?: number
  /** bench proxies also assemble and validate every config (the static bootstrap's checks) */
  validateProxies: boolean
  /** initial sync: every proxy gets the complete snapshot, or one per namespace and process (./worker.ts) */
  sync: SyncMode
  /** longest wait for every proxy's ACK of one change, ms */
  changeTimeoutMs: number
  /** longest wait for the initial sync, ms */
  syncTimeoutMs: number
  /** pause between changes (not measured), ms */
  pauseMs: number
  routeFraction?: number
  policyFraction?: number
  /** progress lines */
  log?: (line: string) => void
}

export const DEFAULTS: CpBenchOptions = {
  services: 10_000,
  endpoints: 100_000,
  namespaces: 50,
  proxies: 1_000,
  workers: 2,
  changes: 10,
  warmupChanges: 2,
  concurrency: 8,
  validateProxies: false,
  sync: 'warm',
  changeTimeoutMs: 60_000,
  syncTimeoutMs: 170_000,
  pauseMs: 200,
}

export interface Percentiles {
  n: number
  p50: number
  p90: number
  p99: number
  max: number
}

export interface MemSample {
  rssMB: number
  heapUsedMB: number
  /** V8's heap as reserved (used + free space of its pages) */
  heapTotalMB: number
  /** memory of Buffers and other objects outside the V8 heap that it knows of */
  externalMB: number
  arrayBuffersMB: number
}

export interface ChangeResult {
  slice: string
  validateMs: number
  translateMs: number
  publishMs: number
  /** change -> the update written to every proxy's stream (validate, translate, publish: the watchers send synchronously) */
  sentMs: number
  /** keys whose snapshot moved */
  keysChanged: number
  rebuilt: { clusters: number; endpoints: number; virtualHosts: number; routeTables: number }
  acked: number
  missing: number
  /** change -> ACK, per proxy, ms */
  ackMs: Percentiles
}

export interface CpBenchResult {
  options: Omit<CpBenchOptions, 'log'>
  mesh: { services: number; endpointSlices: number; endpoints: number; httpRoutes: number; trafficPolicies: number; namespaces: number; clusters: number; clusterEndpoints: number }
  scratch: {
    generateMs: number
    validateMs: number
    validateErrors: number
    /** translate() for one namespace, as a single call */
    translateOneMs: number
    /** the publisher's translation of every proxy namespace */
    translateAllMs: number
    /** version, check and publish every namespace's snapshot into the cache */
    publishMs: number
    totalMs: number
    snapshots: number
    routeTableBytes: number
    mem: MemSample
  }
  sync: { mode: SyncMode; ms: number; cpuS: number; mem: MemSample; maxRssMB: number; workerStates: number }
  /** from the end of the sync to the first change: RSS max, heap compactions so far (control-plane/xds/compact.ts) and the last one's pause */
  afterSync: { maxRssMB: number; compactions: number; compactionPauseMs: number }
  changes: ChangeResult[]
  /** the warm-up changes (not in ackMs) */
  warmups: ChangeResult[]
  /** every proxy's change -> ACK over all changes, ms */
  ackMs: Percentiles
  /** change -> written to every stream, over the changes */
  sentMs: Percentiles
  changePhase: {
    ms: number
    cpuS: number
    cpuPerChangeMs: number
    /** of cpuPerChangeMs, in the kernel (page faults, mmap/munmap, madvise, socket writes) */
    sysCpuPerChangeMs: number
    /** the control plane's minor page faults a change (fresh pages touched: mmap'ed buffers, a trimmed heap regrown) */
    faultsPerChange: number
    /** CPU ms a change by thread name (exited threads' time is lost) */
    threadCpuPerChangeMs: Record<string, number>
    /** V8 collections over the measured changes (main-thread pauses; marking also runs on helper threads) */
    gc: GcCount
    maxRssMB: number
    mem: MemSample
    workerCpuS: number
  }
  proxies: { acks: number; nacks: number; streamErrors: string[]; nackErrors: string[]; decodeMs: number }
  /** every proxy ACKed every change */
  complete: boolean
}

export function percentiles(values: readonly number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b)
  const at = (q: number) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)])
  return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s.length === 0 ? NaN : s[s.length - 1] }
}

function mem(): MemSample {
  const m = process.memoryUsage()
  const mb = (n: number) => n / 1048576
  return { rssMB: mb(m.rss), heapUsedMB: mb(m.heapUsed), heapTotalMB: mb(m.heapTotal), externalMB: mb(m.external), arrayBuffersMB: mb(m.arrayBuffers) }
}

export function formatMem(m: MemSample): string {
  const f = (n: number) => n.toFixed(0)
  return `RSS ${f(m.rssMB)} MB (heap ${f(m.heapUsedMB)} used of ${f(m.heapTotalMB)} MB, external ${f(m.externalMB)} MB, array buffers ${f(m.arrayBuffersMB)} MB)`
}

/**
 * The objects as the Kubernetes source keeps them: trimmed when they arrive, before the informer
 * caches them (sources/kube-objects.ts trimObject; e.g. an EndpointSlice's endpoints cut down to
 * addresses and readiness). In place, as the source does.
 */
function asSourceKeepsThem(objs: readonly { kind: string; obj: unknown }[]): void {
  for (const o of objs) {
    const k = WATCHED_KINDS.find((w) => w.kind === o.kind)
    if (k !== undefined) trimObject(k, o.obj as RawObject)
  }
}

export interface GcCount {
  scavenges: number
  /** mark-compacts (full collections of the old generation) */
  markCompacts: number
  /** main-thread pause, ms */
  pauseMs: number
}

/** CPU seconds of this process's threads so far, by thread name (node-MainThread, node-V8Worker: V8's GC and compiler helpers, libuv-worker, ...). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>()
  let tasks: string[] = []
  try {
    tasks = fs.readdirSync('/proc/self/task')
  } catch {
    return out // not Linux
  }
  for (const t of tasks) {
    try {
      const name = fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim()
      out.set(name, (out.get(name) ?? 0) + parseStatCpuSeconds(fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8')))
    } catch {
      // the thread ended
    }
  }
  return out
}

function threadCpuSince(before: Map<string, number>, changes: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, s] of threadCpu()) {
    const ms = ((s - (before.get(name) ?? 0)) * 1000) / Math.max(1, changes)
    if (ms >= 1) out[name] = Math.round(ms)
  }
  return out
}

/**
 * The highest RSS since start(): the kernel's peak (VmHWM, reset by writing 5 to clear_refs), which
 * costs nothing while the bench runs. Where that cannot be done, RSS sampled every 20 ms (which
 * misses short peaks and costs the process ~1 % of a core: process.memoryUsage.rss() reads /proc).
 */
function peakRss(): { read(): number } {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5')
    const hwm = () => Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1]) * 1024
    return { read: hwm }
  } catch {
    let max = process.memoryUsage.rss()
    const sampler = setInterval(() => {
      max = Math.max(max, process.memoryUsage.rss())
    }, 20)
    sampler.unref()
    return {
      read() {
        clearInterval(sampler)
        return Math.max(max, process.memoryUsage.rss())
      },
    }
  }
}

/** WEFT_BENCH_MEM_TRACE=1: where the memory is during the sync, sampled every 50 ms (diagnostic; costs CPU). */
function memTrace(server: { budget?: { inUse: number; queued: number }; registry: { connected: number } }, log: (l: string) => void): { stop(): void } {
  const t0 = performance.now()
  const rows: string[] = []
  let max = 0
  let maxRow = ''
  const mb = (n: number) => (n / 1048576).toFixed(0)
  const sample = () => {
    const m = process.memoryUsage()
    const st = fs.readFileSync('/proc/self/status', 'utf8')
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(st)?.[1] ?? 0) * 1024
    const sp = Object.fromEntries(v8.getHeapSpaceStatistics().map((x) => [x.space_name, x.space_size]))
    const rss = kb('VmRSS')
    const row = `t=${((performance.now() - t0) / 1000).toFixed(2)}s rss=${mb(rss)} anon=${mb(kb('RssAnon'))} heapTotal=${mb(m.heapTotal)} used=${mb(m.heapUsed)} new=${mb(sp.new_space ?? 0)} old=${mb(sp.old_space ?? 0)} lo=${mb(sp.large_object_space ?? 0)} code=${mb(sp.code_space ?? 0)} ext=${mb(m.external)} ab=${mb(m.arrayBuffers)} budget=${mb(server.budget?.inUse ?? 0)}/${server.budget?.queued ?? 0}q conn=${server.registry.connected}`
    rows.push(row)
    if (rss > max) {
      max = rss
      maxRow = row
    }
  }
  const timer = setInterval(sample, 50)
  return {
    stop() {
      clearInterval(timer)
      sample()
      for (let i = 0; i < rows.length; i += Math.max(1, Math.floor(rows.length / 60))) log(`  mem ${rows[i]}`)
      log(`  mem at max RSS: ${maxRow}`)
    },
  }
}

/** Counts V8's collections from now until stop() (perf_hooks 'gc' entries). */
function countGc(): { stop(): GcCount } {
  const c: GcCount = { scavenges: 0, markCompacts: 0, pauseMs: 0 }
  const count = (e: PerformanceEntry) => {
    const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
    if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) c.markCompacts++
    else if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR || kind === perfConstants.NODE_PERFORMANCE_GC_MINOR_MARK_SWEEP) c.scavenges++
    c.pauseMs += e.duration
  }
  const obs = new PerformanceObserver((list) => list.getEntries().forEach(count))
  obs.observe({ entryTypes: ['gc'] })
  return {
    stop() {
      obs.takeRecords().forEach(count)
      obs.disconnect()
      return c
    },
  }
}

function gc(): void {
  ;(globalThis as { gc?: () => void }).gc?.()
}

function cpuSeconds(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** System CPU seconds and minor page faults of this process so far. */
function kernelSide(): { sysS: number; faults: number } {
  const r = process.resourceUsage()
  return { sysS: r.systemCPUTime / 1e6, faults: r.minorPageFault }
}

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))

interface RunningWorker {
  child: ChildProcess
  proxies: WorkerProxy[]
  ready: Promise<void>
  stats(): Promise<WorkerStats>
}

function startWorker(address: string, proxies: WorkerProxy[], o: CpBenchOptions, onProgress: () => void): RunningWorker {
  // WEFT_BENCH_CPU_PROF=DIR: the proxy processes write CPU profiles there (node --cpu-prof)
  const prof = process.env.WEFT_BENCH_CPU_PROF
  // the proxies are not a control plane: without its glibc and V8 settings (control-plane/runtime.ts)
  const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: withoutControlPlaneEnv(process.env), execArgv: prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [] })
  let statsWaiter: ((s: WorkerStats) => void) | null = null
  let failed: ((e: Error) => void) | null = null
  const ready = new Promise<void>((resolve, reject) => {
    failed = reject
    child.on('message', (m: FromWorker) => {
      if (m.type === 'ready') resolve()
      else if (m.type === 'progress') onProgress()
      else if (m.type === 'stats') statsWaiter?.(m.stats)
      else if (m.type === 'error') reject(new Error(`bench worker: ${m.message}`))
    })
    child.on('exit', (code) => reject(new Error(`bench worker exited (${code}) before every proxy synced`)))
  })
  ready.catch(() => {})
  child.send({ type: 'start', address, proxies, concurrency: o.concurrency, validate: o.validateProxies, sync: o.sync } satisfies ToWorker)
  return {
    child,
    proxies,
    ready,
    stats: () =>
      new Promise<WorkerStats>((resolve, reject) => {
        statsWaiter = resolve
        child.send({ type: 'stats' } satisfies ToWorker)
        setTimeout(() => reject(new Error('bench worker: no stats')), 10_000).unref()
        void failed
      }),
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms)
    }),
  ])
}

export async function runCpBench(opts: Partial<CpBenchOptions> = {}): Promise<CpBenchResult> {
  const o: CpBenchOptions = { ...DEFAULTS, ...opts }
  const log = o.log ?? (() => {})
  const namespaces = Array.from({ length: Math.min(o.namespaces, Math.max(1, o.proxies)) }, (_, k) => namespaceName(k))

  // ---- 1. from scratch --------------------------------------------------------------------
  let t = performance.now()
  let set = generateMesh({ services: o.services, endpoints: o.endpoints, namespaces: o.namespaces, routeFraction: o.routeFraction, policyFraction: o.policyFraction })
  for (const list of [set.services, set.endpointSlices, set.httpRoutes, set.trafficPolicies, set.peerAuthentications, set.authorizationPolicies]) asSourceKeepsThem(list)
  const generateMs = performance.now() - t
  gc()
  log(`mesh: ${set.services.length} Services, ${set.endpointSlices.length} EndpointSlices, ${set.httpRoutes.length} HTTPRoutes, ${set.trafficPolicies.length} TrafficPolicies (${generateMs.toFixed(0)} ms)`)
  const scratchStart = performance.now()
  t = performance.now()
  const errors = checkResources(set)
  const validateMs = performance.now() - t
  if (errors.length > 0) throw new Error(`the generated mesh is invalid: ${errors.length} errors, first: ${errors[0].path}: ${errors[0].message}`)
  log(`validate: ${validateMs.toFixed(0)} ms`)
  const cache = new SnapshotCache()
  const publisher = new NamespacePublisher({ cache, log: pino({ level: 'silent' }), outboundPort: 15001 })
  publisher.setResources(resourcesOf(set)) // no namespace yet: nothing is translated
  const scratch = publisher.addNamespaces(namespaces)
  if (scratch.refused.size > 0) throw new Error(`snapshots refused: ${[...scratch.refused.values()][0][0]?.message}`)
  const totalMs = performance.now() - scratchStart
  log(`translate (${namespaces.length} namespaces): ${scratch.translateMs.toFixed(0)} ms; version + check + publish: ${scratch.publishMs.toFixed(0)} ms`)
  gc()
  const scratchMem = mem()
  log(`after scratch: ${formatMem(scratchMem)}`)
  // translate() alone for one namespace, for reference (not part of the publish path)
  t = performance.now()
  translate(resourcesOf(set), { namespace: namespaces[0] })
  const translateOneMs = performance.now() - t
  const snap0 = cache.getSnapshot(NamespacePublisher.key({ namespace: namespaces[0] }))!
  const clusterCount = snap0.types[TYPE.cluster].resources.size
  let clusterEndpoints = 0
  for (const r of snap0.types[TYPE.endpoints].resources.values()) clusterEndpoints += (r.body as unknown[]).length
  const routeTableBytes = JSON.stringify(snap0.types[TYPE.routeTable].resources.get(OUTBOUND_TABLE)!.body).length
  log(`translate() of one namespace: ${translateOneMs.toFixed(0)} ms`)

  // ---- 2. the server and the proxies ---------------------------------------------------------
  let onAnswer: (a: Answer) => void = () => {}
  const server = await startConfigServer({
    cache,
    address: '127.0.0.1:0',
    log: pino({ level: 'silent' }),
    nodeKey: NamespacePublisher.key,
    onStreamOpen: (key, node) => publisher.onStreamOpen(key, node),
    onAnswer: (a) => onAnswer(a),
    pushThrottle: o.pushThrottle,
  })
  const workers: RunningWorker[] = []
  try {
    const proxyList: WorkerProxy[][] = Array.from({ length: Math.max(1, o.workers) }, () => [])
    const byKey = new Map<string, string[]>()
    for (let p = 0; p < o.proxies; p++) {
      const k = p % namespaces.length
      const ns = namespaces[k]
      const id = `bench-${p}.${ns}`
      // a namespace's proxies in one process: it holds one decoded state per namespace
      proxyList[k % proxyList.length].push({ id, namespace: ns })
      const key = NamespacePublisher.key({ namespace: ns })
      byKey.set(key, [...(byKey.get(key) ?? []), id])
    }
    const syncCpu0 = cpuSeconds()
    const trace = process.env.WEFT_BENCH_MEM_TRACE ? memTrace(server, log) : null
    const syncPeak = peakRss()
    const syncStart = performance.now()
    let synced = 0
    for (const list of proxyList) {
      if (list.length === 0) continue
      workers.push(startWorker(server.address, list, o, () => {
        synced += 50
        if (synced % 200 === 0) log(`  synced ~${synced}/${o.proxies}`)
      }))
    }
    await withTimeout(Promise.all(workers.map((w) => w.ready)), o.syncTimeoutMs, 'initial sync')
    // every hello processed (warm proxies are sent nothing, so their ACKs cannot tell)
    await withTimeout((async () => {
      while (server.registry.connected < o.proxies) await new Promise((r) => setTimeout(r, 20))
    })(), o.syncTimeoutMs, 'every proxy connected')
    const syncMs = performance.now() - syncStart
    const syncMaxRss = syncPeak.read()
    const gapPeak = peakRss() // from the end of the sync to the first change (the compaction after the sync runs there)
    trace?.stop()
    const syncCpu = cpuSeconds() - syncCpu0
    gc()
    const syncMem = mem()
    log(`after sync: ${formatMem(syncMem)}, RSS max during sync ${(syncMaxRss / 1048576).toFixed(0)} MB`)
    // WEFT_BENCH_HEAP_SNAPSHOT=DIR: a heap snapshot of the control plane after the sync
    const snapDir = process.env.WEFT_BENCH_HEAP_SNAPSHOT
    if (snapDir) log(`heap snapshot: ${v8.writeHeapSnapshot(path.join(snapDir, `cp-sync-${process.pid}.heapsnapshot`))}`)
    let workerStates = 0
    for (const w of workers) workerStates += (await w.stats()).states
    log(`sync (${o.sync}): ${o.proxies} proxies connected and in sync in ${(syncMs / 1000).toFixed(1)} s (control plane CPU ${syncCpu.toFixed(1)} s)`)

    // ---- 3. changes ------------------------------------------------------------------------------
    const changes: ChangeResult[] = []
    const warmups: ChangeResult[] = []
    const all: number[] = []
    let workerCpu0 = workers.reduce((s, w) => s + readCpuSeconds(w.child.pid!), 0)
    let phaseCpu0 = cpuSeconds()
    let kernel0 = kernelSide()
    let threads0 = threadCpu()
    let phaseStart = performance.now()
    const gapMaxRss = gapPeak.read()
    const compaction = server.compactor?.last ?? null
    log(`RSS max between the sync and the changes ${(gapMaxRss / 1048576).toFixed(0)} MB; ${compaction === null ? 'no heap compaction yet' : `heap compacted (${server.compactor!.count} so far, last after ${compaction.streams} streams and ${(compaction.burstBytes / 1048576).toFixed(0)} MB of complete snapshots): pause ${compaction.pauseMs.toFixed(0)} ms (CPU ${compaction.cpuMs.toFixed(0)} ms), heap used ${(compaction.heapUsedBefore / 1048576).toFixed(0)} -> ${(compaction.heapUsedAfter / 1048576).toFixed(0)} MB, heap total ${(compaction.heapTotalBefore / 1048576).toFixed(0)} -> ${(compaction.heapTotalAfter / 1048576).toFixed(0)} MB, RSS ${(compaction.rssBefore / 1048576).toFixed(0)} -> ${(compaction.rssAfter / 1048576).toFixed(0)} MB`}`)
    let peak = peakRss()
    let maxRss = 0
    // WEFT_BENCH_CP_PROF=DIR: a CPU profile of the control plane over the measured changes
    const cpProfDir = process.env.WEFT_BENCH_CP_PROF
    const profiler = cpProfDir ? new Session() : null
    let gcCounter: { stop(): GcCount } | null = null
    try {
      for (let k = 1 - o.warmupChanges; k <= o.changes; k++) {
        const warmup = k <= 0
        const next = changeOneEndpoint(set, k + o.warmupChanges)
        asSourceKeepsThem(next.set.endpointSlices.filter((s) => s.id === next.slice)) // as it arrives from the API server
        const times: number[] = []
        let waiting = 0
        let done: () => void = () => {}
        const finished = new Promise<void>((resolve) => (done = resolve))
        // who must ACK which endpoints version, filled in right after the publish (the answers
        // cannot arrive before: they are processed on this thread after this function returns)
        const expect = new Map<string, string>() // node id -> version
        const t0 = performance.now()
        onAnswer = (a) => {
          if (a.type !== TYPE.endpoints) return
          const want = expect.get(a.node.id)
          if (want === undefined || a.version !== want || a.nack) return
          expect.delete(a.node.id)
          times.push(performance.now() - t0)
          if (--waiting === 0) done()
        }
        // the source's path: validate what changed, then publish the new state
        const tv = performance.now()
        const changedSet: ResourceSet = { ...emptyResourceSet(), endpointSlices: [next.set.endpointSlices.find((s) => s.id === next.slice)!] }
        const verrors = checkResources(changedSet)
        const vMs = performance.now() - tv
        if (verrors.length > 0) throw new Error(`change ${k}: invalid: ${verrors[0].message}`)
        const report = publisher.setResources(resourcesOf(next.set))
        const sentMs = performance.now() - t0
        for (const [key] of report.changed) {
          const version = cache.getSnapshot(key)!.types[TYPE.endpoints].version
          for (const id of byKey.get(key) ?? []) expect.set(id, version)
        }
        waiting = expect.size
        if (waiting === 0) throw new Error(`change ${k} (${next.slice}) moved no proxy's endpoints`)
        const timedOut = await Promise.race([finished.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), o.changeTimeoutMs).unref())])
        const result: ChangeResult = {
          slice: next.slice,
          validateMs: vMs,
          translateMs: report.translateMs,
          publishMs: report.publishMs,
          sentMs,
          keysChanged: report.changed.size,
          rebuilt: report.rebuilt,
          acked: times.length,
          missing: expect.size,
          ackMs: percentiles(times),
        }
        if (warmup) {
          warmups.push(result)
          log(`warm-up change: ${result.acked}/${result.acked + result.missing} ACKed, p99 ${result.ackMs.p99.toFixed(0)} ms (not counted)`)
          set = next.set
          onAnswer = () => {}
          await new Promise((r) => setTimeout(r, o.pauseMs))
          if (k === 0) {
            phaseCpu0 = cpuSeconds()
            kernel0 = kernelSide()
            threads0 = threadCpu()
            gcCounter = countGc()
            phaseStart = performance.now()
            workerCpu0 = workers.reduce((s, w) => s + readCpuSeconds(w.child.pid!), 0)
            peak = peakRss()
            if (profiler !== null) {
              profiler.connect()
              await profiler.post('Profiler.enable')
              await profiler.post('Profiler.start')
            }
          }
          continue
        }
        changes.push(result)
        all.push(...times)
        log(`change ${k}: ${result.acked}/${result.acked + result.missing} ACKed, p50 ${result.ackMs.p50.toFixed(0)} ms, p99 ${result.ackMs.p99.toFixed(0)} ms, max ${result.ackMs.max.toFixed(0)} ms (sent to all after ${sentMs.toFixed(0)} ms: translate ${report.translateMs.toFixed(1)} ms, snapshots ${report.publishMs.toFixed(1)} ms)${timedOut ? ' TIMED OUT' : ''}`)
        set = next.set
        onAnswer = () => {}
        if (k < o.changes) await new Promise((r) => setTimeout(r, o.pauseMs))
      }
    } finally {
      maxRss = peak.read()
    }
    if (profiler !== null) {
      const { profile } = await profiler.post('Profiler.stop')
      const file = path.join(cpProfDir!, `cp-changes-${process.pid}.cpuprofile`)
      fs.writeFileSync(file, JSON.stringify(profile))
      profiler.disconnect()
      log(`CPU profile of the changes: ${file}`)
    }
    const phaseMs = performance.now() - phaseStart
    const phaseCpu = cpuSeconds() - phaseCpu0
    const kernel1 = kernelSide()
    const threadMs = threadCpuSince(threads0, o.changes)
    const gcs = gcCounter?.stop() ?? { scavenges: NaN, markCompacts: NaN, pauseMs: NaN }
    const workerCpu = workers.reduce((s, w) => s + readCpuSeconds(w.child.pid!), 0) - workerCpu0
    const phaseMem = mem()
    log(`after the changes: ${formatMem(phaseMem)}`)

    const stats = await Promise.all(workers.map((w) => w.stats()))
    const proxies = {
      acks: stats.reduce((s, x) => s + x.acks, 0),
      nacks: stats.reduce((s, x) => s + x.nacks, 0),
      streamErrors: stats.flatMap((x) => x.streamErrors),
      nackErrors: stats.flatMap((x) => x.nackErrors),
      decodeMs: stats.reduce((s, x) => s + x.decodeMs, 0),
    }
    const endpointsTotal = set.endpointSlices.reduce((s, x) => s + x.obj.endpoints.reduce((n, e) => n + e.addresses.length, 0), 0)
    const { log: _log, ...options } = o
    return {
      options,
      mesh: {
        services: set.services.length,
        endpointSlices: set.endpointSlices.length,
        endpoints: endpointsTotal,
        httpRoutes: set.httpRoutes.length,
        trafficPolicies: set.trafficPolicies.length,
        namespaces: namespaces.length,
        clusters: clusterCount,
        clusterEndpoints,
      },
      scratch: {
        generateMs,
        validateMs,
        validateErrors: errors.length,
        translateOneMs,
        translateAllMs: scratch.translateMs,
        publishMs: scratch.publishMs,
        totalMs,
        snapshots: cache.nodes().length,
        routeTableBytes,
        mem: scratchMem,
      },
      sync: { mode: o.sync, ms: syncMs, cpuS: syncCpu, mem: syncMem, maxRssMB: syncMaxRss / 1048576, workerStates },
      afterSync: { maxRssMB: gapMaxRss / 1048576, compactions: server.compactor?.count ?? 0, compactionPauseMs: server.compactor?.last?.pauseMs ?? NaN },
      changes,
      warmups,
      ackMs: percentiles(all),
      sentMs: percentiles(changes.map((c) => c.sentMs)),
      changePhase: { ms: phaseMs, cpuS: phaseCpu, cpuPerChangeMs: (phaseCpu * 1000) / Math.max(1, o.changes),
        sysCpuPerChangeMs: ((kernel1.sysS - kernel0.sysS) * 1000) / Math.max(1, o.changes),
        faultsPerChange: (kernel1.faults - kernel0.faults) / Math.max(1, o.changes),
        gc: gcs,
        threadCpuPerChangeMs: threadMs,
        maxRssMB: maxRss / 1048576, mem: phaseMem, workerCpuS: workerCpu },
      proxies,
      complete: [...warmups, ...changes].every((c) => c.missing === 0 && c.acked === o.proxies) && proxies.nacks === 0,
    }
  } finally {
    for (const w of workers) {
      try {
        w.child.send({ type: 'stop' } satisfies ToWorker)
      } catch {
        // already gone
      }
    }
    await Promise.all(
      workers.map((w) =>
        new Promise<void>((resolve) => {
          if (w.child.exitCode !== null) return resolve()
          const timer = setTimeout(() => {
            w.child.kill('SIGKILL')
            resolve()
          }, 3000)
          w.child.once('exit', () => {
            clearTimeout(timer)
            resolve()
          })
        }),
      ),
    )
    await server.stop()
  }
}
