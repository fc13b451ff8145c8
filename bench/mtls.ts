// Mutual TLS bench (`npm run bench -- --mtls [--quick]`): the mesh's inter-proxy shape, two
// proxies in a row (client -> A -> B -> upstream nginx), plain and with mutual TLS on the A -> B
// hop, for Weft and for HAProxy doing the same (B's bind `ssl crt ... verify required`, A's server
// line `ssl crt ... verify required`, TLS 1.3 both), all in one run:
//
//   direct            wrk -> nginx
//   weft-plain        wrk -> weft A (outbound) -> weft B (inbound) -> nginx
//   weft-mtls         ... the A -> B hop in mesh TLS (SVIDs from a CA run by this bench)
//   weft-mtls-authz   ... and 20 authorization rules on B (19 that do not match, one ALLOW that does)
//   haproxy-plain     wrk -> haproxy A -> haproxy B -> nginx
//   haproxy-mtls      ... the A -> B hop in TLS with client certificates (the same CA's SVIDs)
//
// --only ROW,ROW measures those rows alone (all are still started), e.g. the authorization cost:
// --only weft-mtls,weft-mtls-authz --repeat 6.
//
// Per row: a warm-up, wrk -c50 (requests/s), wrk -c1 (p50), the two proxies' CPU from /proc.
// Then the new-connection handshake rate on B's port (openssl s_time -new, client certificate)
// for Weft and HAProxy. Rows run in alternating order each round. The last line is JSON with
// throughput_ratio and added_p50_ratio (weft-mtls over haproxy-mtls), authz_ratio
// (weft-mtls-authz over weft-mtls) and the handshake rates.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { webcrypto } from 'node:crypto'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import type { AuthorizationPolicy, Bootstrap } from '../api/schema.ts'
import { freePorts, waitForHttp } from './net.ts'
import { readCpuSeconds } from './proc.ts'
import { cleanupAll, runCapture, spawnGroup, trackTempDir, type Proc } from './spawn.ts'
import { runWrk, type WrkResult } from './wrk.ts'
import { startUpstream } from './peers/nginx.ts'
import { CertificateAuthority } from '../control-plane/ca/ca.ts'
import { FileTokens, startCaServer } from '../control-plane/ca/server.ts'

const here = path.dirname(fileURLToPath(import.meta.url))
const WEFT_BIN = path.resolve(here, '../bin/weft.js')
const RESULTS_DIR = path.join(here, 'results')

type RowName = 'direct' | 'weft-plain' | 'weft-mtls' | 'weft-mtls-authz' | 'haproxy-plain' | 'haproxy-mtls'
interface Row { name: RowName; port: number; pids: number[]; samples: { rps: number; p50: number; cpuUsPerReq: number; errors: number }[] }

const median = (xs: number[]): number => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** 20 rules: 19 that never match (other principals, paths, methods), then the one that allows the load. */
export function twentyRules(): AuthorizationPolicy[] {
  const rules: AuthorizationPolicy[] = []
  for (let i = 0; i < 19; i++) {
    rules.push({ name: `p${i}`, action: i % 4 === 0 ? 'DENY' : 'ALLOW', rules: [{ from: [{ principals: [`cluster.local/ns/team${i}/sa/svc${i}`] }], to: [{ methods: ['POST'], paths: [`/api/v${i}/*`] }] }] })
  }
  rules.push({ name: 'frontend', action: 'ALLOW', rules: [{ from: [{ principals: ['cluster.local/ns/bench/sa/frontend'] }], to: [{ methods: ['GET'], paths: ['/*'] }] }] })
  return rules
}

