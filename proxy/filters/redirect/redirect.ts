// RequestRedirect (Gateway API): answer with a 3xx and a Location built from the request and the
// route's redirect. Unset parts keep the request's: the host, the path and, unless the scheme
// changes, the port (a new scheme gets its well-known port unless a port is given).
import type { RedirectPolicy } from '../../../api/schema.ts'

export class CompiledRedirect {
  readonly status: number
  private readonly scheme: string | undefined
  private readonly host: string | undefined
  private readonly port: number | undefined
  private readonly path: string | undefined
  private readonly prefix: { from: string; to: string } | undefined

  /** matchedPrefix: the route's path prefix (for pathPrefix), "/" when it has none */
  constructor(p: RedirectPolicy, matchedPrefix: string) {
    this.status = p.status ?? 302
    this.scheme = p.scheme
    this.host = p.host
    this.port = p.port
    this.path = p.path
    this.prefix = p.pathPrefix === undefined ? undefined : { from: matchedPrefix, to: p.pathPrefix }
  }

  /** The Location for a request (authority as received, path with its query). */
  location(authority: string, path: string, rewrite: (path: string, rw: { from: string; to: string }) => string): string {
    let host = authority
    let port = ''
    const colon = authority.lastIndexOf(':')
    if (colon !== -1 && !authority.endsWith(']')) {
      host = authority.slice(0, colon)
      port = authority.slice(colon + 1)
    }
    if (this.host !== undefined) host = this.host
    if (this.port !== undefined) port = String(this.port)
    else if (this.scheme !== undefined) port = ''
    const scheme = this.scheme ?? 'http'
    if ((scheme === 'http' && port === '80') || (scheme === 'https' && port === '443')) port = ''
    let p = path
    if (this.path !== undefined) {
      const q = path.indexOf('?')
      p = q === -1 ? this.path : this.path + path.slice(q)
    } else if (this.prefix !== undefined) {
      p = rewrite(path, this.prefix)
    }
    return scheme + '://' + host + (port === '' ? '' : ':' + port) + p
  }
}
