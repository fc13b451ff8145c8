// Opening a try on an endpoint: a stream on its HTTP/2 session when the cluster speaks HTTP/2, else
// a connection of its HTTP/1 pool. Both are UpstreamTry (./try.ts), so what opens one (an exchange,
// a mirrored copy) handles both alike.
import type { EndpointPool } from '../cluster/pool.ts'
import { H1Try } from './h1-try.ts'
import { H2Try } from './h2-try.ts'
import type { TryHandler, UpstreamTry } from './try.ts'

/** A try for h on pool's endpoint, not started (start() acquires the connection or session). */
export function newTry(http2: boolean, pool: EndpointPool, h: TryHandler, queued: Buffer[] | null, ended: boolean): UpstreamTry {
  return http2 ? new H2Try(pool, h, queued, ended) : new H1Try(pool, h, queued, ended)
}
