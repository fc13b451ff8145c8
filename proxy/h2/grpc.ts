// gRPC over the proxy's HTTP/2 path: what a grpc-timeout means, how the proxy's own answers look
// to a gRPC client, and which HTTP status a grpc-status stands for (for outlier detection, the
// breaker and the retry conditions written in HTTP terms). Envoy's choices unless said otherwise.

export const GRPC_OK = 0
export const GRPC_CANCELLED = 1
export const GRPC_UNKNOWN = 2
export const GRPC_DEADLINE_EXCEEDED = 4
export const GRPC_NOT_FOUND = 5
export const GRPC_PERMISSION_DENIED = 7
export const GRPC_RESOURCE_EXHAUSTED = 8
export const GRPC_UNIMPLEMENTED = 12
export const GRPC_INTERNAL = 13
export const GRPC_UNAVAILABLE = 14
export const GRPC_UNAUTHENTICATED = 16

/** content-type application/grpc, application/grpc+proto, application/grpc-web… */
export function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith('application/grpc')
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }

/**
 * grpc-timeout (gRPC over HTTP/2: 1–8 digits and a unit H M S m u n) in ms, rounded up so that a
 * tiny timeout is not 0; -1 when absent or malformed (then ignored, as Envoy does).
 */
export function grpcTimeoutMs(v: string | undefined): number {
  if (v === undefined || v.length < 2 || v.length > 9) return -1
  const unit = UNIT_MS[v[v.length - 1]]
  if (unit === undefined) return -1
  const digits = v.slice(0, -1)
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i)
    if (c < 48 || c > 57) return -1
  }
  return Math.ceil(Number(digits) * unit)
}

/**
 * The grpc-status of a local reply with this HTTP status (Envoy's httpToGrpcStatus), except that
 * the proxy's rate limit says RESOURCE_EXHAUSTED and its timeouts DEADLINE_EXCEEDED: a gRPC client
 * can tell them from an unavailable backend that way.
 */
export function grpcStatusOfLocal(status: number, flag: string): number {
  if (flag === 'RL') return GRPC_RESOURCE_EXHAUSTED
  if (flag === 'UT') return GRPC_DEADLINE_EXCEEDED
  switch (status) {
    case 400: return GRPC_INTERNAL
    case 401: return GRPC_UNAUTHENTICATED
    case 403: return GRPC_PERMISSION_DENIED
    case 404: return GRPC_UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return GRPC_UNAVAILABLE
    default: return GRPC_UNKNOWN
  }
}

/** The HTTP status a grpc-status stands for (Envoy's grpcToHttpStatus), for outlier detection and the breaker. */
export function httpStatusOfGrpc(code: number): number {
  switch (code) {
    case GRPC_OK: return 200
    case GRPC_CANCELLED: return 499
    case GRPC_DEADLINE_EXCEEDED: return 504
    case GRPC_NOT_FOUND: return 404
    case GRPC_PERMISSION_DENIED: return 403
    case GRPC_RESOURCE_EXHAUSTED: return 429
    case GRPC_UNIMPLEMENTED: return 501
    case GRPC_UNAVAILABLE: return 503
    case GRPC_UNAUTHENTICATED: return 401
    case 3: case 9: case 11: return 400
    case 6: case 10: return 409
    default: return 500
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2): everything outside printable ASCII, and %. */
export function encodeGrpcMessage(m: string): string {
  let out = ''
  for (const b of Buffer.from(m, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0')
  }
  return out
}
