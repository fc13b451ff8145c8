// `weft identity` and `weft authz check`, run as a user runs them (bin/weft.js), against a running
// sidecar with an identity from the mesh CA and against bootstrap files.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { startTestSidecar, tempDir, until } from './helpers/sidecar.ts'
import { startTestCa } from './helpers/mesh-identity.ts'
import { weft } from './helpers/cli.ts'
import type { Bootstrap } from '../api/schema.ts'

t.test('weft identity and weft authz check', async (t) => {
  const ca = await startTestCa(t)
  const b: Bootstrap = {
    node: { namespace: 'shop', workload: 'reviews' },
    admin: { address: '127.0.0.1', port: 0 },
    identity: ca.identity('shop', 'reviews'),
    listeners: [{
      name: 'in', direction: 'inbound', address: '127.0.0.1', port: 0, routeTable: 'app', mtls: 'strict',
      authorization: [
        { name: 'deny-admin', action: 'DENY', rules: [{ to: [{ paths: ['/admin*'] }] }] },
        { name: 'frontend-reads', action: 'ALLOW', rules: [{ from: [{ principals: ['cluster.local/ns/shop/sa/frontend'] }], to: [{ methods: ['GET'] }] }] },
      ],
    }],
    routeTables: [{ name: 'app', virtualHosts: [{ name: 'app', domains: ['*'], routes: [{ backends: [{ cluster: 'app' }] }] }] }],
    clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1', port: 9 }] }],
  }
  const s = await startTestSidecar(t, b)
  await until('identity', async () => (await s.admin('/ready')).status === 200, 5000)
  const admin = `127.0.0.1:${s.adminPort}`

  const id = await weft(['identity', '--admin', admin])
  t.equal(id.code, 0, id.stderr)
  t.match(id.stdout, /SPIFFE ID\s+spiffe:\/\/cluster\.local\/ns\/shop\/sa\/reviews/)
  t.match(id.stdout, /next renewal\s+\S+ \(in \d/)
  t.match(id.stdout, /trust bundle\n.*\n.*O=cluster\.local/)
  const idj = JSON.parse((await weft(['identity', '--admin', admin, '-o', 'json'])).stdout)
  t.equal(idj.spiffeId, 'spiffe://cluster.local/ns/shop/sa/reviews')
  t.equal(idj.trustBundle.length, 1)
  const none = await weft(['identity', '--admin', '127.0.0.1:1'])
  t.equal(none.code, 3, 'unreachable admin: exit 3')

  // against the running proxy
  const ok = await weft(['authz', 'check', '--admin', admin, '--from', 'shop/frontend', '--to', 'reviews', '--path', '/reviews/1'])
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.stdout, /reviews\s+in\s+ALLOW\s+frontend-reads\s+0\s+ALLOW policy frontend-reads rule 0 matches/)
  const denied = await weft(['authz', 'check', '--admin', admin, '--from', 'spiffe://cluster.local/ns/shop/sa/frontend', '--to', 'reviews', '--path', '/admin/x'])
  t.equal(denied.code, 1)
  t.match(denied.stdout, /DENY\s+deny-admin\s+0/)
  const post = await weft(['authz', 'check', '--admin', admin, '--from', 'shop/frontend', '--to', 'in', '--method', 'POST', '-o', 'json'])
  t.equal(post.code, 1)
  t.match(JSON.parse(post.stdout).results[0], { decision: 'DENY', policy: '', reason: /no ALLOW policy matches \(frontend-reads\)/ })
  const plain = await weft(['authz', 'check', '--admin', admin, '--from', 'none', '--to', 'reviews'])
  t.match(plain.stdout, /strict mTLS: a plain-text caller is refused before authorization/)

  // against a folder of bootstrap files
  const dir = tempDir(t)
  writeFileSync(join(dir, 'reviews.yaml'), stringify(b))
  const file = await weft(['authz', 'check', '-c', dir, '--from', 'shop/frontend', '--to', 'reviews', '--path', '/reviews/2'])
  t.equal(file.code, 0, file.stderr)
  t.match(file.stdout, /ALLOW\s+frontend-reads/)
  const nowhere = await weft(['authz', 'check', '-c', dir, '--from', 'shop/frontend', '--to', 'ratings'])
  t.equal(nowhere.code, 1)
  t.match(nowhere.stderr, /no inbound listener for --to "ratings"; inbound listeners: reviews\/in/)
  const bad = await weft(['authz', 'check', '-c', dir, '--from', 'frontend', '--to', 'reviews'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /expected a SPIFFE ID/)
})
