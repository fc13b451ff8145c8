// Host names a virtual host answers to. Used by the config checks (duplicate domains) and by the
// route table compiler, so both agree.
import type { VirtualHost } from './schema.ts'

/**
 * The host names a Kubernetes service answers to: name, name.namespace, name.namespace.svc,
 * name.namespace.svc.<clusterDomain>, each also with ":port" when a port is given.
 */
export function serviceDomains(service: NonNullable<VirtualHost['service']>): string[] {
  const ns = service.namespace ?? 'default'
  const clusterDomain = service.clusterDomain ?? 'cluster.local'
  const names = [
    service.name,
    `${service.name}.${ns}`,
    `${service.name}.${ns}.svc`,
    `${service.name}.${ns}.svc.${clusterDomain}`,
  ]
  return service.port === undefined ? names : names.flatMap((n) => [n, `${n}:${service.port}`])
}

/** All host names of a virtual host: those of its service, then its explicit domains. */
export function virtualHostDomains(vh: VirtualHost): string[] {
  return [...(vh.service ? serviceDomains(vh.service) : []), ...(vh.domains ?? [])]
}
