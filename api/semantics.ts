// What the schema cannot say about a bootstrap: references, duplicates, conflicting fields,
// regexes, durations that a timer cannot hold. Runs only once the schema passed, so shapes are known.
import { bootstrapSchema } from './validator.ts'
import type { Bootstrap as BootstrapConfig, HeaderMatch, Listener, QueryMatch, Route, RouteMatch, VirtualHost } from './schema.ts'
import { ConfigErrorCode } from './errors.ts'
import type { ConfigError } from './errors.ts'
import { parseDuration } from './duration.ts'
import { serviceDomains } from './domains.ts'
import { checkDurations, errorText, unknownRef } from './yaml-errors.ts'
import type { Invalid, Seg, Target } from './yaml-errors.ts'

// Framing and hop-by-hop headers belong to the proxy; Host may only be replaced (requestHeaders.set).
const RESERVED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'trailer', 'expect'])
export function isReservedHeader(name: string, hostAllowed: boolean): boolean {
  const n = name.toLowerCase()
  return RESERVED_HEADERS.has(n) || (n === 'host' && !hostAllowed)
}

export type MakeError = (code: ConfigErrorCode, segs: Seg[], message: string, target?: Target) => ConfigError

/**
 * Route tables and clusters that will be added to the bootstrap from elsewhere (static mode: the
 * translated resources). References to them resolve; defining one of them again is an error.
 */
export interface ExternalNames {
  routeTables: ReadonlySet<string>
  clusters: ReadonlySet<string>
  /** where they come from, for messages: "the resources (--resources)" */
  from: string
}

