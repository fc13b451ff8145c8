// npm run fuzz -- [--minutes N] [--seed S] [--target NAME]: the long run on demand. The time is split
// evenly over the targets; each prints the inputs tried and its failures; failing inputs are saved
// under test/fuzz/regressions/ (replayed by the CI run, test/fuzz/fuzz.test.ts).
import { parseArgs } from 'node:util'
import { runTarget } from './engine.ts'
import { TARGETS, PLANNED } from './targets.ts'

const { values } = parseArgs({
  options: { minutes: { type: 'string', default: '1' }, seed: { type: 'string' }, target: { type: 'string' } },
})
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31
const targets = values.target ? TARGETS.filter((t) => t.name === values.target) : TARGETS
if (targets.length === 0) {
  console.error(`unknown target ${values.target}; targets: ${TARGETS.map((t) => t.name).join(', ')}`)
  process.exit(2)
}
const perTargetMs = Math.max(1000, (Number(values.minutes) * 60_000) / targets.length)
console.log(`fuzz: seed ${seed}, ${targets.length} targets, ${(perTargetMs / 1000).toFixed(0)} s each${PLANNED.length > 0 ? `; not built yet: ${PLANNED.join(', ')}` : ''}`)
let failed = 0
for (const t of targets) {
  const r = await runTarget(t, { seed, numRuns: Number.MAX_SAFE_INTEGER, timeMs: perTargetMs, save: true, batch: 200 })
  console.log(`${r.target}: ${r.inputs} inputs, ${r.regressions} regression cases replayed, ${r.failures.length} failures, ${(r.ms / 1000).toFixed(1)} s`)
  for (const f of r.failures) console.log(`  FAIL ${f.message.split('\n')[0]}${f.file ? `\n    saved ${f.file}` : ''}`)
  failed += r.failures.length
}
process.exit(failed > 0 ? 1 : 0)
