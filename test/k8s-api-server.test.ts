// The test Kubernetes API server (helpers/kube-api-server.ts) speaks the list/watch protocol the
// way the real one does, checked here with a plain HTTP client: list shape and resourceVersion,
// typed-list items without apiVersion/kind, paging through one snapshot, watch replay, 410 inside a
// 200 watch for an expired resourceVersion, bookmarks only when asked for, Status errors.
import t from 'tap'
import { request } from 'node:http'
import { KubeApiServer, collectionPath, until } from './helpers/kube-api-server.ts'
import type { KubeApiServerOptions, KubeObject } from './helpers/kube-api-server.ts'
import type { Teardown } from './helpers/sidecar.ts'

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: any
}

function get(api: KubeApiServer, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    request(`${api.url}${path}`, { headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }))
    }).on('error', reject).end()
  })
}

interface OpenWatch {
  status: number
  headers: Record<string, string | string[] | undefined>
  events: { type: string; object: any }[]
  ended: Promise<void>
  close(): void
}

/** A watch request whose newline-delimited events are collected as they arrive. */
function watch(api: KubeApiServer, path: string): Promise<OpenWatch> {
  return new Promise((resolve, reject) => {
    const req = request(`${api.url}${path}`, (res) => {
      const events: OpenWatch['events'] = []
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        buf += c
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, nl)))
          buf = buf.slice(nl + 1)
        }
      })
      const ended = new Promise<void>((done) => res.on('end', done).on('close', done))
      resolve({ status: res.statusCode ?? 0, headers: res.headers, events, ended, close: () => req.destroy() })
    })
    req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)))
    req.end()
  })
}

function svc(name: string, namespace = 'shop', port = 80): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports: [{ name: 'http', port }] } }
}

function route(name: string, namespace = 'shop'): KubeObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: { parentRefs: [{ kind: 'Service', name: 'reviews' }] },
  }
}

async function server(t: Teardown, opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const api = await KubeApiServer.start(opts)
  t.teardown(() => api.stop())
  return api
}

t.test('LIST: a <Kind>List with the current resourceVersion; typed lists leave out the items\' apiVersion/kind', async (t) => {
  const api = await server(t)
  api.create('Service', svc('reviews'))
  api.create('Service', svc('details', 'default'))
  api.create('HTTPRoute', route('reviews'))
  const services = await get(api, '/api/v1/services')
  t.equal(services.status, 200)
  t.equal(services.body.kind, 'ServiceList')
  t.equal(services.body.apiVersion, 'v1')
  t.equal(services.body.metadata.resourceVersion, '3', 'the global revision: the HTTPRoute write counts too')
  t.same(services.body.items.map((i: KubeObject) => `${i.metadata.namespace}/${i.metadata.name}`), ['default/details', 'shop/reviews'], 'key order')
  t.equal(services.body.items[0].kind, undefined)
  t.equal(services.body.items[0].apiVersion, undefined)
  t.match(services.body.items[1].metadata, { uid: /^[0-9a-f-]{36}$/, resourceVersion: '1', creationTimestamp: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/ })

  const routes = await get(api, '/apis/gateway.networking.k8s.io/v1/httproutes')
  t.equal(routes.body.kind, 'HTTPRouteList')
  t.equal(routes.body.apiVersion, 'gateway.networking.k8s.io/v1')
  t.equal(routes.body.items[0].kind, 'HTTPRoute', 'custom resources keep apiVersion/kind in lists')
  t.equal(routes.body.items[0].metadata.generation, 1)

  const inShop = await get(api, collectionPath('Service', 'shop'))
  t.same(inShop.body.items.map((i: KubeObject) => i.metadata.name), ['reviews'], 'namespaced path')
  t.equal(api.lists('Service'), 2)
  t.equal(api.lists('HTTPRoute'), 1)
})

