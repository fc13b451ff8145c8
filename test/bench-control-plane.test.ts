// The control-plane benchmark's code (bench/cp/) at a tiny size: the generated mesh is valid, the
// proxies (real gRPC streams from forked processes) sync, and every proxy ACKs every endpoint
// change. Correctness only: speed is measured in bench/, never in a timed test.
import t from 'tap'
import { checkResources } from '../control-plane/resources/validate.ts'
import { changeOneEndpoint, generateMesh } from '../bench/cp/generate.ts'
import { runCpBench } from '../bench/cp/bench.ts'
import { formatReport, summary } from '../bench/control-plane.ts'

t.test('the generated mesh is valid, and a change replaces one endpoint of one slice', async (t) => {
  const set = generateMesh({ services: 40, endpoints: 250, namespaces: 4, routeFraction: 0.2, policyFraction: 0.2 })
  t.same(checkResources(set), [], 'no validation errors')
  t.equal(set.services.length, 40)
  t.equal(set.endpointSlices.reduce((n, s) => n + s.obj.endpoints.length, 0), 250)
  t.ok(set.httpRoutes.some((r) => r.obj.spec.parentRefs.some((p) => p.namespace !== undefined && p.namespace !== r.namespace)), 'a consumer route')
  t.ok(set.trafficPolicies.length > 0)
  t.same(generateMesh({ services: 40, endpoints: 250, namespaces: 4, routeFraction: 0.2, policyFraction: 0.2 }), set, 'deterministic')

  const c = changeOneEndpoint(set, 1)
  const changed = c.set.endpointSlices.filter((s, i) => s !== set.endpointSlices[i])
  t.equal(changed.length, 1, 'one slice is a new object')
  t.equal(changed[0].id, c.slice)
  t.ok(changed[0].obj.endpoints.some((e) => e.addresses.includes(c.address)))
  t.equal(c.set.services, set.services, 'the other lists are the same objects')
  t.same(checkResources(c.set), [])
})

t.test('tiny run: every proxy ACKs every change', async (t) => {
  const r = await runCpBench({ services: 20, endpoints: 100, namespaces: 3, proxies: 5, workers: 2, changes: 3, warmupChanges: 1, sync: 'full', pauseMs: 10, changeTimeoutMs: 20_000, syncTimeoutMs: 30_000 })
  t.equal(r.mesh.services, 20)
  t.equal(r.scratch.validateErrors, 0)
  t.equal(r.scratch.snapshots, 3, 'one snapshot per namespace with proxies')
  t.equal(r.changes.length, 3)
  t.equal(r.warmups.length, 1)
  for (const [i, c] of [...r.warmups, ...r.changes].entries()) {
    t.equal(c.acked, 5, `change ${i}: every proxy ACKed`)
    t.equal(c.missing, 0)
    // the changed Service's ports (one or two) get a new endpoint list; nothing else is built again
    t.ok(c.rebuilt.endpoints >= 1 && c.rebuilt.endpoints <= 2, 'the endpoint lists of one Service built again')
    t.same({ ...c.rebuilt, endpoints: 0 }, { clusters: 0, endpoints: 0, virtualHosts: 0, routeTables: 0 }, 'no cluster, virtual host or route table built again')
  }
  t.equal(r.ackMs.n, 15, 'the measured changes only')
  t.equal(r.proxies.nacks, 0)
  t.same(r.proxies.streamErrors, [])
  // full sync: every proxy ACKs the 4 types of its first snapshot, then 1 per change
  t.equal(r.proxies.acks, 5 * 4 + 5 * 4)
  t.ok(r.complete)
  t.match(formatReport(r), /change -> ACK at 5 proxies/)
  t.match(summary(r, null), { services: 20, proxies: 5, complete: true })
})

t.test('tiny run, warm sync: followers declare their versions and still ACK every change', async (t) => {
  const r = await runCpBench({ services: 20, endpoints: 100, namespaces: 3, proxies: 5, workers: 2, changes: 2, warmupChanges: 0, sync: 'warm', pauseMs: 10, changeTimeoutMs: 20_000, syncTimeoutMs: 30_000 })
  t.ok(r.complete)
  t.equal(r.ackMs.n, 10)
  // one proxy per namespace and process (3 here) is sent the first snapshot; the others nothing
  t.equal(r.proxies.acks, 3 * 4 + 5 * 2)
})
