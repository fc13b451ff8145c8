// The app's HTTP probes, rewritten by the injector to the admin port: the kubelet asks
// GET /app-health/<container>/<livez|readyz|startupz> and the proxy asks the app on
// 127.0.0.1:<port> with the probe's own path, headers and scheme, then answers with the app's
// status. The admin port is not intercepted, so the probe works whatever the inbound policy.
//
// The table comes from the WEFT_APP_PROBES env the injector sets (JSON, read once at start);
// its shape is the injector's AppProbe (control-plane/inject/types.ts), restated here because
// the proxy does not import the control plane.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { request as httpRequest } from '../net/node-http.ts'
import { request as httpsRequest } from 'node:https'

interface ProbeTarget {
  port: number
  path: string
  https: boolean
  headers: Record<string, string>
}

export interface AppHealth {
  readonly paths: readonly string[]
  /** true when the path is an /app-health path (answered, 404 included) */
  handle(path: string, req: IncomingMessage, res: ServerResponse): boolean
}

const PROBE_PATH: Record<string, string> = { livenessProbe: 'livez', readinessProbe: 'readyz', startupProbe: 'startupz' }
const TIMEOUT_MS = 10_000

/** Parse WEFT_APP_PROBES; an unreadable value is an empty table and an error message (logged by the caller). */
export function parseAppProbes(raw: string | undefined): { table: Map<string, ProbeTarget>; error?: string } {
  const table = new Map<string, ProbeTarget>()
  if (raw === undefined || raw === '') return { table }
  let list: unknown
  try {
    list = JSON.parse(raw)
  } catch (err) {
    return { table, error: `WEFT_APP_PROBES is not JSON: ${(err as Error).message}` }
  }
  if (!Array.isArray(list)) return { table, error: 'WEFT_APP_PROBES is not a list' }
  for (const p of list as { container?: unknown; probe?: unknown; port?: unknown; httpGet?: { path?: unknown; scheme?: unknown; httpHeaders?: { name: string; value: string }[] } }[]) {
    const kind = typeof p.probe === 'string' ? PROBE_PATH[p.probe] : undefined
    if (typeof p.container !== 'string' || kind === undefined || typeof p.port !== 'number') continue
    const headers: Record<string, string> = { 'user-agent': 'kube-probe/weft' }
    for (const h of p.httpGet?.httpHeaders ?? []) headers[h.name.toLowerCase()] = h.value
    const path = typeof p.httpGet?.path === 'string' && p.httpGet.path !== '' ? p.httpGet.path : '/'
    table.set(`/app-health/${p.container}/${kind}`, { port: p.port, path: path.startsWith('/') ? path : `/${path}`, https: p.httpGet?.scheme === 'HTTPS', headers })
  }
  return { table }
}

export function createAppHealth(table: Map<string, ProbeTarget>): AppHealth {
  return {
    paths: [...table.keys()],
    handle(path, req, res) {
      if (!path.startsWith('/app-health/')) return false
      const t = table.get(path)
      if (t === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' })
        res.end(`no app probe at ${path}\n`)
        return true
      }
      const send = t.https ? httpsRequest : httpRequest
      // the kubelet does not verify an HTTPS probe's certificate either
      const up = send({ host: '127.0.0.1', port: t.port, path: t.path, method: 'GET', headers: t.headers, timeout: TIMEOUT_MS, rejectUnauthorized: false }, (r) => {
        res.writeHead(r.statusCode ?? 502, { 'content-type': r.headers['content-type'] ?? 'text/plain' })
        r.pipe(res)
      })
      up.on('timeout', () => up.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)))
      up.on('error', (err) => {
        if (res.headersSent) { res.destroy(); return }
        res.writeHead(503, { 'content-type': 'text/plain' })
        res.end(`app probe ${path}: 127.0.0.1:${t.port}${t.path}: ${err.message}\n`)
      })
      req.on('close', () => { if (!res.writableEnded) up.destroy() })
      up.end()
      return true
    },
  }
}