t.test('LIST pages with limit/continue through one snapshot; an expired continue token is 410', async (t) => {
  const api = await server(t)
  for (const n of ['a', 'b', 'c', 'd', 'e']) api.create('Service', svc(n))
  const first = await get(api, '/api/v1/services?limit=2')
  t.same(first.body.items.map((i: KubeObject) => i.metadata.name), ['a', 'b'])
  t.equal(first.body.metadata.remainingItemCount, 3)
  t.equal(first.body.metadata.resourceVersion, '5')
  api.create('Service', svc('aa'))
  api.delete('Service', svc('d'))
  const second = await get(api, `/api/v1/services?limit=2&continue=${first.body.metadata.continue}`)
  t.same(second.body.items.map((i: KubeObject) => i.metadata.name), ['c', 'd'], 'the snapshot of the first page, not the later writes')
  t.equal(second.body.metadata.resourceVersion, '5')
  const third = await get(api, `/api/v1/services?limit=2&continue=${second.body.metadata.continue}`)
  t.same(third.body.items.map((i: KubeObject) => i.metadata.name), ['e'])
  t.equal(third.body.metadata.continue, undefined, 'the last page has no continue token')

  const again = await get(api, '/api/v1/services?limit=2')
  api.expireHistory()
  const gone = await get(api, `/api/v1/services?limit=2&continue=${again.body.metadata.continue}`)
  t.equal(gone.status, 410)
  t.match(gone.body, { kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 })
})

t.test('WATCH: chunked newline-delimited events, replayed after the resourceVersion given', async (t) => {
  const api = await server(t)
  const a = api.create('Service', svc('a'))
  api.create('Service', svc('b'))
  const w = await watch(api, `/api/v1/services?watch=true&resourceVersion=${a.metadata.resourceVersion}`)
  t.teardown(() => w.close())
  t.equal(w.status, 200)
  t.equal(w.headers['transfer-encoding'], 'chunked')
  t.equal(w.headers['content-type'], 'application/json')
  await until('the replay', () => w.events.length === 1)
  t.match(w.events[0], { type: 'ADDED', object: { kind: 'Service', apiVersion: 'v1', metadata: { name: 'b', resourceVersion: '2' } } })

  const b = api.get('Service', 'shop', 'b')!
  api.update('Service', { ...b, spec: { ports: [{ name: 'http', port: 81 }] } })
  api.delete('Service', b)
  api.create('HTTPRoute', route('other-kind'))
  await until('the live events', () => w.events.length === 3)
  t.match(w.events[1], { type: 'MODIFIED', object: { metadata: { name: 'b', resourceVersion: '3' }, spec: { ports: [{ port: 81 }] } } })
  t.match(w.events[2], { type: 'DELETED', object: { metadata: { name: 'b', resourceVersion: '4' } } }, 'DELETED carries the deletion\'s resourceVersion')
  t.equal(api.watches('Service'), 1)
  t.equal(api.openWatches('Service'), 1)
})

