// `weft check [--pre]`, as `linkerd check`: each check prints ✔ or ✘, and a failure says what to
// do. Exit 0 when all pass, 1 otherwise.
//   --pre: the API is reachable; Weft's CRDs are not installed yet (or are current).
//   default: API reachable; CRDs present and current (same schema as `weft install`); the
//   MutatingWebhookConfiguration exists with a caBundle; the webhook answers a test
//   AdmissionReview over HTTPS with a certificate the caBundle verifies for the Service's name;
//   the control plane is ready; the proxies connected to it and their versions.
// The webhook and the control plane's admin are reached at --webhook-url and
// --control-plane-admin (by default the ports of `kubectl -n weft-system port-forward
// deploy/weft-control-plane 8443 15011`).
import { emit, type OutputFormat } from './output.ts'
import { describeAdminError, describeKubeApiError } from './errors.ts'
import { adminBase } from './tap.ts'
import { isDeepStrictEqual } from 'node:util'
import { HttpMethod, type KubeConfig } from '@kubernetes/client-node'
import { Agent, request } from 'undici'
import { crdOf, OWN_KINDS } from '../control-plane/resources/crd.ts'
import { kubeCall, splitPem } from '../control-plane/webhook/ca-bundle.ts'
import { WEBHOOK_CONFIG_NAME } from '../control-plane/webhook/run.ts'
import { serviceDnsNames } from '../control-plane/webhook/certs.ts'

export interface CheckOptions {
  kube: KubeConfig
  /** table (√/× lines, the default), json or yaml: {ok, checks: [{section, ok, title, detail?, hint?}]} */
  output?: OutputFormat
  pre: boolean
  namespace: string
  webhookUrl: string
  controlPlaneAdmin: string
}

export interface Out { write(s: string): unknown }

interface Result { ok: boolean; title: string; detail?: string; hint?: string }

