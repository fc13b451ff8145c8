// `weft inject` / `weft uninject` as a user runs them: the real CLI, files and stdin, stdout and
// exit codes.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'

const weft = fileURLToPath(new URL('../bin/weft.js', import.meta.url))

interface Run { code: number | null; stdout: string; stderr: string }
function run(args: string[], stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [weft, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    p.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, stdout, stderr }))
    p.stdin.end(stdin ?? '')
  })
}

const dir = mkdtempSync(join(tmpdir(), 'weft-inject-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const STREAM = `# the shop
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web # the front end
  namespace: shop
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
        - name: migrate # runs first
          image: m:1
      containers:
        - name: app
          image: app:1
          ports: [{name: http, containerPort: 8080}]
          livenessProbe:
            httpGet: {path: /healthz, port: http}
---
# not a workload: untouched, byte for byte
apiVersion: v1
kind: Service
metadata: {name: web,  namespace: shop}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: List
items:
  - apiVersion: batch/v1
    kind: CronJob
    metadata: {name: nightly}
    spec:
      schedule: "0 3 * * *"
      jobTemplate:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers: [{name: job, image: j:1}]
  - apiVersion: v1
    kind: Pod
    metadata:
      name: opted-out
      annotations: {weft.io/inject: "false"}
    spec:
      containers: [{name: c, image: c:1}]
  - apiVersion: v1
    kind: Pod
    metadata: {name: host}
    spec:
      hostNetwork: true
      containers: [{name: c, image: c:1}]
`

t.test('inject a multi-document file: workloads injected (List items too), the rest as it was, comments kept', async (t) => {
  const f = join(dir, 'shop.yaml')
  writeFileSync(f, STREAM)
  const r = await run(['inject', '-f', f, '--proxy-image', 'reg.example/weft:1'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /weft: Pod host not injected: hostNetwork/)
  t.match(r.stderr, /weft inject: 2 workloads injected/)
  const docs = parseAllDocuments(r.stdout) as any[]
  t.equal(docs.length, 3)
  const [deploy, svc, list] = docs.map((d) => d.toJS())
  t.same(deploy.spec.template.spec.initContainers.map((c: any) => c.name), ['weft-init', 'weft-proxy', 'migrate'])
  t.equal(deploy.spec.template.spec.initContainers[1].image, 'reg.example/weft:1')
  t.same(deploy.spec.template.spec.containers[0].livenessProbe.httpGet, { path: '/app-health/app/livez', port: 15000, scheme: 'HTTP' })
  t.equal(list.items[0].spec.jobTemplate.spec.template.spec.initContainers[1].name, 'weft-proxy')
  t.notOk(list.items[1].spec.initContainers, 'weft.io/inject: "false" left alone')
  t.notOk(list.items[2].spec.initContainers, 'hostNetwork left alone')
  t.same(svc, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { ports: [{ port: 80 }] } })
  t.ok(r.stdout.startsWith('# the shop\n'), 'leading comment kept')
  t.match(r.stdout, /name: web # the front end\n/)
  t.match(r.stdout, /- name: migrate # runs first\n/)
  t.match(r.stdout, /---\n# not a workload: untouched, byte for byte\napiVersion: v1\nkind: Service\nmetadata: \{name: web,  namespace: shop\}\n/, 'an untouched document is written as read')
})

t.test('uninject reverses inject exactly, byte for byte; stdin with -', async (t) => {
  const injected = await run(['inject', '-f', '-'], STREAM)
  t.equal(injected.code, 0)
  const back = await run(['uninject', '-f', '-'], injected.stdout)
  t.equal(back.code, 0, back.stderr)
  t.match(back.stderr, /weft uninject: 2 workloads uninjected/)
  t.equal(back.stdout, STREAM)
  const again = await run(['inject', '-f', '-'], injected.stdout)
  t.equal(again.stdout, injected.stdout, 'injecting an injected stream changes nothing')
  t.match(again.stderr, /0 workloads injected/)
})

t.test('invalid YAML: file:line:column, exit 1, nothing written', async (t) => {
  const f = join(dir, 'bad.yaml')
  writeFileSync(f, 'kind: Pod\nmetadata:\n  name: [a, b\nspec: {}\n')
  const r = await run(['inject', '-f', f])
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:4:1: `))
  const missing = await run(['inject', '-f', join(dir, 'nope.yaml')])
  t.equal(missing.code, 1)
  t.equal(missing.stdout, '')
  t.match(missing.stderr, /nope.yaml: no such file/)
  const usage = await run(['inject'])
  t.equal(usage.code, 2, 'no -f: usage error')
})