t.test('WATCH without a resourceVersion starts with an ADDED per object; namespaced watches see their namespace', async (t) => {
  const api = await server(t)
  api.create('Service', svc('a'))
  api.create('Service', svc('b', 'other'))
  const all = await watch(api, '/api/v1/services?watch=1')
  const shop = await watch(api, `${collectionPath('Service', 'shop')}?watch=true&resourceVersion=0`)
  t.teardown(() => (all.close(), shop.close()))
  await until('the initial events', () => all.events.length === 2 && shop.events.length === 1)
  t.same(all.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED b', 'ADDED a'], 'key order: other/b, shop/a')
  api.create('Service', svc('c', 'other'))
  api.create('Service', svc('d'))
  await until('the live events', () => all.events.length === 4 && shop.events.length === 2)
  t.same(shop.events.map((e) => e.object.metadata.name), ['a', 'd'])
})

t.test('an expired resourceVersion: 200, one ERROR event with a 410 Expired Status, then the end', async (t) => {
  const api = await server(t, { historyLimit: 2 })
  for (const n of ['a', 'b', 'c', 'd']) api.create('Service', svc(n))
  // history keeps the events of resourceVersions 3 and 4: from 2 on is fine, 1 is too old
  const ok = await watch(api, '/api/v1/services?watch=true&resourceVersion=2')
  await until('the replay', () => ok.events.length === 2)
  ok.close()
  const old = await watch(api, '/api/v1/services?watch=true&resourceVersion=1')
  t.equal(old.status, 200)
  await old.ended
  t.same(old.events, [{
    type: 'ERROR',
    object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version: 1 (2)', reason: 'Expired', code: 410 },
  }])

  api.expireHistory()
  const compacted = await watch(api, '/api/v1/services?watch=true&resourceVersion=3')
  await compacted.ended
  t.equal(compacted.events[0].object.code, 410, 'expireHistory makes every older resourceVersion too old')
  const current = await watch(api, `/api/v1/services?watch=true&resourceVersion=${api.resourceVersion}`)
  t.teardown(() => current.close())
  api.create('Service', svc('e'))
  await until('an event', () => current.events.length === 1)
  t.equal(current.events[0].type, 'ADDED', 'the current resourceVersion is still fine')
})

t.test('BOOKMARK events go only to watches that allow them; closeWatches ends the streams', async (t) => {
  const api = await server(t)
  api.create('Service', svc('a'))
  api.create('HTTPRoute', route('r'))
  const plain = await watch(api, '/api/v1/services?watch=true&resourceVersion=2')
  const marked = await watch(api, '/api/v1/services?watch=true&resourceVersion=2&allowWatchBookmarks=true')
  api.bookmark()
  await until('the bookmark', () => marked.events.length === 1)
  t.same(marked.events[0], { type: 'BOOKMARK', object: { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: '2' } } })
  t.equal(api.closeWatches('Service'), 2)
  await Promise.all([plain.ended, marked.ended])
  t.same(plain.events, [], 'no bookmark without allowWatchBookmarks')
  t.equal(api.openWatches(), 0)

  const expiring = await watch(api, '/api/v1/services?watch=true&resourceVersion=2')
  await until('the watch is registered', () => api.openWatches('Service') === 1)
  api.closeWatches(undefined, { expired: true })
  await expiring.ended
  t.match(expiring.events, [{ type: 'ERROR', object: { code: 410, reason: 'Expired' } }])
})

t.test('errors are Status objects: unknown paths, missing CRDs, injected failures, authentication', async (t) => {
  const api = await server(t, { notInstalled: ['TrafficPolicy'], token: 's3cret' })
  const auth = { authorization: 'Bearer s3cret' }
  const unauth = await get(api, '/api/v1/services')
  t.equal(unauth.status, 401)
  t.match(unauth.body, { kind: 'Status', reason: 'Unauthorized', code: 401 })
  const missing = await get(api, '/apis/policy.weft.io/v1alpha1/trafficpolicies', auth)
  t.equal(missing.status, 404)
  t.match(missing.body, { kind: 'Status', reason: 'NotFound', code: 404 })
  t.equal((await get(api, '/api/v1/configmaps', auth)).status, 404)
  t.equal((await get(api, '/api/v1/services?labelSelector=app%3Dx', auth)).status, 400, 'selectors are refused, not ignored')

  api.failNext('Service', 'list', 500)
  const failed = await get(api, '/api/v1/services', auth)
  t.equal(failed.status, 500)
  t.match(failed.body, { kind: 'Status', reason: 'InternalError', code: 500 })
  t.equal((await get(api, '/api/v1/services', auth)).status, 200, 'only the next one')

  api.setInstalled('TrafficPolicy', true)
  t.equal((await get(api, '/apis/policy.weft.io/v1alpha1/trafficpolicies', auth)).body.kind, 'TrafficPolicyList')
})
