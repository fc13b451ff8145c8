// The admin listener: health, the active config and the clusters' state. Not on the request
// path, so it uses node:http. Later issues add /metrics and more.
import { versionInfo } from '../../protos/version.ts'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from '../net/node-http.ts'
import type { H2Upstream } from '../h2/upstream.ts'
import type { Proxy } from '../proxy.ts'
import { handleTapRequest } from '../telemetry/tap.ts'
import { createAppHealth, parseAppProbes, type AppHealth } from './app-health.ts'

export function clustersView(p: Proxy): unknown {
  const c = p.current
  if (c === null) return { clusters: [] }
  return {
    version: c.version,
    clusters: [...c.clusters.values()].map((cl) => ({
      name: cl.name,
      lbPolicy: cl.policy,
      protocol: cl.http2 ? 'http2' : 'http1',
      hashHeader: cl.hashHeader || undefined,
      activeRequests: cl.active,
      maxRequests: Number.isFinite(cl.maxRequests) ? cl.maxRequests : undefined,
      overflows: cl.counters.overflow,
      circuitBreaker:
        cl.breaker === null ? undefined : { state: cl.breaker.state, rejected: cl.counters.circuitOpen },
      adaptiveConcurrency: cl.adaptive === null ? undefined : cl.adaptive.view(),
      outlierDetection:
        cl.outlier === null
          ? undefined
          : { ejected: cl.outlier.ejectedCount(), ejectionsTotal: cl.counters.ejections, ejectionsOverflow: cl.counters.ejectionsOverflow },
      endpoints: cl.endpoints.map((e) => ({
        address: e.key,
        weight: e.weight,
        health: e.healthy ? 'healthy' : 'ejected',
        ejections: e.outlier.ejections > 0 ? e.outlier.ejections : undefined,
        ejectedForMs: e.outlier.ejectedUntil > 0 ? Math.max(0, Math.round(e.outlier.ejectedUntil - performance.now())) : undefined,
        activeRequests: e.active,
        requests: e.counters.rqTotal,
        requestErrors: e.counters.rqError,
        responses5xx: e.counters.rq5xx,
        connections: {
          open: e.pool.openConnections,
          idle: e.pool.idleConnections,
          pendingRequests: e.pool.pendingRequests,
          total: e.pool.stats.cxTotal,
          connectFailures: e.pool.stats.cxConnectFail,
          connectTimeouts: e.pool.stats.cxConnectTimeout,
          overflows: e.pool.stats.rqPendingOverflow,
        },
        // an HTTP/2 cluster: its one shared connection (open 0/1, sessions opened, waiting streams, …)
        http2: cl.http2 ? (e.pool.h2 === null ? { open: 0, waiting: 0, sessions: 0, connectFailures: 0, connectTimeouts: 0, goaways: 0 } : (e.pool.h2 as H2Upstream).view()) : undefined,
      })),
    })),
  }
}

export function configDump(p: Proxy): unknown {
  const c = p.current
  return {
    version: c?.version ?? 0,
    hash: c?.hash ?? null,
    appliedAt: c?.appliedAt ?? null,
    rejectedConfigs: p.rejectedCount,
    lastRejection: p.lastRejection,
    config: c?.source ?? null,
  }
}

export function statsView(p: Proxy): unknown {
  return {
    draining: p.draining,
    listeners: [...p.listeners.values()].map((l) => ({ name: l.name, direction: l.spec.direction, port: l.port, ...l.counters })),
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) })
  res.end(s)
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** appHealth: the injected pod's app probes (default: from the WEFT_APP_PROBES env, see ./app-health.ts) */
export function createAdminServer(p: Proxy, opts: { appHealth?: AppHealth } = {}): Server {
  const appHealth = opts.appHealth ?? createAppHealth(parseAppProbes(process.env.WEFT_APP_PROBES).table)
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed\n')
    if (appHealth.handle(path, req, res)) return
    if (path.startsWith('/explain/')) {
      // one request's decision trace, by its x-request-id (telemetry/explain.ts)
      const id = decodeURIComponent(path.slice('/explain/'.length))
      const e = p.explain.get(id)
      return e === undefined
        ? text(res, 404, `no trace for request ${JSON.stringify(id)}: traces are kept for requests sent with x-weft-explain: 1 (from this pod's app), sampled (telemetry.explain.sampling), or seen while weft tap --explain runs; the last ${p.explain.size} are kept\n`)
        : json(res, 200, e)
    }
    switch (path) {
      case '/explain':
        return json(res, 200, { kept: p.explain.size, recorded: p.explain.recorded, traces: p.explain.list() })
      case '/ready':
        return p.ready
          ? text(res, 200, 'ready\n')
          : text(res, 503, p.draining ? 'draining\n' : p.current === null ? 'no config\n' : `no identity certificate yet${p.identity?.lastError ? `: ${p.identity.lastError}` : ''}\n`)
      case '/identity': {
        // the proxy's SPIFFE ID, chain, expiry, next renewal and trust bundle (`weft identity`)
        const id = p.identity
        if (id === null) return text(res, 404, 'this proxy has no identity (bootstrap `identity` is not set)\n')
        const st = id.status()
        return st === null ? json(res, 503, { spiffeId: id.spiffeId, ready: false, lastError: id.lastError }) : json(res, 200, { ready: true, ...st })
      }
      case '/live':
        return text(res, 200, 'live\n')
      case '/version':
        return json(res, 200, versionInfo('proxy'))
      case '/config_dump':
        return json(res, 200, configDump(p))
      case '/clusters':
        return json(res, 200, clustersView(p))
      case '/stats':
        return json(res, 200, statsView(p))
      case '/tap':
        return handleTapRequest(req, res, p.tap, p.explain)
      case '/metrics': {
        const m = p.metrics
        if (m === null) return text(res, 404, 'metrics are disabled (telemetry.metrics.enabled: false)\n')
        void m.text().then(
          (body) => {
            res.writeHead(200, { 'content-type': m.contentType, 'content-length': Buffer.byteLength(body) })
            res.end(body)
          },
          (err: Error) => text(res, 500, `metrics: ${err.message}\n`),
        )
        return
      }
      case '/':
        return text(res, 200, 'weft admin: /ready /live /version /config_dump /clusters /stats /metrics /tap /explain /explain/<x-request-id> /identity\n')
      default:
        return text(res, 404, 'not found\n')
    }
  })
}
