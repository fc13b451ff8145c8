// The decision trace of one request (proxy/telemetry/explain.ts) as text, for `weft explain --admin`
// and `weft tap --explain` (kept apart from ./explain.ts so that tap does not load the config compiler).

/** One step of a live trace as one line: `+0.031ms  dispatch  try=1 cluster=reviews ...`. */
export function formatStep(s: Record<string, unknown>): string {
  const { stage, atUs, ...rest } = s
  const at = `+${(Number(atUs) / 1000).toFixed(3)}ms`.padStart(11)
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
  return `${at}  ${String(stage).padEnd(14)} ${fields.join(' ')}`.trimEnd()
}

export interface LiveTrace {
  requestId: string
  time: string
  listener: string
  status: number
  flags: string
  durationMs: number
  selectedBy: string
  steps: Record<string, unknown>[]
}

export function formatTrace(e: LiveTrace): string {
  const lines = [`REQUEST ${e.requestId}  ${e.time}  listener ${e.listener}  status ${e.status}  flags ${e.flags}  ${e.durationMs} ms  (traced: ${e.selectedBy})`]
  for (const s of e.steps) lines.push(formatStep(s))
  return lines.join('\n') + '\n'
}
