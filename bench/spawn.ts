// Starting and stopping the benchmark's processes. Every process is started in its own process group
// (detached), tracked here, and killed as a group at the end, on error, or on Ctrl-C; temp dirs too.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import { sleep } from './net.ts'

export interface Proc {
  name: string
  /** pid of the process we started (the process-group leader). */
  pid: number
  child: ChildProcess
  logFile: string
  /** null while running; otherwise a human-readable reason including the end of its log. */
  deadReason(): string | null
  stop(): Promise<void>
}

const live = new Set<Proc>()
const tempDirs = new Set<string>()

export function trackTempDir(dir: string): void {
  tempDirs.add(dir)
}

export function tailFile(file: string, maxChars = 1200): string {
  try {
    const text = fs.readFileSync(file, 'utf8')
    return text.slice(-maxChars).trim()
  } catch {
    return ''
  }
}

/** The lines of a log tail worth showing: alerts/errors if any, else the last three lines. */
export function importantLines(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean)
  const bad = lines.filter((l) => /alert|emerg|error|fatal|cannot|failed|exception/i.test(l))
  return (bad.length ? bad.slice(-5) : lines.slice(-3)).join(' | ').slice(0, 800)
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: group already gone
  }
}

export function spawnGroup(
  name: string,
  command: string,
  args: string[],
  opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Proc {
  const fd = fs.openSync(opts.logFile, 'a')
  let child: ChildProcess
  try {
    child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true, // own process group, so stop() can kill the whole tree
    })
  } finally {
    fs.closeSync(fd)
  }
  let exit: string | null = null
  let spawnError: Error | null = null
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = signal ? `signal ${signal}` : `code ${code}`
      resolve()
    })
    child.once('error', (err) => {
      spawnError = err
      exit = `spawn error: ${err.message}`
      resolve()
    })
  })
  const proc: Proc = {
    name,
    pid: child.pid ?? -1,
    child,
    logFile: opts.logFile,
    deadReason() {
      if (exit === null) return null
      const tail = spawnError ? '' : importantLines(tailFile(opts.logFile, 4000))
      return `${name} exited (${exit})${tail ? `: ${tail}` : ''}`
    },
    async stop() {
      live.delete(proc)
      if (proc.pid > 0 && exit === null) {
        killGroup(proc.pid, 'SIGTERM')
        await Promise.race([exited, sleep(3000)])
      }
      // The leader may be gone while group members (e.g. an nginx worker) linger: make sure.
      if (proc.pid > 0) killGroup(proc.pid, 'SIGKILL')
      if (exit === null) await Promise.race([exited, sleep(1000)])
    },
  }
  live.add(proc)
  return proc
}

/** Stops every tracked process group and removes every tracked temp dir. */
export async function cleanupAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()))
  for (const dir of tempDirs) {
    fs.rmSync(dir, { recursive: true, force: true })
    tempDirs.delete(dir)
  }
}

/** Last resort from a synchronous 'exit' handler: SIGKILL every group, remove temp dirs. */
export function cleanupAllSync(): void {
  for (const p of live) {
    if (p.pid > 0) killGroup(p.pid, 'SIGKILL')
  }
  live.clear()
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // best effort
    }
  }
  tempDirs.clear()
}

/** Runs a command to completion, capturing stdout+stderr (for version probes and wrk). */
export function runCapture(
  command: string,
  args: string[],
  opts: { timeoutMs?: number; onChild?: (child: ChildProcess) => void } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; error?: Error }> {
  return new Promise((resolve) => {
    let child: ChildProcess
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (err) {
      resolve({ code: null, stdout: '', stderr: '', error: err as Error })
      return
    }
    opts.onChild?.(child)
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')))
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')))
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined
    child.once('error', (err) => {
      if (timer) clearTimeout(timer)
      resolve({ code: null, stdout, stderr, error: err })
    })
    child.once('close', (code) => {
      if (timer) clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}
