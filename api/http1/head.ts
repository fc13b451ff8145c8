// Strict HTTP/1.1 message-head parsing (RFC 9112). Works on the latin1 string of one head (the
// bytes before the blank line), so every byte maps to one char and values are forwarded unchanged.
// Failure is a value: an HttpError names the status to answer and a stable WEFT_ERR_* code.

export class HttpError {
  readonly status: number
  readonly code: string
  readonly message: string
  constructor(status: number, code: string, message: string) {
    this.status = status
    this.code = code
    this.message = message
  }
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const REASON_BAD = /[^\t\x20-\x7e\x80-\xff]/
const AUTHORITY = /^[A-Za-z0-9._~!$&'()*+,;=:\[\]-]+$/

// Character classes as tables, indexed by char code (heads are latin1 strings: every code < 256).
// TCHAR: 1 = token char, 2 = upper-case letter (a token char that needs lower-casing).
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 2
// VALUE: field-value chars: HTAB, SP, VCHAR, obs-text. Every other CTL (CR, LF, NUL, DEL) is out.
const VALUE = new Uint8Array(256)
VALUE[0x09] = 1
for (let c = 0x20; c <= 0x7e; c++) VALUE[c] = 1
for (let c = 0x80; c <= 0xff; c++) VALUE[c] = 1
// TARGET: request-target chars: visible ASCII.
const TARGET = new Uint8Array(256)
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1

/** true when s[from, to) is a non-empty token */
function isToken(s: string, from: number, to: number): boolean {
  if (to <= from) return false
  for (let i = from; i < to; i++) if (TCHAR[s.charCodeAt(i)] === 0) return false
  return true
}

/** Content-Length value: 1 to 15 digits, else -1. */
function parseLength(s: string): number {
  const n = s.length
  if (n === 0 || n > 15) return -1
  let v = 0
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) return -1
    v = v * 10 + d
  }
  return v
}

export interface RequestHead {
  method: string
  /** The request-target as received. */
  target: string
  /** origin-form path (with query) to send upstream. */
  path: string
  /** 0 for HTTP/1.0, 1 for HTTP/1.1 */
  minor: number
  /** lower-cased field names and their values, in order; framing and hop-by-hop fields removed. */
  names: string[]
  values: string[]
  /** authority (Host header or absolute-form authority), "" when absent (HTTP/1.0). */
  authority: string
  /** -1 when no Content-Length */
  contentLength: number
  chunked: boolean
  /** Transfer-Encoding value to forward when chunked (codings before the final chunked kept). */
  transferEncoding: string
  keepAlive: boolean
  expectContinue: boolean
  /**
   * The Upgrade field when the request asks to switch protocols (RFC 9110 7.8: listed in
   * Connection, HTTP/1.1, and here also: no body and not h2c), else "". Forwarded with
   * `connection: upgrade`; a 101 answer makes the connection a tunnel.
   */
  upgrade: string
}

export interface ResponseHead {
  status: number
  reason: string
  minor: number
  names: string[]
  values: string[]
  contentLength: number
  chunked: boolean
  transferEncoding: string
  /** the upstream wants the connection closed after this response */
  close: boolean
  /** the Upgrade field (the protocol a 101 switches to), "" when absent */
  upgrade: string
}

function bad(message: string, code = 'WEFT_ERR_HTTP_PARSE'): HttpError {
  return new HttpError(400, code, message)
}

interface Fields {
  names: string[]
  values: string[]
  contentLength: number
  te: string
  connection: string
  host: string
  hostCount: number
  expect: string
  upgrade: string
}

/**
 * Parse header lines of `s` from `pos` to the end (lines separated by CRLF). Framing and
 * hop-by-hop fields are collected separately and not put in names/values. One pass over the
 * characters with table lookups: no regex, no split.
 */
