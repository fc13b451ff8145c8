// A parser of the Prometheus text exposition format (version 0.0.4, also what OpenMetrics text
// looks like for counters and histograms), for the operator tools (`weft stat`) that read a
// proxy's /metrics. Not on the request path.
//
//   # HELP weft_requests_total Requests completed ...
//   # TYPE weft_requests_total counter
//   weft_requests_total{reporter="source",response_code="200"} 1027
//   weft_request_duration_milliseconds_bucket{le="+Inf",reporter="source"} 1027 1712345678901
//
// Comment lines (HELP, TYPE, "# EOF") and blank lines are skipped; label values may contain the
// escapes \\ \" \n; values may be floats, exponents, +Inf, -Inf or NaN; an optional timestamp and an
// OpenMetrics exemplar (" # {...} v") after the value are ignored.

export interface Sample {
  /** metric name as written, e.g. "weft_request_duration_milliseconds_bucket" */
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export class PromTextError extends Error {
  readonly line: number
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`)
    this.name = 'PromTextError'
    this.line = line
  }
}

const NAME_START = /[a-zA-Z_:]/
const NAME_CHAR = /[a-zA-Z0-9_:]/
const LABEL_START = /[a-zA-Z_]/
const LABEL_CHAR = /[a-zA-Z0-9_]/

/** The value of a sample or a label such as le="+Inf". */
export function parsePromValue(s: string): number {
  switch (s) {
    case '+Inf':
    case 'Inf':
    case '+inf':
    case 'inf':
      return Infinity
    case '-Inf':
    case '-inf':
      return -Infinity
    case 'NaN':
    case 'nan':
      return NaN
  }
  if (!/^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/.test(s) && !/^0x[0-9a-fA-F]+$/.test(s)) return NaN
  return Number(s)
}

/**
 * Every sample of a text exposition, in order. Throws PromTextError (with the line number) on a
 * line that is not a comment, blank, or `name[{labels}] value [timestamp]`.
 */
export function parsePromText(text: string): Sample[] {
  const out: Sample[] = []
  const lines = text.split('\n')
  for (let ln = 0; ln < lines.length; ln++) {
    let line = lines[ln]
    if (line.endsWith('\r')) line = line.slice(0, -1)
    let i = 0
    while (i < line.length && (line[i] === ' ' || line[i] === '\t')) i++
    if (i === line.length || line[i] === '#') continue
    const fail = (msg: string): never => {
      throw new PromTextError(ln + 1, msg)
    }

    // metric name
    const nameStart = i
    if (!NAME_START.test(line[i])) fail(`expected a metric name, found ${JSON.stringify(line[i])}`)
    while (i < line.length && NAME_CHAR.test(line[i])) i++
    const name = line.slice(nameStart, i)
    while (line[i] === ' ' || line[i] === '\t') i++

    // labels
    const labels: Record<string, string> = {}
    if (line[i] === '{') {
      i++
      for (;;) {
        while (line[i] === ' ' || line[i] === '\t') i++
        if (line[i] === '}') {
          i++
          break
        }
        const ls = i
        if (i >= line.length || !LABEL_START.test(line[i])) fail(`${name}: expected a label name or "}"`)
        while (i < line.length && LABEL_CHAR.test(line[i])) i++
        const lname = line.slice(ls, i)
        while (line[i] === ' ' || line[i] === '\t') i++
        if (line[i] !== '=') fail(`${name}: expected "=" after label ${lname}`)
        i++
        while (line[i] === ' ' || line[i] === '\t') i++
        if (line[i] !== '"') fail(`${name}: expected a quoted value for label ${lname}`)
        i++
        let v = ''
        let closed = false
        while (i < line.length) {
          const c = line[i]
          if (c === '"') {
            closed = true
            i++
            break
          }
          if (c === '\\') {
            const n = line[i + 1]
            if (n === 'n') v += '\n'
            else if (n === '\\' || n === '"') v += n
            else if (n === undefined) break
            else v += '\\' + n // unknown escape: kept as written
            i += 2
            continue
          }
          v += c
          i++
        }
        if (!closed) fail(`${name}: unterminated value of label ${lname}`)
        labels[lname] = v
        while (line[i] === ' ' || line[i] === '\t') i++
        if (line[i] === ',') {
          i++
          continue
        }
        if (line[i] === '}') {
          i++
          break
        }
        fail(`${name}: expected "," or "}" after label ${lname}`)
      }
    }

    // value (then an optional timestamp and exemplar, ignored)
    while (line[i] === ' ' || line[i] === '\t') i++
    const vs = i
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t') i++
    const raw = line.slice(vs, i)
    if (raw === '') fail(`${name}: missing value`)
    const value = parsePromValue(raw)
    if (Number.isNaN(value) && raw !== 'NaN' && raw !== 'nan') fail(`${name}: invalid value ${JSON.stringify(raw)}`)
    out.push({ name, labels, value })
  }
  return out
}
