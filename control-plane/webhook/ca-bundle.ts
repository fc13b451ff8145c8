// Keep the MutatingWebhookConfiguration's caBundle able to verify this replica's certificate.
// Every replica makes its own CA at start, so the bundle holds several: this replica adds its CA
// and keeps the others that have not expired (at most MAX_KEPT: a crashed replica's CA goes out,
// oldest first, as new ones come in). One JSON Patch with a `test` of the resourceVersion: a write by
// another replica in between fails the test (422) and the sync starts over from a fresh GET.
// Run at start and every resyncMs, so a bundle edited by hand (kubectl apply) is repaired.
import { X509Certificate } from 'node:crypto'
import { HttpMethod, IsomorphicFetchHttpLibrary, RequestContext, type KubeConfig } from '@kubernetes/client-node'

export const MAX_KEPT = 4
const http = new IsomorphicFetchHttpLibrary()

export interface CaBundleResult {
  changed: boolean
  /** CAs in the bundle after the sync */
  cas: number
}

/** One call to the API server with the config's credentials; a body goes as a JSON Patch unless contentType says otherwise. */
export async function kubeCall(kc: KubeConfig, method: HttpMethod, path: string, body?: unknown, contentType = 'application/json-patch+json'): Promise<{ status: number; body: any }> {
  const server = kc.getCurrentCluster()?.server
  if (server === undefined) throw new Error('Kubernetes config: no current cluster')
  const ctx = new RequestContext(server + path, method)
  ctx.setHeaderParam('Accept', 'application/json')
  if (body !== undefined) {
    ctx.setHeaderParam('Content-Type', contentType)
    ctx.setBody(JSON.stringify(body))
  }
  await kc.applySecurityAuthentication(ctx)
  const res = await http.send(ctx).toPromise()
  const text = await res.body.text()
  let parsed: unknown
  try { parsed = JSON.parse(text) } catch { parsed = { message: text.slice(0, 200) } }
  return { status: res.httpStatusCode, body: parsed }
}

/** PEM blocks of a bundle, in order. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
}

/**
 * The bundle a replica wants: the CAs already there that have not expired, in their order (so
 * replicas agree and do not reorder it back and forth), ours appended when absent; over MAX_KEPT,
 * the oldest others go first.
 */
export function nextBundle(current: string, ours: string, now: Date): string[] {
  const mine = ours.trim()
  const valid = splitPem(current).filter((pem) => {
    if (pem === mine) return true
    try { return new Date(new X509Certificate(pem).validTo) > now } catch { return false }
  })
  const out = valid.includes(mine) ? valid : [...valid, mine]
  while (out.length > MAX_KEPT) {
    let oldest = -1
    let oldestFrom = Infinity
    out.forEach((pem, i) => {
      if (pem === mine) return
      const from = new Date(new X509Certificate(pem).validFrom).getTime()
      if (from < oldestFrom) { oldestFrom = from; oldest = i }
    })
    out.splice(oldest, 1)
  }
  return out
}

export async function syncCaBundle(kc: KubeConfig, name: string, caPem: string, now = new Date()): Promise<CaBundleResult> {
  const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${name}`
  for (let attempt = 0; attempt < 5; attempt++) {
    const got = await kubeCall(kc, HttpMethod.GET, path)
    if (got.status !== 200) throw new Error(`GET mutatingwebhookconfigurations/${name}: ${got.status} ${got.body?.message ?? ''} (is install/04-webhook.yaml applied, and may the control plane's ServiceAccount get it?)`)
    const webhooks: { clientConfig?: { caBundle?: string } }[] = got.body.webhooks ?? []
    const ops: unknown[] = [{ op: 'test', path: '/metadata/resourceVersion', value: got.body.metadata.resourceVersion }]
    let cas = 0
    webhooks.forEach((w, i) => {
      const current = Buffer.from(w.clientConfig?.caBundle ?? '', 'base64').toString('utf8')
      const want = nextBundle(current, caPem, now)
      cas = want.length
      const value = Buffer.from(want.join('\n') + '\n').toString('base64')
      if (value === w.clientConfig?.caBundle) return
      // add on a member that exists replaces it (RFC 6902)
      if (w.clientConfig === undefined) ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig`, value: { caBundle: value } })
      else ops.push({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value })
    })
    if (ops.length === 1) return { changed: false, cas }
    const patched = await kubeCall(kc, HttpMethod.PATCH, path, ops)
    if (patched.status === 200) return { changed: true, cas }
    if (patched.status !== 422 && patched.status !== 409) throw new Error(`PATCH mutatingwebhookconfigurations/${name}: ${patched.status} ${patched.body?.message ?? ''}`)
  }
  throw new Error(`PATCH mutatingwebhookconfigurations/${name}: still conflicting after 5 attempts`)
}
