// The pod annotations the injector reads, parsed once per pod. Every one is documented in the
// README (section "Install and injection").
import type { ObjectMeta } from './types.ts'

export const A = {
  inject: 'weft.io/inject',
  status: 'weft.io/status',
  sidecarMode: 'weft.io/sidecar-mode',
  excludeInboundPorts: 'weft.io/exclude-inbound-ports',
  excludeOutboundPorts: 'weft.io/exclude-outbound-ports',
  excludeOutboundCidrs: 'weft.io/exclude-outbound-cidrs',
  proxyCpuRequest: 'weft.io/proxy-cpu-request',
  proxyCpuLimit: 'weft.io/proxy-cpu-limit',
  proxyMemoryRequest: 'weft.io/proxy-memory-request',
  proxyMemoryLimit: 'weft.io/proxy-memory-limit',
  logLevel: 'weft.io/log-level',
  rewriteProbes: 'weft.io/rewrite-probes',
  inboundMtls: 'weft.io/inbound-mtls',
} as const

/** The namespace label that opts a namespace in. */
export const NAMESPACE_LABEL = 'weft.io/inject'

export interface PodOptions {
  mode: 'native' | 'classic'
  excludeInboundPorts: number[]
  excludeOutboundPorts: number[]
  excludeOutboundCidrs: string[]
  cpuRequest?: string
  cpuLimit?: string
  memoryRequest?: string
  memoryLimit?: string
  logLevel?: string
  rewriteProbes: boolean
  /** the pod's inbound mutual TLS mode (the proxy's default: permissive when it has an identity) */
  inboundMtls?: 'strict' | 'permissive' | 'disable'
}

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
// a Kubernetes quantity: 100m, 0.5, 128Mi, 1G, 1e3
const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[munkMGTPE]|[KMGTPE]i)?$/
const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/
const CIDR6 = /^[0-9a-fA-F:]+\/(\d{1,3})$/

/** The pod's options, or the list of annotation errors (each "annotation: value: what is wrong"). */
export function podOptions(meta: ObjectMeta | undefined): { ok: true; options: PodOptions } | { ok: false; errors: string[] } {
  const a = meta?.annotations ?? {}
  const errors: string[] = []
  const ports = (key: string): number[] => {
    const v = a[key]
    if (v === undefined || v.trim() === '') return []
    const out: number[] = []
    for (const part of v.split(',')) {
      const s = part.trim()
      const n = Number(s)
      if (!/^\d+$/.test(s) || n < 1 || n > 65535) {
        errors.push(`${key}: "${v}": "${s}" is not a port (1-65535)`)
        return []
      }
      out.push(n)
    }
    return out
  }
  const cidrs = (key: string): string[] => {
    const v = a[key]
    if (v === undefined || v.trim() === '') return []
    const out: string[] = []
    for (const part of v.split(',')) {
      const s = part.trim()
      const m4 = CIDR4.exec(s)
      const ok4 = m4 !== null && m4.slice(1, 5).every((o) => Number(o) <= 255) && Number(m4[5]) <= 32
      const m6 = ok4 ? null : CIDR6.exec(s)
      if (!ok4 && !(m6 !== null && s.includes(':') && Number(m6[1]) <= 128)) {
        errors.push(`${key}: "${v}": "${s}" is not a CIDR (e.g. 10.0.0.0/8)`)
        return []
      }
      out.push(s)
    }
    return out
  }
  const quantity = (key: string): string | undefined => {
    const v = a[key]
    if (v === undefined) return undefined
    if (!QUANTITY.test(v)) errors.push(`${key}: "${v}" is not a Kubernetes quantity (e.g. 100m, 128Mi)`)
    return v
  }
  const modeRaw = a[A.sidecarMode] ?? 'native'
  if (modeRaw !== 'native' && modeRaw !== 'classic') errors.push(`${A.sidecarMode}: "${modeRaw}" is not native or classic`)
  const logLevel = a[A.logLevel]
  if (logLevel !== undefined && !LOG_LEVELS.has(logLevel)) errors.push(`${A.logLevel}: "${logLevel}" is not one of ${[...LOG_LEVELS].join(', ')}`)
  const mtls = a[A.inboundMtls]
  if (mtls !== undefined && mtls !== 'strict' && mtls !== 'permissive' && mtls !== 'disable') errors.push(`${A.inboundMtls}: "${mtls}" is not strict, permissive or disable`)
  const rewrite = a[A.rewriteProbes] ?? 'true'
  if (rewrite !== 'true' && rewrite !== 'false') errors.push(`${A.rewriteProbes}: "${rewrite}" is not true or false`)
  const options: PodOptions = {
    mode: modeRaw === 'classic' ? 'classic' : 'native',
    excludeInboundPorts: ports(A.excludeInboundPorts),
    excludeOutboundPorts: ports(A.excludeOutboundPorts),
    excludeOutboundCidrs: cidrs(A.excludeOutboundCidrs),
    cpuRequest: quantity(A.proxyCpuRequest),
    cpuLimit: quantity(A.proxyCpuLimit),
    memoryRequest: quantity(A.proxyMemoryRequest),
    memoryLimit: quantity(A.proxyMemoryLimit),
    logLevel,
    rewriteProbes: rewrite !== 'false',
    ...(mtls === 'strict' || mtls === 'permissive' || mtls === 'disable' ? { inboundMtls: mtls } : {}),
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, options }
}
