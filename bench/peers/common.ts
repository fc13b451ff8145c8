// Shared start-up steps of the peers: wait until the port answers correctly, check the proxied
// response, and stop the process again if anything fails.
import { httpGet, waitForHttp } from '../net.ts'
import { servingPid } from '../proc.ts'
import type { Proc } from '../spawn.ts'
import { UPSTREAM_BODY, UPSTREAM_PORT_HEADER, type Peer } from './types.ts'

/**
 * Checks that GET / through `port` returns 200 with the upstream's exact body, and which upstream
 * ports served a few requests on fresh connections (to see that round robin is active).
 */
export async function verifyPassThrough(port: number, upstreamPorts: number[]): Promise<{ upstreamPortsSeen: number[] }> {
  const seen = new Set<number>()
  for (let i = 0; i < 4; i++) {
    const r = await httpGet(port, '/', 2000)
    if (r.status !== 200 || r.body !== UPSTREAM_BODY) {
      throw new Error(`GET / through port ${port} gave HTTP ${r.status} body ${JSON.stringify(r.body.slice(0, 200))}, want 200 ${JSON.stringify(UPSTREAM_BODY)}`)
    }
    const h = r.headers[UPSTREAM_PORT_HEADER]
    const p = Number(Array.isArray(h) ? h[0] : h)
    if (upstreamPorts.includes(p)) seen.add(p)
  }
  return { upstreamPortsSeen: [...seen].sort((a, b) => a - b) }
}

/**
 * Waits for a started process to serve `readyPath` on `readyPort` (default: the upstream body on its
 * traffic port), verifies pass-through, and builds the Peer. On any failure the process is stopped and
 * the error (with the end of its log) is thrown.
 */
export async function finishStart(opts: {
  name: string
  proc: Proc
  port: number
  upstreamPorts: number[]
  hasWorkerChild?: boolean
  readyPort?: number
  readyPath?: string
  readyTimeoutMs?: number
  info?: Record<string, unknown>
  /** For the upstream itself: no pass-through check against other ports. */
  isUpstream?: boolean
}): Promise<Peer> {
  const { proc } = opts
  try {
    await waitForHttp({
      port: opts.readyPort ?? opts.port,
      path: opts.readyPath ?? '/',
      timeoutMs: opts.readyTimeoutMs ?? 10000,
      alive: () => proc.deadReason(),
      accept: opts.readyPort === undefined ? (r) => r.status === 200 && r.body === UPSTREAM_BODY : undefined,
    })
    if (opts.readyPort !== undefined) {
      // Ready by its own account: the traffic port must now pass the upstream's answer through.
      await waitForHttp({
        port: opts.port,
        timeoutMs: 5000,
        alive: () => proc.deadReason(),
        accept: (r) => r.status === 200 && r.body === UPSTREAM_BODY,
      })
    }
    const pid = await servingPid(proc.pid, opts.hasWorkerChild ?? false)
    const info: Record<string, unknown> = { ...opts.info, logFile: proc.logFile }
    if (!opts.isUpstream) {
      const v = await verifyPassThrough(opts.port, opts.upstreamPorts)
      info.upstreamPortsSeen = v.upstreamPortsSeen
    }
    return {
      name: opts.name,
      port: opts.port,
      pid,
      leaderPid: proc.pid,
      info,
      deadReason: () => proc.deadReason(),
      stop: () => proc.stop(),
    }
  } catch (err) {
    const dead = proc.deadReason()
    await proc.stop()
    const msg = (err as Error).message
    throw new Error(dead && !msg.includes(dead) ? `${msg}; ${dead}` : msg)
  }
}
