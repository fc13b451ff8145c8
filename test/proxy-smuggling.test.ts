// Request smuggling and framing attacks. Every ambiguous or malformed request must get a 400, the
// upstream must receive nothing, and the client connection must be closed. Malformed upstream
// responses give a 502 (or a reset connection once the response has started).
import t, { type Test } from 'tap'
import { rawClient } from './helpers/raw.ts'
import { cluster, makeConfig, routeTo, startTestSidecar, until, type TestSidecar } from './helpers/sidecar.ts'
import { rawResponse, startRawUpstream, type RawConn, type RawUpstream } from './helpers/upstream.ts'

async function setup(t: Test, onConn?: (c: RawConn) => void | Promise<void>): Promise<{ up: RawUpstream; s: TestSidecar }> {
  const up = await startRawUpstream(t, onConn)
  const s = await startTestSidecar(
    t,
    makeConfig({ routes: [routeTo('app')], clusters: [cluster('app', [up.port])], limits: { requestHeadTimeout: '3s' } }),
  )
  return { up, s }
}

/**
 * Send `bytes` on a fresh connection to a fresh sidecar; expect 400 + DPE, the connection closed,
 * and the upstream to have received nothing at all.
 */
async function expectRejected(t: Test, bytes: string, opts: { zeroConnections?: boolean; status?: number } = {}): Promise<void> {
  const { up, s } = await setup(t)
  const c = await rawClient(t, s.port)
  await c.write(bytes)
  let status = 0
  try {
    const r = await c.response({ timeoutMs: 1000 })
    status = r.status
    t.equal(r.status, opts.status ?? 400, `answered ${opts.status ?? 400}`)
    t.equal(r.get('x-weft-response-flags'), 'DPE', 'flag DPE')
    t.equal(r.get('connection'), 'close', 'Connection: close')
  } catch (err) {
    t.fail(`no ${opts.status ?? 400} response: ${(err as Error).message}`)
  }
  t.ok(await c.waitClose(1000), 'client connection closed')
  // the proxy has nothing in flight: bytes it wrongly forwarded were written before that, and the
  // upstream (in this process) has read them by the end of the admin round trip
  await until('nothing in flight in the proxy', async () => (await s.adminJson('/clusters')).clusters[0].activeRequests === 0)
  t.equal(up.bytes, 0, 'upstream received no bytes')
  if (opts.zeroConnections !== false) t.equal(up.conns.length, 0, 'upstream saw no connection')
  if (status === 0) c.destroy()
}

const H = 'POST / HTTP/1.1\r\nHost: svc\r\n'
const AFTER = 'GET /smuggled HTTP/1.1\r\nHost: svc\r\n\r\n'

