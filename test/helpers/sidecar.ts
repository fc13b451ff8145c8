// Test helpers: build a bootstrap config from a JS object, write it as YAML to a temp dir and
// start an in-process sidecar on port 0 (listener and admin), or a child-process one.
import { Pool } from 'undici'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { stringify } from 'yaml'
import type { Bootstrap, Cluster, Limits, Route, VirtualHost } from '../../api/schema.ts'
import { startSidecar, type Sidecar } from '../../proxy/main.ts'

export const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))))
export const WEFT_BIN = join(ROOT, 'bin', 'weft.js')

/** The part of tap's Test object the helpers use (teardown registration). */
export interface Teardown {
  teardown(fn: () => unknown): void
}

export const LISTENER = 'out'

export interface ConfigOptions {
  /** routes of the single catch-all virtual host (domains ["*"]) */
  routes?: Route[]
  /** full virtual host list (overrides routes) */
  virtualHosts?: VirtualHost[]
  clusters?: Cluster[]
  limits?: Limits
  drainTimeout?: string
  /** drain period (the proxy's default is 5 s) */
  drainPeriod?: string
  /** listener port (default 0) */
  port?: number
  /** admin port (default 0) */
  adminPort?: number
}

/** A cluster named `name` over 127.0.0.1 endpoints at the given ports. */
export function cluster(name: string, ports: number[], extra: Partial<Omit<Cluster, 'name' | 'endpoints'>> = {}): Cluster {
  return { name, ...extra, endpoints: ports.map((port) => ({ address: '127.0.0.1', port })) }
}

/** A route sending everything (or what `match` says) to one cluster. */
export function routeTo(clusterName: string, extra: Partial<Route> = {}): Route {
  return { backends: [{ cluster: clusterName }], ...extra }
}

/** Bootstrap with one outbound listener "out" (route table "rt") and an admin on 127.0.0.1. */
export function makeConfig(o: ConfigOptions): Bootstrap {
  const b: Bootstrap = {
    admin: { address: '127.0.0.1', port: o.adminPort ?? 0 },
    listeners: [{ name: LISTENER, direction: 'outbound', address: '127.0.0.1', port: o.port ?? 0, routeTable: 'rt' }],
    routeTables: [
      {
        name: 'rt',
        virtualHosts: o.virtualHosts ?? [{ name: 'all', domains: ['*'], routes: o.routes ?? [] }],
      },
    ],
    clusters: o.clusters ?? [],
  }
  if (o.limits !== undefined) b.limits = o.limits
  if (o.drainTimeout !== undefined) b.drainTimeout = o.drainTimeout
  if (o.drainPeriod !== undefined) b.drainPeriod = o.drainPeriod
  return b
}

/** A fresh temp dir, removed at teardown. */
export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Write `config` (object or raw YAML text) to dir/name; returns the path. */
export function writeConfig(dir: string, config: Bootstrap | string, name = 'bootstrap.yaml'): string {
  const file = join(dir, name)
  writeFileSync(file, typeof config === 'string' ? config : stringify(config))
  return file
}

export interface TestSidecar {
  sidecar: Sidecar
  /** port of the "out" listener */
  port: number
  adminPort: number
  file: string
  dir: string
  /** GET a JSON admin endpoint */
  adminJson<T = any>(path: string): Promise<T>
  /** GET an admin endpoint: status and text */
  admin(path: string): Promise<{ status: number; body: string }>
}

export interface StartOptions {
  watch?: boolean
  watchDebounceMs?: number
}