export function checkSemantics(cfg: BootstrapConfig, mk: MakeError, lineOf: (segs: Seg[]) => number, external?: ExternalNames): ConfigError[] {
  const errors: ConfigError[] = []
  const invalid = (segs: Seg[], message: string, target?: Target): void => {
    errors.push(mk(ConfigErrorCode.INVALID, segs, message, target))
  }

  // Unique names: listeners, route tables, clusters.
  const uniqueNames = (kind: string, items: ReadonlyArray<{ name: string }>, base: Seg[]): Map<string, number> => {
    const seen = new Map<string, number>()
    items.forEach((item, i) => {
      const first = seen.get(item.name)
      if (first === undefined) seen.set(item.name, i)
      else invalid([...base, i, 'name'], `duplicate ${kind} name "${item.name}" (first defined at line ${lineOf([...base, first, 'name'])})`)
    })
    return seen
  }
  uniqueNames('listener', cfg.listeners, ['listeners'])
  const tables = uniqueNames('route table', cfg.routeTables, ['routeTables'])
  const clusters = uniqueNames('cluster', cfg.clusters, ['clusters'])
  if (external !== undefined) {
    const clash = (kind: string, items: ReadonlyArray<{ name: string }>, base: Seg[], names: ReadonlySet<string>): void => {
      items.forEach((item, i) => {
        if (names.has(item.name)) invalid([...base, i, 'name'], `${kind} "${item.name}" is also made from ${external.from}: rename or remove this one`)
      })
    }
    clash('route table', cfg.routeTables, ['routeTables'], external.routeTables)
    clash('cluster', cfg.clusters, ['clusters'], external.clusters)
    for (const n of external.routeTables) if (!tables.has(n)) tables.set(n, -1)
    for (const n of external.clusters) if (!clusters.has(n)) clusters.set(n, -1)
  }

  // Limits: the first-byte timeout shorter than the idle timeout it cuts short.
  const lim = cfg.limits
  if (lim !== undefined) {
    if (lim.firstByteTimeout !== undefined) {
      positiveDuration(lim.firstByteTimeout, ['limits', 'firstByteTimeout'], invalid)
      const fb = durationMs(lim.firstByteTimeout)
      const idle = lim.idleTimeout === undefined ? 300_000 : durationMs(lim.idleTimeout)
      if (fb !== undefined && idle !== undefined && fb > idle) invalid(['limits', 'firstByteTimeout'], `must not be longer than idleTimeout (${lim.idleTimeout ?? '5m'}): found "${lim.firstByteTimeout}"`)
    }
    if (lim.streamIdleTimeout !== undefined) positiveDuration(lim.streamIdleTimeout, ['limits', 'streamIdleTimeout'], invalid)
  }

  // Identity: where the certificate comes from, and what needs one.
  const id = cfg.identity
  if (id !== undefined) {
    const files = [id.certFile, id.keyFile, id.trustBundleFile].filter((f) => f !== undefined).length
    if (id.ca !== undefined && files > 0) invalid(['identity', 'ca'], 'identity comes from the CA (ca) or from files (certFile, keyFile, trustBundleFile), not both', 'key')
    else if (id.ca === undefined && files !== 3) invalid(['identity'], 'identity needs ca.address, or all of certFile, keyFile and trustBundleFile')
    if (id.ca?.ttl !== undefined) positiveDuration(id.ca.ttl, ['identity', 'ca', 'ttl'], invalid)
  }
  cfg.clusters.forEach((c, i) => {
    if (c.tls !== undefined && (c.tls.mode ?? 'mutual') === 'mutual' && id === undefined) {
      invalid(['clusters', i, 'tls'], 'mutual TLS needs the proxy\'s identity: set `identity` (or tls.mode: disable)', 'key')
    }
  })

  // Listeners: route table references, ports.
  const ports = new Map<number, number>()
  cfg.listeners.forEach((l, i) => {
    if (l.mtls !== undefined && l.mtls !== 'disable') {
      if (l.direction !== 'inbound') invalid(['listeners', i, 'mtls'], 'mtls is for inbound listeners (outbound mesh TLS is the cluster\'s `tls`)', 'key')
      else if (id === undefined) invalid(['listeners', i, 'mtls'], `mtls "${l.mtls}" needs the proxy's identity: set \`identity\``, 'key')
    }
    if (l.authorization !== undefined && l.direction !== 'inbound') {
      invalid(['listeners', i, 'authorization'], 'authorization applies to inbound listeners (the callee decides who may call it)', 'key')
    }
    if (!tables.has(l.routeTable)) {
      errors.push(mk(ConfigErrorCode.REF, ['listeners', i, 'routeTable'], unknownRef('route table', l.routeTable, tables.keys())))
    }
    checkListenerProtocol(l, ['listeners', i], clusters, mk, errors, invalid)
    if (l.port === 0) return
    const first = ports.get(l.port)
    if (first === undefined) ports.set(l.port, i)
    else {
      invalid(['listeners', i, 'port'],
        `port ${l.port} is already used by listener "${cfg.listeners[first].name}" (line ${lineOf(['listeners', first, 'port'])})`)
    }
  })
  if (cfg.admin && cfg.admin.port !== 0) {
    const clash = ports.get(cfg.admin.port)
    if (clash !== undefined) {
      invalid(['admin', 'port'],
        `admin port ${cfg.admin.port} is also used by listener "${cfg.listeners[clash].name}" (line ${lineOf(['listeners', clash, 'port'])})`)
    }
  }

  // Route tables.
  const unknownCluster = (segs: Seg[], name: string): void => {
    if (!clusters.has(name)) errors.push(mk(ConfigErrorCode.REF, segs, unknownRef('cluster', name, clusters.keys())))
  }
  cfg.routeTables.forEach((table, t) => {
    const tSegs: Seg[] = ['routeTables', t]
    uniqueNames('virtual host', table.virtualHosts, [...tSegs, 'virtualHosts'])
    checkDomains(table.virtualHosts, [...tSegs, 'virtualHosts'], invalid, lineOf)
    table.virtualHosts.forEach((vh, v) => {
      const vSegs: Seg[] = [...tSegs, 'virtualHosts', v]
      vh.routes.forEach((route, r) => {
        const rSegs: Seg[] = [...vSegs, 'routes', r]
        const actions = (['backends', 'directResponse', 'redirect'] as const).filter((k) => route[k] !== undefined)
        if (actions.length === 0) {
          invalid(rSegs, 'route must set one of "backends", "directResponse" or "redirect"')
        } else if (actions.length > 1) {
          invalid([...rSegs, actions[1]],
            `route must set only one of "backends", "directResponse" or "redirect", found ${actions.map((a) => `"${a}"`).join(' and ')}`, 'key')
        }
        if (route.backends) {
          route.backends.forEach((b, i) => unknownCluster([...rSegs, 'backends', i, 'cluster'], b.cluster))
          if (route.backends.every((b) => (b.weight ?? 1) === 0)) {
            invalid([...rSegs, 'backends'], 'all backend weights are 0: at least one backend needs a positive weight')
          }
        }
        if (route.mirror) unknownCluster([...rSegs, 'mirror', 'cluster'], route.mirror.cluster)
        for (const dir of ['requestHeaders', 'responseHeaders'] as const) {
          const m = route[dir]
          if (m === undefined) continue
          for (const op of ['add', 'set'] as const) {
            for (const name of Object.keys(m[op] ?? {})) {
              if (isReservedHeader(name, dir === 'requestHeaders' && op === 'set'))
                invalid([...rSegs, dir, op, name], `header "${name}" is managed by the proxy (framing and connection headers cannot be changed)`, 'key')
            }
          }
          ;(m.remove ?? []).forEach((name, i) => {
            if (isReservedHeader(name, false))
              invalid([...rSegs, dir, 'remove', i], `header "${name}" is managed by the proxy (framing and connection headers cannot be removed)`)
          })
        }
        checkRoutePolicy(route, rSegs, invalid)
        const match = route.match
        if (!match) return
        const mSegs: Seg[] = [...rSegs, 'match']
        if (match.path) checkPathMatch(match.path, [...mSegs, 'path'], invalid)
        match.headers?.forEach((h, i) => checkValueMatch('header', h, [...mSegs, 'headers', i], invalid))
        match.queryParams?.forEach((q, i) => checkValueMatch('query parameter', q, [...mSegs, 'queryParams', i], invalid))
      })
    })
  })

  // Clusters.
  cfg.clusters.forEach((c, i) => {
    const policy = c.lb?.policy
    if ((policy === 'ringHash' || policy === 'maglev') && c.lb?.hashHeader === undefined) {
      invalid(['clusters', i, 'lb', 'policy'],
        `policy "${policy}" requires lb.hashHeader (the request header whose value picks the endpoint)`)
    }
    if (c.circuitBreaker?.window !== undefined) positiveDuration(c.circuitBreaker.window, ['clusters', i, 'circuitBreaker', 'window'], invalid)
  })

  // Durations, wherever the schema has one.
  checkDurations(bootstrapSchema(), cfg, [], invalid)
  return errors
}

