// What every benchmark peer (upstream or proxy) looks like once started.

export interface Peer {
  /** Row name: direct (the upstream itself), weft, haproxy, nginx, fast-proxy, http-proxy. */
  name: string
  /** Port wrk sends the load to (127.0.0.1). */
  port: number
  /** The process that serves the traffic (nginx: the worker; otherwise the started process). */
  pid: number
  /** The process we started (process-group leader). */
  leaderPid: number
  /** Free-form facts worth keeping in the results (config file, threads, ...). */
  info: Record<string, unknown>
  /** null while the started process runs; otherwise why it is gone (with the end of its log). */
  deadReason(): string | null
  stop(): Promise<void>
}

export interface PeerContext {
  /** A fresh temp dir for this peer's config, pid and log files. */
  dir: string
  /** The two upstream ports on 127.0.0.1 to load-balance over. */
  upstreamPorts: number[]
  /** Port this peer must listen on. */
  port: number
  /** Per-peer extra input (e.g. the Weft config file given on the command line). */
  options?: Record<string, string | undefined>
}

/** The 12-byte body the upstream returns; proxies are checked to pass it through unchanged. */
export const UPSTREAM_BODY = 'hello world\n'
/** Response header added by the upstream naming which of its two ports served the request. */
export const UPSTREAM_PORT_HEADER = 'x-upstream-port'
/** Header that the bench routing configs send to a separate "canary" route (never set by wrk). */
export const CANARY_HEADER = 'x-bench-canary'
