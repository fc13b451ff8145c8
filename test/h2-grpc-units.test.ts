// The gRPC helpers of the HTTP/2 path: grpc-timeout parsing, the grpc-status of local replies, the
// HTTP status a grpc-status stands for, grpc-message encoding, and the gRPC retry conditions.
import t from 'tap'
import { CompiledRetry } from '../proxy/filters/retry/policy.ts'
import { encodeGrpcMessage, grpcStatusOfLocal, grpcTimeoutMs, httpStatusOfGrpc, isGrpc } from '../proxy/h2/grpc.ts'

t.test('grpc-timeout: digits and a unit, rounded up to ms; anything else ignored', async (t) => {
  t.equal(grpcTimeoutMs('100m'), 100)
  t.equal(grpcTimeoutMs('5S'), 5000)
  t.equal(grpcTimeoutMs('2M'), 120_000)
  t.equal(grpcTimeoutMs('1H'), 3_600_000)
  t.equal(grpcTimeoutMs('1500u'), 2)
  t.equal(grpcTimeoutMs('1n'), 1, 'a tiny timeout is not 0')
  t.equal(grpcTimeoutMs('0m'), 0)
  t.equal(grpcTimeoutMs('99999999H'), 99999999 * 3_600_000, '8 digits')
  for (const bad of [undefined, '', 'm', '100', '100x', '-1m', '1.5S', '123456789S', ' 1S']) t.equal(grpcTimeoutMs(bad), -1, JSON.stringify(bad))
})

t.test('local reply statuses, grpc → HTTP, message encoding, content types', async (t) => {
  t.equal(grpcStatusOfLocal(429, 'RL'), 8)
  t.equal(grpcStatusOfLocal(504, 'UT'), 4)
  t.equal(grpcStatusOfLocal(404, 'NR'), 12)
  t.equal(grpcStatusOfLocal(503, 'UF'), 14)
  t.equal(grpcStatusOfLocal(502, 'UC'), 14)
  t.equal(grpcStatusOfLocal(500, 'FI'), 2)
  t.equal(httpStatusOfGrpc(14), 503)
  t.equal(httpStatusOfGrpc(4), 504)
  t.equal(httpStatusOfGrpc(13), 500)
  t.equal(httpStatusOfGrpc(0), 200)
  t.equal(encodeGrpcMessage('a b%c\n✓'), 'a b%25c%0A%E2%9C%93')
  t.ok(isGrpc('application/grpc'))
  t.ok(isGrpc('application/grpc+proto'))
  t.notOk(isGrpc('application/json'))
  t.notOk(isGrpc(undefined))
})

t.test('retry.on gRPC conditions retry those grpc-status codes only', async (t) => {
  const r = new CompiledRetry({ attempts: 1, on: ['unavailable', 'resource-exhausted', 'reset'] })
  t.ok(r.retriableGrpc(14))
  t.ok(r.retriableGrpc(8))
  t.notOk(r.retriableGrpc(13))
  t.notOk(r.retriableGrpc(0))
  t.notOk(r.retriableStatus(503), 'no HTTP status condition came with them')
  t.ok(r.retriableFailure(2 /* FAIL_RESET */))
  const all = new CompiledRetry({ attempts: 1, on: ['cancelled', 'deadline-exceeded', 'internal'] })
  t.same([1, 4, 13, 14].map((c) => all.retriableGrpc(c)), [true, true, true, false])
})
