// install/: the committed manifests are what install/manifests.ts generates (run
// `npm run install-manifests` when this fails), every object is valid against the Kubernetes
// OpenAPI schemas (kubernetes-models' validators, generated from the Kubernetes OpenAPI spec;
// offline), the CRD schema is structural and accepts the example TrafficPolicies, and the RBAC
// grants exactly what the control plane uses.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import { parseAllDocuments } from 'yaml'
import { Namespace } from 'kubernetes-models/v1/Namespace'
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount'
import { Service } from 'kubernetes-models/v1/Service'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole'
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding'
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role'
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration'
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition'
import { Pod } from 'kubernetes-models/v1/Pod'
import { manifests, renderFile, renderAll } from '../install/manifests.ts'
import { inject, DEFAULT_MESH } from '../control-plane/inject/index.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  Namespace, ServiceAccount, Service, Deployment, ClusterRole, ClusterRoleBinding, Role, RoleBinding, PodDisruptionBudget, MutatingWebhookConfiguration, CustomResourceDefinition,
}

t.test('install/*.yaml are up to date (npm run install-manifests)', async (t) => {
  for (const [name, objs] of manifests()) {
    t.equal(readFileSync(join(ROOT, 'install', name), 'utf8'), renderFile(objs), `install/${name}`)
  }
})

t.test('every object is valid against the Kubernetes OpenAPI schema of its kind', async (t) => {
  const docs = parseAllDocuments(renderAll()) as any[]
  const kinds = docs.map((d) => d.toJS()).filter((o) => o !== null)
  t.same([...new Set(kinds.map((o) => o.kind))].sort(), Object.keys(MODELS).sort(), 'all the kinds of an install')
  for (const o of kinds) {
    const M = MODELS[o.kind]!
    t.doesNotThrow(() => new M(o).validate(), `${o.kind} ${o.metadata.name}`)
  }
  // the check can fail: a wrong type is caught
  const bad = structuredClone(kinds.find((o) => o.kind === 'Deployment'))
  bad.spec.replicas = 'two'
  t.throws(() => new Deployment(bad).validate(), /replicas must be integer/)
})

t.test('injected pods are valid Pods too (native and classic)', async (t) => {
  for (const mode of ['native', 'classic']) {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', annotations: { 'weft.io/sidecar-mode': mode } }, spec: { containers: [{ name: 'app', image: 'a', ports: [{ name: 'http', containerPort: 80 }], readinessProbe: { httpGet: { path: '/', port: 'http' } } }] } }
    t.doesNotThrow(() => new Pod(inject(pod, DEFAULT_MESH).workload as any).validate(), mode)
  }
})

function walk(s: any, path: string, visit: (s: any, path: string) => void): void {
  visit(s, path)
  for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${path}.${k}`, visit)
  if (s.items !== undefined) walk(s.items, `${path}[]`, visit)
  if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${path}.*`, visit)
}

