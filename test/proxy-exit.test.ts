// How `weft proxy` ends: signals at any moment of its start, and a log reader that is gone.
// A sidecar whose log reader is gone (its stdout pipe closed: a runner or log shipper that died)
// must still drain and exit on SIGTERM. pino's asynchronous stdout destination flushed what it
// held at exit with sonic-boom's flushSync, which retries every write error, EPIPE included, every
// 100 ms for ever: the sidecar hung in its exit handler (found by test/demo.test.ts, whose runner
// is killed with SIGKILL).
import t from 'tap'
import { cluster, freePort, makeConfig, routeTo, spawnWeft, tempDir, until, waitExit, waitReady, writeConfig } from './helpers/sidecar.ts'

for (const stream of ['stdout', 'stderr'] as const) {
  t.test(`${stream} closed by its reader: SIGTERM still drains and exits (code 0), the logs lost without a hang`, async (t) => {
    const admin = await freePort()
    const file = writeConfig(tempDir(t), makeConfig({ adminPort: admin, drainPeriod: '0s', drainTimeout: '2s', routes: [routeTo('app')], clusters: [cluster('app', [9])] }))
    // info: the drain logs a line after the reader is gone
    const c = spawnWeft(t, file, { WEFT_LOG_LEVEL: 'info' })
    await waitReady(admin)
    await until('the start-up logged', () => c.stdout().includes('"msg"'))
    // the reader closes its end: every later write of the sidecar to it fails with EPIPE
    c.child[stream]!.destroy()
    c.child.kill('SIGTERM')
    const exit = await waitExit(c, 10_000)
    t.same(exit, { code: 0, signal: null }, 'exited after its drain')
  })
}

t.test('SIGTERM as soon as the admin listener is logged (before the drain handler is set): held, then drained, exit 0', async (t) => {
  const admin = await freePort()
  const file = writeConfig(tempDir(t), makeConfig({ adminPort: admin, drainPeriod: '0s', drainTimeout: '2s', routes: [routeTo('app')], clusters: [cluster('app', [9])] }))
  const c = spawnWeft(t, file, { WEFT_LOG_LEVEL: 'info' })
  // the line is written synchronously, before startSidecar returns: the signal arrives while the
  // start-up's last steps run (the build's warm-cache step stops its sidecar the same way)
  c.child.stdout!.on('data', () => {
    if (c.stdout().includes('"admin listening"') && c.child.signalCode === null) c.child.kill('SIGTERM')
  })
  const exit = await waitExit(c, 10_000)
  t.same(exit, { code: 0, signal: null }, 'exited after its drain, not killed by the signal')
  t.match(c.stdout(), /"signal":"SIGTERM".*"msg":"draining"/, 'the drain is logged')
})
