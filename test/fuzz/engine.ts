// The fuzz engine: runs one target's property with fast-check under a seed and a budget (runs and
// milliseconds), counts the inputs tried, and saves a failing input as a regression case that every
// later run replays first. An input is bytes plus cut points (where the bytes are split into writes
// or pushes), so a regression file is a small JSON document.
import fc from 'fast-check'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REGRESSIONS = join(dirname(fileURLToPath(import.meta.url)), 'regressions')

export interface FuzzInput {
  bytes: Buffer
  /** ascending offsets in (0, bytes.length) where the input is split */
  cuts: number[]
}

export interface Target<C = unknown> {
  name: string
  /** recorded valid inputs, mutated by the input generator */
  corpus: Buffer[]
  /** bytes that matter to this reader, inserted by mutations */
  tokens: string[]
  /** generated bad inputs (besides mutations of the corpus) */
  generated?: fc.Arbitrary<Buffer>
  setup?(): Promise<C>
  teardown?(ctx: C): Promise<void>
  /** null when the input is handled correctly, else what went wrong */
  check(ctx: C, input: FuzzInput): Promise<string | null> | string | null
  /** after a batch: the reader still serves a good request (null) */
  probe?(ctx: C): Promise<string | null>
  /** the known-defect marker: failures are reported as todo until this is fixed */
  knownFailure?: string
}

/** Split bytes at cuts. */
export function pieces(input: FuzzInput): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  for (const c of input.cuts) {
    if (c <= at || c >= input.bytes.length) continue
    out.push(input.bytes.subarray(at, c))
    at = c
  }
  out.push(input.bytes.subarray(at))
  return out
}

type Mutation = { kind: number; pos: number; len: number; tok: number; byte: number }

function mutate(base: Buffer, tokens: Buffer[], muts: Mutation[]): Buffer {
  let b = base
  for (const m of muts) {
    const pos = b.length === 0 ? 0 : m.pos % (b.length + 1)
    const len = 1 + (m.len % 16)
    switch (m.kind) {
      case 0: // overwrite one byte
        if (b.length > 0) { b = Buffer.from(b); b[pos % b.length] = m.byte }
        break
      case 1: // insert a token
        b = Buffer.concat([b.subarray(0, pos), tokens[m.tok % tokens.length]!, b.subarray(pos)])
        break
      case 2: // delete a range
        b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + len)])
        break
      case 3: // duplicate a range
        b = Buffer.concat([b.subarray(0, pos + len), b.subarray(pos, pos + len), b.subarray(pos)])
        break
      case 4: // insert a random byte
        b = Buffer.concat([b.subarray(0, pos), Buffer.from([m.byte]), b.subarray(pos)])
        break
      default: // repeat a token many times (floods: 1xx, headers, chunk sizes)
        b = Buffer.concat([b.subarray(0, pos), Buffer.alloc(0), ...Array(8 + (m.len % 64)).fill(tokens[m.tok % tokens.length]!), b.subarray(pos)])
    }
    if (b.length > 65536) b = b.subarray(0, 65536)
  }
  return b
}

export function inputArb(t: Target<any>): fc.Arbitrary<FuzzInput> {
  const tokens = t.tokens.map((s) => Buffer.from(s, 'latin1'))
  const mutation = fc.record({
    kind: fc.nat(5), pos: fc.nat(1 << 16), len: fc.nat(255), tok: fc.nat(1000), byte: fc.integer({ min: 0, max: 255 }),
  })
  const mutated = fc
    .tuple(fc.constantFrom(...t.corpus), fc.array(mutation, { minLength: 0, maxLength: 6 }))
    .map(([base, muts]) => mutate(base, tokens, muts))
  const raw = fc.uint8Array({ maxLength: 512 }).map((u) => Buffer.from(u))
  const bytes = fc.oneof(
    { weight: 6, arbitrary: mutated },
    { weight: 1, arbitrary: raw },
    ...(t.generated ? [{ weight: 3, arbitrary: t.generated }] : []),
  )
  return bytes.chain((b) =>
    fc.array(fc.nat(Math.max(1, b.length)), { maxLength: 4 }).map((cuts) => ({ bytes: b, cuts: [...new Set(cuts)].sort((x, y) => x - y) })),
  )
}

