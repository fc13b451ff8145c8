// A minimal keep-alive reverse proxy built on fast-proxy (http.Agent keep-alive mode), one Node process.
// Usage: node bench/peers/fast-proxy-server.ts PORT UPSTREAM_PORT[,UPSTREAM_PORT...]
import http from 'node:http'
import fastProxy from 'fast-proxy'
import { pickRoute } from './node-routing.ts'

const port = Number(process.argv[2])
const upstreamPorts = (process.argv[3] ?? '').split(',').map(Number)
if (!port || upstreamPorts.length === 0 || upstreamPorts.some((p) => !p)) {
  console.error('usage: fast-proxy-server.ts PORT UPSTREAM_PORT[,UPSTREAM_PORT...]')
  process.exit(2)
}

const bases = upstreamPorts.map((p) => `http://127.0.0.1:${p}`)
// fast-proxy's default transport is http.request with keep-alive agents (keepAlive: true, maxSockets 2048).
const { proxy } = fastProxy({ cacheURLs: 100 })
const clusters = { app: { next: 0 }, canary: { next: 0 } }

http
  .createServer((req, res) => {
    const cluster = clusters[pickRoute(req)]
    const base = bases[cluster.next++ % bases.length]
    proxy(req, res, req.url ?? '/', { base })
  })
  .listen(port, '127.0.0.1')