function parseFields(s: string, pos: number, maxHeaders: number, status: number): Fields | HttpError {
  const names: string[] = []
  const values: string[] = []
  let contentLength = -1
  let te = ''
  let connection = ''
  let host = ''
  let hostCount = 0
  let expect = ''
  let upgrade = ''
  let count = 0
  const len = s.length
  while (pos < len) {
    // field-name ":" OWS field-value OWS CRLF
    const ns = pos
    let c = s.charCodeAt(pos)
    if (c === 0x20 || c === 0x09) return new HttpError(status, 'WEFT_ERR_HTTP_OBS_FOLD', 'obsolete line folding')
    let upper = false
    while (pos < len) {
      c = s.charCodeAt(pos)
      const t = TCHAR[c]
      if (t === 0) break
      if (t === 2) upper = true
      pos++
    }
    if (pos === ns || pos === len || c !== 0x3a) {
      return pos < len && c !== 0x3a && c !== 0x0d
        ? new HttpError(status, 'WEFT_ERR_HTTP_HEADER_NAME', 'invalid header name')
        : new HttpError(status, 'WEFT_ERR_HTTP_PARSE', 'header line without colon')
    }
    const rawName = s.slice(ns, pos)
    pos++
    while (pos < len && ((c = s.charCodeAt(pos)) === 0x20 || c === 0x09)) pos++
    const vs = pos
    let ve = pos
    while (pos < len) {
      c = s.charCodeAt(pos)
      if (c === 0x0d) break
      if (VALUE[c] === 0) return new HttpError(status, 'WEFT_ERR_HTTP_HEADER_VALUE', 'invalid character in header value')
      pos++
      if (c !== 0x20 && c !== 0x09) ve = pos
    }
    if (pos < len) {
      if (s.charCodeAt(pos + 1) !== 0x0a) return new HttpError(status, 'WEFT_ERR_HTTP_HEADER_VALUE', 'bare CR in header')
      pos += 2
      if (pos === len) return new HttpError(status, 'WEFT_ERR_HTTP_PARSE', 'empty header line')
    }
    const value = s.slice(vs, ve)
    if (++count > maxHeaders) return new HttpError(status === 400 ? 431 : status, 'WEFT_ERR_HTTP_TOO_MANY_HEADERS', 'too many header fields')
    const name = upper ? rawName.toLowerCase() : rawName
    switch (name) {
      case 'content-length': {
        // A list ("5, 5") or repeated fields are accepted only when every value is the same.
        const parts = value.indexOf(',') === -1 ? [value] : value.split(',')
        for (let i = 0; i < parts.length; i++) {
          const n = parseLength(parts.length === 1 ? value : parts[i].trim())
          if (n < 0) return new HttpError(status, 'WEFT_ERR_HTTP_CONTENT_LENGTH', 'malformed Content-Length')
          if (contentLength !== -1 && contentLength !== n)
            return new HttpError(status, 'WEFT_ERR_HTTP_CONTENT_LENGTH', 'conflicting Content-Length values')
          contentLength = n
        }
        break
      }
      case 'transfer-encoding':
        if (value === '') return new HttpError(status, 'WEFT_ERR_HTTP_TRANSFER_ENCODING', 'empty Transfer-Encoding')
        te = te === '' ? value : te + ', ' + value
        break
      case 'connection':
        connection = connection === '' ? value : connection + ',' + value
        break
      case 'host':
        host = value
        hostCount++
        break
      case 'expect':
        expect = value
        break
      case 'upgrade':
        upgrade = value
        break
      case 'keep-alive':
      case 'proxy-connection':
      case 'te':
        break // hop-by-hop: never forwarded
      default:
        names.push(name)
        values.push(value)
    }
  }
  return { names, values, contentLength, te, connection, host, hostCount, expect, upgrade }
}

/** Split a Transfer-Encoding value; valid only when the last coding is chunked and chunked appears once. */
function checkTransferEncoding(te: string, status: number): HttpError | null {
  const codings = te.split(',')
  let chunkedSeen = 0
  for (let i = 0; i < codings.length; i++) {
    const c = codings[i].trim().toLowerCase()
    if (!TOKEN.test(c)) return new HttpError(status, 'WEFT_ERR_HTTP_TRANSFER_ENCODING', 'malformed Transfer-Encoding')
    if (c === 'chunked') chunkedSeen++
  }
  if (chunkedSeen !== 1 || codings[codings.length - 1].trim().toLowerCase() !== 'chunked')
    return new HttpError(status, 'WEFT_ERR_HTTP_TRANSFER_ENCODING', 'Transfer-Encoding must end with a single chunked')
  return null
}