export async function runCheck(o: CheckOptions, out: Out): Promise<number> {
  const results: Result[] = []
  const pass = (title: string, detail?: string) => results.push({ ok: true, title, detail })
  const fail = (title: string, detail: string, hint: string) => results.push({ ok: false, title, detail, hint })
  const section = (name: string) => results.push({ ok: true, title: `\n${name}\n${'-'.repeat(name.length)}` })
  const port = `kubectl -n ${o.namespace} port-forward deploy/weft-control-plane 8443 15011`

  section('kubernetes-api')
  try {
    const r = await kubeCall(o.kube, HttpMethod.GET, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions')
    if (r.status === 401 || r.status === 403) throw Object.assign(new Error(`${r.status} ${r.body?.message ?? ''}`), { statusCode: r.status })
    pass('can reach the Kubernetes API', o.kube.getCurrentCluster()?.server)
  } catch (err) {
    const c = o.kube.getCurrentCluster()
    const where = { context: o.kube.getCurrentContext(), cluster: c?.name ?? '', server: c?.server ?? '' }
    const why = describeKubeApiError(where, err)
    const cut = why.lastIndexOf('): ')
    fail('can reach the Kubernetes API', cut < 0 ? why : why.slice(0, cut + 1), cut < 0 ? 'check the current context of your kubeconfig (kubectl config current-context) and your credentials' : why.slice(cut + 3))
    return report(results, out, o.output)
  }

  section(o.pre ? 'pre-install' : 'weft-install')
  for (const k of OWN_KINDS) {
    const want = crdOf(k) as { metadata: { name: string }; spec: { versions: unknown[] } }
    const name = want.metadata.name
    const r = await kubeCall(o.kube, HttpMethod.GET, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`)
    if (r.status === 404) {
      if (o.pre) pass(`CRD ${name} is not installed yet`)
      else fail(`CRD ${name} is installed`, 'not found', 'install Weft: weft install | kubectl apply -f -')
      continue
    }
    if (r.status !== 200) { fail(`CRD ${name} is readable`, `${r.status} ${r.body?.message ?? ''}`, 'you need get on customresourcedefinitions') ; continue }
    const schemaOf = (c: any) => c?.spec?.versions?.map((v: any) => [v.name, v.schema])
    if (isDeepStrictEqual(schemaOf(r.body), schemaOf(want))) pass(`CRD ${name} is ${o.pre ? 'already installed and ' : ''}current`)
    else fail(`CRD ${name} is current`, 'its schema differs from this weft\'s', 'upgrade it: weft install | kubectl apply -f -')
  }
  if (o.pre) return report(results, out, o.output)

  const mwc = await kubeCall(o.kube, HttpMethod.GET, `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${WEBHOOK_CONFIG_NAME}`)
  let bundle = ''
  if (mwc.status !== 200) {
    fail(`webhook configuration ${WEBHOOK_CONFIG_NAME} exists`, `${mwc.status} ${mwc.body?.message ?? ''}`, 'install Weft: weft install | kubectl apply -f -')
  } else {
    bundle = Buffer.from(mwc.body.webhooks?.[0]?.clientConfig?.caBundle ?? '', 'base64').toString()
    const n = splitPem(bundle).length
    if (n > 0) pass(`webhook configuration ${WEBHOOK_CONFIG_NAME} has a caBundle`, `${n} CA${n === 1 ? '' : 's'}`)
    else fail(`webhook configuration ${WEBHOOK_CONFIG_NAME} has a caBundle`, 'caBundle is empty', `the control plane sets it at start: look at its log (kubectl -n ${o.namespace} logs deploy/weft-control-plane), code WEFT_ERR_WEBHOOK_CA_BUNDLE`)
  }

  section('weft-webhook')
  if (bundle !== '') {
    const agent = new Agent({ connect: { ca: bundle, servername: serviceDnsNames('weft-control-plane', o.namespace)[2] } })
    try {
      const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'weft-check', kind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'weft-check', operation: 'CREATE', dryRun: true, object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weft-check', annotations: { 'weft.io/inject': 'true' } }, spec: { containers: [{ name: 'app', image: 'app' }] } } } }
      const r = await request(`${o.webhookUrl.replace(/\/$/, '')}/inject`, { method: 'POST', dispatcher: agent, body: JSON.stringify(review), headers: { 'content-type': 'application/json' }, headersTimeout: 5000, bodyTimeout: 5000 })
      const body = await r.body.json() as { response?: { allowed?: boolean; patch?: string } }
      if (r.statusCode === 200 && body.response?.allowed === true && typeof body.response.patch === 'string') pass('the webhook answers over HTTPS with a certificate the caBundle verifies, and injects a test pod')
      else fail('the webhook injects a test pod', `status ${r.statusCode}, ${JSON.stringify(body).slice(0, 200)}`, `look at the control plane's log: kubectl -n ${o.namespace} logs deploy/weft-control-plane`)
    } catch (err) {
      const e = err as { code?: string; message: string }
      fail('the webhook is reachable with a valid certificate', `${o.webhookUrl}: ${e.code ?? ''} ${e.message}`, e.code?.includes('CERT') || e.code?.includes('VERIFY')
        ? `the caBundle does not verify the webhook's certificate: restart the control plane (kubectl -n ${o.namespace} rollout restart deploy/weft-control-plane) and check its log for WEFT_ERR_WEBHOOK_CA_BUNDLE`
        : `reach it first: ${port} (or pass --webhook-url)`)
    } finally {
      await agent.close()
    }
  }

  section('weft-control-plane')
  try {
    const cpAdmin = adminBase(o.controlPlaneAdmin)
    const ready = await request(`${cpAdmin}/ready`, { headersTimeout: 5000 })
    const text = (await ready.body.text()).trim()
    if (ready.statusCode === 200) pass('the control plane is ready')
    else fail('the control plane is ready', text, `it has not synced from the Kubernetes API yet: look at its log (kubectl -n ${o.namespace} logs deploy/weft-control-plane)`)
    const p = await request(`${cpAdmin}/debug/proxies`, { headersTimeout: 5000 })
    const v = await p.body.json() as { connected: number; proxies: { node: { id: string; proxyVersion: string } }[] }
    const versions = new Map<string, number>()
    for (const s of v.proxies) versions.set(s.node.proxyVersion || 'unknown', (versions.get(s.node.proxyVersion || 'unknown') ?? 0) + 1)
    pass(`${v.connected} ${v.connected === 1 ? 'proxy' : 'proxies'} connected`, [...versions].map(([ver, n]) => `${n} at ${ver}`).join(', ') || undefined)
  } catch (err) {
    fail('the control plane\'s admin is reachable', describeAdminError(o.controlPlaneAdmin, 'control-plane', err), `reach it first: ${port} (or pass --control-plane-admin)`)
  }
  return report(results, out, o.output)
}

function report(results: Result[], out: Out, output: OutputFormat = 'table'): number {
  if (output !== 'table') {
    let section = ''
    const checks: Record<string, unknown>[] = []
    for (const r of results) {
      if (r.title.startsWith('\n')) { section = r.title.trim().split('\n')[0]!; continue }
      checks.push({ section, ok: r.ok, title: r.title, ...(r.detail !== undefined ? { detail: r.detail } : {}), ...(!r.ok && r.hint !== undefined ? { whatToDo: r.hint } : {}) })
    }
    const ok = checks.every((c) => c.ok === true)
    emit(out, output, { ok, failed: checks.filter((c) => c.ok !== true).length, checks })
    return ok ? 0 : 1
  }
  let failed = 0
  for (const r of results) {
    if (r.title.startsWith('\n')) { out.write(r.title + '\n'); continue }
    if (!r.ok) failed++
    out.write(`${r.ok ? '√' : '×'} ${r.title}${r.detail !== undefined ? ` (${r.detail})` : ''}\n`)
    if (!r.ok && r.hint !== undefined) out.write(`    what to do: ${r.hint}\n`)
  }
  out.write(failed === 0 ? '\nStatus check results are √\n' : `\n${failed} ${failed === 1 ? 'check' : 'checks'} failed ×\n`)
  return failed === 0 ? 0 : 1
}
