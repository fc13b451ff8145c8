// The original destination of a connection that iptables REDIRECTed to a listener (`weft init`):
// netfilter keeps it in the connection's conntrack entry, and getsockopt(SO_ORIGINAL_DST) on the
// accepted socket reads it (IP6T_SO_ORIGINAL_DST for IPv6). Node has no getsockopt, so libc's is
// called through koffi (FFI with prebuilt binaries), loaded on first use: only a sidecar with an
// intercepting listener pays for it.
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'

export interface OriginalDestination {
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
}

const SOL_IP = 0
const SOL_IPV6 = 41
/** SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h) */
const SO_ORIGINAL_DST = 80
const AF_INET = 2
const AF_INET6 = 10

type GetSockOpt = (fd: number, level: number, name: number, buf: Buffer, len: number[]) => number
let getsockopt: GetSockOpt | null | undefined

function load(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt
  try {
    const koffi = createRequire(import.meta.url)('koffi') as {
      load(path: string): { func(decl: string): GetSockOpt }
    }
    getsockopt = koffi.load('libc.so.6').func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *buf, _Inout_ uint32_t *len)')
  } catch {
    getsockopt = null
  }
  return getsockopt
}

/** Whether this process can read original destinations (Linux with koffi's libc binding). */
export function originalDstSupported(): boolean {
  return process.platform === 'linux' && load() !== null
}

/**
 * The connection's destination before any REDIRECT, or null when it cannot be read (no conntrack
 * entry: the connection was not NATed and conntrack is not loaded; not Linux; no fd). A connection
 * that was not redirected reads as its own local address.
 */
export function originalDst(socket: Socket): OriginalDestination | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
  if (typeof fd !== 'number' || fd < 0) return null
  const f = load()
  if (f === null) return null
  const six = socket.remoteFamily === 'IPv6' && !(socket.localAddress ?? '').startsWith('::ffff:')
  const buf = Buffer.alloc(28)
  const len = [buf.length]
  if (f(fd, six ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, buf, len) !== 0) return null
  const family = buf.readUInt16LE(0)
  const port = buf.readUInt16BE(2)
  if (family === AF_INET) return { address: `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port, family: 4 }
  if (family === AF_INET6) {
    const parts: string[] = []
    for (let i = 0; i < 8; i++) parts.push(buf.readUInt16BE(8 + i * 2).toString(16))
    return { address: compress6(parts), port, family: 6 }
  }
  return null
}

/** RFC 5952 text of eight hex groups: the longest run of two or more zero groups becomes "::". */
function compress6(g: string[]): string {
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (g[i] !== '0') { i++; continue }
    let j = i
    while (j < 8 && g[j] === '0') j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j
  }
  if (best < 0) return g.join(':')
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`
}
