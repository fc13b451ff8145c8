// The decision trace of one request (proxy/telemetry/explain.ts) as text, for `weft explain --admin`
// and `weft tap --explain` (kept apart from ./explain.ts so that tap does not load the config compiler).
import type { ExplainedRequest } from '../proxy/telemetry/explain.ts'

/** One step of a live trace as one line: `+0.031ms  dispatch  try=1 cluster=reviews ...`. */
export function formatStep(s: Readonly<Record<string, unknown>>): string {
  const { stage, atUs, ...rest } = s
  const at = `+${(Number(atUs) / 1000).toFixed(3)}ms`.padStart(11)
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
  return `${at}  ${String(stage).padEnd(14)} ${fields.join(' ')}`.trimEnd()
}

/** A trace as admin /explain/<id> answers it (proxy/telemetry/explain.ts). */
export type LiveTrace = ExplainedRequest

export function formatTrace(e: LiveTrace): string {
  const lines = [`REQUEST ${e.requestId}  ${e.time}  listener ${e.listener}  status ${e.status}  flags ${e.flags}  ${e.durationMs} ms  (traced: ${e.selectedBy})`]
  for (const s of e.steps) lines.push(formatStep(s))
  return lines.join('\n') + '\n'
}
