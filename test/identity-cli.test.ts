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
  t.match(nowhere.stderr, /no inbound policy for --to "ratings"; there are: reviews\/in/)
  const bad = await weft(['authz', 'check', '-c', dir, '--from', 'frontend', '--to', 'reviews'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /expected a SPIFFE ID/)
})

// PeerAuthentication and AuthorizationPolicy resolved as the control plane does: from resource
// files (-r), and from a running control plane (--control-plane) with a proxy connected
const SECURITY = `apiVersion: security.weft.io/v1alpha1
kind: PeerAuthentication
metadata: { name: shop, namespace: shop }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: web-readers, namespace: shop }
spec:
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }], to: [{ operation: { methods: [GET] } }] }]
---
apiVersion: security.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: weft-system }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]
`

t.test('weft authz check -r FILES and --control-plane: the Services\' pods\' policies from PeerAuthentication and AuthorizationPolicy', async (t) => {
  const { WEB_SERVICE, webSlice } = await import('./helpers/resources.ts')
  const dir = tempDir(t)
  writeFileSync(join(dir, 'web.yaml'), `${WEB_SERVICE}---\n${webSlice(8080)}---\n${SECURITY}`)

  const ok = await weft(['authz', 'check', '-r', dir, '--from', 'shop/frontend', '--to', 'web.shop', '-o', 'json'])
  t.equal(ok.code, 0, ok.stderr)
  t.match(JSON.parse(ok.stdout).results, [{ workload: 'web.shop.svc.cluster.local', listener: 'outbound|80||web.shop.svc.cluster.local pods', decision: 'ALLOW', policy: 'shop.web-readers', mtls: 'strict', policies: 2 }])
  const admin = await weft(['authz', 'check', '-r', dir, '--from', 'shop/frontend', '--to', 'web', '--path', '/admin/x'])
  t.equal(admin.code, 1, 'denied: exit 1')
  t.match(admin.stdout, /web\.shop\.svc\.cluster\.local +outbound\|80\|\|web\.shop\.svc\.cluster\.local pods +DENY +weft-system\.no-admin +0 /)
  const other = await weft(['authz', 'check', '-r', dir, '--from', 'shop/ratings', '--to', 'web.shop'])
  t.equal(other.code, 1)
  t.match(other.stdout, /DENY/)
  const plain = await weft(['authz', 'check', '-r', dir, '--from', 'none', '--to', 'web.shop'])
  t.match(plain.stdout, /is strict mTLS: a plain-text caller is refused before authorization/)
  const two = await weft(['authz', 'check', '-r', dir, '-c', dir, '--from', 'none', '--to', 'web.shop'])
  t.equal(two.code, 2)
  t.match(two.stderr, /give one of -c FILE\|DIR/)

  // the same through a running control plane, once a proxy of the namespace has connected
  const pino = (await import('pino')).default
  const { startControlPlane } = await import('../cli/control-plane.ts')
  const { startXdsSidecar } = await import('../proxy/xds/sidecar.ts')
  const cp = await startControlPlane({ listen: '127.0.0.1:0', admin: '127.0.0.1:0', local: dir, log: pino({ level: 'silent' }) })
  t.teardown(() => cp.close())
  const cpAdmin = `127.0.0.1:${cp.adminPort}`
  const early = await weft(['authz', 'check', '--control-plane', cpAdmin, '--from', 'shop/frontend', '--to', 'web.shop'])
  t.equal(early.code, 3)
  t.match(early.stderr, /nothing published yet/)
  const s = await startXdsSidecar({
    controlPlane: cp.server.address,
    bootstrap: { node: { id: 'client-a', namespace: 'shop', workload: 'client' }, admin: { address: '127.0.0.1', port: 0 }, listeners: [{ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 0, routeTable: 'outbound' }], routeTables: [], clusters: [] },
    serveBootstrap: false,
    log: pino({ level: 'silent' }),
  })
  t.teardown(() => s.close())
  await until('ready', () => s.proxy.ready)
  const live = await weft(['authz', 'check', '--control-plane', cpAdmin, '--from', 'shop/frontend', '--to', 'web.shop', '-o', 'json'])
  t.equal(live.code, 0, live.stderr)
  t.match(JSON.parse(live.stdout).results, [{ decision: 'ALLOW', policy: 'shop.web-readers', mtls: 'strict', source: cpAdmin }])
  const denied = await weft(['authz', 'check', '--control-plane', cpAdmin, '--from', 'shop/ratings', '--to', 'web.shop', '--method', 'POST'])
  t.equal(denied.code, 1)
})
