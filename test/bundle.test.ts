// `weft proxy` runs from the esbuild bundle (build/bundle.ts, made by `npm run build`, which
// `npm test` runs first). The bundle loads node:http2, node:tls, node:https and node:crypto on
// first use (lazy shims), and pino's node:assert and node:worker_threads are stand-ins: a sidecar
// started from it still speaks HTTP/2 to an upstream and to a client, gives requests an id, and the
// shims behave as the real modules.
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import vm from 'node:vm'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { spawnBuilt, type Teardown } from './helpers/sidecar.ts'
import { CJS_STANDINS, lazyShim } from '../build/bundle.ts'
import { createRequire } from 'node:module'
import { AssertionError } from 'node:assert'
import { Worker } from 'node:worker_threads'

const root = path.resolve(import.meta.dirname, '..')

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })

/**
 * Starts `weft proxy --config` (bin/weft.js, as a user would: from the build) with one route to
 * cluster `clusterYaml`'s name, waits for /ready; its stderr so far by stderr().
 */
async function startSidecar(t: Teardown & { fail(m: string): void }, prefix: string, clusterYaml: string, extraYaml = ''): Promise<{ port: number; stderr: () => string } | null> {
  const [port, admin] = [await freePort(), await freePort()]
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = path.join(dir, 'bootstrap.yaml')
  const cluster = /name: (\w+)/.exec(clusterYaml)?.[1]
  writeFileSync(
    config,
    `node: { id: b, workload: b, namespace: default }
admin: { address: 127.0.0.1, port: ${admin} }
listeners: [{ name: out, direction: outbound, address: 127.0.0.1, port: ${port}, routeTable: t }]
routeTables: [{ name: t, virtualHosts: [{ name: v, domains: ['*'], routes: [{ name: r, match: { path: { prefix: / } }, backends: [{ cluster: ${cluster} }] }] }] }]
clusters: [${clusterYaml}]
${extraYaml}`,
  )
  const w = spawnBuilt(t, ['proxy', '--config', config], admin)
  if (!(await w.ready())) {
    t.fail(`not ready: ${w.stderr()}`)
    return null
  }
  return { port, stderr: w.stderr }
}

t.test('the lazy shims: functions call the real ones (also with new), http2 constants equal', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-shim-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const load = async (name: string) => {
    const file = path.join(dir, `${name.slice(5)}.mjs`)
    writeFileSync(file, lazyShim(name))
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>
  }
  const h2 = await load('node:http2')
  t.same(h2.constants, http2.constants, 'constants: the build-time copy equals the real ones')
  t.type(h2.connect, 'function')
  const tl = await load('node:tls')
  const TLSSocketShim = tl.TLSSocket as unknown as new (s: net.Socket) => tls.TLSSocket
  const sock = new TLSSocketShim(new net.Socket())
  t.ok(sock instanceof tls.TLSSocket, 'new TLSSocket(...) through the shim makes a real TLSSocket')
  sock.destroy()
  const ctx = (tl.createSecureContext as typeof tls.createSecureContext)({})
  t.ok(ctx.context, 'createSecureContext through the shim')
  const https = await load('node:https')
  t.type(https.request, 'function')
  const crypto = await load('node:crypto')
  t.match((crypto.randomUUID as () => string)(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'randomUUID through the shim')
  const hash = (crypto.createHash as (a: string) => { update(s: string): { digest(e: string): string } })('sha256')
  t.equal(hash.update('abc').digest('hex').slice(0, 8), 'ba7816bf', 'createHash through the shim')
})

t.test("pino's stand-ins for node:assert and node:worker_threads", async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-standin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const req = createRequire(path.join(dir, 'x.cjs'))
  const standin = (name: string) => {
    const file = path.join(dir, `${name}.cjs`)
    writeFileSync(file, CJS_STANDINS[name])
    return req(file) as unknown
  }
  const assert = standin('assert') as (v: unknown, m?: string) => void
  assert(true, 'never thrown')
  t.throws(() => assert(typeof 'x' === 'number', 'sonic.fd must be a number'), { name: 'AssertionError', message: 'sonic.fd must be a number', actual: false, expected: true }, 'assert(false, msg) throws the real AssertionError')
  t.throws(() => assert(0), AssertionError)
  const wt = standin('worker_threads') as { isMainThread: boolean; Worker: new (code: string, o: { eval: boolean }) => Worker }
  t.equal(wt.isMainThread, true)
  const w = new wt.Worker('require("node:worker_threads").parentPort.postMessage(6 * 7)', { eval: true })
  t.ok(w instanceof Worker, 'new Worker(...) through the stand-in makes a real Worker')
  t.equal(await new Promise((resolve) => w.once('message', resolve)), 42)
  await w.terminate()
})

