// `weft tap`: follow a proxy's live requests (the admin API's /tap NDJSON stream), one line per
// request, until Ctrl-C or until the proxy ends the stream.
import type { Command } from 'commander'
import { Agent, request } from 'undici'
import { stringify } from 'yaml'
import { parseStatusFilter } from '../proxy/telemetry/tap.ts'
import { describeAdminError, EXIT } from './errors.ts'
import { parseOutput } from './output.ts'
import { formatStep } from './trace-format.ts'

export interface TapCliOptions {
  /** admin address, host:port (or an http:// URL) */
  admin: string
  service?: string
  pathPrefix?: string
  status?: string
  authority?: string
  /** print the NDJSON lines as received */
  json?: boolean
  /** one YAML document per request */
  yaml?: boolean
  /** each request with its decision trace */
  explain?: boolean
}

export interface Out {
  write(s: string): unknown
}

/** "127.0.0.1:15000", "[::1]:15000" or "http://host:port" → "http://host:port" (no trailing slash); anything else throws a RangeError (a usage error, exit 2). */
export function adminBase(addr: string): string {
  const s = addr.trim()
  const hasScheme = /^https?:\/\//i.test(s)
  // a bare port or host ("15000", "localhost"): the port is not guessed (URL would read 15000 as an IPv4 address)
  if (!hasScheme && !/:\d+\/?$/.test(s)) throw new RangeError(`invalid admin address ${JSON.stringify(addr)}: expected HOST:PORT, e.g. 127.0.0.1:15000`)
  const withScheme = hasScheme ? s : 'http://' + s
  let u: URL
  try {
    u = new URL(withScheme)
  } catch {
    throw new RangeError(`invalid admin address ${JSON.stringify(addr)}: expected host:port`)
  }
  if (u.host === '') throw new RangeError(`invalid admin address ${JSON.stringify(addr)}: expected host:port`)
  return u.origin
}

/** The /tap URL for the given filters. */
export function tapUrl(o: TapCliOptions): string {
  const q = new URLSearchParams()
  if (o.service) q.set('service', o.service)
  if (o.pathPrefix) q.set('path', o.pathPrefix)
  if (o.status) q.set('status', o.status)
  if (o.authority) q.set('authority', o.authority)
  if (o.explain) q.set('explain', '1')
  const qs = q.toString()
  return adminBase(o.admin) + '/tap' + (qs === '' ? '' : '?' + qs)
}

interface TapRecordJson {
  time?: string
  listener?: string
  method?: string
  authority?: string
  path?: string
  status?: number
  latencyMs?: number
  flags?: string
  route?: string
  cluster?: string
  upstream?: string
  requestId?: string
  dropped?: number
}

function fmtLatency(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  return ms >= 1000 ? (ms / 1000).toFixed(2) + 's' : ms >= 100 ? ms.toFixed(0) + 'ms' : ms.toFixed(2) + 'ms'
}

/**
 * One human-readable line (no newline) for a /tap NDJSON line:
 * `12:00:00.123 [listener] 200 GET     1.23ms reviews:9080/api  -  route=r cluster=c upstream=10.0.0.1:8080`
 */
export function formatTapLine(line: string): string {
  let rec: TapRecordJson
  try {
    rec = JSON.parse(line) as TapRecordJson
  } catch {
    return line
  }
  if (typeof rec.dropped === 'number') return `… ${rec.dropped} requests not shown (tap client too slow)`
  const time = typeof rec.time === 'string' && rec.time.length >= 23 ? rec.time.slice(11, 23) : String(rec.time ?? '-')
  const cols = [time]
  if (rec.listener !== undefined) cols.push(rec.listener.padEnd(8))
  cols.push(String(rec.status ?? '-').padStart(3))
  cols.push((rec.method ?? '-').padEnd(7))
  cols.push(fmtLatency(rec.latencyMs).padStart(9))
  cols.push((rec.authority ?? '') + (rec.path ?? ''))
  cols.push(`flags=${rec.flags || '-'}`)
  cols.push(`route=${rec.route || '-'}`)
  cols.push(`cluster=${rec.cluster || '-'}`)
  cols.push(`upstream=${rec.upstream || '-'}`)
  return cols.join(' ')
}

