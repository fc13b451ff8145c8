// The routing the Node peers (fast-proxy, http-proxy) do per request, comparable to the other proxies'
// configs: a header match, then an /api prefix, then a catch-all; each selects a round-robin cluster.
import type http from 'node:http'
import { CANARY_HEADER } from './types.ts'

export function pickRoute(req: http.IncomingMessage): 'app' | 'canary' {
  if (req.headers[CANARY_HEADER] === '1') return 'canary'
  const url = req.url ?? '/'
  if (url.startsWith('/api')) return 'app'
  return 'app' // catch-all prefix "/"
}