/** Start an in-process sidecar for `config`, closed at teardown. */
export async function startTestSidecar(t: Teardown, config: Bootstrap | string, opts: StartOptions = {}): Promise<TestSidecar> {
  const dir = tempDir(t)
  const file = writeConfig(dir, config)
  const sidecar = await startSidecar({
    configFile: file,
    log: pino({ level: 'silent' }),
    watch: opts.watch ?? false,
    watchDebounceMs: opts.watchDebounceMs ?? 30,
  })
  let closed = false
  t.teardown(async () => {
    if (closed) return
    closed = true
    await sidecar.close()
  })
  const adminPort = sidecar.adminPort
  const admin = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${adminPort}${path}`)
    return { status: res.status, body: await res.text() }
  }
  return {
    sidecar,
    port: sidecar.port(LISTENER),
    adminPort,
    file,
    dir,
    admin,
    async adminJson(path: string) {
      const r = await admin(path)
      return JSON.parse(r.body)
    },
  }
}

// ---- admin views -------------------------------------------------------------------------------

export interface EndpointView {
  address: string
  health: string
  activeRequests: number
  requests: number
  requestErrors: number
  responses5xx: number
  connections: { open: number; idle: number; pendingRequests: number; total: number; connectFailures: number; connectTimeouts: number; overflows: number }
}

/** The /clusters view of one endpoint of one cluster. */
export async function endpointView(s: TestSidecar, clusterName: string, index = 0): Promise<EndpointView> {
  const v = await s.adminJson('/clusters')
  const c = v.clusters.find((x: { name: string }) => x.name === clusterName)
  if (c === undefined) throw new Error(`no cluster ${clusterName} in /clusters`)
  return c.endpoints[index]
}

/** The /stats counters of the "out" listener. */
export async function listenerStats(s: TestSidecar): Promise<Record<string, number>> {
  const v = await s.adminJson('/stats')
  return v.listeners.find((l: { name: string }) => l.name === LISTENER)
}

// ---- polling -----------------------------------------------------------------------------------

/** GET `path` through the proxy with a Host header (fetch cannot set Host); the status. */
export async function getStatus(port: number, host: string, path = '/x'): Promise<number> {
  const p = new Pool(`http://127.0.0.1:${port}`)
  try {
    const r = await p.request({ path, method: 'GET', headers: { host } })
    await r.body.text()
    return r.statusCode
  } finally {
    await p.close()
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Poll `fn` until it returns a truthy value or the deadline passes (then throws `what`). */
export async function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 3000, everyMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await sleep(everyMs)
  }
}

// ---- child process ------------------------------------------------------------------------------

/** A port that was free a moment ago (for child processes, whose bound ports we cannot read). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => resolve(port))
    })
  })
}

export interface ChildSidecar {
  child: ChildProcess
  pid: number
  stdout(): string
  stderr(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** `node bin/weft.js proxy --config FILE [args]` with WEFT_LOG_LEVEL=warn; killed at teardown if still running. */
export function spawnWeft(t: Teardown, configFile: string, env: Record<string, string> = {}, args: string[] = []): ChildSidecar {
  const child = spawn(process.execPath, [WEFT_BIN, 'proxy', '--config', configFile, ...args], {
    cwd: ROOT,
    env: { ...process.env, WEFT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, pid: child.pid!, stdout: () => out, stderr: () => err, exited }
}

/**
 * `node bin/weft.js ARGS` as a user runs it: from the build (the test environment's
 * WEFT_NO_BUNDLE, WEFT_FROM_SOURCE and WEFT_COMPILE_CACHE are dropped), WEFT_LOG_LEVEL=warn unless
 * env says otherwise, stderr kept, SIGKILLed at teardown. ready() waits for the admin's /ready 200
 * and answers false when the process exits first or timeoutMs passes.
 */
export function spawnBuilt(t: Teardown, args: string[], admin: number, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; stderr(): string; ready(timeoutMs?: number): Promise<boolean> } {
  const base: NodeJS.ProcessEnv = { ...process.env }
  for (const k of ['WEFT_NO_BUNDLE', 'WEFT_FROM_SOURCE', 'WEFT_COMPILE_CACHE']) delete base[k]
  const child = spawn(process.execPath, [WEFT_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...base, WEFT_LOG_LEVEL: 'warn', ...env } })
  let stderr = ''
  child.stderr!.on('data', (b: Buffer) => (stderr += b))
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  t.teardown(async () => {
    child.kill('SIGKILL')
    await exited
  })
  const ready = async (timeoutMs = 15_000): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs
    while (!(await fetch(`http://127.0.0.1:${admin}/ready`).then((r) => r.status === 200, () => false))) {
      if (Date.now() > deadline || child.exitCode !== null) return false
      await sleep(20)
    }
    return true
  }
  return { child, stderr: () => stderr, ready }
}

/** The child's exit, or null if it is still running after timeoutMs (the timer does not hold the test open). */
export function waitExit(c: ChildSidecar, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    c.exited,
    new Promise<null>((r) => {
      timer = setTimeout(() => r(null), timeoutMs)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** VmRSS of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

/** Wait until the child's admin /ready answers 200. */
export async function waitReady(adminPort: number, timeoutMs = 10_000): Promise<void> {
  await until(
    `admin :${adminPort}/ready`,
    async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${adminPort}/ready`)
        await r.text()
        return r.status === 200
      } catch {
        return false
      }
    },
    timeoutMs,
    25,
  )
}
