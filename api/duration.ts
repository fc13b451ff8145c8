// Durations in the config are strings of one or more <number><unit> terms, e.g. "250ms", "5s",
// "1m30s", "1.5s", "2h" (units: ms, s, m, h). The schema's pattern restricts the form; this turns
// one into milliseconds.

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

const WHOLE = /^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$/
// "ms" must be tried before "m".
const TERM = /([0-9]+)(?:\.([0-9]+))?(ms|s|m|h)/g

/** The longest delay a Node.js timer honours (2^31 - 1 ms, about 24.8 days); longer ones fire after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647

/**
 * Milliseconds for a duration string such as "250ms", "5s", "1m30s", "1.5s", "2h". Terms add up
 * ("1h1h" is 2h). The result may have a fractional part ("0.5ms" is 0.5). Throws a RangeError on
 * anything else (empty string, missing unit, spaces, signs, unknown units, too large to represent).
 */
export function parseDuration(s: string): number {
  if (typeof s !== 'string' || !WHOLE.test(s)) {
    throw new RangeError(`invalid duration ${JSON.stringify(s)}: expected e.g. "250ms", "5s", "1m30s"`)
  }
  let total = 0
  for (const m of s.matchAll(TERM)) {
    const unit = UNIT_MS[m[3]]
    // Integer and fractional parts separately, so "1.1s" is exactly 1100 rather than 1100.0000000000002.
    total += Number(m[1]) * unit
    if (m[2] !== undefined) total += (Number(m[2]) * unit) / 10 ** m[2].length
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`invalid duration ${JSON.stringify(s)}: too large`)
  }
  return total
}
