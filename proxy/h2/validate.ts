// RFC 9113 §8.2 / §8.3 checks of an HTTP/2 request head, at the codec, before any exchange exists:
// a malformed request is refused (RST_STREAM PROTOCOL_ERROR), never repaired. A repaired request
// means something else than what the client sent (a dropped authorization field, a second Host).
//
// nghttp2 (under node:http2) already resets most malformed heads itself: uppercase names,
// connection-specific fields, te other than "trailers", unknown, duplicate, missing or late
// pseudo-headers, an empty or relative :path, a bad :method token, content-length that is not one
// decimal, content-length that disagrees with the DATA. Those never reach JavaScript. Fields whose
// name or value has a character nghttp2 does not accept (CR, LF, NUL, other controls, a colon or
// space in a name, leading or trailing whitespace) are dropped by nghttp2 without a callback Node
// exposes, so the request arrives here without them; what can be refused here is what arrives.
// Every rule is checked here anyway: the check costs one pass over the fields and keeps the
// proxy's behaviour from depending on which library version sits below it.

/** Why a head is malformed (the `detail` of the refusal), '' when it is well formed. */
export type Malformed = string

const TCHAR_LOWER = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") TCHAR_LOWER[c.charCodeAt(0)] = 1
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1

/**
 * A connection-specific field (RFC 9113 §8.2.2; te is allowed with the value "trailers" only),
 * name lowercase: by length, then the name (no hash of it).
 */
export function connectionSpecific(n: string): boolean {
  switch (n.length) {
    case 7:
      return n === 'upgrade'
    case 10:
      return n === 'connection' || n === 'keep-alive'
    case 16:
      return n === 'proxy-connection'
    case 17:
      return n === 'transfer-encoding'
    default:
      return false
  }
}

function badName(n: string): boolean {
  if (n.length === 0) return true
  for (let i = 0; i < n.length; i++) {
    const c = n.charCodeAt(i)
    if (c > 0xff || TCHAR_LOWER[c] !== 1) return true
  }
  return false
}

/** NUL, CR, LF (RFC 9113 §8.2.1), other controls but HTAB, DEL; leading or trailing SP / HTAB */
function badValue(v: string): boolean {
  const n = v.length
  if (n === 0) return false
  let c = v.charCodeAt(0)
  if (c === 0x20 || c === 0x09) return true
  c = v.charCodeAt(n - 1)
  if (c === 0x20 || c === 0x09) return true
  for (let i = 0; i < n; i++) {
    c = v.charCodeAt(i)
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return true
  }
  return false
}

/**
 * A field passes the character checks below (a pseudo-header's name is checked by the head
 * checks, its value here). The HPACK decoder asks this once per literal and keeps the answer with
 * a table entry (hpack.ts), so indexed fields are not checked again per head.
 */
export function fieldClean(n: string, v: string): boolean {
  return (n.charCodeAt(0) === 0x3a || !badName(n)) && !badValue(v)
}

function isToken(s: string): boolean {
  if (s.length === 0) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c > 0xff || TCHAR[c] !== 1) return false
  }
  return true
}

function isDecimal(s: string): boolean {
  if (s.length === 0 || s.length > 15) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x30 || c > 0x39) return false
  }
  return true
}

/**
 * Check a request head given as node:http2's raw pairs ([name, value, …] in the order received).
 * Returns '' or what is wrong (for the access log's flag detail and tests).
 */
export function checkRequestHead(raw: readonly string[], clean = false): Malformed {
  let method = ''
  let scheme = ''
  let path = ''
  let authority = ''
  let host = ''
  let seen = 0 // bits: method 1, scheme 2, path 4, authority 8, protocol 16
  let regular = false
  let contentLength = ''
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]
    const v = raw[i + 1]
    if (n.charCodeAt(0) === 0x3a) {
      if (regular) return 'pseudo-header after a regular field'
      let bit = 0
      if (n === ':method') {
        bit = 1
        method = v
      } else if (n === ':scheme') {
        bit = 2
        scheme = v
      } else if (n === ':path') {
        bit = 4
        path = v
      } else if (n === ':authority') {
        bit = 8
        authority = v
      } else if (n === ':protocol') bit = 16
      else return `unknown pseudo-header ${n}`
      if ((seen & bit) !== 0) return `duplicate ${n}`
      seen |= bit
      if (!clean && badValue(v)) return `invalid character in ${n}`
      continue
    }
    regular = true
    if (!clean) {
      if (badName(n)) return 'invalid field name'
      if (badValue(v)) return `invalid character in the value of ${n}`
    }
    if (connectionSpecific(n)) return `connection-specific field ${n}`
    if (n === 'te' && v !== 'trailers') return 'te other than trailers'
    if (n === 'host') {
      if (host !== '' && host !== v) return 'two different host fields'
      host = v
    } else if (n === 'content-length') {
      if (!isDecimal(v)) return 'content-length is not a decimal'
      // one field, as nghttp2 and HAProxy want it (RFC 9110 §8.6 lets a recipient refuse a list)
      if (contentLength !== '') return 'two content-length fields'
      contentLength = v
    }
  }
  if ((seen & 1) === 0) return 'no :method'
  if (!isToken(method)) return 'invalid :method'
  if (method === 'CONNECT') {
    // RFC 9113 §8.5 (no extended CONNECT here): :authority only
    if ((seen & 16) === 0 && (seen & 6) !== 0) return 'CONNECT with :scheme or :path'
    return ''
  }
  if ((seen & 2) === 0) return 'no :scheme'
  if ((seen & 4) === 0 || path === '') return 'no :path'
  if (path.charCodeAt(0) !== 0x2f && !(path === '*' && method === 'OPTIONS')) return ':path neither absolute nor * of OPTIONS'
  // a URI (RFC 3986) is visible ASCII; an octet beyond it would reach an HTTP/1 upstream raw
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c < 0x21 || c > 0x7e) return 'invalid character in :path'
  }
  void scheme
  if (host !== '' && authority !== '' && host.toLowerCase() !== authority.toLowerCase()) return 'host disagrees with :authority'
  return ''
}

/**
 * Check a response head from an HTTP/2 upstream ([name, value, …]): :status alone among the
 * pseudo-headers, first, three digits; names and values as in a request; no connection-specific
 * field. What nghttp2 refused (or dropped) for node:http2, the proxy's client codec refuses here:
 * the stream is reset and the client gets a 502, nothing of it relayed.
 */
export function checkResponseHead(raw: readonly string[], clean = false): Malformed {
  if (raw.length < 2 || raw[0] !== ':status') return 'no :status first'
  const st = raw[1]
  if (st.length !== 3 || !isDecimal(st)) return 'invalid :status'
  for (let i = 2; i + 1 < raw.length; i += 2) {
    const n = raw[i]
    const v = raw[i + 1]
    if (n.charCodeAt(0) === 0x3a) return `pseudo-header ${n} in a response`
    if (!clean) {
      if (badName(n)) return 'invalid field name'
      if (badValue(v)) return `invalid character in the value of ${n}`
    }
    if (connectionSpecific(n)) return `connection-specific field ${n}`
    if (n === 'content-length' && !isDecimal(v)) return 'content-length is not a decimal'
  }
  return ''
}

/** Check trailers (of either direction): no pseudo-header, names and values as in a head. */
export function checkTrailers(raw: readonly string[], clean = false): Malformed {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i]
    if (n.charCodeAt(0) === 0x3a) return `pseudo-header ${n} in trailers`
    if (clean) continue
    if (badName(n)) return 'invalid field name'
    if (badValue(raw[i + 1])) return `invalid character in the value of ${n}`
  }
  return ''
}
