// The `admission-webhook` fuzz target: what a hostile or broken API server POSTs to the injector
// (control-plane/webhook/server.ts) over real HTTPS. Inputs are request bodies: mutations of
// recorded AdmissionReviews (pods, other kinds, UPDATE, dry runs), generated JSON of wrong shapes
// and types, raw bytes, and bodies over the 4 MiB limit. Properties: every answer is 200 with an
// AdmissionReview (same uid, allowed, a patch that is base64 of a JSON Patch array) or a clear 4xx
// with a text message, never a 5xx or a dropped connection; /healthz keeps answering and a good
// review is still injected; the heap returns to its level.
import fc from 'fast-check'
import { Agent, request } from 'undici'
import { createServingCert } from '../../control-plane/webhook/certs.ts'
import { startWebhookServer, type WebhookServer } from '../../control-plane/webhook/server.ts'
import { DEFAULT_MESH } from '../../control-plane/inject/index.ts'
import { heapBase, heapCheck } from './kit.ts'
import type { FuzzInput, Target } from './engine.ts'

const pod = (extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'shop', annotations: { 'weft.io/inject': 'true' } },
  spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/r', port: 8080 } } }] }, ...extra,
})
const review = (object: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
  request: { uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, namespace: 'shop', operation: 'CREATE', object, ...extra },
})
const J = (x: unknown) => Buffer.from(JSON.stringify(x))
const CORPUS = [
  J(review(pod())),
  J(review(pod(), { operation: 'UPDATE', dryRun: true })),
  J(review({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { template: pod() } }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } })),
  J(review(pod({ spec: { hostNetwork: true, containers: [{ name: 'a', image: 'a' }] } }))),
  J(review(pod({ metadata: { name: 'p', annotations: { 'weft.io/status': '{"x":1}', 'weft.io/inject': 'maybe' } } }))),
  J(review({ kind: 'Service', metadata: { name: 's' } }, { kind: { group: '', version: 'v1', kind: 'Service' } })),
  J({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x', object: pod() } }),
  J(review(pod({ metadata: { name: 'p', annotations: { 'weft.io/inject': 'true', 'weft.io/sidecar-mode': 'classic', 'weft.io/exclude-outbound-ports': '1,2,x' } } }))),
  J(review(pod({ spec: { containers: [{ name: 'app', image: 'a', ports: [{ containerPort: 8080, name: 'http' }], livenessProbe: { httpGet: { path: '/l', port: 'http' } } }] } }))),
]
const TOKENS = ['{', '}', '[', ']', '"', ',', ':', 'null', 'true', '0', '-1e999', '"\\u0000"', '\\ud800', '"kind":"Pod"', '"uid":{}', '"object":[]', '"spec":null',
  '"containers":"x"', '"weft.io/sidecar-mode"', '"classic"', '"port"', '"httpGet"', '"initContainers"', '1e999', '"__proto__":{"polluted":1},', '"constructor":{"prototype":{"x":1}},', '\xff\xfe', '"metadata":{"annotations":{"weft.io/inject":1}}', '"initContainers":[null]', '[[[[[[[[[[[[[[[[[[[[']

const jsonish: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, 0, -1, 1e308, '', 'Pod', 'CREATE', 'u-1', '__proto__'),
    fc.string({ maxLength: 8 }),
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('apiVersion', 'kind', 'request', 'uid', 'object', 'metadata', 'spec', 'containers', 'initContainers', 'annotations', 'name', 'namespace', 'operation', 'image', 'ports', 'httpGet', 'port', 'readinessProbe', '__proto__', 'constructor'), tie('v'), { maxKeys: 5 })),
})).v
const generated = fc.oneof(
  { weight: 6, arbitrary: fc.record({ shape: jsonish, where: fc.constantFrom('request', 'object', 'spec', 'containers', 'whole') }).map(({ shape, where }) => {
    const r = review(pod()) as any
    if (where === 'request') r.request = shape
    else if (where === 'object') r.request.object = shape
    else if (where === 'spec') r.request.object.spec = shape
    else if (where === 'containers') r.request.object.spec.containers = shape
    else return J(shape)
    return J(r)
  }) },
  // many containers / deep nesting / long strings
  { weight: 2, arbitrary: fc.record({ n: fc.constantFrom(100, 2000), len: fc.constantFrom(1, 10_000, 200_000) }).map(({ n, len }) => J(review(pod({ spec: { containers: Array.from({ length: n }, (_, i) => ({ name: `c${i}`.padEnd(len > 1000 ? 10 : len, 'x'), image: 'x'.repeat(Math.min(len, 1000)) })) } })))) },
  { weight: 1, arbitrary: fc.constantFrom(300, 5000, 100_000).map((d) => Buffer.from('['.repeat(d) + ']'.repeat(d))) },
  // over the 4 MiB limit
  { weight: 1, arbitrary: fc.constant(null).map(() => Buffer.concat([Buffer.from('{"x":"'), Buffer.alloc(4.5 * 1024 * 1024, 97), Buffer.from('"}')])) },
)

