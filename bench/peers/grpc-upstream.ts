// The gRPC bench's upstream (bench/grpc.ts): an h2c node:http2 server on 127.0.0.1:PORT that answers
// every call, once its request ended, as a gRPC unary server does: :status 200 and content-type
// application/grpc, one length-prefixed 12-byte message, trailers grpc-status 0. A call to
// /weft.bench.Echo/Stream is server-streaming: 100 messages of 1 KiB (1024 bytes behind the 5-byte
// prefix), then the trailers.
//   node bench/peers/grpc-upstream.ts PORT
import { createServer, type ServerHttp2Stream } from 'node:http2'

const port = Number(process.argv[2])
const reply = Buffer.alloc(17)
reply.writeUInt32BE(12, 1)
reply.write('hello world\n', 5)

/** messages of one server-streaming call (bench/grpc.ts reads the same numbers) */
const STREAM_MESSAGES = 100
const STREAM_MESSAGE_BYTES = 1024
const streamMessage = Buffer.alloc(5 + STREAM_MESSAGE_BYTES, 0x61)
streamMessage[0] = 0
streamMessage.writeUInt32BE(STREAM_MESSAGE_BYTES, 1)

const server = createServer({ settings: { maxConcurrentStreams: 1000 } })
server.on('stream', (s: ServerHttp2Stream, headers) => {
  const streaming = headers[':path'] === '/weft.bench.Echo/Stream'
  s.on('error', () => {})
  s.on('data', () => {})
  s.on('end', () => {
    if (s.closed) return
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }))
    if (!streaming) {
      s.end(reply)
      return
    }
    for (let i = 0; i < STREAM_MESSAGES - 1; i++) s.write(streamMessage)
    s.end(streamMessage)
  })
})
server.on('sessionError', () => {})
server.listen(port, '127.0.0.1')
