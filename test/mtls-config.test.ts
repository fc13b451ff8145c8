// Config checks of identity, mutual TLS and authorization: what needs an identity, where each
// field may be, and a file:line:column message for each mistake.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadBootstrapFile } from '../api/load.ts'
import { formatConfigError } from '../api/errors.ts'
import { tempDir } from './helpers/sidecar.ts'

const base = (extra: string) => `admin: { address: 127.0.0.1, port: 0 }
routeTables: [{ name: rt, virtualHosts: [{ name: a, domains: ["*"], routes: [{ directResponse: { status: 200 } }] }] }]
${extra}
`

t.test('identity, mtls, tls and authorization are checked', async (t) => {
  const dir = tempDir(t)
  const check = async (name: string, text: string): Promise<string[]> => {
    const f = join(dir, `${name}.yaml`)
    writeFileSync(f, text)
    const r = await loadBootstrapFile(f)
    return r.ok ? [] : r.errors.map(formatConfigError)
  }
  t.same(await check('ok', base(`identity: { serviceAccount: a, ca: { address: "127.0.0.1:15012", tokenFile: /tmp/t, ttl: 1h } }
listeners: [{ name: in, direction: inbound, port: 0, routeTable: rt, mtls: strict, authorization: [{ name: p, action: DENY, rules: [{ from: [{ namespaces: [x] }] }] }] }]
clusters: [{ name: c, tls: { identities: ["spiffe://cluster.local/ns/a/sa/b"] }, endpoints: [] }]`)), [])
  t.match((await check('no-identity', base(`listeners: [{ name: in, direction: inbound, port: 0, routeTable: rt, mtls: strict }]
clusters: [{ name: c, tls: {}, endpoints: [] }]`))).join('\n'), /no-identity\.yaml:3:\d+: listeners\[0\]\.mtls: mtls "strict" needs the proxy's identity[\s\S]*clusters\[0\]\.tls: mutual TLS needs the proxy's identity/)
  t.match((await check('outbound', base(`identity: { certFile: /c, keyFile: /k, trustBundleFile: /b }
listeners: [{ name: out, direction: outbound, port: 0, routeTable: rt, mtls: permissive, authorization: [] }]
clusters: []`))).join('\n'), /listeners\[0\]\.mtls: mtls is for inbound listeners[\s\S]*listeners\[0\]\.authorization: authorization applies to inbound listeners/)
  t.match((await check('both', base(`identity: { ca: { address: "x:1" }, certFile: /c }
listeners: []
clusters: []`))).join('\n'), /identity\.ca: identity comes from the CA \(ca\) or from files/)
  t.match((await check('neither', base(`identity: { certFile: /c }
listeners: []
clusters: []`))).join('\n'), /identity: identity needs ca\.address, or all of certFile, keyFile and trustBundleFile/)
  t.match((await check('badspiffe', base(`identity: { certFile: /c, keyFile: /k, trustBundleFile: /b }
listeners: []
clusters: [{ name: c, tls: { identities: ["cluster.local/ns/a/sa/b"] }, endpoints: [] }]`))).join('\n'), /clusters\[0\]\.tls\.identities\[0\]/)
  t.match((await check('badaction', base(`identity: { certFile: /c, keyFile: /k, trustBundleFile: /b }
listeners: [{ name: in, direction: inbound, port: 0, routeTable: rt, authorization: [{ name: p, action: REJECT }] }]
clusters: []`))).join('\n'), /listeners\[0\]\.authorization\[0\]\.action/)
})
