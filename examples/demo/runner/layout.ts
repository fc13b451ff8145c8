// The demo's workloads and ports, each workload's sidecar bootstrap, and the port-shifted copy of
// the resources when the demo runs on another port range.
//
// Every workload is an app plus a sidecar fed by the control plane. The control plane sends
// each sidecar the listener "outbound" (route table "outbound": every Service); the bootstrap
// moves it to the workload's own port and adds the sidecar's own inbound listener, route table
// and local-app cluster, which no Service resource describes (proxy/xds/assemble.ts keeps a
// bootstrap's listeners that the control plane does not send, with their tables and clusters).
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { stringify } from 'yaml'
import type { Bootstrap } from '../../../api/schema.ts'

export const NAMESPACE = 'demo'
export const DEFAULT_BASE_PORT = 17000
/** the port range the YAML in examples/demo/ is written for */
export const PORT_SPAN = 100

export interface Workload {
  readonly name: string
  /** the ports are base + slot × 10 + 0 (app), 1 (inbound), 2 (outbound), 3 (admin) */
  readonly slot: number
  /** examples/demo/apps/<app> and its arguments besides --port / --outbound */
  readonly app: string
  readonly args?: readonly string[]
  /** the Service its inbound listener serves (metric label destination_service); none: no inbound */
  readonly service?: string
}

export const WORKLOADS: readonly Workload[] = [
  { name: 'frontend', slot: 1, app: 'frontend.ts', service: 'frontend' },
  { name: 'catalogue', slot: 2, app: 'catalogue.ts', service: 'catalogue' },
  { name: 'reviews-v1', slot: 3, app: 'reviews.ts', args: ['--version', 'v1'], service: 'reviews-v1' },
  { name: 'reviews-v2', slot: 4, app: 'reviews.ts', args: ['--version', 'v2', '--error-rate', '0.2'], service: 'reviews-v2' },
  // The users: no Service, no inbound listener, only calls out.
  { name: 'loadgen', slot: 5, app: 'loadgen.ts' },
]

export interface Ports {
  app: number
  inbound: number
  outbound: number
  admin: number
}

export function controlPlanePorts(base: number): { grpc: number; admin: number; ca: number } {
  return { grpc: base, admin: base + 1, ca: base + 2 }
}

/** Mutual TLS: the CA's tokens file (one token per workload, its ServiceAccount its name) and one TrafficPolicy per Service (tls, secure naming). */
export function mtlsFiles(): { tokens: string; policies: string } {
  const tokens = 'tokens:\n' + WORKLOADS.map((w) => `  - { token: demo-token-${w.name}, namespace: ${NAMESPACE}, serviceAccount: ${w.name} }\n`).join('')
  const serving: Record<string, string[]> = { frontend: ['frontend'], catalogue: ['catalogue'], reviews: ['reviews-v1', 'reviews-v2'], 'reviews-v1': ['reviews-v1'], 'reviews-v2': ['reviews-v2'] }
  const policies = Object.entries(serving).map(([svc, sas]) => `# npm start: mutual TLS to ${svc}, served only by ${sas.join(' and ')}
apiVersion: policy.weft.io/v1alpha1
kind: TrafficPolicy
metadata: { name: ${svc}-mtls, namespace: ${NAMESPACE} }
spec:
  targetRefs: [{ group: "", kind: Service, name: ${svc} }]
  tls:
    identities: [${sas.map((sa) => `"spiffe://cluster.local/ns/${NAMESPACE}/sa/${sa}"`).join(', ')}]
`).join('---\n')
  return { tokens, policies }
}

/** --ratelimit: redis-server and weft ratelimit-server, at the top of the range */
export function rateLimitPorts(base: number): { redis: number; rls: number } {
  return { redis: base + 96, rls: base + 97 }
}

/** --ratelimit: the limits of weft ratelimit-server, and the TrafficPolicy that asks it (catalogue, 5/s) */
export function rateLimitFiles(base: number): { limits: string; policy: string } {
  return {
    limits: 'domain: demo\ndescriptors:\n  - key: service\n    value: catalogue\n    rate_limit: { unit: second, requests_per_unit: 5 }\n',
    policy: `# npm start -- --ratelimit: every caller of catalogue together may make 5 calls a second
apiVersion: policy.weft.io/v1alpha1
kind: TrafficPolicy
metadata: { name: catalogue-global-limit, namespace: demo }
spec:
  targetRefs: [{ group: "", kind: Service, name: catalogue }]
  globalRateLimit:
    service: 127.0.0.1:${rateLimitPorts(base).rls}
    domain: demo
    descriptors: [{ entries: [{ key: service, from: value, value: catalogue }] }]
    timeout: 100ms
`,
  }
}

