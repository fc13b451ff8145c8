// The webhook's JSON Patch, written directly (control-plane/inject/patch.ts), against inject():
// over many pod shapes and mesh configurations, the patch applied to the pod is inject()'s pod
// (deep-equal and byte for byte, key order included), the decision and the warnings are the same,
// and the pod is never modified.
import t from 'tap'
import fc from 'fast-check'
import { compilePodPatcher, DEFAULT_MESH, inject, type KubeObject, type MeshConfig } from '../control-plane/inject/index.ts'
import { b64 } from '../control-plane/inject/patch.ts'
import { apply, type PatchOp } from '../control-plane/webhook/json-patch.ts'

const MESHES: MeshConfig[] = [
  DEFAULT_MESH,
  {
    image: 'reg.example/weft:"dev"', controlPlaneAddress: 'cp.mesh-ns.svc:15010', controlPlaneNamespace: 'mesh-ns', proxyUid: 2102,
    ports: { outbound: 16001, inbound: 16006, admin: 16000 }, resources: {}, logLevel: 'warn',
  },
  { ...DEFAULT_MESH, imagePullPolicy: 'Always', resources: { cpuLimit: '2' }, caAddress: 'weft-control-plane.weft-system.svc:15012' },
]

/** mostly one of `good`, now and then one of `bad` (which makes inject() skip the pod) */
const mostly = <T>(good: T[], bad: T[]) => fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...good) }, { weight: 1, arbitrary: fc.constantFrom(...bad) })
const name = fc.oneof({ weight: 30, arbitrary: fc.constantFrom('app', 'log', 'side-car', 'a/b', 'x~y', 'ünï', 'q"uote', 'back\\slash', 'weft-init') }, { weight: 12, arbitrary: fc.string({ minLength: 1, maxLength: 6 }) }, { weight: 1, arbitrary: fc.constant('weft-proxy') })
const httpGet = fc.record({
  path: fc.option(fc.constantFrom('/ready', '/healthz?x=1', '/ü'), { nil: undefined }),
  port: fc.oneof(fc.constantFrom(8080, 9090, 'http', 'metrics', 'nope', '8081', ''), fc.integer({ min: 1, max: 65535 })),
  host: fc.option(fc.constant('10.0.0.1'), { nil: undefined }),
  scheme: fc.option(fc.constantFrom('HTTP' as const, 'HTTPS' as const), { nil: undefined }),
  httpHeaders: fc.option(fc.constant([{ name: 'x-probe', value: '1' }]), { nil: undefined }),
}, { requiredKeys: ['port'] })
const probe = fc.oneof(
  fc.record({ httpGet, periodSeconds: fc.option(fc.nat(30), { nil: undefined }) }, { requiredKeys: ['httpGet'] }),
  fc.constant({ tcpSocket: { port: 8080 } }),
  fc.constant({ exec: { command: ['true'] } }),
)
const container = fc.record({
  name,
  image: fc.constantFrom('app:1', 'log:2'),
  ports: fc.array(fc.record({ name: fc.constantFrom('http', 'metrics', 'grpc'), containerPort: fc.integer({ min: 1, max: 65535 }) }, { requiredKeys: ['containerPort'] }), { maxLength: 3 }),
  livenessProbe: probe,
  readinessProbe: probe,
  startupProbe: probe,
  env: fc.constant([{ name: 'A', value: 'b' }]),
}, { requiredKeys: ['name'] })
const annotations = fc.record({
  'weft.io/inject': mostly(['true', 'maybe'], ['false']),
  'weft.io/sidecar-mode': mostly(['native', 'classic'], ['old']),
  'weft.io/exclude-inbound-ports': mostly(['9090', '9090, 9091', ''], ['x']),
  'weft.io/exclude-outbound-ports': fc.constantFrom('5432', '1,2'),
  'weft.io/exclude-outbound-cidrs': mostly(['10.0.0.0/8,fd00::/8'], ['10.0.0.0/33']),
  'weft.io/proxy-cpu-request': mostly(['50m'], ['lots']),
  'weft.io/proxy-memory-limit': fc.constantFrom('512Mi'),
  'weft.io/log-level': mostly(['debug', 'info'], ['loud']),
  'weft.io/rewrite-probes': fc.constantFrom('true', 'false'),
  'weft.io/inbound-mtls': mostly(['strict', 'permissive', 'disable'], ['tight']),
  'a/b~c': fc.constant('x'),
  keep: fc.constant('me'),
}, { requiredKeys: [] })
// now and then weft.io/status, which marks an injected pod
const withStatus = fc.tuple(annotations, fc.nat(15)).map(([a, n]) => (n === 0 ? { ...a, 'weft.io/status': '{"version":1}' } : a))
const pod: fc.Arbitrary<KubeObject> = fc.record({
  apiVersion: fc.constant('v1'),
  kind: fc.constant('Pod'),
  metadata: fc.record({
    name: fc.constant('web'),
    generateName: fc.constant('web-'),
    namespace: fc.constant('shop'),
    labels: fc.constant({ app: 'web' }),
    annotations: withStatus,
  }, { requiredKeys: [] }),
  spec: fc.record({
    containers: fc.array(container, { minLength: 1, maxLength: 4 }),
    initContainers: fc.array(container, { maxLength: 2 }),
    volumes: fc.array(fc.record({ name: fc.constantFrom('data', 'cfg'), emptyDir: fc.constant({}) }), { maxLength: 2 }),
    hostNetwork: mostly([false], [true]),
    serviceAccountName: fc.constant('web'),
  }, { requiredKeys: ['containers'] }),
  status: fc.constant({ phase: 'Pending' }),
}, { requiredKeys: ['apiVersion', 'kind', 'spec'] })

