// The access log of a real sidecar stopped by SIGTERM under keep-alive load: every response a client
// received has its line, whole, in the file when the process has exited (the last slab is written
// by the drain's close, not lost with the process).
import t from 'tap'
import { Agent, request } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cluster, freePort, makeConfig, routeTo, sleep, spawnWeft, tempDir, until, waitExit, waitReady, writeConfig } from './helpers/sidecar.ts'
import { startHttpUpstream } from './helpers/upstream.ts'

function get(port: number, agent: Agent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { host: 'app' } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('SIGTERM under load: a whole line for every answered request', async (t) => {
  const up = await startHttpUpstream(t, { name: 'app' })
  const [port, adminPort] = [await freePort(), await freePort()]
  const dir = tempDir(t)
  const logFile = join(dir, 'access.log')
  const config = makeConfig({ port, adminPort, drainTimeout: '5s', drainPeriod: '200ms', routes: [routeTo('app')], clusters: [cluster('app', [up.port])] })
  config.telemetry = { accessLog: { enabled: true, path: logFile } }
  const child = spawnWeft(t, writeConfig(dir, config))
  await waitReady(adminPort)

  const agent = new Agent({ keepAlive: true, maxSockets: 20 })
  t.teardown(() => agent.destroy())
  let answered = 0
  let exited = false
  void child.exited.then(() => (exited = true))
  const worker = async (w: number): Promise<void> => {
    for (let n = 0; !exited; n++) {
      try {
        if ((await get(port, agent, `/w${w}/${n}`)) === 200) answered++
      } catch {
        await sleep(5) // the listener has closed: refused until the process is gone
      }
    }
  }
  const load = Promise.all(Array.from({ length: 20 }, (_, w) => worker(w)))
  await until('load running', () => answered > 1000, 20_000)
  child.child.kill('SIGTERM')
  const exit = await waitExit(child, 10_000)
  exited = true
  await load
  t.same(exit, { code: 0, signal: null }, 'drained and exited')

  const text = readFileSync(logFile, 'utf8')
  t.ok(text.endsWith('\n'), 'the file ends with a whole line')
  const lines = text.split('\n').slice(0, -1)
  let bad = 0
  let ok = 0
  for (const l of lines) {
    try {
      if ((JSON.parse(l) as { response_code: number }).response_code === 200) ok++
    } catch {
      bad++
    }
  }
  t.equal(bad, 0, 'every line is whole JSON')
  t.equal(ok, answered, `a 200 line for each of the ${answered} responses received`)
})
