// Original file: protos/weft/config/v1alpha1/config.proto

import type { AuthorizationPolicy as _weft_config_v1alpha1_AuthorizationPolicy, AuthorizationPolicy__Output as _weft_config_v1alpha1_AuthorizationPolicy__Output } from '../../../weft/config/v1alpha1/AuthorizationPolicy.ts';
import type { ClusterInboundPod as _weft_config_v1alpha1_ClusterInboundPod, ClusterInboundPod__Output as _weft_config_v1alpha1_ClusterInboundPod__Output } from '../../../weft/config/v1alpha1/ClusterInboundPod.ts';

export interface ClusterInboundWorkload {
  'addresses'?: (string)[];
  'mtls'?: (string);
  'authorization'?: (_weft_config_v1alpha1_AuthorizationPolicy)[];
  'pod'?: (_weft_config_v1alpha1_ClusterInboundPod | null);
  '_mtls'?: "mtls";
}

export interface ClusterInboundWorkload__Output {
  'addresses': (string)[];
  'mtls'?: (string);
  'authorization': (_weft_config_v1alpha1_AuthorizationPolicy__Output)[];
  'pod': (_weft_config_v1alpha1_ClusterInboundPod__Output | null);
  '_mtls'?: "mtls";
}
