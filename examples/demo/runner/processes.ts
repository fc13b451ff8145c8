// The demo's child processes: each one started with `process.execPath` in its own process group
// (a Ctrl-C in the terminal reaches only the runner, which stops the children in order), its
// output appended to <logs>/<name>.log, the last lines kept in memory for a crash report. Each
// child's stdin is a pipe from the runner, watched by orphan-guard.ts (preloaded): should the
// runner die without stopping them (SIGKILL), the children see EOF and stop themselves.
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ORPHAN_GUARD = fileURLToPath(new URL('./orphan-guard.ts', import.meta.url))

const TAIL_LINES = 30

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface Child {
  readonly name: string
  readonly pid: number
  readonly exited: Promise<Exit>
  /** set once it exited */
  exit: Exit | null
  /** its last lines of output, stdout and stderr as they came (JSON log lines made readable) */
  tail(): string[]
}

export interface SupervisorOptions {
  logDir: string
  /** a child exited while it was not being stopped */
  onUnexpectedExit: (c: Child, e: Exit) => void
  /** every line a child writes to stdout (e.g. the control plane's JSON logs) */
  onLine?: (c: Child, line: string) => void
}

/** Splits a stream into lines; every line also goes to the shared `recent` ring. */
class Lines {
  private partial = ''
  private readonly recent: string[]
  constructor(recent: string[]) {
    this.recent = recent
  }
  push(chunk: string, each: (line: string) => void): void {
    const parts = (this.partial + chunk).split('\n')
    this.partial = parts.pop() ?? ''
    for (const l of parts) {
      this.recent.push(l)
      if (this.recent.length > TAIL_LINES) this.recent.shift()
      each(l)
    }
  }
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }

/** A pino JSON line as "LEVEL message"; other lines as they are. */
function readable(line: string): string {
  if (!line.startsWith('{')) return line
  try {
    const r = JSON.parse(line) as { level?: number; msg?: string }
    return r.msg === undefined ? line : `${LEVELS[r.level ?? 30] ?? r.level} ${r.msg}`
  } catch {
    return line
  }
}

export class Supervisor {
  private readonly children = new Map<string, { child: Child; proc: ChildProcess; stopping: boolean }>()
  private readonly o: SupervisorOptions

  constructor(o: SupervisorOptions) {
    this.o = o
  }

  start(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
    const log: WriteStream = createWriteStream(join(this.o.logDir, `${name}.log`), { flags: 'a' })
    // Node's compile cache (kept across runs) takes ~30 % off each weft process's start, most of
    // it type stripping and compiling the same modules eleven times.
    const cache = process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'weft-node-compile-cache')
    const proc = spawn(process.execPath, ['--import', ORPHAN_GUARD, ...args], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_COMPILE_CACHE: cache, ...env } })
    if (proc.pid === undefined) throw new Error(`${name}: could not start ${process.execPath}`)
    const recent: string[] = []
    const out = new Lines(recent)
    const err = new Lines(recent)
    let resolveExit!: (e: Exit) => void
    const child: Child = {
      name,
      pid: proc.pid,
      exited: new Promise<Exit>((r) => (resolveExit = r)),
      exit: null,
      tail: () => recent.map(readable),
    }
    const entry = { child, proc, stopping: false }
    this.children.set(name, entry)
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      log.write(d)
      out.push(d, (l) => this.o.onLine?.(child, l))
    })
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      log.write(d)
      err.push(d, () => {})
    })
    // 'close': the process exited and its output has been read to the end.
    proc.on('close', (code, signal) => {
      const e = { code, signal }
      child.exit = e
      log.end()
      resolveExit(e)
      if (!entry.stopping) this.o.onUnexpectedExit(child, e)
    })
    return child
  }

  get(name: string): Child | undefined {
    return this.children.get(name)?.child
  }

  list(): Child[] {
    return [...this.children.values()].map((e) => e.child)
  }

  /**
   * SIGTERM to each named child's process group, then wait for them; after timeoutMs, SIGKILL.
   * Resolves with one problem per child that did not stop: exit code not 0, or killed.
   */
  async stop(names: readonly string[], timeoutMs: number): Promise<string[]> {
    // the ones that already exited were reported by onUnexpectedExit
    const entries = names.map((n) => this.children.get(n)).filter((e) => e !== undefined).filter((e) => !(e.child.exit !== null && !e.stopping))
    for (const e of entries) {
      e.stopping = true
      if (e.child.exit === null) signalGroup(e.child.pid, 'SIGTERM')
    }
    const problems: string[] = []
    await Promise.all(
      entries.map(async (e) => {
        let timer: NodeJS.Timeout | undefined
        const killed = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))
        const r = await Promise.race([e.child.exited, killed])
        clearTimeout(timer)
        if (r === 'timeout') {
          signalGroup(e.child.pid, 'SIGKILL')
          await e.child.exited
          problems.push(`${e.child.name} (pid ${e.child.pid}) did not stop within ${timeoutMs} ms: killed`)
        } else if (r.code !== 0 && r.signal !== 'SIGTERM') {
          // (killed by the SIGTERM sent here: a process that had not installed its handler yet)
          problems.push(`${e.child.name} (pid ${e.child.pid}) exited with ${r.signal ?? `code ${r.code}`}`)
        }
      }),
    )
    return problems
  }

  /** Last resort (the runner itself is exiting): SIGKILL every child still running. Synchronous. */
  killAll(): void {
    for (const e of this.children.values()) {
      e.stopping = true
      if (e.child.exit === null) signalGroup(e.child.pid, 'SIGKILL')
    }
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    try {
      process.kill(pid, signal)
    } catch {
      // already gone
    }
  }
}