/**
 * protocol, detectTimeout and tcp of a listener: a tcp listener needs its cluster, a tcp cluster
 * must exist, and the fields that only one mode reads are not silently ignored.
 */
function checkListenerProtocol(l: Listener, segs: Seg[], clusters: ReadonlyMap<string, number>, mk: MakeError, errors: ConfigError[], invalid: Invalid): void {
  const protocol = l.protocol ?? 'detect'
  if (protocol === 'tcp' && l.tcp === undefined) {
    invalid([...segs, 'protocol'], 'protocol "tcp" needs tcp.cluster (where the connections go)')
  }
  if ((protocol === 'http' || protocol === 'http2') && l.tcp !== undefined) {
    invalid([...segs, 'tcp'], `protocol "${protocol}" never sends a connection to tcp.cluster: remove "tcp" or use protocol "detect" or "tcp"`, 'key')
  }
  if (l.detectTimeout !== undefined) {
    if (protocol !== 'detect') {
      invalid([...segs, 'detectTimeout'], `detectTimeout is only used with protocol "detect" (this listener has "${protocol}")`, 'key')
    } else if (l.tcp === undefined) {
      invalid([...segs, 'detectTimeout'], 'detectTimeout needs tcp.cluster: without it a silent client is an HTTP client (requestHeadTimeout applies)', 'key')
    } else {
      positiveDuration(l.detectTimeout, [...segs, 'detectTimeout'], invalid)
    }
  }
  if (l.tcp !== undefined) {
    if (!clusters.has(l.tcp.cluster)) errors.push(mk(ConfigErrorCode.REF, [...segs, 'tcp', 'cluster'], unknownRef('cluster', l.tcp.cluster, clusters.keys())))
    if (l.tcp.idleTimeout !== undefined) positiveDuration(l.tcp.idleTimeout, [...segs, 'tcp', 'idleTimeout'], invalid)
  }
}