function weftPair(o: { aPort: number; aAdmin: number; bPort: number; bAdmin: number; upPorts: number[]; mtls: boolean; authz: boolean; caAddress: string; tokens: string }): [Bootstrap, Bootstrap] {
  const telemetry = { metrics: { enabled: false }, tracing: { enabled: false }, accessLog: { enabled: false } }
  const identity = (sa: string): Bootstrap['identity'] => (o.mtls ? { serviceAccount: sa, ca: { address: o.caAddress, tokenFile: path.join(o.tokens, `${sa}.token`) } } : undefined)
  const a: Bootstrap = {
    node: { namespace: 'bench', workload: 'frontend' },
    admin: { address: '127.0.0.1', port: o.aAdmin },
    telemetry,
    ...(o.mtls ? { identity: identity('frontend') } : {}),
    listeners: [{ name: 'out', direction: 'outbound', address: '127.0.0.1', port: o.aPort, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'b', domains: ['*'], routes: [{ backends: [{ cluster: 'b' }] }] }] }],
    clusters: [{ name: 'b', ...(o.mtls ? { tls: { identities: ['spiffe://cluster.local/ns/bench/sa/backend'] } } : {}), endpoints: [{ address: '127.0.0.1', port: o.bPort }] }],
  }
  const b: Bootstrap = {
    node: { namespace: 'bench', workload: 'backend' },
    admin: { address: '127.0.0.1', port: o.bAdmin },
    telemetry,
    ...(o.mtls ? { identity: identity('backend') } : {}),
    listeners: [{ name: 'in', direction: 'inbound', address: '127.0.0.1', port: o.bPort, routeTable: 'app', ...(o.mtls ? { mtls: 'strict' as const } : {}), ...(o.authz ? { authorization: twentyRules() } : {}) }],
    routeTables: [{ name: 'app', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', endpoints: o.upPorts.map((port) => ({ address: '127.0.0.1', port })) }],
  }
  return [a, b]
}

function haproxyConf(dir: string, name: string, port: number, servers: string, bindExtra: string): string {
  return `# generated by bench/mtls.ts
global
  nbthread 1
  maxconn 4096
  pidfile ${path.join(dir, `${name}.pid`)}
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend f
  bind 127.0.0.1:${port}${bindExtra}
  default_backend app

backend app
${servers}
`
}

export async function runMtlsBench(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '8' },
      warmup: { type: 'string', default: '2' },
      repeat: { type: 'string', default: '2' },
      connections: { type: 'string', default: '50' },
      quick: { type: 'boolean', default: false },
      // comma-separated row names to run (default all), e.g. weft-mtls,weft-mtls-authz for the authorization cost alone
      only: { type: 'string' },
      'no-save': { type: 'boolean', default: false },
    },
    strict: true,
  })
  const quick = values.quick ?? false
  const durationSec = quick ? 4 : Number(values.duration)
  const warmupSec = quick ? 1 : Number(values.warmup)
  const repeat = quick ? 1 : Number(values.repeat)
  const conns = Number(values.connections)
  const log = (m: string): void => void process.stderr.write(`[bench mtls] ${m}\n`)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bench-mtls-'))
  trackTempDir(tmp)
  const ports = await freePorts(20)
  const upPorts = ports.slice(0, 2)
  let next = 2
  const take = (): number => ports[next++]
  const rows: Row[] = []
  const procs: Proc[] = []
  // B's port of each mTLS pair (the handshake rate is measured there), and the rates
  const bPorts: { weft?: number; haproxy?: number } = {}
  const handshakes: { weft?: number; haproxy?: number } = {}
  // the CA: SVIDs for the Weft sidecars (by token) and, as files, for HAProxy
  const ca = await CertificateAuthority.create({ trustDomain: 'cluster.local', dir: path.join(tmp, 'ca') })
  const tokens = path.join(tmp, 'tokens')
  fs.mkdirSync(tokens)
  fs.writeFileSync(path.join(tokens, 'tokens.yaml'), 'tokens:\n  - { token: t-frontend, namespace: bench, serviceAccount: frontend }\n  - { token: t-backend, namespace: bench, serviceAccount: backend }\n')
  fs.writeFileSync(path.join(tokens, 'frontend.token'), 't-frontend\n')
  fs.writeFileSync(path.join(tokens, 'backend.token'), 't-backend\n')
  const caServer = await startCaServer({ ca, auth: new FileTokens(path.join(tokens, 'tokens.yaml')), address: '127.0.0.1:0' })
  try {
    const upstream = await startUpstream({ dir: fs.mkdtempSync(path.join(tmp, 'up-')), upstreamPorts: upPorts, port: upPorts[0] })
    rows.push({ name: 'direct', port: upPorts[0], pids: [], samples: [] })
    const startWeft = async (name: RowName, mtls: boolean, authz: boolean): Promise<number> => {
      const [aPort, aAdmin, bPort, bAdmin] = [take(), take(), take(), take()]
      const [a, b] = weftPair({ aPort, aAdmin, bPort, bAdmin, upPorts, mtls, authz, caAddress: caServer.address, tokens })
      const pids: number[] = []
      for (const [which, cfg, admin] of [['b', b, bAdmin], ['a', a, aAdmin]] as const) {
        const file = path.join(tmp, `${name}-${which}.yaml`)
        fs.writeFileSync(file, stringify(cfg))
        const p = spawnGroup(`${name}-${which}`, process.execPath, [WEFT_BIN, 'proxy', '--config', file], { logFile: path.join(tmp, `${name}-${which}.log`), env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } })
        procs.push(p)
        await waitForHttp({ port: admin, path: '/ready', timeoutMs: 15_000, alive: () => p.deadReason() })
        pids.push(p.pid)
      }
      await waitForHttp({ port: aPort, timeoutMs: 5000 })
      rows.push({ name, port: aPort, pids, samples: [] })
      if (mtls && !authz) bPorts.weft = bPort
      return aPort
    }
    await startWeft('weft-plain', false, false)
    await startWeft('weft-mtls', true, false)
    await startWeft('weft-mtls-authz', true, true)
    // HAProxy pair, plain and mTLS
    // SVIDs as files: HAProxy's certificates and openssl's client certificate
    const files = await svidFiles(ca, tmp)
    const haVer = await runCapture('haproxy', ['-v'])
    if (!haVer.error) {
      for (const mtls of [false, true]) {
        const name: RowName = mtls ? 'haproxy-mtls' : 'haproxy-plain'
        const [aPort, bPort] = [take(), take()]
        const bConf = path.join(tmp, `${name}-b.cfg`)
        fs.writeFileSync(bConf, haproxyConf(tmp, `${name}-b`, bPort, upPorts.map((p, i) => `  server u${i} 127.0.0.1:${p}`).join('\n'), mtls ? ` ssl crt ${files.backend} ca-file ${files.bundle} verify required alpn http/1.1` : ''))
        const aConf = path.join(tmp, `${name}-a.cfg`)
        fs.writeFileSync(aConf, haproxyConf(tmp, `${name}-a`, aPort, `  server b 127.0.0.1:${bPort}${mtls ? ` ssl crt ${files.frontend} ca-file ${files.bundle} verify required alpn http/1.1` : ''}`, ''))
        const pids: number[] = []
        for (const [which, conf] of [['b', bConf], ['a', aConf]] as const) {
          const p = spawnGroup(`${name}-${which}`, 'haproxy', ['-db', '-f', conf], { logFile: path.join(tmp, `${name}-${which}.log`) })
          procs.push(p)
          pids.push(p.pid)
        }
        await waitForHttp({ port: aPort, timeoutMs: 5000, alive: () => procs.at(-1)!.deadReason() })
        rows.push({ name, port: aPort, pids, samples: [] })
        if (mtls) bPorts.haproxy = bPort
      }
    }
    const only = values.only === undefined ? null : new Set(values.only.split(','))
    const measured = only === null ? rows : rows.filter((row) => only.has(row.name))
    for (let r = 1; r <= repeat; r++) {
      const order = r % 2 === 1 ? measured : [...measured].reverse()
      for (const row of order) {
        const url = `http://127.0.0.1:${row.port}/`
        log(`round ${r}/${repeat}: ${row.name}`)
        if (warmupSec > 0) await runWrk({ url, connections: conns, durationSec: warmupSec })
        const pids = row.name === 'direct' ? [upstream.pid] : row.pids
        const c0 = pids.reduce((s, p) => s + readCpuSeconds(p), 0)
        const tp: WrkResult = await runWrk({ url, connections: conns, durationSec, latency: true })
        const lat: WrkResult = await runWrk({ url, connections: 1, durationSec, latency: true })
        const c1 = pids.reduce((s, p) => s + readCpuSeconds(p), 0)
        const reqs = tp.requests + lat.requests
        const errors = tp.errors.connect + tp.errors.read + tp.errors.write + tp.errors.timeout + tp.non2xx3xx + lat.non2xx3xx
        row.samples.push({ rps: tp.rps, p50: lat.percentilesUs['50'] ?? NaN, cpuUsPerReq: ((c1 - c0) / reqs) * 1e6, errors })
        log(`  ${row.name}: ${tp.rps.toFixed(0)} req/s, p50 ${lat.percentilesUs['50']} µs @1, errors ${errors}`)
      }
    }
    // new-connection handshakes straight to B (a client certificate each time)
    for (const [name, port] of [['weft', bPorts.weft], ['haproxy', bPorts.haproxy]] as const) {
      if (port === undefined) continue
      const r = await runCapture('openssl', ['s_time', '-connect', `127.0.0.1:${port}`, '-new', '-time', String(quick ? 3 : 5), '-cert', files.frontend, '-key', files.frontend, '-CAfile', files.bundle])
      const m = /(\d+) connections in [\d.]+ real seconds/.exec(r.stdout) ?? /([\d.]+) connections\/user sec/.exec(r.stdout)
      const real = /(\d+) connections in ([\d.]+) real seconds/.exec(r.stdout)
      handshakes[name] = real !== null ? Math.round(Number(real[1]) / Number(real[2])) : m !== null ? Number(m[1]) : NaN
      log(`  handshakes ${name}: ${handshakes[name]}/s`)
    }
  } finally {
    await cleanupAll()
    await caServer.stop()
  }
  const get = (n: RowName) => rows.find((r) => r.name === n)
  const m = (n: RowName, f: (s: Row['samples'][number]) => number) => median(get(n)?.samples.map(f) ?? [])
  const directP50 = m('direct', (s) => s.p50)
  const added = (n: RowName) => m(n, (s) => s.p50) - directP50
  const summary = rows.map((r) => ({
    name: r.name,
    rps: Math.round(m(r.name, (s) => s.rps)),
    p50Us: Math.round(m(r.name, (s) => s.p50)),
    addedP50Us: r.name === 'direct' ? null : Math.round(added(r.name)),
    cpuUsPerReq: r.name === 'direct' ? null : Math.round(m(r.name, (s) => s.cpuUsPerReq) * 10) / 10,
    errors: r.samples.reduce((a, s) => a + s.errors, 0),
  }))
  const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000
  const out = {
    mode: 'mtls',
    load: os.loadavg().map((l) => Math.round(l * 100) / 100),
    throughput_ratio: ratio(m('weft-mtls', (s) => s.rps), m('haproxy-mtls', (s) => s.rps)),
    added_p50_ratio: ratio(added('weft-mtls'), added('haproxy-mtls')),
    plain_throughput_ratio: ratio(m('weft-plain', (s) => s.rps), m('haproxy-plain', (s) => s.rps)),
    mtls_cost_weft: ratio(m('weft-mtls', (s) => s.rps), m('weft-plain', (s) => s.rps)),
    mtls_cost_haproxy: ratio(m('haproxy-mtls', (s) => s.rps), m('haproxy-plain', (s) => s.rps)),
    authz_ratio: ratio(m('weft-mtls-authz', (s) => s.rps), m('weft-mtls', (s) => s.rps)),
    cpu_ratio: ratio(m('weft-mtls', (s) => s.cpuUsPerReq), m('haproxy-mtls', (s) => s.cpuUsPerReq)),
    handshakes_per_sec: { weft: handshakes.weft ?? null, haproxy: handshakes.haproxy ?? null },
    summary,
  }
  console.log('')
  console.log(`Weft mutual TLS bench: two proxies in a row, wrk -c${conns} ${durationSec}s (req/s) and -c1 (p50); ${repeat} round(s); load ${out.load.join(' ')}`)
  console.log('| row | req/s | p50 µs @1 | added p50 µs | CPU µs/req (both proxies) | errors |')
  console.log('|---|---|---|---|---|---|')
  for (const s of summary) console.log(`| ${s.name} | ${s.rps} | ${s.p50Us} | ${s.addedP50Us ?? '–'} | ${s.cpuUsPerReq ?? '–'} | ${s.errors} |`)
  console.log(`new-connection handshakes/s on B (openssl s_time -new): weft ${out.handshakes_per_sec.weft}, haproxy ${out.handshakes_per_sec.haproxy}`)
  if (!values['no-save']) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true })
    const file = path.join(RESULTS_DIR, `mtls-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
    fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), durationSec, repeat, conns, ...out, rows }, null, 2) + '\n')
    console.log(`results: ${path.relative(process.cwd(), file)}`)
  }
  console.log(JSON.stringify(out))
  return summary.some((s) => s.errors > 0) ? 2 : 0
}

/** SVIDs as PEM files with their keys (HAProxy's crt, openssl's -cert/-key) and the bundle. */
async function svidFiles(ca: CertificateAuthority, dir: string): Promise<{ frontend: string; backend: string; bundle: string }> {
  const x509 = await import('@peculiar/x509')
  const crypto = webcrypto as unknown as Crypto
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
  const out: Record<string, string> = {}
  for (const sa of ['frontend', 'backend']) {
    const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://cluster.local/ns/bench/sa/${sa}` }])] })
    const r = await ca.issue(csr.toString('pem'), { namespace: 'bench', serviceAccount: sa })
    if (!r.ok) throw new Error(r.message)
    const key = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')
    out[sa] = path.join(dir, `${sa}.pem`)
    fs.writeFileSync(out[sa], r.chain.join('') + key + '\n')
  }
  const bundle = path.join(dir, 'bundle.pem')
  fs.writeFileSync(bundle, ca.trustBundle().join(''))
  return { frontend: out.frontend, backend: out.backend, bundle }
}
