// The sidecar injector (control-plane/inject/): one pure function, its layouts, its annotations,
// and uninject() restoring the original exactly.
import t from 'tap'
import { inject, uninject, appHealthPath, DEFAULT_MESH, type KubeObject } from '../control-plane/inject/index.ts'

const pod = (extra: Record<string, unknown> = {}, annotations?: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', namespace: 'shop', ...(annotations !== undefined ? { annotations } : {}) },
  spec: {
    containers: [{
      name: 'app',
      image: 'app:1',
      ports: [{ name: 'http', containerPort: 8080 }],
      livenessProbe: { httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'x-probe', value: '1' }] }, periodSeconds: 5 },
      readinessProbe: { httpGet: { path: '/ready', port: 8080, scheme: 'HTTPS' } },
      startupProbe: { tcpSocket: { port: 8080 } },
    }],
    ...extra,
  },
})

const names = (cs: any[] | undefined) => (cs ?? []).map((c) => c.name)

t.test('native layout: weft-init, then the weft-proxy native sidecar, before the pod\'s own init containers', async (t) => {
  const input = pod({ initContainers: [{ name: 'migrate', image: 'm:1' }] })
  const frozen = structuredClone(input)
  const r = inject(input, DEFAULT_MESH)
  t.equal(r.injected, true)
  t.same(input, frozen, 'input not mutated')
  const spec = r.workload.spec as any
  t.same(names(spec.initContainers), ['weft-init', 'weft-proxy', 'migrate'])
  t.same(names(spec.containers), ['app'])
  const [init, proxy] = spec.initContainers
  t.same(init.command, ['weft'])
  t.same(init.args, ['init', '--proxy-uid', '1337', '--outbound-port', '15001', '--inbound-port', '15006', '--exclude-inbound-ports', '15000'])
  t.same(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] })
  t.equal(proxy.restartPolicy, 'Always')
  t.same(proxy.args, ['proxy', '--control-plane', DEFAULT_MESH.controlPlaneAddress])
  t.same(proxy.startupProbe.httpGet, { path: '/ready', port: 15000 })
  t.match(proxy.securityContext, { runAsUser: 1337, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } })
  t.notOk(proxy.securityContext.capabilities.add)
  const env = Object.fromEntries(proxy.env.map((e: any) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]))
  t.match(env, { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', SERVICE_ACCOUNT: 'spec.serviceAccountName', POD_IP: 'status.podIP', WEFT_CONTROL_PLANE: DEFAULT_MESH.controlPlaneAddress, WEFT_LOG_LEVEL: 'info' })
  t.same(proxy.resources, { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } })
  t.same(spec.volumes, [{ name: 'weft-proxy-tmp', emptyDir: { medium: 'Memory' } }])
  t.same(JSON.parse((r.workload.metadata as any).annotations['weft.io/status']).mode, 'native')
})

t.test('HTTP probes are rewritten to the admin port; the originals (named port resolved) go to WEFT_APP_PROBES', async (t) => {
  const r = inject(pod(), DEFAULT_MESH)
  const app = (r.workload.spec as any).containers[0]
  t.same(app.livenessProbe, { httpGet: { path: '/app-health/app/livez', port: 15000, scheme: 'HTTP' }, periodSeconds: 5 })
  t.same(app.readinessProbe.httpGet, { path: appHealthPath('app', 'readinessProbe'), port: 15000, scheme: 'HTTP' })
  t.same(app.startupProbe, { tcpSocket: { port: 8080 } }, 'tcpSocket probes are left alone')
  const proxy = (r.workload.spec as any).initContainers[1]
  const probes = JSON.parse(proxy.env.find((e: any) => e.name === 'WEFT_APP_PROBES').value)
  t.same(probes, [
    { container: 'app', probe: 'livenessProbe', port: 8080, httpGet: { path: '/healthz', port: 'http', httpHeaders: [{ name: 'x-probe', value: '1' }] } },
    { container: 'app', probe: 'readinessProbe', port: 8080, httpGet: { path: '/ready', port: 8080, scheme: 'HTTPS' } },
  ])
  const off = inject(pod({}, { 'weft.io/rewrite-probes': 'false' }), DEFAULT_MESH)
  t.same((off.workload.spec as any).containers[0].livenessProbe.httpGet.port, 'http', 'weft.io/rewrite-probes: "false" keeps them')
})

t.test('a named probe port the container does not declare: left as it is, with a warning', async (t) => {
  const p = pod()
  ;(p.spec as any).containers[0].livenessProbe.httpGet.port = 'nope'
  const r = inject(p, DEFAULT_MESH)
  t.equal(r.injected, true)
  t.equal((r.workload.spec as any).containers[0].livenessProbe.httpGet.port, 'nope')
  t.match(r.warnings, [/livenessProbe: port "nope" is not one of its named ports/])
})