interface WebhookCtx {
  wh: WebhookServer
  agent: Agent
  url: string
  heap: number
}

async function post(c: WebhookCtx, body: Buffer, type = 'application/json'): Promise<{ status: number; type: string; text: string }> {
  const r = await request(c.url + '/inject', { method: 'POST', dispatcher: c.agent, body, headers: { 'content-type': type }, headersTimeout: 5000, bodyTimeout: 5000 })
  return { status: r.statusCode, type: String(r.headers['content-type'] ?? ''), text: await r.body.text() }
}

function checkAnswer(input: Buffer, r: { status: number; type: string; text: string }): string | null {
  if (r.status === 400 || r.status === 413) return /^weft webhook: \S/.test(r.text) ? null : `${r.status} without a clear message: ${JSON.stringify(r.text.slice(0, 100))}`
  if (r.status !== 200) return `answered ${r.status}: ${r.text.slice(0, 200)}`
  let out: any
  try { out = JSON.parse(r.text) } catch { return `200 that is not JSON: ${r.text.slice(0, 100)}` }
  if (out?.kind !== 'AdmissionReview' || typeof out.response !== 'object' || out.response === null) return `200 that is not an AdmissionReview: ${r.text.slice(0, 200)}`
  let uid: unknown
  try { uid = JSON.parse(input.toString('utf8'))?.request?.uid } catch { /* the server parsed it, so do we */ }
  if (typeof uid === 'string' && out.response.uid !== uid) return `uid ${JSON.stringify(out.response.uid)} for a request with uid ${JSON.stringify(uid)}`
  if (out.response.allowed !== true) return `not allowed (a sidecar injector never refuses a pod): ${r.text.slice(0, 200)}`
  if (out.response.patch !== undefined) {
    let ops: unknown
    try { ops = JSON.parse(Buffer.from(out.response.patch, 'base64').toString('utf8')) } catch { return 'patch is not base64 JSON' }
    if (!Array.isArray(ops) || !ops.every((o) => ['add', 'remove', 'replace'].includes(o?.op) && typeof o.path === 'string')) return `patch is not a JSON Patch: ${JSON.stringify(ops).slice(0, 200)}`
    if (out.response.patchType !== 'JSONPatch') return 'patch without patchType JSONPatch'
  }
  return null
}

export const admissionWebhook: Target<WebhookCtx> = {
  name: 'admission-webhook',
  corpus: CORPUS,
  tokens: TOKENS,
  generated,
  async setup() {
    const cert = await createServingCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] })
    const wh = await startWebhookServer({ certPem: cert.certPem, keyPem: cert.keyPem, mesh: DEFAULT_MESH, host: '127.0.0.1', port: 0, namespaceLabels: () => ({ 'weft.io/inject': 'enabled' }) })
    const agent = new Agent({ connect: { ca: cert.caPem, servername: 'localhost' } })
    return { wh, agent, url: `https://127.0.0.1:${wh.port}`, heap: heapBase() }
  },
  async teardown(c) {
    await c.agent.close()
    await c.wh.close()
  },
  async check(c, input: FuzzInput) {
    // odd number of cuts: sent as text/plain (the server must not care about the content type)
    let r
    try { r = await post(c, input.bytes, input.cuts.length % 2 === 1 ? 'text/plain' : 'application/json') } catch (err) {
      return `request failed: ${(err as Error).message}`
    }
    return checkAnswer(input.bytes, r)
  },
  async probe(c) {
    try {
      const h = await request(c.url + '/healthz', { dispatcher: c.agent })
      await h.body.text()
      if (h.statusCode !== 200) return `/healthz ${h.statusCode}`
      const r = await post(c, CORPUS[0]!)
      const out = JSON.parse(r.text)
      if (r.status !== 200 || out.response?.patchType !== 'JSONPatch') return `a good review was not injected: ${r.status} ${r.text.slice(0, 200)}`
    } catch (err) {
      return `probe: ${(err as Error).message}`
    }
    return heapCheck(c.heap)
  },
}
