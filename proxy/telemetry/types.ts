// What telemetry sees of a request, and the sinks that consume it. The router's Exchange object
// itself implements RequestRecord (no extra allocation per request); sinks read it once, when the
// exchange completes, and must not keep it.
import type { PeerIdentity } from '../identity/authz.ts'
import type { ExplainTrace } from './explain.ts'

/** One completed (or failed) request, as seen by one proxy listener. */
export interface RequestRecord {
  /** wall clock at the start of the request (ms since epoch) */
  readonly startTime: number
  /** duration from the request head parsed to the last response byte written (ms, fractional) */
  readonly durationMs: number
  readonly method: string
  /** Host / :authority as received */
  readonly authority: string
  /** path with query as received */
  readonly path: string
  /** "HTTP/1.1" or "HTTP/1.0" (later "HTTP/2", "gRPC") */
  readonly protocol: string
  /** status sent to the client; 0 when the client went away before any response */
  readonly status: number
  /** grpc-status of the response, "" when none */
  readonly grpcStatus: string
  /** response flag ("" when the response was simply relayed), e.g. NR, UF, UC, UPE, DC */
  readonly flags: string
  /** route name, "" when none matched */
  readonly routeName: string
  /** virtual host name, "" when none matched */
  readonly vhostName: string
  /** cluster name, "" when none */
  readonly clusterName: string
  /** endpoint "address:port", "" when none */
  readonly upstreamHost: string
  /** request body bytes received from the client */
  readonly bytesIn: number
  /** response body bytes sent to the client */
  readonly bytesOut: number
  /** x-request-id sent upstream (generated when absent), "" for local replies before routing */
  readonly requestId: string
  /** trace id when tracing is on, else "" */
  readonly traceId: string
  /** client address */
  readonly downstreamAddress: string
  /** the caller's identity when it came over mutual TLS (inbound listeners), else null */
  readonly peer: PeerIdentity | null
  /** the decision trace when this request was selected for one (./explain.ts), else null */
  readonly explain?: ExplainTrace | null
}

/** Labels that describe the two sides of the traffic, Istio's convention. */
export interface PeerLabels {
  readonly reporter: 'source' | 'destination'
  readonly sourceWorkload: string
  readonly sourceNamespace: string
  readonly destinationService: string
  readonly destinationWorkload: string
  readonly destinationNamespace: string
  /** SPIFFE IDs (Istio's source_principal / destination_principal), "unknown" when not known */
  readonly sourcePrincipal: string
  readonly destinationPrincipal: string
  /** Istio's connection_security_policy: mutual_tls or none (reporter=destination), unknown (reporter=source) */
  readonly connectionSecurityPolicy: string
}

export interface RequestSink {
  onRequest(r: RequestRecord): void
}
