// reviews: one version of the reviews service (--version v1 or v2). v2 adds star ratings, is a
// little slower, and has a bug: --error-rate of its answers are 500 (the demo's v2 uses 0.2).
import { options, required, sendJson, serve } from './serve.ts'

// --outbound (its sidecar's outbound listener) is accepted and unused: reviews calls nobody
const o = options(['port', 'outbound', 'version', 'error-rate'])
const port = Number(required('port', o.port))
const version = required('version', o.version)
const errorRate = Number(o['error-rate'] ?? 0)

serve(`reviews-${version}`, port, (req, res) => {
  req.resume()
  req.on('end', () => {
    const work = version === 'v1' ? 1 + Math.random() * 2 : 2 + Math.random() * 6
    setTimeout(() => {
      if (Math.random() < errorRate) return sendJson(res, 500, { service: 'reviews', version, error: 'NullPointerException in StarRenderer' })
      const reviews = [
        { reviewer: 'ada', text: 'Routes like a dream.' },
        { reviewer: 'linus', text: 'Fast enough.' },
      ]
      sendJson(res, 200, { service: 'reviews', version, reviews: version === 'v1' ? reviews : reviews.map((r, i) => ({ ...r, stars: 5 - i })) })
    }, work)
  })
})
