// Found by the http1-requests fuzz target: a client that sent part of a request head and then its
// FIN was held half-closed until the head timeout (a descriptor per such client). Regression cases:
// test/fuzz/regressions/http1-requests-*.json.
import t from 'tap'
import { makeConfig, cluster, routeTo, startTestSidecar } from '../helpers/sidecar.ts'
import { RawClient } from '../helpers/raw.ts'
import { startHttpUpstream } from '../helpers/upstream.ts'

t.test('a FIN inside a request head closes the connection at once', async (t) => {
  const up = await startHttpUpstream(t)
  const sc = await startTestSidecar(t, makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])], limits: { requestHeadTimeout: '30s' } }))
  const cases = [
    'GET /a HTTP/1.1\r\nHost: app.test',
    'GET /a HTTP/1.1\r\nHost: app.test\r\n\r\nGET /b HTTP/1.1\r\nHo',
    // a pipelined chunked request whose body never comes (regression http1-requests-7a74a9b02de5)
    'GET /a HTTP/1.1\r\nHost: app.test\r\n\r\nGET /b HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n',
  ]
  for (const bytes of cases) {
    const c = await RawClient.connect(sc.port)
    t.teardown(() => c.destroy())
    await c.write(bytes)
    c.socket.end()
    t.ok(await c.waitClose(2000), `closed within 2 s (head timeout 30 s): ${JSON.stringify(bytes)}`)
    if (bytes.includes('\r\n\r\n')) t.match(c.text(), /^HTTP\/1\.1 200 /, 'the complete request before it was answered')
  }
})
