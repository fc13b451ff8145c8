// What a cluster source hands to translation: the traffic resources in the same ResourceSet the
// file loader produces (../resources/load.ts), the Pods (workload identity and labels), and the
// objects it had to skip. Types only (and the Pod schema), so translation can import them
// without the Kubernetes client.
import Type from 'typebox'
import type { ResourceSet } from '../resources/load.ts'
import { DNS_LABEL, DNS_SUBDOMAIN } from '../resources/schema.ts'
import type { Kind } from '../resources/schema.ts'

/** A Pod as the source keeps it: who it is (service account, labels) and where (its IPs). */
export const Pod = Type.Object(
  {
    apiVersion: Type.Literal('v1'),
    kind: Type.Literal('Pod'),
    metadata: Type.Object(
      {
        name: Type.String({ pattern: DNS_SUBDOMAIN, maxLength: 253 }),
        namespace: Type.String({ pattern: DNS_LABEL, maxLength: 63 }),
        uid: Type.Optional(Type.String()),
        resourceVersion: Type.Optional(Type.String()),
        labels: Type.Optional(Type.Object({}, { additionalProperties: Type.String() })),
        // weft.io/status only (the injector's: the pod has a sidecar)
        annotations: Type.Optional(Type.Object({}, { additionalProperties: Type.String() })),
      },
      { additionalProperties: false },
    ),
    spec: Type.Object(
      // unset only before admission; the API server defaults it to "default"
      { serviceAccountName: Type.Optional(Type.String()) },
      { additionalProperties: false },
    ),
    status: Type.Object(
      {
        // unset until the Pod has a sandbox (phase Pending)
        podIP: Type.Optional(Type.String()),
        podIPs: Type.Optional(Type.Array(Type.Object({ ip: Type.String() }, { additionalProperties: false }))),
        phase: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
)
export type Pod = Type.Static<typeof Pod>

export type SourceKind = Kind | 'Pod'

/** An object the source skipped: it does not match its kind's schema. */
export interface Rejected {
  kind: SourceKind
  /** "namespace/name" */
  id: string
  /** the version that was rejected */
  resourceVersion: string
  /** every problem, "field.path: what is wrong", joined by "; " */
  message: string
}

export interface ClusterState {
  /**
   * Services, EndpointSlices, HTTPRoutes and TrafficPolicies, each list sorted by namespace/name;
   * `bootstraps` and `files` are empty. Not yet checked across resources (../resources/validate.ts).
   */
  resources: ResourceSet
  /** sorted by namespace/name */
  pods: Pod[]
  /** objects left out of `resources` and `pods`, sorted by kind (watch order), then namespace/name */
  rejected: Rejected[]
  /** per kind, the resourceVersion this state reflects (of the last list, event or bookmark) */
  resourceVersions: Record<SourceKind, string>
}