t.test('classic layout: the proxy is the first container, held with a postStart wait', async (t) => {
  const r = inject(pod({}, { 'weft.io/sidecar-mode': 'classic' }), DEFAULT_MESH)
  const spec = r.workload.spec as any
  t.same(names(spec.initContainers), ['weft-init'])
  t.same(names(spec.containers), ['weft-proxy', 'app'])
  t.notOk(spec.containers[0].restartPolicy)
  t.same(spec.containers[0].lifecycle.postStart.exec.command, ['weft', 'wait-ready', '--port', '15000', '--timeout', '120'])
})

t.test('annotations: excluded ports and CIDRs, proxy resources, log level', async (t) => {
  const r = inject(pod({}, {
    'weft.io/exclude-inbound-ports': '9090, 9091',
    'weft.io/exclude-outbound-ports': '5432',
    'weft.io/exclude-outbound-cidrs': '10.0.0.0/8,fd00::/8',
    'weft.io/proxy-cpu-request': '50m',
    'weft.io/proxy-cpu-limit': '1',
    'weft.io/proxy-memory-request': '64Mi',
    'weft.io/proxy-memory-limit': '512Mi',
    'weft.io/log-level': 'debug',
  }), DEFAULT_MESH)
  const [init, proxy] = (r.workload.spec as any).initContainers
  t.same(init.args.slice(7), ['--exclude-inbound-ports', '15000,9090,9091', '--exclude-outbound-ports', '5432', '--exclude-outbound-cidrs', '10.0.0.0/8,fd00::/8'])
  t.same(proxy.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '512Mi' } })
  t.equal(proxy.env.find((e: any) => e.name === 'WEFT_LOG_LEVEL').value, 'debug')
})

t.test('not injected: disabled, already injected, hostNetwork, invalid annotations, other kinds', async (t) => {
  t.match(inject(pod({}, { 'weft.io/inject': 'false' }), DEFAULT_MESH), { injected: false, skipped: 'disabled', warnings: [] })
  const once = inject(pod(), DEFAULT_MESH).workload
  const twice = inject(once, DEFAULT_MESH)
  t.match(twice, { injected: false, skipped: 'already-injected' })
  t.same(twice.workload, once, 'idempotent')
  const hn = inject(pod({ hostNetwork: true }), DEFAULT_MESH)
  t.match(hn, { injected: false, skipped: 'host-network', warnings: [/Pod shop\/web not injected: hostNetwork/] })
  t.same(hn.workload, pod({ hostNetwork: true }))
  const bad = inject(pod({}, { 'weft.io/exclude-inbound-ports': '80,http', 'weft.io/exclude-outbound-cidrs': '10.0.0.0/33', 'weft.io/proxy-memory-limit': 'lots', 'weft.io/sidecar-mode': 'old' }), DEFAULT_MESH)
  t.match(bad, { injected: false, skipped: 'invalid-annotation' })
  t.match(bad.warnings, [/sidecar-mode: "old"/, /exclude-inbound-ports: "80,http": "http" is not a port/, /exclude-outbound-cidrs: "10.0.0.0\/33"/, /proxy-memory-limit: "lots"/])
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [] } }
  t.match(inject(svc, DEFAULT_MESH), { injected: false, skipped: 'not-a-workload', workload: svc })
})

t.test('every workload kind: the pod template is injected, and uninject gives back the original exactly', async (t) => {
  const template = { spec: { containers: [{ name: 'app', image: 'a' }] } }
  const kinds: KubeObject[] = [
    pod(),
    pod({ initContainers: [{ name: 'x' }], volumes: [{ name: 'data', emptyDir: {} }] }, { keep: 'me' }),
    pod({}, { 'weft.io/sidecar-mode': 'classic' }),
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { replicas: 2, template } },
    { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's' }, spec: { template } },
    { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'ds' }, spec: { template } },
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'rs' }, spec: { template } },
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { template: { metadata: { labels: { a: 'b' } }, spec: { restartPolicy: 'Never', containers: [{ name: 'app' }] } } } },
    { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'c' }, spec: { schedule: '* * * * *', jobTemplate: { spec: { template } } } },
  ]
  for (const k of kinds) {
    const r = inject(k, DEFAULT_MESH)
    t.equal(r.injected, true, `${k.kind} injected`)
    t.not(JSON.stringify(r.workload), JSON.stringify(k))
    const u = uninject(r.workload)
    t.equal(u.uninjected, true)
    t.same(u.workload, k, `${k.kind} ${k.metadata!.name}: inject then uninject is the original`)
    t.equal(JSON.stringify(u.workload), JSON.stringify(k), 'same key order too')
  }
  t.same(uninject(pod()), { workload: pod(), uninjected: false }, 'uninject of a pod that is not injected: unchanged')
})
