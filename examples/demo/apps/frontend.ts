// frontend: the page. For each request it calls catalogue and reviews in parallel through its
// own sidecar (--outbound, the sidecar's outbound listener; the Host header names the Service,
// as a DNS name would in a cluster) and answers with both. Without the catalogue there is no
// page (502); without reviews the page is served without them.
import { Agent, request } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { PROPAGATED, options, required, sendJson, serve } from './serve.ts'

const o = options(['port', 'outbound'])
const port = Number(required('port', o.port))
const [outHost, outPort] = required('outbound', o.outbound).split(':')
const agent = new Agent({ keepAlive: true, maxSockets: 64 })

interface Reply {
  status: number
  body: unknown
}

function call(service: string, path: string, incoming: IncomingHttpHeaders): Promise<Reply> {
  const headers: Record<string, string> = { host: service }
  for (const h of PROPAGATED) {
    const v = incoming[h]
    if (typeof v === 'string') headers[h] = v
  }
  return new Promise((resolve) => {
    const req = request({ host: outHost, port: Number(outPort), path, headers, agent, timeout: 5000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => {
        let body: unknown = text
        try {
          body = JSON.parse(text)
        } catch {
          // a proxy's local reply is text/plain: keep it as it is
        }
        resolve({ status: res.statusCode ?? 0, body })
      })
      res.on('error', () => resolve({ status: 0, body: 'response aborted' }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', (e) => resolve({ status: 0, body: e.message }))
    req.end()
  })
}

serve(
  'frontend',
  port,
  (req, res) => {
    req.resume()
    req.on('end', () => {
      void Promise.all([call('catalogue', '/items', req.headers), call('reviews', '/reviews', req.headers)]).then(([catalogue, reviews]) => {
        if (catalogue.status !== 200) return sendJson(res, 502, { service: 'frontend', error: `catalogue answered ${catalogue.status}`, detail: catalogue.body })
        sendJson(res, 200, {
          service: 'frontend',
          catalogue: catalogue.body,
          reviews: reviews.status === 200 ? reviews.body : null,
        })
      })
    })
  },
  () => agent.destroy(),
)
