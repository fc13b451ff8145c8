// Original file: protos/weft/config/v1alpha1/config.proto

import type { AuthorizationPolicy as _weft_config_v1alpha1_AuthorizationPolicy, AuthorizationPolicy__Output as _weft_config_v1alpha1_AuthorizationPolicy__Output } from '../../../weft/config/v1alpha1/AuthorizationPolicy.ts';

export interface ClusterInboundPod {
  'mtls'?: (string);
  'authorization'?: (_weft_config_v1alpha1_AuthorizationPolicy)[];
  '_mtls'?: "mtls";
}

export interface ClusterInboundPod__Output {
  'mtls'?: (string);
  'authorization': (_weft_config_v1alpha1_AuthorizationPolicy__Output)[];
  '_mtls'?: "mtls";
}
