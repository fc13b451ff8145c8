// A strict, independent HTTP/1 message-stream checker for what the proxy writes: every request (or
// response) head is well formed, no field carries CR/LF/NUL, framing is unambiguous, chunked bodies
// are canonical. It returns the violations it saw; the fuzz targets require none.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

export interface StrictResult {
  messages: number
  violations: string[]
  /** bytes after the last complete message (an incomplete one) */
  rest: number
}

/** Check a byte stream of HTTP/1 requests (kind 'request') or responses (kind 'response'). */
export function checkStream(buf: Buffer, kind: 'request' | 'response', opts: { final: boolean; headRequests?: number } = { final: true }): StrictResult {
  const s = buf.toString('latin1')
  const violations: string[] = []
  let at = 0
  let messages = 0
  while (at < s.length) {
    const end = s.indexOf('\r\n\r\n', at)
    if (end === -1) {
      if (opts.final) violations.push(`incomplete head at ${at}: ${JSON.stringify(s.slice(at, at + 60))}`)
      break
    }
    const lines = s.slice(at, end).split('\r\n')
    const first = lines[0]!
    let status = 0
    if (kind === 'request') {
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e]+ HTTP\/1\.[01]$/.test(first)) violations.push(`bad request line ${JSON.stringify(first.slice(0, 80))}`)
    } else {
      const m = /^HTTP\/1\.[01] (\d{3}) [\t\x20-\x7e\x80-\xff]*$/.exec(first)
      if (!m) violations.push(`bad status line ${JSON.stringify(first.slice(0, 80))}`)
      else status = Number(m[1])
    }
    let cl = -1
    let chunked = false
    let clCount = 0
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':')
      const name = c > 0 ? line.slice(0, c) : ''
      const value = line.slice(c + 1).trim()
      if (!TOKEN.test(name)) { violations.push(`bad field name in ${JSON.stringify(line.slice(0, 80))}`); continue }
      if (!VALUE.test(line.slice(c + 1))) violations.push(`bad field value in ${JSON.stringify(line.slice(0, 80))}`)
      const n = name.toLowerCase()
      if (n === 'content-length') {
        clCount++
        if (!/^\d{1,15}$/.test(value)) violations.push(`bad content-length ${JSON.stringify(value)}`)
        cl = Number(value)
      } else if (n === 'transfer-encoding') {
        if (!/(^|,)\s*chunked$/i.test(value)) violations.push(`transfer-encoding not ending in chunked: ${JSON.stringify(value)}`)
        chunked = true
      }
    }
    if (clCount > 1) violations.push('more than one content-length')
    if (chunked && cl >= 0) violations.push('both content-length and transfer-encoding')
    at = end + 4
    messages++
    const noBody = kind === 'response' && (status < 200 || status === 204 || status === 304)
    if (noBody) continue
    if (chunked) {
      for (;;) {
        const eol = s.indexOf('\r\n', at)
        if (eol === -1) { if (opts.final) violations.push('incomplete chunk size'); return { messages, violations, rest: s.length - at } }
        const size = s.slice(at, eol)
        if (!/^[0-9a-fA-F]{1,12}$/.test(size)) { violations.push(`non-canonical chunk size ${JSON.stringify(size.slice(0, 40))}`); return { messages, violations, rest: 0 } }
        const n = parseInt(size, 16)
        at = eol + 2
        if (n === 0) {
          const tEnd = s.indexOf('\r\n', at)
          if (tEnd === -1) return { messages, violations, rest: s.length - at }
          if (tEnd !== at) {
            const tr = s.indexOf('\r\n\r\n', at)
            if (tr === -1) return { messages, violations, rest: s.length - at }
            for (const line of s.slice(at, tr).split('\r\n')) {
              if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/.test(line)) violations.push(`bad trailer ${JSON.stringify(line.slice(0, 60))}`)
            }
            at = tr + 4
          } else at += 2
          break
        }
        if (at + n + 2 > s.length) return { messages, violations, rest: s.length - at }
        if (s.slice(at + n, at + n + 2) !== '\r\n') { violations.push('chunk data not followed by CRLF'); return { messages, violations, rest: 0 } }
        at += n + 2
      }
    } else if (cl >= 0) {
      if (at + cl > s.length) return { messages, violations, rest: s.length - at }
      at += cl
    } else if (kind === 'response') {
      // a response without framing runs to the close
      return { messages, violations, rest: 0 }
    }
  }
  return { messages, violations, rest: s.length - at }
}