/** Rewrite, redirect, retry, rate limit and fault: fields that exclude or need each other. */
export function checkRoutePolicy(route: Route, rSegs: Seg[], invalid: Invalid): void {
  const path = route.match?.path
  const prefixMatch = path?.prefix !== undefined || path?.segmentPrefix !== undefined
  if (route.rewrite) {
    const w = route.rewrite
    const segs = [...rSegs, 'rewrite']
    if (w.path === undefined && w.pathPrefix === undefined && w.host === undefined) {
      invalid(segs, 'rewrite must set at least one of pathPrefix, path or host')
    }
    if (w.path !== undefined && w.pathPrefix !== undefined) {
      invalid([...segs, 'path'], 'rewrite must set at most one of pathPrefix or path, found pathPrefix and path', 'key')
    }
    if (w.pathPrefix !== undefined && !prefixMatch) {
      invalid([...segs, 'pathPrefix'], 'rewrite.pathPrefix replaces the matched prefix: the route needs a match.path.prefix or match.path.segmentPrefix', 'key')
    }
  }
  if (route.redirect) {
    const d = route.redirect
    const segs = [...rSegs, 'redirect']
    if (d.path !== undefined && d.pathPrefix !== undefined) {
      invalid([...segs, 'pathPrefix'], 'redirect must set at most one of path or pathPrefix, found path and pathPrefix', 'key')
    } else if (d.pathPrefix !== undefined && !prefixMatch) {
      invalid([...segs, 'pathPrefix'], 'redirect.pathPrefix replaces the matched prefix: the route needs a match.path.prefix or match.path.segmentPrefix', 'key')
    }
  }
  if (route.retry) {
    const r = route.retry
    const segs = [...rSegs, 'retry']
    const onCodes = r.on?.includes('retriable-status-codes') ?? false
    if (r.retriableStatusCodes !== undefined && r.retriableStatusCodes.length > 0 && !onCodes) {
      invalid([...segs, 'retriableStatusCodes'], 'retriableStatusCodes needs "retriable-status-codes" in retry.on (the default of on does not include it)', 'key')
    }
    if (onCodes && (r.retriableStatusCodes === undefined || r.retriableStatusCodes.length === 0)) {
      invalid([...segs, 'on', r.on!.indexOf('retriable-status-codes')], '"retriable-status-codes" needs retry.retriableStatusCodes (the codes to retry)')
    }
    const b = r.backoff
    if (b?.base !== undefined && b.max !== undefined) {
      const base = durationMs(b.base)
      const max = durationMs(b.max)
      if (base !== undefined && max !== undefined && base > max) {
        invalid([...segs, 'backoff', 'max'], `backoff.max "${b.max}" is shorter than backoff.base "${b.base}"`)
      }
    }
  }
  if (route.rateLimit) {
    const segs = [...rSegs, 'rateLimit']
    positiveDuration(route.rateLimit.interval, [...segs, 'interval'], invalid)
    const key = route.rateLimit.key
    if (key !== undefined) {
      const set = (['header', 'clientAddress'] as const).filter((k) => key[k] !== undefined)
      if (set.length === 0) invalid([...segs, 'key'], 'rateLimit.key must set one of header or clientAddress')
      else if (set.length > 1) invalid([...segs, 'key', 'clientAddress'], 'rateLimit.key must set only one of header or clientAddress, found header and clientAddress', 'key')
    }
  }
  if (route.fault && route.fault.delay === undefined && route.fault.abort === undefined) {
    invalid([...rSegs, 'fault'], 'fault must set delay, abort or both')
  }
}

