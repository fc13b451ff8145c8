// protos/ is the source of truth: the generated TypeScript in protos/generated/ must be what
// `npm run protos` makes of the .proto files today, and the service must load at run time.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { generate, listFiles, PROTOS_DIR } from '../protos/generate.ts'
import { configDiscoveryService, TYPE_URLS } from '../protos/api.ts'

t.test('protos/generated is current (run `npm run protos` after editing a .proto)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-protos-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  generate(join(dir, 'generated'))
  const fresh = listFiles(join(dir, 'generated'))
  const committed = listFiles(join(PROTOS_DIR, 'generated'))
  t.same(committed.map((f) => relative(join(PROTOS_DIR, 'generated'), f)), fresh.map((f) => relative(join(dir, 'generated'), f)), 'the same files')
  for (const f of fresh) {
    const rel = relative(join(dir, 'generated'), f)
    t.equal(readFileSync(join(PROTOS_DIR, 'generated', rel), 'utf8'), readFileSync(f, 'utf8'), rel)
  }
})

t.test('the service definition loads from the .proto', async (t) => {
  const svc = configDiscoveryService()
  t.equal(svc.StreamConfig.path, '/weft.config.v1alpha1.ConfigDiscovery/StreamConfig')
  t.equal(svc.StreamConfig.requestStream, true)
  t.equal(svc.StreamConfig.responseStream, true)
  t.same(TYPE_URLS, ['weft.config.v1alpha1.Cluster', 'weft.config.v1alpha1.ClusterEndpoints', 'weft.config.v1alpha1.RouteTable', 'weft.config.v1alpha1.Listener'])
})
