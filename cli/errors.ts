// Errors of the operator commands, worded for the user: what failed, why, and what to try next.
// `127.0.0.1:15000: ECONNREFUSED` becomes "no Weft proxy admin API answers at 127.0.0.1:15000
// (connection refused): is the proxy running, and is its admin port 15000? see `weft proxy --help`".

/** Exit codes of the read commands (documented in the README). */
export const EXIT = {
  OK: 0,
  /** the command ran and found something wrong (analyze: errors found; stat/tap: nothing reachable) */
  FAILED: 1,
  /** bad usage: an unknown flag value, a malformed address or filter */
  USAGE: 2,
  /** a server the command needs did not answer, or answered something that is not Weft */
  UNREACHABLE: 3,
} as const

export type AdminKind = 'proxy' | 'control-plane'

function codeOf(e: unknown): string {
  const ex = e as Error & { code?: string; cause?: { code?: string } }
  return ex.cause?.code ?? ex.code ?? ''
}

function portOf(addr: string): string {
  const m = /:(\d+)\/?$/.exec(addr.trim())
  return m === null ? '?' : m[1]
}

/** What to try when the admin API at `addr` does not answer. */
export function nextStep(addr: string, kind: AdminKind): string {
  const port = portOf(addr)
  return kind === 'proxy'
    ? `is the proxy running, and is its admin port ${port}? see \`weft proxy --help\``
    : `is the control plane running, and is its admin port ${port} (not its gRPC port)? see \`weft control-plane --help\``
}

/** One sentence about a failed request to an admin API at `addr`. */
export function describeAdminError(addr: string, kind: AdminKind, e: unknown): string {
  let code = codeOf(e)
  const message = (e as Error)?.message ?? ''
  if (code === '' && /HTTP\/1\.1 protocol|Expected HTTP\//.test(message)) code = 'HPE_INVALID_CONSTANT' // e.g. an HTTP/2-only gRPC port
  const what = kind === 'proxy' ? 'Weft proxy admin API' : 'Weft control plane admin API'
  const next = nextStep(addr, kind)
  switch (code) {
    case 'ECONNREFUSED':
      return `no ${what} answers at ${addr} (connection refused): ${next}`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the host of ${addr} (${code}): check the address`
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return `${addr} did not answer in time (${code}): ${next}`
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
      return `${addr} closed the connection without an HTTP answer (${code}): ${next}`
  }
  if (code.startsWith('HPE_')) return `${addr} answered something that is not HTTP/1.1 (${code}): ${next}`
  const msg = (e as Error)?.message ?? String(e)
  return `${addr}: ${code !== '' ? code + ': ' : ''}${msg}`
}

export class AdminHttpError extends Error {
  readonly status: number
  constructor(url: string, status: number, body: string) {
    super(`${url}: HTTP ${status}${body.trim() === '' ? '' : ': ' + body.trim().slice(0, 200)}${status === 404 ? ' (is this a Weft admin API of the right kind and version?)' : ''}`)
    this.status = status
  }
}

/**
 * One sentence about a Kubernetes API request that got no HTTP answer (or a 401/403), naming the
 * server, context and cluster tried and what to do: `fetch failed` alone says neither.
 */
export function describeKubeApiError(where: { context: string; cluster: string; server: string }, e: unknown): string {
  const at = `the Kubernetes API at ${where.server || '(no server)'} (context "${where.context}", cluster "${where.cluster}")`
  const status = (e as { statusCode?: unknown })?.statusCode
  if (status === 401 || status === 403) {
    return `${at} refused the credentials (HTTP ${status}): check the user of context "${where.context}" (kubectl config view --minify), or choose another with --context NAME`
  }
  const code = codeOf(e)
  const cause = (e as Error)?.cause instanceof Error ? ((e as Error).cause as Error).message : ''
  const why = code !== '' ? code : cause !== '' ? cause : ((e as Error)?.message ?? String(e))
  const next = `is the cluster running and reachable from here, and is "${where.context}" the context you meant? choose another with --context NAME or --kubeconfig FILE`
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot resolve the host of ${at} (${code}): ${next}`
  if (code.includes('CERT') || code.includes('VERIFY') || code.includes('SELF_SIGNED')) return `${at}: its certificate is not trusted (${code}): check certificate-authority-data of cluster "${where.cluster}" in the kubeconfig`
  return `${at} did not answer (${why}): ${next}`
}
