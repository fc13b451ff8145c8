// node:http's server and client request, without importing node:http. In Node 26 importing
// `node:http` also loads Node's bundled undici (~70 ms and ~15 MB RSS in a sidecar, measured with
// process.moduleLoadList and RSS); the classes it re-exports live in _http_server, _http_client and
// _http_agent, which do not. Same classes, same behaviour: http.createServer(h) is
// new Server(h), http.request(o, cb) is new ClientRequest(o, cb). The types still come from
// node:http (type imports are erased).
import { createRequire } from 'node:module'
import type * as Http from 'node:http'

const require = createRequire(import.meta.url)
const { Server } = require('_http_server') as { Server: new (h: Http.RequestListener) => Http.Server }
// the client side on first use (an app health probe): a sidecar's start needs only the server
// (_http_client is ~2 ms and ~30 page faults of it)
type ClientRequestClass = new (o: Http.RequestOptions, cb?: (res: Http.IncomingMessage) => void) => Http.ClientRequest
let ClientRequest: ClientRequestClass | null = null

/** http.createServer(handler) */
export function createServer(handler: Http.RequestListener): Http.Server {
  return new Server(handler)
}

/** http.request(options, onResponse) */
export function request(options: Http.RequestOptions, onResponse?: (res: Http.IncomingMessage) => void): Http.ClientRequest {
  ClientRequest ??= (require('_http_client') as { ClientRequest: ClientRequestClass }).ClientRequest
  return new ClientRequest(options, onResponse)
}