t.test('the direct patch applied to the pod is inject()\'s pod, for any pod and mesh', async (t) => {
  const patchers = MESHES.map((m) => compilePodPatcher(m))
  let injected = 0
  let runs = 0
  fc.assert(fc.property(pod, fc.nat(MESHES.length - 1), (p, mi) => {
    runs++
    const frozen = JSON.stringify(p)
    const want = inject(p, MESHES[mi]!)
    const got = patchers[mi]!(p)
    if (JSON.stringify(p) !== frozen) throw new Error('the patcher modified the pod')
    if (got.injected !== want.injected) throw new Error(`injected ${got.injected}, inject() says ${want.injected}`)
    if (JSON.stringify(got.warnings) !== JSON.stringify(want.warnings)) throw new Error(`warnings ${JSON.stringify(got.warnings)} vs ${JSON.stringify(want.warnings)}`)
    if (!got.injected) {
      if (got.skipped !== want.skipped) throw new Error(`skipped ${got.skipped} vs ${want.skipped}`)
      return
    }
    injected++
    const ops = JSON.parse(Buffer.from(got.patch, 'base64').toString()) as PatchOp[]
    if (!ops.every((o) => ['add', 'replace'].includes(o.op) && o.path.startsWith('/'))) throw new Error(`unexpected op in ${got.patch}`)
    const applied = apply(p, ops)
    if (JSON.stringify(applied) !== JSON.stringify(want.workload)) throw new Error(`patched pod differs:\n${JSON.stringify(applied)}\n${JSON.stringify(want.workload)}`)
  }), { numRuns: 3000, seed: 20261205 })
  t.equal(runs, 3000)
  t.ok(injected > 1200, `injected in ${injected} of 3000 runs (the generator reaches the patch path)`)
})

t.test('each layout and shape of the pod\'s own lists gives the operations the API server expects', async (t) => {
  const patch = compilePodPatcher(DEFAULT_MESH)
  const base = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [{ name: 'app', readinessProbe: { httpGet: { path: '/r', port: 8080 }, periodSeconds: 3 } }] } }
  const ops = (p: KubeObject) => {
    const r = patch(p)
    if (!r.injected) throw new Error('not injected')
    return (JSON.parse(Buffer.from(r.patch, 'base64').toString()) as PatchOp[]).map((o) => `${o.op} ${o.path}`)
  }
  t.same(ops(base), [
    'replace /spec/containers/0/readinessProbe/httpGet',
    'add /spec/initContainers',
    'add /spec/volumes',
    'add /metadata/annotations',
  ], 'native, nothing of ours present: whole lists and the annotations map')
  const full = { ...base, metadata: { name: 'web', annotations: { 'weft.io/sidecar-mode': 'classic' } }, spec: { ...base.spec, initContainers: [{ name: 'migrate' }], volumes: [{ name: 'data' }] } }
  t.same(ops(full), [
    'replace /spec/containers/0/readinessProbe/httpGet',
    'add /spec/initContainers/0',
    'add /spec/containers/0',
    'add /spec/volumes/-',
    'add /metadata/annotations/weft.io~1status',
  ], 'classic with the pod\'s own lists: inserts, the probe patched before the proxy shifts the containers')
  const bare = { apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'app' }] } }
  t.same(ops(bare), ['add /spec/initContainers', 'add /spec/volumes', 'add /metadata'], 'no metadata at all')
  t.same(apply(bare, JSON.parse(Buffer.from((patch(bare) as { patch: string }).patch, 'base64').toString())), inject(bare, DEFAULT_MESH).workload)
  t.match(patch({ apiVersion: 'apps/v1', kind: 'Deployment', spec: { template: bare } }), { injected: false, skipped: 'not-a-workload' }, 'pods only: the webhook patches Pods')
})

t.test('b64: pieces padded to 3 bytes concatenate into the base64 of the padded texts (any UTF-8)', async (t) => {
  fc.assert(fc.property(fc.array(fc.string({ unit: 'grapheme', maxLength: 12 }), { maxLength: 6 }), (texts) => {
    const joined = Buffer.from(texts.map(b64).join(''), 'base64').toString()
    const padded = texts.map((s) => s + ' '.repeat((3 - (Buffer.byteLength(s) % 3)) % 3)).join('')
    if (joined !== padded) throw new Error(`${JSON.stringify(joined)} !== ${JSON.stringify(padded)}`)
  }), { numRuns: 500, seed: 11 })
  t.equal(b64('[{"op":"add"}'), Buffer.from('[{"op":"add"}  ').toString('base64'), 'two spaces for 13 bytes')
  t.equal(b64('ü'), Buffer.from('ü ').toString('base64'), 'bytes, not characters: ü is 2 bytes, one space')
})
