// `npm run hello [-- --base-port N]`: the hello service with a Weft sidecar in front of it, from
// examples/bootstrap.yaml. Prints where to send requests; Ctrl-C drains the sidecar and stops both.
// With --base-port N, a copy of the bootstrap is used with the admin on N, the outbound listener on
// N+1, the inbound one on N+2 and the hello service on N+3 (instead of 15000, 15001, 15006, 8080).
import { fileURLToPath } from 'node:url'
import { startHelloService } from './hello-service.ts'
import { basePort, BOUND_PORT, moveFile, tempCopyDir } from './ports.ts'
import { ConfigLoadError, startSidecar } from '../proxy/main.ts'
import { createLogger } from '../proxy/log.ts'

const base = basePort(4)
const bootstrap = fileURLToPath(new URL('./bootstrap.yaml', import.meta.url))
const appPort = base === null ? 8080 : base + 3
const configFile = base === null
  ? bootstrap
  : moveFile(bootstrap, tempCopyDir(), new Map([[15000, base], [15001, base + 1], [15006, base + 2], [8080, appPort]]), BOUND_PORT)
const log = createLogger(process.env.WEFT_LOG_LEVEL ?? 'warn')

try {
  const service = await startHelloService({ name: 'hello', port: appPort })
  const sidecar = await startSidecar({ configFile, log })
  const out = sidecar.port('outbound')
  const inb = sidecar.port('inbound')
  const admin = sidecar.adminPort
  process.stdout.write(`
Weft sidecar running in front of the example "hello" service (127.0.0.1:${appPort}).
Config: ${configFile} (edit it: the sidecar reloads it; a bad edit is rejected and shown on /config_dump)

  Outbound (the app's calls to other services):
    curl -i http://127.0.0.1:${out}/ -H 'Host: hello'
    curl -i http://127.0.0.1:${out}/ -H 'Host: hello.default.svc.cluster.local:8080' -H 'x-canary: 1'
    curl -i http://127.0.0.1:${out}/healthz -H 'Host: hello'
  Inbound (calls from the mesh to this workload):
    curl -i http://127.0.0.1:${inb}/anything
  Admin:
    curl http://127.0.0.1:${admin}/ready   /live   /config_dump   /clusters   /stats

Ctrl-C to stop.
`)
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    process.stdout.write('draining...\n')
    // Ctrl-C in a terminal: nothing else routes to this sidecar, so no drain period
    await sidecar.drain(5000, 0)
    service.close()
    service.closeAllConnections()
    process.stdout.write('stopped\n')
  }
  process.on('SIGINT', () => void stop())
  process.on('SIGTERM', () => void stop())
} catch (err) {
  if (err instanceof ConfigLoadError) process.stderr.write(err.errors.join('\n') + '\n')
  else process.stderr.write(`weft example: ${(err as Error).message}\n`)
  process.exit(1)
}
