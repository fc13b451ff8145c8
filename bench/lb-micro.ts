// Micro-benchmark of the load balancers: ns per pick() for each policy with 3 and 100 endpoints.
// Not a test. Run: node bench/lb-micro.ts [--picks N]
// Hash policies are fed a rotating set of 4096 precomputed keys; peakEwma endpoints are observed
// beforehand and the clock is performance.now. Prints the best of 5 rounds. Each (policy, size)
// runs in its own child process so that JIT feedback from one policy (megamorphic pick() call
// sites) does not slow down the next.

import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createBalancer, type BalancerPolicy, type LbEndpoint } from '../proxy/lb/index.ts'

const argIdx = process.argv.indexOf('--picks')
const PICKS = argIdx > 0 ? Number(process.argv[argIdx + 1]) : 1_000_000
const ROUNDS = 5
const POLICIES: BalancerPolicy[] = ['roundRobin', 'leastRequest', 'peakEwma', 'ringHash', 'maglev']
const SIZES = [3, 100]

const KEYS: string[] = []
for (let i = 0; i < 4096; i++) KEYS.push(`session-${(i * 2654435761) >>> 0}`)

function endpoints(n: number): LbEndpoint[] {
  const out: LbEndpoint[] = []
  for (let i = 0; i < n; i++) out.push({ key: `10.0.${i >> 8}.${i & 255}:8080`, weight: 1, active: 0, healthy: true })
  return out
}

let sink = 0

function run(policy: BalancerPolicy, n: number): { ns: number; buildMs: number } {
  const eps = endpoints(n)
  const t0 = performance.now()
  const lb = createBalancer(policy, eps)
  const buildMs = performance.now() - t0
  const hashed = policy === 'ringHash' || policy === 'maglev'
  if (policy === 'peakEwma') for (let i = 0; i < n; i++) lb.observe(eps[i], 5 + (i % 7))
  const loop = (count: number): void => {
    for (let i = 0; i < count; i++) {
      const e = hashed ? lb.pick(KEYS[i & 4095]) : lb.pick()
      if (e !== undefined) sink += e.weight
    }
  }
  loop(200_000) // warm up (JIT)
  let best = Infinity
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    loop(PICKS)
    const ns = Number(process.hrtime.bigint() - start) / PICKS
    if (ns < best) best = ns
  }
  return { ns: best, buildMs }
}

const one = process.argv.indexOf('--one')
if (one > 0) {
  const result = run(process.argv[one + 1] as BalancerPolicy, Number(process.argv[one + 2]))
  process.stdout.write(JSON.stringify(result))
  if (sink === 42) console.log('') // keep the picks observable
} else {
  console.log(`lb micro-benchmark: ns/pick, best of ${ROUNDS} x ${PICKS} picks (node ${process.version})`)
  console.log('policy'.padEnd(14) + SIZES.map((n) => `${n} eps`.padStart(12) + ' (build ms)'.padStart(12)).join(''))
  const self = fileURLToPath(import.meta.url)
  for (const policy of POLICIES) {
    let line = policy.padEnd(14)
    for (const n of SIZES) {
      const out = execFileSync(process.execPath, [self, '--picks', String(PICKS), '--one', policy, String(n)], {
        encoding: 'utf8',
      })
      const { ns, buildMs } = JSON.parse(out) as { ns: number; buildMs: number }
      line += ns.toFixed(1).padStart(12) + `(${buildMs.toFixed(2)})`.padStart(12)
    }
    console.log(line)
  }
}
