// Original file: protos/weft/config/v1alpha1/config.proto

import type { AuthorizationPolicy as _weft_config_v1alpha1_AuthorizationPolicy, AuthorizationPolicy__Output as _weft_config_v1alpha1_AuthorizationPolicy__Output } from '../../../weft/config/v1alpha1/AuthorizationPolicy.ts';
import type { ClusterInboundWorkload as _weft_config_v1alpha1_ClusterInboundWorkload, ClusterInboundWorkload__Output as _weft_config_v1alpha1_ClusterInboundWorkload__Output } from '../../../weft/config/v1alpha1/ClusterInboundWorkload.ts';
import type { ClusterInboundPod as _weft_config_v1alpha1_ClusterInboundPod, ClusterInboundPod__Output as _weft_config_v1alpha1_ClusterInboundPod__Output } from '../../../weft/config/v1alpha1/ClusterInboundPod.ts';

export interface ClusterInbound {
  /**
   * "permissive", "strict", "disable"
   */
  'mtls'?: (string);
  'authorization'?: (_weft_config_v1alpha1_AuthorizationPolicy)[];
  /**
   * pods (by IP) whose policy differs from the defaults above; an entry replaces them as a whole
   */
  'workloads'?: (_weft_config_v1alpha1_ClusterInboundWorkload)[];
  /**
   * the workload-wide policy, for the pod's ports that no Service names
   */
  'pod'?: (_weft_config_v1alpha1_ClusterInboundPod | null);
  '_mtls'?: "mtls";
}

export interface ClusterInbound__Output {
  /**
   * "permissive", "strict", "disable"
   */
  'mtls'?: (string);
  'authorization': (_weft_config_v1alpha1_AuthorizationPolicy__Output)[];
  /**
   * pods (by IP) whose policy differs from the defaults above; an entry replaces them as a whole
   */
  'workloads': (_weft_config_v1alpha1_ClusterInboundWorkload__Output)[];
  /**
   * the workload-wide policy, for the pod's ports that no Service names
   */
  'pod': (_weft_config_v1alpha1_ClusterInboundPod__Output | null);
  '_mtls'?: "mtls";
}
