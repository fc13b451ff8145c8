// The admission webhook over real HTTPS: a certificate made by the control plane's own CA code,
// clients (undici, curl) that trust only that CA, AdmissionReviews in and out.
import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Agent, request } from 'undici'
import { createServingCert, serviceDnsNames } from '../control-plane/webhook/certs.ts'
import { startWebhookServer } from '../control-plane/webhook/server.ts'
import { apply } from '../control-plane/webhook/json-patch.ts'
import { DEFAULT_MESH, inject, type KubeObject } from '../control-plane/inject/index.ts'

const run = promisify(execFile)

const pod = (annotations?: Record<string, string>, spec: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', ...(annotations !== undefined ? { annotations } : {}) },
  spec: { containers: [{ name: 'app', image: 'app:1', readinessProbe: { httpGet: { path: '/r', port: 8080 } } }], ...spec },
})
const review = (object: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE', object, ...extra },
})

const cert = await createServingCert({ dnsNames: [...serviceDnsNames('weft-control-plane', 'weft-system'), 'localhost'], ips: ['127.0.0.1'] })
const nsLabels = new Map<string, Record<string, string>>([['shop', { 'weft.io/inject': 'enabled' }], ['plain', {}]])
const wh = await startWebhookServer({ certPem: cert.certPem, keyPem: cert.keyPem, mesh: DEFAULT_MESH, namespaceLabels: (ns) => nsLabels.get(ns) })
t.teardown(() => wh.close())
const agent = new Agent({ connect: { ca: cert.caPem } })
t.teardown(() => agent.close())
const url = `https://localhost:${wh.port}/inject`
const post = async (body: unknown) => {
  const r = await request(url, { method: 'POST', dispatcher: agent, body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return { status: r.statusCode, type: r.headers['content-type'], text: await r.body.text() }
}

t.test('a pod in a labelled namespace: allowed with a base64 JSONPatch that gives inject()\'s pod', async (t) => {
  const r = await post(review(pod()))
  t.equal(r.status, 200)
  t.equal(r.type, 'application/json')
  const out = JSON.parse(r.text)
  t.match(out, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true, patchType: 'JSONPatch' } })
  const ops = JSON.parse(Buffer.from(out.response.patch, 'base64').toString())
  t.ok(ops.every((o: any) => ['add', 'replace', 'remove'].includes(o.op)))
  t.same(apply(pod(), ops), inject(pod(), DEFAULT_MESH).workload, 'the patch applied to the pod is the injected pod')
  t.equal(wh.stats.decisions.get('injected'), 1)
})

t.test('idempotent: an injected pod comes back allowed with no patch', async (t) => {
  const injected = inject(pod(), DEFAULT_MESH).workload
  const out = JSON.parse((await post(review(injected))).text)
  t.same(out.response, { uid: 'u-1', allowed: true })
})

t.test('opt-in and overrides: namespace label, pod annotation, system namespaces', async (t) => {
  const none = { uid: 'u-1', allowed: true }
  t.same(JSON.parse((await post(review(pod(), { namespace: 'plain' }))).text).response, none, 'namespace without the label')
  t.match(JSON.parse((await post(review(pod({ 'weft.io/inject': 'true' }), { namespace: 'plain' }))).text).response, { patchType: 'JSONPatch' }, 'pod annotation "true" overrides')
  t.same(JSON.parse((await post(review(pod({ 'weft.io/inject': 'false' })))).text).response, none, 'pod annotation "false" overrides')
  t.same(JSON.parse((await post(review(pod({ 'weft.io/inject': 'true' }), { namespace: 'kube-system' }))).text).response, none, 'kube-system never')
  t.same(JSON.parse((await post(review(pod({ 'weft.io/inject': 'true' }), { namespace: 'weft-system' }))).text).response, none, 'the control plane\'s namespace never')
  t.same(JSON.parse((await post(review(pod(), { operation: 'UPDATE' }))).text).response, none, 'UPDATE is not injected')
  t.same(JSON.parse((await post(review({ kind: 'Service', metadata: { name: 's' } }, { kind: { group: '', version: 'v1', kind: 'Service' } }))).text).response, none, 'not a pod')
})

t.test('hostNetwork and bad annotations: admitted unchanged with a warning', async (t) => {
  const hn = JSON.parse((await post(review(pod(undefined, { hostNetwork: true })))).text).response
  t.equal(hn.allowed, true)
  t.notOk(hn.patch)
  t.match(hn.warnings, [/Pod shop\/web not injected: hostNetwork/])
  const bad = JSON.parse((await post(review(pod({ 'weft.io/exclude-outbound-ports': 'all' })))).text).response
  t.notOk(bad.patch)
  t.match(bad.warnings, [/weft.io\/exclude-outbound-ports: "all": "all" is not a port/])
  t.equal(wh.stats.decisions.get('skipped:host-network'), 1)
})