t.test('a static sidecar (its single file): HTTP/1 client to an HTTP/2 upstream, and an HTTP/2 client', { skip: existsSync(path.join(root, 'dist', 'bundle', 'weft.js')) ? false : 'no dist/bundle (npm run build)' }, async (t) => {
  const upstream = http2.createServer((req, res) => {
    res.setHeader('x-upstream-protocol', req.httpVersion)
    res.setHeader('x-seen-request-id', String(req.headers['x-request-id']))
    res.end('hello from h2\n')
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  t.teardown(() => upstream.close())
  const started = await startSidecar(t, 'weft-bundle-', `{ name: h2, protocol: http2, endpoints: [{ address: 127.0.0.1, port: ${(upstream.address() as net.AddressInfo).port} }] }`)
  if (started === null) return
  const { port } = started
  t.notMatch(started.stderr(), /newer than dist/, 'ran the build, not the sources')
  const r1 = await fetch(`http://127.0.0.1:${port}/x`)
  t.equal(r1.status, 200)
  t.equal(r1.headers.get('x-upstream-protocol'), '2.0', 'the upstream was reached over HTTP/2')
  t.equal(await r1.text(), 'hello from h2\n')
  t.match(r1.headers.get('x-seen-request-id'), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'the sidecar gave the request an id (node:crypto loaded on first use)')
  const client = http2.connect(`http://127.0.0.1:${port}`)
  t.teardown(() => client.close())
  const body = await new Promise<string>((resolve, reject) => {
    const req = client.request({ ':path': '/y' })
    let b = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (b += c))
    req.on('end', () => resolve(b))
    req.on('error', reject)
  })
  t.equal(body, 'hello from h2\n', 'an HTTP/2 client through the sidecar')
})

const SIDECAR = path.join(root, 'dist', 'sidecar', 'weft-proxy.cjs')

for (const [mode, file] of [['static', SIDECAR], ['--control-plane', path.join(root, 'dist', 'sidecar', 'weft-proxy-cp.cjs')]]) {
  t.test(`the ${mode} sidecar file and its code cache (made by the build) belong together`, { skip: existsSync(file) ? false : 'no dist/sidecar (npm run build)' }, async (t) => {
    const source = readFileSync(file, 'latin1')
    const hash = /^\/\/ weft-proxy ([0-9a-f]{16})\n/.exec(source)?.[1]
    t.ok(hash, 'the first line names the cache')
    t.equal(createHash('sha256').update(source.slice(source.indexOf('\n') + 1)).digest('hex').slice(0, 16), hash, 'by the hash of the rest')
    t.notMatch(source, /[^\x00-\x7f]/, 'ASCII (read as latin1)')
    const cachedData = readFileSync(file.replace(/\.cjs$/, `-${hash}.v8cache`))
    const script = new vm.Script(source, { filename: file, cachedData })
    t.equal(script.cachedDataRejected, false, 'V8 takes the cache for this file')
    t.type(script.runInThisContext(), 'function', 'the file is a module wrapper')
  })
}

t.test('a static sidecar from its file loads what a feature needs from dist/ (tracing: the Zipkin reporter)', { skip: existsSync(SIDECAR) ? false : 'no dist/sidecar (npm run build)' }, async (t) => {
  const spans: { tags?: Record<string, string> }[] = []
  let gotSpans = (): void => {}
  const spansIn = new Promise<void>((resolve) => (gotSpans = resolve))
  const collector = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c))
    req.on('end', () => {
      if (req.url === '/api/v2/spans') spans.push(...(JSON.parse(body) as typeof spans))
      res.statusCode = 202
      res.end()
      if (spans.length > 0) gotSpans()
    })
  })
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r))
  t.teardown(() => collector.close())
  const app = http.createServer((req, res) => res.end('ok\n'))
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r))
  t.teardown(() => app.close())
  const started = await startSidecar(t, 'weft-sidecar-file-', `{ name: app, endpoints: [{ address: 127.0.0.1, port: ${(app.address() as net.AddressInfo).port} }] }`,
    `telemetry: { tracing: { enabled: true, sampling: 100, zipkinUrl: 'http://127.0.0.1:${(collector.address() as net.AddressInfo).port}/api/v2/spans' } }\n`)
  if (started === null) return
  const { port, stderr } = started
  const r = await fetch(`http://127.0.0.1:${port}/traced`)
  t.equal(r.status, 200)
  t.equal(await r.text(), 'ok\n')
  const timeout = new Promise<void>((_, reject) => setTimeout(() => reject(new Error(`no span within 10 s: ${stderr()}`)), 10000).unref())
  await Promise.race([spansIn, timeout])
  t.ok(spans.some((sp) => sp.tags?.['http.path'] === '/traced'), 'the span of the request reached the collector')
  t.equal(stderr(), '', 'nothing on stderr (no warning from the module loader)')
})
