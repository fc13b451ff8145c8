// Running wrk and parsing its text report.
import type { ChildProcess } from 'node:child_process'
import { runCapture } from './spawn.ts'

export interface WrkResult {
  url: string
  threads: number
  connections: number
  requests: number
  /** Measured duration as wrk reports it ("in 3.10s"), seconds. */
  durationSec: number
  rps: number
  /** Thread-stats latency, microseconds (null when wrk printed none). */
  latencyAvgUs: number | null
  latencyStdevUs: number | null
  latencyMaxUs: number | null
  /** Latency distribution (only with --latency): percentile ("50", "75", "90", "99") -> microseconds. */
  percentilesUs: Record<string, number>
  errors: { connect: number; read: number; write: number; timeout: number }
  /** "Non-2xx or 3xx responses" count. */
  non2xx3xx: number
  /** Bytes read per second (Transfer/sec). */
  transferBytesPerSec: number | null
}

const TIME_UNITS: Record<string, number> = { us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }

/** "516.04us" / "1.05ms" / "2.00s" / "1.50m" -> microseconds. NaN for anything else. */
export function parseDurationUs(text: string): number {
  const m = /^(-?[\d.]+)(us|ms|s|m|h)$/.exec(text.trim())
  if (!m) return NaN
  return Number(m[1]) * TIME_UNITS[m[2]]
}

/** "58.57MB" / "473.81KB" / "0.00B" -> bytes. */
export function parseSizeBytes(text: string): number {
  const m = /^([\d.]+)(B|KB|MB|GB|TB)$/.exec(text.trim())
  if (!m) return NaN
  return Number(m[1]) * SIZE_UNITS[m[2]]
}

/** Parses wrk's report. Throws if the text is not a completed wrk run (e.g. "unable to connect"). */
export function parseWrk(text: string): WrkResult {
  const header = /Running [^@]*@ (\S+)\s*\n\s*(\d+) threads? and (\d+) connections?/.exec(text)
  const total = /^\s*(\d+) requests in ([\d.]+\w+), \S+ read/m.exec(text)
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text)
  if (!header || !total || !rps) {
    const firstLine = text.trim().split('\n').find((l) => l.trim()) ?? '(no output)'
    throw new Error(`not a complete wrk report: ${firstLine.trim().slice(0, 200)}`)
  }
  const lat = /^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(text)
  const percentilesUs: Record<string, number> = {}
  const dist = /Latency Distribution\s*\n((?:\s+[\d.]+%\s+\S+\s*\n)+)/.exec(text)
  if (dist) {
    for (const line of dist[1].split('\n')) {
      const m = /^\s*([\d.]+)%\s+(\S+)/.exec(line)
      if (m) percentilesUs[m[1]] = parseDurationUs(m[2])
    }
  }
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text)
  const transfer = /^Transfer\/sec:\s+(\S+)/m.exec(text)
  const usOrNull = (s: string | undefined): number | null => {
    const v = s === undefined ? NaN : parseDurationUs(s)
    return Number.isFinite(v) ? v : null
  }
  return {
    url: header[1],
    threads: Number(header[2]),
    connections: Number(header[3]),
    requests: Number(total[1]),
    durationSec: parseDurationUs(total[2]) / 1e6,
    rps: Number(rps[1]),
    latencyAvgUs: usOrNull(lat?.[1]),
    latencyStdevUs: usOrNull(lat?.[2]),
    latencyMaxUs: usOrNull(lat?.[3]),
    percentilesUs,
    errors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx3xx: non2xx ? Number(non2xx[1]) : 0,
    transferBytesPerSec: transfer && Number.isFinite(parseSizeBytes(transfer[1])) ? parseSizeBytes(transfer[1]) : null,
  }
}

/** Total failed requests/sockets of a run: any of these makes its numbers suspect. */
export function wrkErrorCount(r: WrkResult): number {
  return r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout + r.non2xx3xx
}

export interface WrkOptions {
  url: string
  connections: number
  durationSec: number
  threads?: number
  latency?: boolean
  /** Called with the wrk child so the caller can kill it on Ctrl-C. */
  onChild?: (child: ChildProcess) => void
}

export function wrkArgs(o: WrkOptions): string[] {
  const args = [`-t${o.threads ?? 1}`, `-c${o.connections}`, `-d${o.durationSec}s`]
  if (o.latency) args.push('--latency')
  args.push(o.url)
  return args
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const args = wrkArgs(o)
  const r = await runCapture('wrk', args, { timeoutMs: (o.durationSec + 30) * 1000, onChild: o.onChild })
  if (r.error) throw new Error(`wrk ${args.join(' ')}: ${r.error.message}`)
  try {
    return parseWrk(r.stdout)
  } catch (err) {
    const detail = (r.stderr || r.stdout).trim().split('\n')[0] ?? ''
    throw new Error(`wrk ${args.join(' ')} failed (exit ${r.code}): ${detail || (err as Error).message}`)
  }
}

/** True when wrk is on PATH. */
export async function haveWrk(): Promise<boolean> {
  const r = await runCapture('wrk', ['-v'])
  return !r.error
}

/** "4.1.0-3+b2" style version from `wrk -v` (which exits 1 after printing usage). */
export async function wrkVersion(): Promise<string | null> {
  const r = await runCapture('wrk', ['-v'])
  if (r.error) return null
  const m = /wrk (\S+)/.exec(r.stdout + r.stderr)
  return m ? m[1] : null
}