t.test('a pod whose fields have the wrong JSON types (found by the fuzz target): admitted unchanged with a warning, never a 500', async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ spec: null }, /spec is not an object/],
    [{ spec: { containers: [null] } }, /spec.containers\[0\] is not an object with a name/],
    [{ spec: { containers: [] } }, /spec.containers is not a non-empty array/],
    [{ spec: { containers: [{ name: 'a', readinessProbe: { httpGet: null } }] } }, /readinessProbe.httpGet has no port/],
    [{ spec: { containers: [{ name: 'a', ports: 'x' }] } }, /ports is not an array of objects/],
    [{ metadata: { name: 'p', annotations: { 'weft.io/inject': 1 } } }, /metadata.annotations is not a map of strings/],
  ]
  for (const [over, msg] of cases) {
    const r = await post(review({ ...pod(), ...over }))
    t.equal(r.status, 200, String(msg))
    const res = JSON.parse(r.text).response
    t.match(res, { uid: 'u-1', allowed: true }, String(msg))
    t.notOk(res.patch, 'no patch')
    t.match(res.warnings, [msg])
  }
  t.ok((wh.stats.decisions.get('skipped:invalid-pod') ?? 0) >= cases.length, 'counted as skipped:invalid-pod')
})

t.test('a body that is not an AdmissionReview: 400 with a message', async (t) => {
  const cases: [unknown, RegExp][] = [
    ['{not json', /body is not JSON .*expected an AdmissionReview/],
    [[1, 2], /not a JSON object/],
    [{ apiVersion: 'v1', kind: 'Pod' }, /kind is "Pod", expected "AdmissionReview"/],
    [{ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } }, /apiVersion is "admission.k8s.io\/v1beta1", expected "admission.k8s.io\/v1"/],
    [{ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request.uid is missing/],
  ]
  for (const [body, msg] of cases) {
    const r = await post(body)
    t.equal(r.status, 400, String(msg))
    t.match(r.text, msg)
  }
  const get = await request(url, { dispatcher: agent })
  t.equal(get.statusCode, 405)
  t.equal(get.headers.allow, 'POST')
  await get.body.dump()
})

t.test('HTTP/1.1 on the wire: chunked and pipelined reviews, Expect: 100-continue, and malformed requests refused with 400 and a closed connection', async (t) => {
  const { connect } = await import('node:tls')
  /** send raw bytes, read until the server closes or `until` matches */
  const raw = (bytes: string, until?: RegExp) => new Promise<{ text: string; closed: boolean }>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: wh.port, ca: cert.caPem, servername: 'localhost' }, () => s.write(bytes))
    let text = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => { text += d; if (until?.test(text)) { s.destroy(); resolve({ text, closed: false }) } })
    s.on('end', () => resolve({ text, closed: true }))
    s.on('error', reject)
  })
  const body = JSON.stringify(review(pod(undefined)))
  const chunked = `POST /inject HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${(20).toString(16)}\r\n${body.slice(0, 20)}\r\n${(body.length - 20).toString(16)}\r\n${body.slice(20)}\r\n0\r\n\r\n`
  const plain = `POST /inject HTTP/1.1\r\nhost: x\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  // two reviews in one write (pipelined), the first chunked: two answers, in order, with patches
  const two = await raw(chunked + plain, /("patchType":"JSONPatch"[\s\S]*){2}/)
  t.equal(two.text.match(/HTTP\/1\.1 200 OK\r\n/g)?.length, 2)
  const expect = await raw(`POST /inject HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, /"patchType"/)
  t.match(expect.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/)
  // malformed: each answered 400 with a message, and the connection closed
  for (const bad of [
    'POST /inject HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello',
    'POST /inject HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
    'POST /inject HTTP/1.1\r\nho st: x\r\n\r\n',
    'GARBAGE\r\n\r\n',
  ]) {
    const r = await raw(bad)
    t.match(r.text, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*connection: close\r\n\r\nweft webhook: /, JSON.stringify(bad))
    t.equal(r.closed, true)
  }
  // a body over 4 MiB announced: 413 at once, nothing read
  const big = await raw(`POST /inject HTTP/1.1\r\nhost: x\r\ncontent-length: ${(4 << 20) + 1}\r\n\r\n`)
  t.match(big.text, /^HTTP\/1\.1 413 [\s\S]*weft webhook: body over 4194304 bytes/)
  t.equal(big.closed, true)
})

t.test('curl --cacert with the generated CA verifies the Service name and 127.0.0.1; without it, curl refuses', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-wh-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const ca = join(dir, 'ca.pem')
  await writeFile(ca, cert.caPem)
  const svc = 'weft-control-plane.weft-system.svc'
  const { stdout } = await run('curl', ['-sS', '--cacert', ca, '--resolve', `${svc}:${wh.port}:127.0.0.1`, '-H', 'content-type: application/json', '--data-binary', JSON.stringify(review(pod())), `https://${svc}:${wh.port}/inject`])
  t.match(JSON.parse(stdout).response, { uid: 'u-1', allowed: true, patchType: 'JSONPatch' })
  const ip = await run('curl', ['-sS', '--cacert', ca, `https://127.0.0.1:${wh.port}/healthz`])
  t.equal(ip.stdout, 'ok\n')
  const err = await run('curl', ['-sS', `https://127.0.0.1:${wh.port}/healthz`]).then(() => undefined, (e: { code: number; stderr: string }) => e)
  t.equal(err?.code, 60, 'curl: peer certificate cannot be authenticated')
})

