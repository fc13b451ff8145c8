// A queueing upstream for the overload bench (bench/overload.ts): C workers, each request takes S
// ms of a worker, the rest wait in FIFO order; so its latency is S while fewer than C requests are
// in flight and grows with the queue past that (the knee). Capacity: C / S requests per ms.
// `node bench/peers/queue-upstream.ts PORT C S`; prints "ready" when listening.
import { createServer, type ServerResponse } from 'node:http'

const [port, workers, serviceMs] = process.argv.slice(2).map(Number) as [number, number, number]
let busy = 0
const queue: ServerResponse[] = []
const run = (res: ServerResponse) => {
  busy++
  setTimeout(() => {
    busy--
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' })
    res.end('ok\n')
    const next = queue.shift()
    if (next !== undefined) run(next)
  }, serviceMs)
}
const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => (busy < workers ? run(res) : void queue.push(res)))
})
server.keepAliveTimeout = 60_000
server.listen(port, '127.0.0.1', () => console.log('ready'))
process.on('SIGTERM', () => process.exit(0))
