// A minimal keep-alive reverse proxy built on http-proxy (node-http-proxy), one Node process.
// Usage: node bench/peers/http-proxy-server.ts PORT UPSTREAM_PORT[,UPSTREAM_PORT...]
import http from 'node:http'
import { createRequire } from 'node:module'
import { pickRoute } from './node-routing.ts'

// http-proxy ships no types; this is the part of its API used here.
interface ProxyServer {
  web(req: http.IncomingMessage, res: http.ServerResponse, opts: { target: string }): void
  on(event: 'error', fn: (err: Error, req: http.IncomingMessage, res: http.ServerResponse) => void): void
}
const require = createRequire(import.meta.url)
const httpProxy = require('http-proxy') as { createProxyServer(opts: { agent: http.Agent }): ProxyServer }

const port = Number(process.argv[2])
const upstreamPorts = (process.argv[3] ?? '').split(',').map(Number)
if (!port || upstreamPorts.length === 0 || upstreamPorts.some((p) => !p)) {
  console.error('usage: http-proxy-server.ts PORT UPSTREAM_PORT[,UPSTREAM_PORT...]')
  process.exit(2)
}

const targets = upstreamPorts.map((p) => `http://127.0.0.1:${p}`)
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 1024 })
const proxy = httpProxy.createProxyServer({ agent })
proxy.on('error', (err, _req, res) => {
  if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
  res.end(`bad gateway: ${err.message}\n`)
})
const clusters = { app: { next: 0 }, canary: { next: 0 } }

http
  .createServer((req, res) => {
    const cluster = clusters[pickRoute(req)]
    proxy.web(req, res, { target: targets[cluster.next++ % targets.length] })
  })
  .listen(port, '127.0.0.1')