t.test('weft control-plane --webhook-listen: the control plane serves the webhook with the certificate it made', async (t) => {
  const { startControlPlane } = await import('../cli/control-plane.ts')
  const { createLogger } = await import('../proxy/log.ts')
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', log: createLogger('silent'), webhook: { listen: '127.0.0.1:0', namespace: 'mesh-ns', mesh: { image: 'reg.example/weft:dev' } } })
  t.teardown(() => cp.close())
  const a = new Agent({ connect: { ca: cp.webhook!.cert.caPem, servername: 'weft-control-plane.mesh-ns.svc' } })
  t.teardown(() => a.close())
  const r = await request(`https://127.0.0.1:${cp.webhook!.server.port}/inject`, { method: 'POST', dispatcher: a, body: JSON.stringify(review(pod({ 'weft.io/inject': 'true' }))) })
  t.equal(r.statusCode, 200)
  const ops = JSON.parse(Buffer.from((await r.body.json() as any).response.patch, 'base64').toString())
  const injected = apply(pod({ 'weft.io/inject': 'true' }), ops) as any
  t.equal(injected.spec.initContainers[1].image, 'reg.example/weft:dev')
  t.same(injected.spec.initContainers[1].args, ['proxy', '--control-plane', 'weft-control-plane.mesh-ns.svc:15010'])
  const mine = await request(`https://127.0.0.1:${cp.webhook!.server.port}/inject`, { method: 'POST', dispatcher: a, body: JSON.stringify(review(pod({ 'weft.io/inject': 'true' }), { namespace: 'mesh-ns' })) })
  t.same((await mine.body.json() as any).response, { uid: 'u-1', allowed: true }, 'its own namespace is never injected')
})

t.test('idle connections: closed after idleTimeoutMs without a request (up to a quarter later), kept while reviews come', async (t) => {
  const { connect } = await import('node:tls')
  const idle = await startWebhookServer({ certPem: cert.certPem, keyPem: cert.keyPem, mesh: DEFAULT_MESH, idleTimeoutMs: 400 })
  t.teardown(() => idle.close())
  const body = JSON.stringify(review(pod()))
  const req = `POST /inject HTTP/1.1\r\nhost: x\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  const open = () => new Promise<{ s: import('node:tls').TLSSocket; answers: () => number; closedAt: Promise<number> }>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: idle.port, ca: cert.caPem, servername: 'localhost' }, () => resolve({ s, answers: () => n, closedAt }))
    let n = 0
    s.setEncoding('latin1')
    s.on('data', (d: string) => { n += d.match(/HTTP\/1\.1 200 OK/g)?.length ?? 0 })
    const closedAt = new Promise<number>((r) => s.once('close', () => r(performance.now())))
    s.on('error', reject)
  })
  const quiet = await open()
  const busy = await open()
  const t0 = performance.now()
  quiet.s.write(req)
  // the busy connection sends a review every 100 ms for 1 s (kept: activity spread over time is the behaviour under test)
  for (let i = 0; i < 10; i++) {
    busy.s.write(req)
    await new Promise((r) => setTimeout(r, 100))
  }
  const quietClosed = await quiet.closedAt
  t.ok(quietClosed - t0 >= 390 && quietClosed - t0 < 1000, `the quiet connection was closed ${Math.round(quietClosed - t0)} ms after its review (400-500 expected)`)
  t.equal(quiet.answers(), 1)
  t.equal(busy.s.destroyed, false, 'the busy connection is still open after 1 s')
  t.equal(busy.answers(), 10)
  const busyClosed = await busy.closedAt
  t.ok(busyClosed - t0 >= 1290, 'and closes once it has been idle for the timeout')
})

t.test('the answer\'s JSON, written by hand, is JSON.stringify of the review for every kind of answer', async (t) => {
  const { admit } = await import('../control-plane/webhook/admission.ts')
  const o = { mesh: DEFAULT_MESH }
  const bodies = [
    review(pod()),
    { ...review(pod({ 'weft.io/inject': 'true' })), request: { ...review(pod()).request, uid: 'ü "quoted" \\ \u2028' } },
    review(pod(undefined, { hostNetwork: true })),
    review(pod({ 'weft.io/exclude-outbound-ports': 'all' })),
    review({ kind: 'Service' }, { kind: { group: '', version: 'v1', kind: 'Service' } }),
    review({ ...pod(), spec: null }),
    review(pod(), { operation: 'DELETE' }),
  ]
  for (const b of bodies) {
    const out = admit(JSON.parse(JSON.stringify(b)), o)
    if ('error' in out) { t.fail(out.error); continue }
    t.equal(out.json, JSON.stringify(out.review), out.decision)
  }
})
