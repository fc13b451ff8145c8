// catalogue: the list of items, after a millisecond or two of "work".
import { options, required, sendJson, serve } from './serve.ts'

// --outbound (its sidecar's outbound listener) is accepted and unused: catalogue calls nobody
const o = options(['port', 'outbound'])
const port = Number(required('port', o.port))

const items = [
  { id: 1, name: 'Weft', kind: 'service mesh' },
  { id: 2, name: 'Warp', kind: 'loom' },
  { id: 3, name: 'Shuttle', kind: 'tool' },
]

serve('catalogue', port, (req, res) => {
  req.resume()
  req.on('end', () => setTimeout(() => sendJson(res, 200, { service: 'catalogue', items }), 1 + Math.random() * 2))
})
