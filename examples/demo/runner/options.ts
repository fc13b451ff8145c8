// `npm start -- [options]`: the demo runner's command line.
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { parseDuration } from '../../../api/duration.ts'
import { DEFAULT_BASE_PORT, PORT_SPAN } from './layout.ts'

export interface DemoOptions {
  /** first port of the range the demo uses (PORT_SPAN ports) */
  basePort: number
  /** the resource directory the control plane serves (watched) */
  resources: string
  /** stop by itself after this many seconds; null: run until a signal */
  durationSeconds: number | null
  /** the traffic generator's rate */
  rps: number
  /** the summary's window */
  windowMs: number
  /** redraw the summary in place (a terminal) or print plain lines */
  redraw: boolean
  /** a global rate limit on catalogue: weft ratelimit-server (counters in redis-server when installed) */
  ratelimit: boolean
  /** mutual TLS between the sidecars (the control plane's CA); off with --plaintext */
  mtls: boolean
}

export const USAGE = `usage: npm start -- [options]     (or: node examples/start.ts [options])

  --base-port N     first of the ${PORT_SPAN} ports the demo uses (default $WEFT_DEMO_BASE_PORT or ${DEFAULT_BASE_PORT})
  --resources DIR   the resources the control plane serves and watches (default examples/demo/)
  --duration S      stop after S seconds (default: run until Ctrl-C)
  --rps N           requests per second of the traffic generator (default 20)
  --window D        the summary's window, e.g. 2s, 5s (default 2s, at least 1s)
  --plain           print plain summary lines even in a terminal
  --ratelimit       a global rate limit on catalogue (5 calls a second across all callers): starts
                    weft ratelimit-server, its counters in redis-server when installed (else in memory)
  --plaintext       no mutual TLS between the sidecars (by default the control plane runs the
                    mesh CA, every sidecar gets an SVID, and inbound listeners are strict)
  -h, --help        this text
`

export const DEFAULT_RESOURCES = fileURLToPath(new URL('../', import.meta.url))

/** The options, or a message saying what is wrong ("" for --help). */
export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv, isTty: boolean): DemoOptions | { error: string } {
  let v
  try {
    v = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        'base-port': { type: 'string' },
        resources: { type: 'string' },
        duration: { type: 'string' },
        rps: { type: 'string' },
        window: { type: 'string' },
        plain: { type: 'boolean' },
        ratelimit: { type: 'boolean' },
        plaintext: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values
  } catch (e) {
    return { error: (e as Error).message }
  }
  if (v.help) return { error: '' }
  const basePort = Number(v['base-port'] ?? env.WEFT_DEMO_BASE_PORT ?? DEFAULT_BASE_PORT)
  if (!Number.isInteger(basePort) || basePort < 1024 || basePort + PORT_SPAN > 65536) {
    return { error: `--base-port: expected a port from 1024 to ${65536 - PORT_SPAN}, got ${v['base-port'] ?? env.WEFT_DEMO_BASE_PORT}` }
  }
  const durationSeconds = v.duration === undefined ? null : Number(v.duration)
  if (durationSeconds !== null && !(durationSeconds > 0)) return { error: `--duration: expected seconds > 0, got ${v.duration}` }
  const rps = Number(v.rps ?? 20)
  if (!(rps > 0 && rps <= 1000)) return { error: `--rps: expected 0 < N <= 1000, got ${v.rps}` }
  let windowMs: number
  try {
    windowMs = parseDuration(v.window ?? '2s')
  } catch (e) {
    return { error: `--window: ${(e as Error).message}` }
  }
  if (windowMs < 1000) return { error: '--window: at least 1s (the summary scrapes once a second)' }
  return { basePort, resources: v.resources ?? DEFAULT_RESOURCES, durationSeconds, rps, windowMs, redraw: isTty && v.plain !== true, ratelimit: v.ratelimit === true, mtls: v.plaintext !== true }
}
