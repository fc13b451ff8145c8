// The bounded fuzz run of `npm test`: a fixed seed, a run and time budget per target (at most 52 s
// over all targets on 2 busy cores: 4 s per function target, 5 s per sidecar/server target), and every saved regression case replayed first.
import t from 'tap'
import { runTarget } from './engine.ts'
import { TARGETS } from './targets.ts'

const SEED = Number(process.env.WEFT_FUZZ_SEED ?? 20261205)
// the xds-decoder target's live gRPC path is timing-dependent: CI runs its function path only
process.env.WEFT_FUZZ_XDS_LIVE_EVERY ??= '0'
const FUNCTION_TARGETS = new Set(['http1-head', 'http1-chunked', 'detect'])

for (const target of TARGETS) {
  const fn = FUNCTION_TARGETS.has(target.name)
  t.test(`fuzz ${target.name}`, async (t) => {
    const r = await runTarget(target, { seed: SEED, numRuns: fn ? 60_000 : 5000, timeMs: fn ? 4000 : 5000, save: false, batch: 100 })
    t.comment(`${r.target}: ${r.inputs} inputs tried, ${r.regressions} regression cases replayed (seed ${SEED})`)
    t.ok(r.inputs > 0, 'inputs were tried')
    // a target with a known defect runs and reports its failures as todo until the fix is merged
    const known = target.knownFailure ? { todo: target.knownFailure } : {}
    t.same(r.failures.map((f) => f.message.split('\n')[0]), [], 'no failures', known)
  })
}