function render(o: TapCliOptions, line: string): string {
  if (o.json) return line + '\n'
  if (o.yaml) {
    try {
      return '---\n' + stringify(JSON.parse(line))
    } catch {
      return line + '\n'
    }
  }
  if (o.explain) {
    try {
      const steps = (JSON.parse(line) as { explain?: Record<string, unknown>[] | null }).explain
      if (Array.isArray(steps)) return formatTapLine(line) + '\n' + steps.map((s) => '  ' + formatStep(s) + '\n').join('')
    } catch {
      // not JSON: printed as it came
    }
  }
  return formatTapLine(line) + '\n'
}

/**
 * Follow /tap and print each request to `out`. Resolves with the exit code: 0 when the stream
 * ended or `signal` aborted (Ctrl-C), 1 on a connection error or a refused request.
 */
export async function runTap(o: TapCliOptions, out: Out, err: Out, signal?: AbortSignal): Promise<number> {
  let url: string
  try {
    if (o.status) parseStatusFilter(o.status)
    url = tapUrl(o)
  } catch (e) {
    err.write(`weft tap: ${(e as Error).message}\n`)
    return 2
  }
  const agent = new Agent({ headersTimeout: 10_000, bodyTimeout: 0, connections: 1 })
  try {
    const res = await request(url, { dispatcher: agent, signal })
    if (res.statusCode !== 200) {
      const text = await res.body.text()
      err.write(`weft tap: ${url}: HTTP ${res.statusCode}: ${text.trim()}\n`)
      return 1
    }
    let carry = ''
    res.body.setEncoding('utf8')
    for await (const chunk of res.body as AsyncIterable<string>) {
      const lines = (carry + chunk).split('\n')
      carry = lines.pop() ?? ''
      for (const line of lines) {
        if (line === '') continue
        out.write(render(o, line))
      }
    }
    if (carry !== '') out.write(render(o, carry))
    return 0
  } catch (e) {
    if (signal?.aborted) return 0
    err.write(`weft tap: ${describeAdminError(o.admin, 'proxy', e)}\n`)
    return EXIT.UNREACHABLE
  } finally {
    agent.destroy().catch(() => {})
  }
}

export function registerTap(program: Command): void {
  program
    .command('tap')
    .description("stream a proxy's live requests (admin /tap), one line per request, until Ctrl-C")
    .option('--admin <host:port>', 'admin address of the proxy', '127.0.0.1:15000')
    .option('--service <name>', 'only requests to this host (authority without port) or virtual host')
    .option('--path-prefix <prefix>', 'only requests whose path starts with this')
    .option('--status <status>', 'only this status (503) or class (5xx; 0xx: client went away)')
    .option('--authority <authority>', 'only this exact authority (host[:port])')
    .option('-o, --output <format>', 'table (one line per request), json (NDJSON, one object per line) or yaml (one document per request)', 'table')
    .option('--json', 'same as -o json')
    .option('--explain', "each request's decision trace too (route tried, split, balancer pick, retries; while it runs the proxy traces every request)")
    .action(async (opts: TapCliOptions & { output: string }) => {
      try {
        const f = parseOutput(opts.output)
        if (f === 'json') opts.json = true
        if (f === 'yaml') opts.yaml = true
      } catch (e) {
        process.stderr.write(`weft tap: ${(e as Error).message}\n`)
        process.exitCode = EXIT.USAGE
        return
      }
      const ac = new AbortController()
      const stop = (): void => ac.abort()
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      // `weft tap | head`: a closed stdout ends the tap instead of crashing.
      const onStdoutError = (): void => ac.abort()
      process.stdout.on('error', onStdoutError)
      try {
        process.exitCode = await runTap(opts, process.stdout, process.stderr, ac.signal)
      } finally {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        process.stdout.off('error', onStdoutError)
      }
    })
}