t.test('framing headers', async (t) => {
  const vectors: [string, string][] = [
    ['Transfer-Encoding and Content-Length', H + 'Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'],
    ['Content-Length and Transfer-Encoding (other order)', H + 'Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n' + AFTER],
    ['two different Content-Length values', H + 'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' + AFTER],
    ['Content-Length "5, 6"', H + 'Content-Length: 5, 6\r\n\r\nhello!' + AFTER],
    ['Content-Length "+5"', H + 'Content-Length: +5\r\n\r\nhello'],
    ['Content-Length "0x5"', H + 'Content-Length: 0x5\r\n\r\nhello'],
    ['Content-Length "5 5"', H + 'Content-Length: 5 5\r\n\r\nhello'],
    ['Content-Length ""', H + 'Content-Length: \r\n\r\nhello'],
    ['Content-Length "-1"', H + 'Content-Length: -1\r\n\r\nhello'],
    ['Content-Length "5," (empty list member)', H + 'Content-Length: 5,\r\n\r\nhello'],
    ['Content-Length overflowing', H + 'Content-Length: 99999999999999999999\r\n\r\nhello'],
    ['Transfer-Encoding "gzip" (not final chunked)', H + 'Transfer-Encoding: gzip\r\n\r\nhello'],
    ['Transfer-Encoding "chunked, gzip"', H + 'Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding "chunked, chunked"', H + 'Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding chunked twice (two fields)', H + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding "xchunked"', H + 'Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding "chunked;q=1"', H + 'Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding with HTTP/1.0', 'POST / HTTP/1.0\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ]
  for (const [name, bytes] of vectors) t.test(name, (t) => expectRejected(t, bytes))
})

t.test('header syntax', async (t) => {
  const G = 'GET / HTTP/1.1\r\nHost: svc\r\n'
  const vectors: [string, string][] = [
    ['obsolete line folding (space)', G + 'X-A: a\r\n b\r\n\r\n'],
    ['obsolete line folding (tab)', G + 'X-A: a\r\n\tb\r\n\r\n'],
    ['folded Transfer-Encoding', H + 'X-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc'],
    ['space before colon', G + 'X-A : b\r\n\r\n'],
    ['space before colon in Transfer-Encoding', H + 'Transfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc'],
    ['tab before colon', G + 'X-A\t: b\r\n\r\n'],
    ['"@" in a header name', G + 'X@A: b\r\n\r\n'],
    ['non-ASCII in a header name', G + 'X-\xe9: b\r\n\r\n'],
    ['empty header name', G + ': b\r\n\r\n'],
    ['header line without colon', G + 'X-A b\r\n\r\n'],
    ['NUL in a header value', G + 'X-A: a\x00b\r\n\r\n'],
    ['bare CR in a header value', G + 'X-A: a\rb\r\n\r\n'],
    ['DEL in a header value', G + 'X-A: a\x7fb\r\n\r\n'],
    ['bare LF inside the head', 'GET / HTTP/1.1\r\nHost: svc\nX-A: b\r\n\r\n'],
    ['bare LF in the request line', 'GET / HTTP/1.1\nHost: svc\r\n\r\n'],
    ['missing Host on HTTP/1.1', 'GET / HTTP/1.1\r\nX-A: b\r\n\r\n'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: svc\r\nHost: other\r\n\r\n'],
    ['empty and non-empty Host', 'GET / HTTP/1.1\r\nHost:\r\nHost: svc\r\n\r\n'],
    ['invalid Host', 'GET / HTTP/1.1\r\nHost: svc/evil\r\n\r\n'],
    ['double space in the request line', 'GET  / HTTP/1.1\r\nHost: svc\r\n\r\n'],
    ['junk after the version', 'GET / HTTP/1.1 x\r\nHost: svc\r\n\r\n'],
    ['lower-case version', 'GET / http/1.1\r\nHost: svc\r\n\r\n'],
    ['control character in the target', 'GET /a\x01b HTTP/1.1\r\nHost: svc\r\n\r\n'],
  ]
  for (const [name, bytes] of vectors) t.test(name, (t) => expectRejected(t, bytes))
})

t.test('bare LF line endings throughout the head', async (t) => {
  // No CRLF at all: a strict proxy rejects at once instead of waiting for CRLFCRLF until the head timeout.
  const { up, s } = await setup(t)
  const c = await rawClient(t, s.port)
  await c.write('GET / HTTP/1.1\nHost: svc\nX-A: b\n\n')
  let status = 0
  try {
    status = (await c.response({ timeoutMs: 1000 })).status
  } catch {}
  t.equal(status, 400, '400 within 1 s (head timeout is 3 s)')
  t.ok(await c.waitClose(200), 'connection closed')
  t.equal(up.bytes, 0, 'upstream received nothing')
  t.equal(up.conns.length, 0)
})

t.test('chunked body framing', async (t) => {
  const C = H + 'Transfer-Encoding: chunked\r\n\r\n'
  const vectors: [string, string][] = [
    ['chunk size "zz"', C + 'zz\r\nhello\r\n0\r\n\r\n'],
    ['chunk size "-1"', C + '-1\r\nhello\r\n0\r\n\r\n'],
    ['chunk size with 20 hex digits', C + 'fffffffffffffffffff5\r\nhello\r\n0\r\n\r\n'],
    ['chunk size "0x5"', C + '0x5\r\nhello\r\n0\r\n\r\n'],
    ['chunk size followed by a space, no extension', C + '5 \r\nhello\r\n0\r\n\r\n'],
    ['chunk size line ended by LF only', C + '5\nhello\r\n0\r\n\r\n'],
    ['chunk data not followed by CRLF', C + '5\r\nhelloX\r\n0\r\n\r\n'],
    ['smuggled request: chunk data longer than its size', C + '3\r\nhello\r\n0\r\n\r\n' + AFTER],
    ['smuggled request: last chunk without the final CRLF', C + '5\r\nhello\r\n0\r\n' + AFTER],
    ['last chunk terminated by LF only', C + '5\r\nhello\r\n0\n\n' + AFTER],
    ['invalid trailer field', C + '5\r\nhello\r\n0\r\nX A: b\r\n\r\n'],
    ['forbidden trailer (Content-Length)', C + '5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n'],
  ]
  // The head is valid, so the proxy may already be connecting upstream; nothing may be sent there.
  for (const [name, bytes] of vectors) t.test(name, (t) => expectRejected(t, bytes, { zeroConnections: false }))
})

t.test('bad chunk with a warm upstream connection: no complete request upstream, 400 downstream', async (t) => {
  const { up, s } = await setup(t, async (conn) => {
    await conn.nextRequest()
    conn.write(rawResponse(200, 'first'))
  })
  const c = await rawClient(t, s.port)
  await c.write('GET /warm HTTP/1.1\r\nHost: svc\r\n\r\n')
  t.equal((await c.response()).body.toString(), 'first')
  // the upstream connection is now idle in the pool
  await c.write(H + 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n' + AFTER)
  let status = 0
  try {
    status = (await c.response({ timeoutMs: 1000 })).status
  } catch {}
  t.equal(status, 400, 'client gets 400 (no response had started)')
  t.ok(await c.waitClose(1000), 'client connection closed')
  const conn = up.conns[0]
  await waitFor(() => conn.done, 1000)
  t.ok(conn.done, 'the upstream connection carrying the partial request was closed')
  t.notMatch(conn.text(), /GET \/smuggled/, 'smuggled request never reached the upstream')
  t.equal(up.conns.length, 1)
})

/** Poll f (bounded); the caller asserts what it waited for. */
async function waitFor(f: () => boolean, ms: number): Promise<void> {
  await until('condition', f, ms).catch(() => {})
}

t.test('a valid chunked request followed by a pipelined one is fine (control)', async (t) => {
  const { up, s } = await setup(t, async (conn) => {
    for (;;) {
      const r = await conn.nextRequest()
      conn.write(rawResponse(200, `${r.line.split(' ')[1]}:${r.body.toString()}`))
    }
  })
  const c = await rawClient(t, s.port)
  await c.write(H + 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' + AFTER)
  const [a, b] = await c.responses(2)
  t.equal(a.body.toString(), '/:hello')
  t.equal(b.body.toString(), '/smuggled:', 'the second request is a separate request, after the first')
  t.equal(up.conns.length, 1)
})

// ---- upstream responses ---------------------------------------------------------------------------

async function upstreamSays(t: Test, response: string | Buffer): Promise<{ up: RawUpstream; s: TestSidecar; c: Awaited<ReturnType<typeof rawClient>> }> {
  const { up, s } = await setup(t, async (conn) => {
    await conn.nextRequest()
    conn.write(response)
  })
  const c = await rawClient(t, s.port)
  return { up, s, c }
}

t.test('upstream response with both Transfer-Encoding and Content-Length: 502 UPE', async (t) => {
  const { up, c } = await upstreamSays(t, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n')
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 502)
  t.equal(r.get('x-weft-response-flags'), 'UPE')
  t.equal(r.get('x-weft-error'), 'WEFT_ERR_UPSTREAM_PROTOCOL')
  t.notMatch(r.body.toString(), /hello/, 'no upstream body bytes relayed')
  await waitFor(() => up.conns[0].done, 1000)
  t.ok(up.conns[0].done, 'proxy closed the upstream connection')
})

t.test('invalid upstream response heads: 502 UPE', async (t) => {
  const vectors: [string, string][] = [
    ['space in a header name', 'HTTP/1.1 200 OK\r\nX Bad: v\r\nContent-Length: 2\r\n\r\nok'],
    ['NUL in a header value', 'HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok'],
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nX-Bad: a\r\n b\r\nContent-Length: 2\r\n\r\nok'],
    ['two different Content-Length values', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!'],
    ['malformed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok'],
    ['Transfer-Encoding "chunked, chunked"', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n'],
    ['malformed status line', 'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok'],
    ['unsupported version', 'HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok'],
    ['not HTTP at all', 'SSH-2.0-OpenSSH_9.6\r\n\r\n'],
  ]
  for (const [name, resp] of vectors) {
    t.test(name, async (t) => {
      const { c } = await upstreamSays(t, resp)
      await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
      const r = await c.response()
      t.equal(r.status, 502)
      t.equal(r.get('x-weft-response-flags'), 'UPE')
    })
  }
})

t.test('bad chunk size mid-response: client sees an incomplete body and a closed connection', async (t) => {
  let client: Awaited<ReturnType<typeof rawClient>> | undefined
  const { s } = await setup(t, async (conn) => {
    await conn.nextRequest()
    conn.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
    // the bad chunk comes after the client has the good one
    await until('the client has the first chunk', () => client?.text().includes('hello') ?? false)
    conn.write('zz\r\nworld\r\n0\r\n\r\n')
  })
  const c = await rawClient(t, s.port)
  client = c
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response({ timeoutMs: 2000 })
  t.equal(r.status, 200)
  t.equal(r.complete, false, 'body incomplete (no last chunk)')
  t.notMatch(r.body.toString(), /world/, 'nothing after the bad chunk relayed')
  t.ok(c.done, 'client connection closed/reset')
})

t.test('head and a bad chunk in one upstream packet: nothing reached the client yet, clean 502 UPE', async (t) => {
  const { c } = await upstreamSays(t, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n')
  await c.write('GET / HTTP/1.1\r\nHost: svc\r\n\r\n')
  const r = await c.response()
  t.equal(r.status, 502)
  t.equal(r.get('x-weft-response-flags'), 'UPE')
  t.notMatch(c.text(), /HTTP\/1\.1 200/, 'the upstream head was never relayed')
})

t.test('bad chunk after the upstream already answered: the response stays intact, no 400 after it, connection closed', async (t) => {
  const { up, s } = await setup(t, async (conn) => {
    // answer as soon as the head is in, without reading the body
    await until('the head', () => conn.text().includes('\r\n\r\n') || conn.done)
    conn.write(rawResponse(200, 'early'))
  })
  const c = await rawClient(t, s.port)
  await c.write(H + 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
  const r = await c.response()
  t.equal(r.status, 200)
  t.equal(r.body.toString(), 'early')
  t.ok(r.complete)
  await c.write('zz\r\n' + AFTER)
  t.ok(await c.waitClose(3000), 'connection closed')
  t.equal(c.unread.length, 0, 'no second response (no 400 glued after the 200)')
  t.notMatch(up.conns[0].text(), /smuggled/, 'nothing after the bad chunk forwarded')
  t.equal(up.conns.length, 1)
})