interface ConnectionOptions {
  close: boolean
  keepAlive: boolean
  /** the "upgrade" option is listed */
  upgrade: boolean
}
const NO_CONNECTION: ConnectionOptions = { close: false, keepAlive: false, upgrade: false }
const KEEP_ALIVE: ConnectionOptions = { close: false, keepAlive: true, upgrade: false }
const CLOSE: ConnectionOptions = { close: true, keepAlive: false, upgrade: false }
const UPGRADE: ConnectionOptions = { close: false, keepAlive: false, upgrade: true }

/** Remove fields named by the Connection header (hop-by-hop), except Host which is never hop-by-hop. */
function dropConnectionListed(f: Fields): ConnectionOptions {
  let close = false
  let keepAlive = false
  let upgrade = false
  const c = f.connection
  if (c === '') return NO_CONNECTION
  // The common values, without splitting.
  if (c === 'keep-alive' || c === 'Keep-Alive') return KEEP_ALIVE
  if (c === 'close' || c === 'Close') return CLOSE
  if (c === 'Upgrade' || c === 'upgrade') return UPGRADE
  const tokens = f.connection.split(',')
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i].trim().toLowerCase()
    if (t === '') continue
    if (t === 'close') close = true
    else if (t === 'keep-alive') keepAlive = true
    else if (t === 'upgrade') upgrade = true
    else if (t !== 'host') {
      for (let j = f.names.length - 1; j >= 0; j--) {
        if (f.names[j] === t) {
          f.names.splice(j, 1)
          f.values.splice(j, 1)
        }
      }
    }
  }
  return { close, keepAlive, upgrade }
}

