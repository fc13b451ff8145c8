// `npm run mesh`: the static-mode example. Starts the "pods" of the example
// Services on 127.0.0.1 (reviews v1 on 9081, v2 on 9082, the shadow on 9083) and a sidecar for a
// "productpage" workload configured by bootstrap.yaml plus the resources in resources/. Edit the
// resources while it runs: the sidecar reloads them; a bad edit is rejected (see /config_dump).
// `npm run mesh [-- --base-port N]`: with a base port, copies of the files are used with the admin
// on N, the outbound listener on N+1 and the pods on N+2, N+3, N+4 (instead of 15000, 15001, 9081-9083).
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startHelloService } from '../hello-service.ts'
import { startStaticSidecar } from '../../cli/proxy-static.ts'
import { ConfigLoadError } from '../../proxy/main.ts'
import { ANY_PORT, basePort, BOUND_PORT, copyDir, moveFile, tempCopyDir } from '../ports.ts'
import { createLogger } from '../../proxy/log.ts'

const base = basePort(5)
let configFile = fileURLToPath(new URL('./bootstrap.yaml', import.meta.url))
let resources = fileURLToPath(new URL('./resources/', import.meta.url))
const podPorts = base === null ? [9081, 9082, 9083] : [base + 2, base + 3, base + 4]
if (base !== null) {
  const dir = tempCopyDir()
  configFile = moveFile(configFile, dir, new Map([[15000, base], [15001, base + 1]]), BOUND_PORT)
  const copy = copyDir(resources, dir, 'resources')
  moveFile(join(resources, 'endpointslices.yaml'), copy, new Map([[9081, podPorts[0]], [9082, podPorts[1]], [9083, podPorts[2]]]), ANY_PORT)
  resources = copy + '/'
}
const log = createLogger(process.env.WEFT_LOG_LEVEL ?? 'warn')

try {
  const pods = [
    await startHelloService({ name: 'reviews-v1', port: podPorts[0] }),
    await startHelloService({ name: 'reviews-v2', port: podPorts[1] }),
    await startHelloService({ name: 'reviews-shadow', port: podPorts[2] }),
  ]
  const sidecar = await startStaticSidecar({ configFile, resources: [resources], log })
  const out = sidecar.port('outbound')
  process.stdout.write(`
Weft sidecar of "productpage" (namespace shop), routing from ${resources}

  The canary (90 % v1, 10 % v2; 10 % mirrored to the shadow):
    curl -s http://127.0.0.1:${out}/reviews/1 -H 'Host: reviews.shop.svc.cluster.local:9080'
  Testers always get v2 (a header, a query parameter or a cookie):
    curl -s http://127.0.0.1:${out}/reviews/1 -H 'Host: reviews:9080' -H 'end-user: jason'
    curl -s 'http://127.0.0.1:${out}/reviews/1?version=v2' -H 'Host: reviews'
  Ratings by id (a regular expression, GET only):
    curl -s http://127.0.0.1:${out}/ratings/7 -H 'Host: reviews'
  The old API, rewritten to /reviews on v1:
    curl -s http://127.0.0.1:${out}/api/v1/7 -H 'Host: reviews'
  The old health check (exactly /healthz), rewritten to /reviews/health:
    curl -s http://127.0.0.1:${out}/healthz -H 'Host: reviews'
  Moved for good (301), and moved to HTTPS on another host (302):
    curl -si http://127.0.0.1:${out}/legacy/7 -H 'Host: reviews'
    curl -si http://127.0.0.1:${out}/account/me -H 'Host: reviews'
  Retries: the pods answer ?status=503 (and wait ?delay= ms); the canary tries 3 times, then relays it:
    curl -si 'http://127.0.0.1:${out}/reviews/1?status=503' -H 'Host: reviews'
    curl -s http://127.0.0.1:${sidecar.adminPort}/metrics | grep weft_proxy_decisions_total
  What the resources became:
    curl -s http://127.0.0.1:${sidecar.adminPort}/config_dump

Ctrl-C to stop.
`)
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    // Ctrl-C in a terminal: nothing else routes to this sidecar, so no drain period
    await sidecar.drain(5000, 0)
    for (const p of pods) {
      p.close()
      p.closeAllConnections()
    }
  }
  process.on('SIGINT', () => void stop())
  process.on('SIGTERM', () => void stop())
} catch (err) {
  if (err instanceof ConfigLoadError) process.stderr.write(err.errors.join('\n') + '\n')
  else process.stderr.write(`weft mesh example: ${(err as Error).message}\n`)
  process.exit(1)
}