export interface Failure {
  target: string
  message: string
  file: string | null
  input: FuzzInput
}

export interface TargetResult {
  target: string
  inputs: number
  regressions: number
  failures: Failure[]
  ms: number
}

function encode(i: FuzzInput): string {
  return JSON.stringify({ bytes: i.bytes.toString('base64'), text: i.bytes.toString('latin1').slice(0, 400), cuts: i.cuts }, null, 1) + '\n'
}

export function saveRegression(target: string, input: FuzzInput): string {
  mkdirSync(REGRESSIONS, { recursive: true })
  const h = createHash('sha256').update(input.bytes).update(JSON.stringify(input.cuts)).digest('hex').slice(0, 12)
  const file = join(REGRESSIONS, `${target}-${h}.json`)
  writeFileSync(file, encode(input))
  return file
}

export function loadRegressions(target: string): { file: string; input: FuzzInput }[] {
  let names: string[] = []
  try { names = readdirSync(REGRESSIONS) } catch { return [] }
  return names
    .filter((n) => n.startsWith(target + '-') && n.endsWith('.json'))
    .sort()
    .map((n) => {
      const j = JSON.parse(readFileSync(join(REGRESSIONS, n), 'utf8')) as { bytes: string; cuts: number[] }
      return { file: join(REGRESSIONS, n), input: { bytes: Buffer.from(j.bytes, 'base64'), cuts: j.cuts } }
    })
}

async function safeCheck<C>(t: Target<C>, ctx: C, input: FuzzInput): Promise<string | null> {
  try {
    return await t.check(ctx, input)
  } catch (err) {
    return `threw: ${(err as Error)?.stack ?? String(err)}`
  }
}

export interface RunOptions {
  seed: number
  numRuns: number
  timeMs: number
  /** probe after every `batch` inputs */
  batch?: number
  /** write failing inputs to regressions/ */
  save: boolean
}

/** Replay the target's regression cases, then fuzz it within the budget. */
export async function runTarget<C>(t: Target<C>, o: RunOptions): Promise<TargetResult> {
  const started = Date.now()
  const ctx = (t.setup ? await t.setup() : undefined) as C
  const failures: Failure[] = []
  let inputs = 0
  try {
    const regs = loadRegressions(t.name)
    for (const r of regs) {
      const msg = await safeCheck(t, ctx, r.input)
      if (msg) failures.push({ target: t.name, message: `regression ${r.file}: ${msg}`, file: r.file, input: r.input })
    }
    const batch = o.batch ?? 50
    const seen = new Set<string>()
    const prop = fc.asyncProperty(inputArb(t), async (input) => {
      inputs++
      const msg = await safeCheck(t, ctx, input)
      if (msg === null && t.probe && inputs % batch === 0) {
        const p = await t.probe(ctx)
        if (p) {
          const key = 'probe'
          if (!seen.has(key)) { seen.add(key); failures.push({ target: t.name, message: `probe after input ${inputs}: ${p}`, file: o.save ? saveRegression(t.name, input) : null, input }) }
          return true
        }
      }
      if (msg !== null) {
        const key = msg.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 120)
        if (!seen.has(key)) {
          seen.add(key)
          failures.push({ target: t.name, message: msg, file: o.save ? saveRegression(t.name, input) : null, input })
        }
        return true // keep going: collect distinct failures instead of shrinking one
      }
      return true
    })
    await fc.check(prop, { seed: o.seed, numRuns: o.numRuns, interruptAfterTimeLimit: o.timeMs, markInterruptAsFailure: false, endOnFailure: true })
    if (t.probe) {
      const p = await t.probe(ctx)
      if (p) failures.push({ target: t.name, message: `final probe: ${p}`, file: null, input: { bytes: Buffer.alloc(0), cuts: [] } })
    }
    return { target: t.name, inputs, regressions: regs.length, failures, ms: Date.now() - started }
  } finally {
    if (t.teardown) await t.teardown(ctx)
  }
}
