// A small example service for the quick start and demos: answers every request with JSON saying
// which service and instance answered and what it received. Query parameters shape the answer:
// ?status=503 sets the status, ?delay=200 waits that many milliseconds first.
import { createServer, type Server } from 'node:http'

export function startHelloService(opts: { name: string; port: number; host?: string }): Promise<Server> {
  const server = createServer((req, res) => {
    let bytes = 0
    req.on('data', (d: Buffer) => (bytes += d.length))
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x')
      const status = Number(url.searchParams.get('status') ?? 200)
      const delay = Number(url.searchParams.get('delay') ?? 0)
      const body = JSON.stringify({
        service: opts.name,
        instance: `${opts.host ?? '127.0.0.1'}:${opts.port}`,
        method: req.method,
        path: req.url,
        requestBytes: bytes,
        headers: req.headers,
      }) + '\n'
      setTimeout(() => {
        res.writeHead(Number.isInteger(status) && status >= 200 && status <= 599 ? status : 400, {
          'content-type': 'application/json',
        })
        res.end(body)
      }, Math.min(Math.max(delay, 0), 30_000))
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve(server))
  })
}
