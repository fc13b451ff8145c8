// Memory and CPU of a process from Linux /proc.
import fs from 'node:fs'

/** Clock ticks per second for /proc/PID/stat times (sysconf(_SC_CLK_TCK); 100 on Linux). */
export const CLK_TCK = 100

export interface MemStats {
  /** Peak resident set size (VmHWM), bytes. */
  hwmBytes: number
  /** Current resident set size (VmRSS), bytes. */
  rssBytes: number
}

/** Parses the VmHWM and VmRSS lines ("VmRSS:\t   12345 kB") of a /proc/PID/status text. */
export function parseStatus(text: string): MemStats {
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+)\\s+kB`, 'm').exec(text)
    return m ? Number(m[1]) * 1024 : NaN
  }
  return { hwmBytes: kb('VmHWM'), rssBytes: kb('VmRSS') }
}

/**
 * utime+stime in seconds from a /proc/PID/stat text. The command name (field 2) is in parentheses and
 * may contain spaces, so fields are counted after the last ')'. utime and stime are fields 14 and 15.
 */
export function parseStatCpuSeconds(text: string): number {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const utime = Number(rest[14 - 3])
  const stime = Number(rest[15 - 3])
  return (utime + stime) / CLK_TCK
}

export function readMem(pid: number): MemStats {
  return parseStatus(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
}

export function readCpuSeconds(pid: number): number {
  return parseStatCpuSeconds(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
}

/** Direct children of a process (from /proc/PID/task/TID/children, all threads). */
export function childPids(pid: number): number[] {
  const out: number[] = []
  let tasks: string[] = []
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const tid of tasks) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim()
      if (text) out.push(...text.split(/\s+/).map(Number))
    } catch {
      // thread gone or file unsupported
    }
  }
  return out
}

/**
 * The process that actually serves traffic: for a master/worker server (nginx) the single worker
 * child, otherwise the process itself. Waits a little for workers to appear.
 */
export async function servingPid(pid: number, expectChild: boolean, timeoutMs = 3000): Promise<number> {
  if (!expectChild) return pid
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const kids = childPids(pid)
    if (kids.length > 0) return kids[0]
    if (Date.now() > deadline) throw new Error(`process ${pid} has no worker child after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export function processName(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ')
  } catch {
    return '?'
  }
}

/**
 * On-CPU time of every thread of a process and of its main thread, ns (first field of
 * /proc/PID/task/TID/schedstat: nanosecond precision, where /proc/PID/stat counts 10 ms ticks).
 * Threads that exited between two readings are not counted; a Node process keeps its threads.
 */
export function readThreadsCpuNs(pid: number): { totalNs: number; mainNs: number } {
  let totalNs = 0
  let mainNs = 0
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let ns: number
    try {
      ns = parseSchedstatNs(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8'))
    } catch {
      continue // the thread just exited
    }
    totalNs += ns
    if (tid === String(pid)) mainNs = ns
  }
  return { totalNs, mainNs }
}

/** "run_ns wait_ns timeslices" of a schedstat file -> run_ns. */
export function parseSchedstatNs(text: string): number {
  return Number(text.slice(0, text.indexOf(' ')))
}