t.test('the TrafficPolicy CRD: structural, and it accepts the example TrafficPolicies', async (t) => {
  const crd = manifests().find(([n]) => n === '01-crds.yaml')![1][0] as any
  t.equal(crd.metadata.name, 'trafficpolicies.policy.weft.io')
  const schema = crd.spec.versions[0].schema.openAPIV3Schema
  walk(schema, 'TrafficPolicy', (s, p) => {
    if (s.type === undefined) t.fail(`${p}: no type (not structural)`)
    for (const k of ['anyOf', 'oneOf', 'allOf', 'const', 'uniqueItems', '$schema']) if (k in s) t.fail(`${p}: ${k}`)
    if (s.properties !== undefined && s.additionalProperties !== undefined) t.fail(`${p}: properties and additionalProperties`)
  })
  const validate = new Ajv({ strict: false }).compile(schema)
  let n = 0
  for (const f of ['examples/mesh/resources/trafficpolicies.yaml', 'examples/demo/policies.yaml']) {
    for (const d of parseAllDocuments(readFileSync(join(ROOT, f), 'utf8')) as any[]) {
      const o = d.toJS()
      if (o?.kind !== 'TrafficPolicy') continue
      n++
      t.ok(validate(o), `${f} ${o.metadata.name}: ${JSON.stringify(validate.errors)}`)
    }
  }
  t.ok(n > 0, 'examples found')
  t.notOk(validate({ apiVersion: 'policy.weft.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'x' }, spec: { targetRefs: [{ group: '', kind: 'Deployment', name: 'a' }] } }), 'a kind the validator refuses is refused by the CRD')
})

t.test('RBAC: list/watch on what the control plane watches, get/patch on its own webhook configuration, TokenReviews, its root Secret, nothing else', async (t) => {
  const role = manifests().find(([n]) => n === '02-rbac.yaml')![1][1] as any
  t.same(role.rules, [
    { apiGroups: [''], resources: ['services', 'pods'], verbs: ['list', 'watch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    { apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes'], verbs: ['list', 'watch'] },
    { apiGroups: ['policy.weft.io'], resources: ['trafficpolicies'], verbs: ['list', 'watch'] },
    { apiGroups: ['security.weft.io'], resources: ['peerauthentications', 'authorizationpolicies'], verbs: ['list', 'watch'] },
    { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: ['weft-sidecar-injector'], verbs: ['get', 'patch'] },
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
  ])
  // the mesh root: its own Secret in the control plane's namespace (a Role, not cluster-wide)
  const ns = manifests().find(([n]) => n === '02-rbac.yaml')![1].find((o: any) => o.kind === 'Role') as any
  t.equal(ns.metadata.namespace, 'weft-system')
  t.same(ns.rules, [
    { apiGroups: [''], resources: ['secrets'], resourceNames: ['weft-ca-root'], verbs: ['get'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ])
})

t.test('the webhook configuration: pods on CREATE, opt-in namespaces, sideEffects None; 2 serving replicas with a PDB', async (t) => {
  const all = manifests().flatMap(([, o]) => o) as any[]
  const wh = all.find((o) => o.kind === 'MutatingWebhookConfiguration').webhooks[0]
  t.match(wh, { sideEffects: 'None', admissionReviewVersions: ['v1'], clientConfig: { service: { path: '/inject' } }, rules: [{ operations: ['CREATE'], resources: ['pods'] }] })
  t.same(wh.namespaceSelector.matchExpressions[0], { key: 'weft.io/inject', operator: 'In', values: ['enabled'] })
  const d = all.find((o) => o.kind === 'Deployment')
  t.equal(d.spec.replicas, 2)
  t.match(d.spec.template.spec.containers[0].args, ['control-plane', '--kubernetes', 'cluster'])
  t.ok(d.spec.template.spec.containers[0].args.includes('--webhook-listen'))
  t.equal(all.find((o) => o.kind === 'PodDisruptionBudget').spec.minAvailable, 1)
})

t.test('the control plane\'s container starts with its glibc memory settings (install/03-control-plane.yaml, weft install)', async (t) => {
  // the file a user applies, read as YAML (not the generator's objects)
  const objs = (parseAllDocuments(readFileSync(join(ROOT, 'install', '03-control-plane.yaml'), 'utf8')) as any[]).map((d) => d.toJS())
  const env = objs.find((o) => o.kind === 'Deployment').spec.template.spec.containers[0].env as { name: string; value?: string }[]
  const value = (name: string) => env.find((e) => e.name === name)?.value
  t.equal(value('MALLOC_ARENA_MAX'), '2')
  t.equal(value('MALLOC_MMAP_THRESHOLD_'), '131072')
  t.equal(value('MALLOC_TRIM_THRESHOLD_'), '131072')
  t.equal(value('NODE_OPTIONS'), undefined, 'V8\'s defaults (a smaller young generation cost CPU a change: README "Memory with many proxies")')
  t.ok(env.some((e) => e.name === 'POD_NAMESPACE'), 'POD_NAMESPACE kept')
  // a process with exactly this environment is not re-executed (it already has every setting)
  const { hasControlPlaneSettings } = await import('../control-plane/runtime.ts')
  t.ok(hasControlPlaneSettings(Object.fromEntries(env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]))))
})

t.test('weft install prints the manifests, with --namespace and --image applied', async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const weft = join(ROOT, 'bin', 'weft.js')
  const plain = await promisify(execFile)(process.execPath, [weft, 'install'])
  t.equal(plain.stdout, renderAll())
  const r = await promisify(execFile)(process.execPath, [weft, 'install', '--namespace', 'mesh', '--image', 'reg.example/weft:2'])
  const objs = (parseAllDocuments(r.stdout) as any[]).map((d) => d.toJS())
  t.equal(objs.find((o) => o.kind === 'Namespace').metadata.name, 'mesh')
  const d = objs.find((o) => o.kind === 'Deployment')
  t.equal(d.metadata.namespace, 'mesh')
  t.equal(d.spec.template.spec.containers[0].image, 'reg.example/weft:2')
  t.same(objs.find((o) => o.kind === 'MutatingWebhookConfiguration').webhooks[0].namespaceSelector.matchExpressions[1].values, ['kube-system', 'mesh'])
})
