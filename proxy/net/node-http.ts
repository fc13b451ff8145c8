// node:http's server, client request and agent, without importing node:http. In Node 26 importing
// `node:http` also loads Node's bundled undici (~70 ms and ~15 MB RSS in a sidecar, measured with
// process.moduleLoadList and RSS); the classes it re-exports live in _http_server, _http_client and
// _http_agent, which do not. Same classes, same behaviour: http.createServer(h) is
// new Server(h), http.request(o, cb) is new ClientRequest(o, cb). The types still come from
// node:http (type imports are erased).
import { createRequire } from 'node:module'
import type * as Http from 'node:http'

const require = createRequire(import.meta.url)
const { Server } = require('_http_server') as { Server: new (h: Http.RequestListener) => Http.Server }
const { ClientRequest } = require('_http_client') as { ClientRequest: new (o: Http.RequestOptions, cb?: (res: Http.IncomingMessage) => void) => Http.ClientRequest }

export const Agent = (require('_http_agent') as { Agent: typeof Http.Agent }).Agent
export type Agent = Http.Agent

/** http.createServer(handler) */
export function createServer(handler: Http.RequestListener): Http.Server {
  return new Server(handler)
}

/** http.request(options, onResponse) */
export function request(options: Http.RequestOptions, onResponse?: (res: Http.IncomingMessage) => void): Http.ClientRequest {
  return new ClientRequest(options, onResponse)
}
