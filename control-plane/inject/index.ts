// The sidecar injector's public surface, for the control plane's webhook and the CLI.
export { inject, uninject, isInjected, appHealthPath, appProbesOf, INIT_NAME, PROXY_NAME, APP_PROBES_ENV, TMP_VOLUME } from './inject.ts'
export { compilePodPatcher, type PodPatch, type PodPatcher } from './patch.ts'
export { A as ANNOTATIONS, NAMESPACE_LABEL, podOptions } from './annotations.ts'
export { podTemplate, WORKLOAD_KINDS } from './template.ts'
export { DEFAULT_MESH } from './types.ts'
export type { AppProbe, Container, InjectResult, InjectStatus, KubeObject, MeshConfig, PodSpec, SkipReason } from './types.ts'
