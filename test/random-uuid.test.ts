// proxy/net/random-uuid.ts: request ids without node:crypto (the sidecar's bundle uses it for
// node:crypto's randomUUID, see build/bundle.ts). Version 4 layout, unique, and the bits vary.
import t from 'tap'
import { randomUUID } from '../proxy/net/random-uuid.ts'

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

t.test('version 4 UUIDs, unique across several refills of the pool', async (t) => {
  const n = 2000 // 16 bytes each: ~8 refills of the 4 KiB pool
  const seen = new Set<string>()
  let bad = 0
  for (let i = 0; i < n; i++) {
    const u = randomUUID()
    if (!V4.test(u)) bad++
    seen.add(u)
  }
  t.equal(bad, 0, 'every id has the version 4 layout')
  t.equal(seen.size, n, 'no id repeats')
  // every hex digit position that is random takes several values (a stuck or zero pool would not)
  const ids = [...seen]
  for (const i of [0, 7, 9, 15, 20, 35]) {
    const values = new Set(ids.map((u) => u[i]))
    t.ok(values.size >= 8, `position ${i} takes ${values.size} values`)
  }
})