function durationMs(s: string): number | undefined {
  try {
    return parseDuration(s)
  } catch {
    return undefined // reported by checkDurations
  }
}

function positiveDuration(s: string, segs: Seg[], invalid: Invalid): void {
  if (durationMs(s) === 0) invalid(segs, `must be longer than 0 (found "${s}")`)
}

function checkPathMatch(m: NonNullable<RouteMatch['path']>, segs: Seg[], invalid: Invalid): void {
  const set = (['exact', 'prefix', 'segmentPrefix', 'regex'] as const).filter((k) => m[k] !== undefined)
  if (set.length > 1) {
    invalid([...segs, set[1]], `path match must set at most one of exact, prefix, segmentPrefix or regex, found ${set.join(' and ')}`, 'key')
  }
  if (m.regex !== undefined) checkRegex(m.regex, [...segs, 'regex'], invalid)
}

function checkValueMatch(kind: string, m: HeaderMatch | QueryMatch, segs: Seg[], invalid: Invalid): void {
  const set = (['exact', 'prefix', 'regex', 'present'] as const).filter((k) => m[k] !== undefined)
  if (set.length === 0) {
    invalid(segs, `${kind} match "${m.name}" must set one of exact, prefix, regex or present`)
  } else if (set.length > 1) {
    invalid([...segs, set[1]], `${kind} match "${m.name}" must set only one of exact, prefix, regex or present, found ${set.join(' and ')}`, 'key')
  }
  if (m.regex !== undefined) checkRegex(m.regex, [...segs, 'regex'], invalid)
}

function checkRegex(source: string, segs: Seg[], invalid: Invalid): void {
  try {
    new RegExp(source)
  } catch (err) {
    invalid(segs, errorText(err))
  }
}

/** No two virtual hosts of a table may claim the same host name (compared case-insensitively). */
function checkDomains(vhosts: VirtualHost[], base: Seg[], invalid: Invalid, lineOf: (segs: Seg[]) => number): void {
  const owner = new Map<string, { vh: number; segs: Seg[] }>()
  vhosts.forEach((vh, v) => {
    const sources: Array<{ segs: Seg[]; domains: string[]; via: string }> = []
    if (vh.service) {
      sources.push({ segs: [...base, v, 'service'], domains: serviceDomains(vh.service), via: ` (from service "${vh.service.name}")` })
    }
    vh.domains?.forEach((d, i) => sources.push({ segs: [...base, v, 'domains', i], domains: [d], via: '' }))
    if (sources.length === 0 || sources.every((s) => s.domains.length === 0)) {
      invalid([...base, v], `virtual host "${vh.name}" matches no host: set "service" or "domains"`)
      return
    }
    for (const s of sources) {
      let reported = false
      for (const d of s.domains) {
        const key = d.toLowerCase()
        const prev = owner.get(key)
        if (prev === undefined) owner.set(key, { vh: v, segs: s.segs })
        else if (prev.vh !== v && !reported) {
          reported = true
          invalid(s.segs, `domain "${d}"${s.via} is already claimed by virtual host "${vhosts[prev.vh].name}" (line ${lineOf(prev.segs)})`)
        }
      }
    }
  })
}
