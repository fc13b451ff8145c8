// A request record as the proxy hands it to the access log, with every field set (the tests of
// the log's lines and of its encoder start from it).
import type { RequestRecord } from '../../proxy/telemetry/types.ts'

export const RECORD_START = Date.UTC(2025, 0, 31, 12, 0, 0, 123)

export function requestRecord(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    startTime: RECORD_START,
    durationMs: 1.2345678,
    peer: null,
    method: 'GET',
    authority: 'reviews:9080',
    path: '/reviews/1',
    protocol: 'HTTP/1.1',
    status: 200,
    grpcStatus: '',
    flags: '',
    routeName: 'reviews/0',
    vhostName: 'reviews',
    clusterName: 'reviews-v1',
    upstreamHost: '10.0.0.7:9080',
    bytesIn: 12,
    bytesOut: 3456,
    requestId: '0b7e1c0e-4a4b-4c5e-9a52-8d1f0c2f3a10',
    traceId: '',
    downstreamAddress: '127.0.0.1',
    ...over,
  }
}
