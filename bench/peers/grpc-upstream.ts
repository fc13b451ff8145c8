// The gRPC bench's upstream (bench/grpc.ts): an h2c node:http2 server on 127.0.0.1:PORT that answers
// every call, once its request ended, as a gRPC unary server does: :status 200 and content-type
// application/grpc, one length-prefixed 12-byte message, trailers grpc-status 0.
//   node bench/peers/grpc-upstream.ts PORT
import { createServer, type ServerHttp2Stream } from 'node:http2'

const port = Number(process.argv[2])
const reply = Buffer.alloc(17)
reply.writeUInt32BE(12, 1)
reply.write('hello world\n', 5)

const server = createServer({ settings: { maxConcurrentStreams: 1000 } })
server.on('stream', (s: ServerHttp2Stream) => {
  s.on('error', () => {})
  s.on('data', () => {})
  s.on('end', () => {
    if (s.closed) return
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
    s.once('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }))
    s.end(reply)
  })
})
server.on('sessionError', () => {})
server.listen(port, '127.0.0.1')