export function portsOf(w: Workload, base: number): Ports {
  const p = base + w.slot * 10
  return { app: p, inbound: p + 1, outbound: p + 2, admin: p + 3 }
}

export function serviceFqdn(service: string): string {
  return `${service}.${NAMESPACE}.svc.cluster.local`
}

/** The sidecar's bootstrap: its settings and its own inbound hop; routes to other Services come from the control plane. */
export function bootstrapOf(w: Workload, base: number, mtls?: { tokenDir: string }): Bootstrap {
  const p = portsOf(w, base)
  const b: Bootstrap = {
    node: { id: `${w.name}-1`, workload: w.name, namespace: NAMESPACE },
    admin: { address: '127.0.0.1', port: p.admin },
    drainTimeout: '2s',
    // the runner stops the load first: nothing calls a sidecar any more when it drains
    drainPeriod: '0s',
    telemetry: { metrics: { enabled: true } },
    // "outbound" is the control plane's listener: only its address and port are taken from here.
    listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: p.outbound, routeTable: 'outbound' }],
    routeTables: [],
    clusters: [],
  }
  if (mtls !== undefined) {
    // an SVID for spiffe://cluster.local/ns/demo/sa/<workload> from the control plane's CA
    b.identity = { serviceAccount: w.name, ca: { address: `127.0.0.1:${controlPlanePorts(base).ca}`, tokenFile: join(mtls.tokenDir, `${w.name}.token`) } }
  }
  if (w.service !== undefined) {
    const cluster = `inbound|80||${serviceFqdn(w.service)}`
    b.listeners.push({ name: 'inbound', direction: 'inbound', address: '127.0.0.1', port: p.inbound, routeTable: 'inbound', ...(mtls !== undefined ? { mtls: 'strict' as const } : {}) })
    b.routeTables.push({
      name: 'inbound',
      virtualHosts: [
        {
          // `service` gives the inbound metrics the same destination_service as the callers' ("*": any Host).
          name: w.service,
          service: { name: w.service, namespace: NAMESPACE },
          domains: ['*'],
          routes: [{ name: 'inbound', backends: [{ cluster }] }],
        },
      ],
    })
    b.clusters.push({
      name: cluster,
      destination: { service: serviceFqdn(w.service), workload: w.name, namespace: NAMESPACE },
      endpoints: [{ address: '127.0.0.1', port: p.app }],
    })
  }
  return b
}

export async function writeBootstrap(dir: string, w: Workload, base: number, mtls = false): Promise<string> {
  const file = join(dir, `bootstrap-${w.name}.yaml`)
  await writeFile(file, `# generated by examples/demo/runner/layout.ts\n${stringify(bootstrapOf(w, base, mtls ? { tokenDir: dir } : undefined))}`)
  return file
}

const RESOURCE_FILE = /\.(ya?ml|json)$/

/**
 * The resources with every `port: <default range>` moved to the base port's range. The numbers
 * keep their width (5 digits), so line and column of an error still point at the user's file.
 */
export function shiftPorts(text: string, base: number): string {
  const offset = base - DEFAULT_BASE_PORT
  if (offset === 0) return text
  return text.replace(/(\bport:\s*)(\d{5})\b/g, (m, key: string, n: string) => {
    const v = Number(n)
    return v >= DEFAULT_BASE_PORT && v < DEFAULT_BASE_PORT + PORT_SPAN ? key + String(v + offset) : m
  })
}

/**
 * Copy the resource files of `src` into `dst` with shifted ports: files whose text changed are
 * written (to a dot-file, then renamed over: the control plane never reads half a file), files
 * gone from `src` are removed. Idempotent; called again on every change of `src`.
 */
export async function renderResources(src: string, dst: string, base: number, extra: Readonly<Record<string, string>> = {}): Promise<void> {
  const names = (await readdir(src)).filter((f) => !f.startsWith('.') && RESOURCE_FILE.test(f))
  for (const name of names) {
    let text: string
    try {
      text = shiftPorts(await readFile(join(src, name), 'utf8'), base)
    } catch {
      continue // removed meanwhile, or a directory: the next call sees it
    }
    const old = await readFile(join(dst, name), 'utf8').catch(() => null)
    if (old === text) continue
    await writeFile(join(dst, `.${name}.tmp`), text)
    await rename(join(dst, `.${name}.tmp`), join(dst, name))
  }
  for (const [name, text] of Object.entries(extra)) {
    if ((await readFile(join(dst, name), 'utf8').catch(() => null)) !== text) await writeFile(join(dst, name), text)
  }
  for (const name of await readdir(dst)) {
    if (!name.startsWith('.') && !names.includes(name) && !(name in extra)) await rm(join(dst, name), { force: true })
  }
}