/** Parse a request head: `s` is everything before the terminating CRLFCRLF, leading blank lines already skipped. */
export function parseRequestHead(s: string, maxHeaders: number): RequestHead | HttpError {
  let eol = s.indexOf('\r\n')
  if (eol === -1) eol = s.length
  const sp1 = s.indexOf(' ')
  if (sp1 <= 0 || sp1 > eol) return bad('malformed request line')
  const sp2 = s.indexOf(' ', sp1 + 1)
  if (sp2 === -1 || sp2 > eol) return bad('malformed request line')
  if (!isToken(s, 0, sp1)) return bad('invalid method')
  for (let i = sp1 + 1; i < sp2; i++) if (TARGET[s.charCodeAt(i)] === 0) return bad('invalid request target')
  if (sp2 === sp1 + 1) return bad('invalid request target')
  const method = s.slice(0, sp1)
  const target = s.slice(sp1 + 1, sp2)
  const version = s.slice(sp2 + 1, eol)
  let minor: number
  if (version === 'HTTP/1.1') minor = 1
  else if (version === 'HTTP/1.0') minor = 0
  else if (/^HTTP\/[0-9]\.[0-9]$/.test(version)) return new HttpError(505, 'WEFT_ERR_HTTP_VERSION', 'HTTP version not supported')
  else return bad('malformed request line')

  const f = parseFields(s, eol + 2, maxHeaders, 400)
  if (f instanceof HttpError) return f

  let chunked = false
  if (f.te !== '') {
    if (f.contentLength !== -1) return bad('both Transfer-Encoding and Content-Length', 'WEFT_ERR_HTTP_SMUGGLING')
    if (minor === 0) return bad('Transfer-Encoding in an HTTP/1.0 request', 'WEFT_ERR_HTTP_TRANSFER_ENCODING')
    const e = checkTransferEncoding(f.te, 400)
    if (e !== null) return e
    chunked = true
  }

  // Request target forms (RFC 9112 3.2): origin-form, absolute-form (proxy requests), asterisk for OPTIONS.
  let path = target
  let authority = f.host
  const c0 = target.charCodeAt(0)
  if (c0 !== 0x2f /* / */) {
    if (target === '*') {
      if (method !== 'OPTIONS') return bad('invalid request target')
    } else if (method === 'CONNECT') {
      return new HttpError(405, 'WEFT_ERR_HTTP_CONNECT', 'CONNECT is not supported')
    } else {
      const m = /^http:\/\/([^/?#@]+)([/?][^#]*)?$/i.exec(target)
      if (m === null) return bad('invalid request target')
      authority = m[1]
      path = m[2] === undefined ? '/' : m[2].charCodeAt(0) === 0x3f ? '/' + m[2] : m[2]
    }
  } else if (target.indexOf('#') !== -1) {
    return bad('fragment in request target')
  }
  if (f.hostCount > 1) return bad('multiple Host headers')
  if (minor === 1 && f.hostCount === 0) return bad('missing Host header')
  if (authority !== '' && !AUTHORITY.test(authority)) return bad('invalid Host header')

  let expectContinue = false
  if (f.expect !== '') {
    if (f.expect.toLowerCase() !== '100-continue')
      return new HttpError(417, 'WEFT_ERR_HTTP_EXPECT', 'unsupported expectation')
    expectContinue = minor === 1
  }
  const conn = dropConnectionListed(f)
  // An upgrade with a body would leave the body's end and the new protocol's start to the
  // upstream's reading; h2c needs HTTP2-Settings, a hop-by-hop field we drop. Both go on as
  // ordinary requests (Upgrade removed), as with HTTP/1.0.
  const upgrade =
    conn.upgrade && f.upgrade !== '' && minor === 1 && !chunked && f.contentLength <= 0 && !isH2c(f.upgrade) ? f.upgrade : ''
  return {
    method,
    target,
    path,
    minor,
    names: f.names,
    values: f.values,
    authority,
    contentLength: f.contentLength,
    chunked,
    transferEncoding: chunked ? f.te : '',
    keepAlive: minor === 1 ? !conn.close : conn.keepAlive && !conn.close,
    expectContinue,
    upgrade,
  }
}

function isH2c(upgrade: string): boolean {
  return upgrade.toLowerCase().indexOf('h2c') !== -1
}

/** Parse a response head from an upstream; violations give 502 errors. */
export function parseResponseHead(s: string, maxHeaders: number): ResponseHead | HttpError {
  let eol = s.indexOf('\r\n')
  if (eol === -1) eol = s.length
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]
  if (eol < 12 || s.charCodeAt(8) !== 0x20 || (eol > 12 && s.charCodeAt(12) !== 0x20))
    return new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', 'malformed status line')
  const version = s.slice(0, 8)
  let minor: number
  if (version === 'HTTP/1.1') minor = 1
  else if (version === 'HTTP/1.0') minor = 0
  else return new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', 'unsupported upstream HTTP version')
  const d0 = s.charCodeAt(9) - 0x30
  const d1 = s.charCodeAt(10) - 0x30
  const d2 = s.charCodeAt(11) - 0x30
  if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9)
    return new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', 'malformed status code')
  const status = d0 * 100 + d1 * 10 + d2
  const reason = eol > 13 ? s.slice(13, eol) : ''
  if (reason !== 'OK' && REASON_BAD.test(reason)) return new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', 'invalid reason phrase')
  const f = parseFields(s, eol + 2, maxHeaders, 502)
  if (f instanceof HttpError) return new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', f.message)
  let chunked = false
  if (f.te !== '') {
    if (f.contentLength !== -1)
      return new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', 'both Transfer-Encoding and Content-Length')
    const e = checkTransferEncoding(f.te, 502)
    if (e !== null) return new HttpError(502, 'WEFT_ERR_UPSTREAM_PROTOCOL', e.message)
    chunked = true
  }
  const conn = dropConnectionListed(f)
  return {
    status,
    reason,
    minor,
    names: f.names,
    values: f.values,
    contentLength: f.contentLength,
    chunked,
    transferEncoding: chunked ? f.te : '',
    close: minor === 1 ? conn.close : !conn.keepAlive || conn.close,
    upgrade: f.upgrade,
  }
}

const REASONS: Record<number, string> = {
  100: 'Continue', 200: 'OK', 201: 'Created', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found',
  304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 413: 'Payload Too Large', 417: 'Expectation Failed',
  429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error',
  501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
}

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown'
}
