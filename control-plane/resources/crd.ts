// CustomResourceDefinitions of Weft's own kinds, from the same TypeBox schema the validator uses
// (./schema.ts): the JSON Schema is turned into a Kubernetes structural OpenAPI v3 schema (every
// node typed; const -> enum; anyOf of constants -> enum; no uniqueItems, which the API server
// refuses; metadata left to the API server). Anything else it cannot express throws, so a schema
// change that the CRD cannot follow is noticed when the files are regenerated.
import { KINDS } from './schema.ts'

type Json = Record<string, unknown>

/** Weft's own kinds (the others, Service, EndpointSlice, HTTPRoute, are Kubernetes' and Gateway API's). */
export const OWN_KINDS = KINDS.filter((k) => k.apiVersion.endsWith('.weft.io/v1alpha1'))

export function structural(s: Json, path = ''): Json {
  const out: Json = {}
  if (Array.isArray(s.anyOf)) {
    const alts = s.anyOf as Json[]
    if (alts.every((a) => 'const' in a && typeof a.const === typeof alts[0]!.const)) {
      out.type = alts[0]!.type ?? typeof alts[0]!.const
      out.enum = alts.map((a) => a.const)
    } else {
      throw new Error(`${path || '/'}: anyOf other than a list of constants has no structural form`)
    }
  }
  for (const [k, v] of Object.entries(s)) {
    switch (k) {
      case 'anyOf': case '$schema': case '$id': case 'title': case 'uniqueItems':
        break
      case 'const':
        out.enum = [v]
        break
      case 'properties': {
        const props = v as Record<string, Json>
        if (Object.keys(props).length === 0 && s.additionalProperties !== undefined) break
        out.properties = Object.fromEntries(Object.entries(props).map(([n, p]) => [n, structural(p, `${path}/${n}`)]))
        break
      }
      case 'items':
        out.items = structural(v as Json, `${path}/items`)
        break
      case 'additionalProperties':
        if (typeof v === 'object' && v !== null) out.additionalProperties = structural(v as Json, `${path}/*`)
        else if (v === false) { /* the API server prunes unknown fields: false is the default */ }
        break
      default:
        out[k] = v
    }
  }
  if (out.type === undefined) {
    if (out.properties !== undefined || out.additionalProperties !== undefined) out.type = 'object'
    else { out.type = 'object'; out['x-kubernetes-preserve-unknown-fields'] = true }
  }
  return out
}

export function crdOf(k: (typeof KINDS)[number]): Json {
  const [group, version] = k.apiVersion.split('/') as [string, string]
  const plural = `${k.kind.toLowerCase()}${k.kind.endsWith('y') ? '' : 's'}`.replace(/y$/, 'ies')
  const props = (k.schema as unknown as { properties: Record<string, Json> }).properties
  const spec = structural(props.spec!, '/spec')
  const status = props.status !== undefined ? structural(props.status, '/status') : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'app.kubernetes.io/part-of': 'weft' } },
    spec: {
      group,
      scope: 'Namespaced',
      names: { kind: k.kind, listKind: `${k.kind}List`, plural, singular: k.kind.toLowerCase() },
      versions: [{
        name: version,
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            description: `${k.kind}: generated from control-plane/resources/schema.ts (npm run install-manifests); do not edit`,
            type: 'object',
            required: ['spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec,
              status,
            },
          },
        },
      }],
    },
  }
}
