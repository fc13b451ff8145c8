// What `kubectl apply -f install/` applies, built here and written to install/*.yaml by
// `npm run install-manifests` (test/install.test.ts fails when the files are stale, and checks
// every object against the Kubernetes OpenAPI schemas). `weft install` prints the same objects,
// with --image and --namespace applied.
import { stringify } from 'yaml'
import { crdOf, OWN_KINDS } from '../control-plane/resources/crd.ts'
import { DEFAULT_MESH } from '../control-plane/inject/types.ts'
import { WATCHED_KINDS } from '../control-plane/sources/kube-objects.ts'
import { CONTROL_PLANE_ENV } from '../control-plane/runtime.ts'

export const WEBHOOK_CONFIG_NAME = 'weft-sidecar-injector'
export const WEBHOOK_PORT = 8443
export const SERVICE = 'weft-control-plane'

export interface InstallOptions {
  namespace: string
  image: string
}

export const DEFAULT_INSTALL: InstallOptions = { namespace: DEFAULT_MESH.controlPlaneNamespace, image: DEFAULT_MESH.image }

type Obj = Record<string, unknown>
const labels = { 'app.kubernetes.io/name': 'weft-control-plane', 'app.kubernetes.io/part-of': 'weft' }

/** The Kubernetes API group and plural of each kind the control plane watches (list, watch). */
function watchedRules(): Obj[] {
  const byGroup = new Map<string, string[]>()
  for (const k of WATCHED_KINDS) {
    const group = k.apiVersion.includes('/') ? k.apiVersion.split('/')[0]! : ''
    const plural = k.path.slice(k.path.lastIndexOf('/') + 1)
    byGroup.set(group, [...(byGroup.get(group) ?? []), plural])
  }
  return [...byGroup].map(([group, resources]) => ({ apiGroups: [group], resources, verbs: ['list', 'watch'] }))
}

/** Files of install/, in apply order: name -> objects. */
export function manifests(o: InstallOptions = DEFAULT_INSTALL): [string, Obj[]][] {
  const ns = o.namespace
  const meta = (name: string, extra: Obj = {}) => ({ name, namespace: ns, labels, ...extra })
  return [
    ['00-namespace.yaml', [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'app.kubernetes.io/part-of': 'weft' } } }]],
    ['01-crds.yaml', OWN_KINDS.map(crdOf)],
    ['02-rbac.yaml', [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta('weft-control-plane') },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'weft-control-plane', labels },
        rules: [
          ...watchedRules(),
          // the webhook's caBundle, and only its own configuration
          { apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: [WEBHOOK_CONFIG_NAME], verbs: ['get', 'patch'] },
          // the certificate service: who a proxy's ServiceAccount token belongs to
          { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
        ],
      },
      {
        // the mesh root, in the control plane's own namespace only
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: meta('weft-control-plane'),
        rules: [
          { apiGroups: [''], resources: ['secrets'], resourceNames: ['weft-ca-root'], verbs: ['get'] },
          { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: meta('weft-control-plane'),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'weft-control-plane' },
        subjects: [{ kind: 'ServiceAccount', name: 'weft-control-plane', namespace: ns }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'weft-control-plane', labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'weft-control-plane' },
        subjects: [{ kind: 'ServiceAccount', name: 'weft-control-plane', namespace: ns }],
      },
    ]],
    ['03-control-plane.yaml', [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: meta('weft-control-plane'),
        spec: {
          replicas: 2,
          selector: { matchLabels: { 'app.kubernetes.io/name': 'weft-control-plane' } },
          template: {
            metadata: { labels, annotations: { 'weft.io/inject': 'false' } },
            spec: {
              serviceAccountName: 'weft-control-plane',
              securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
              // the two replicas on different nodes when there are several
              topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'weft-control-plane' } } }],
              containers: [{
                name: 'control-plane',
                image: o.image,
                command: ['weft'],
                args: [
                  'control-plane', '--kubernetes', 'cluster',
                  '--listen', '0.0.0.0:15010', '--admin', '0.0.0.0:15011',
                  '--webhook-listen', `0.0.0.0:${WEBHOOK_PORT}`, '--webhook-service', SERVICE, '--proxy-image', o.image,
                  '--ca-listen', '0.0.0.0:15012',
                ],
                env: [
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                  // glibc's settings of the control plane (control-plane/runtime.ts): set here, the process
                  // starts with them (otherwise `weft control-plane` re-executes itself once to get them)
                  ...Object.entries(CONTROL_PLANE_ENV).map(([name, value]) => ({ name, value })),
                ],
                ports: [
                  { name: 'grpc', containerPort: 15010 },
                  { name: 'admin', containerPort: 15011 },
                  { name: 'ca', containerPort: 15012 },
                  { name: 'webhook', containerPort: WEBHOOK_PORT },
                ],
                readinessProbe: { httpGet: { path: '/ready', port: 'admin' }, periodSeconds: 5 },
                livenessProbe: { httpGet: { path: '/healthz', port: 'webhook', scheme: 'HTTPS' }, periodSeconds: 10 },
                resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: meta(SERVICE),
        spec: {
          selector: { 'app.kubernetes.io/name': 'weft-control-plane' },
          ports: [
            { name: 'grpc', port: 15010, targetPort: 'grpc' },
            { name: 'admin', port: 15011, targetPort: 'admin' },
            { name: 'ca', port: 15012, targetPort: 'ca' },
            { name: 'webhook', port: 443, targetPort: 'webhook' },
          ],
        },
      },
      {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: meta('weft-control-plane'),
        spec: { minAvailable: 1, selector: { matchLabels: { 'app.kubernetes.io/name': 'weft-control-plane' } } },
      },
    ]],
    ['04-webhook.yaml', [{
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: WEBHOOK_CONFIG_NAME, labels },
      webhooks: [{
        name: 'sidecar-injector.weft.io',
        // caBundle is set by the control plane at start (each replica adds its CA)
        clientConfig: { service: { name: SERVICE, namespace: ns, path: '/inject', port: 443 } },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
        namespaceSelector: { matchExpressions: [
          { key: 'weft.io/inject', operator: 'In', values: ['enabled'] },
          { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', ns] },
        ] },
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        // a control plane that is down must not stop pods from starting; they start without a sidecar
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'Never',
        timeoutSeconds: 10,
      }],
    }]],
  ]
}

const HEADER = '# Generated by install/manifests.ts (npm run install-manifests); do not edit.\n'

export function renderFile(objs: Obj[]): string {
  return HEADER + objs.map((o) => '---\n' + stringify(o, { lineWidth: 0 })).join('')
}

/** Everything, as one stream (`weft install`). */
export function renderAll(o: InstallOptions = DEFAULT_INSTALL): string {
  return manifests(o).map(([, objs]) => renderFile(objs)).join('')
}
