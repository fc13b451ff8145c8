// Original file: protos/weft/config/v1alpha1/config.proto

import type { Endpoint as _weft_config_v1alpha1_Endpoint, Endpoint__Output as _weft_config_v1alpha1_Endpoint__Output } from '../../../weft/config/v1alpha1/Endpoint.ts';

/**
 * The endpoints of one cluster: the high-churn type, so it is fully typed (no JSON to parse).
 */
export interface ClusterEndpoints {
  'clusterName'?: (string);
  'endpoints'?: (_weft_config_v1alpha1_Endpoint)[];
}

/**
 * The endpoints of one cluster: the high-churn type, so it is fully typed (no JSON to parse).
 */
export interface ClusterEndpoints__Output {
  'clusterName': (string);
  'endpoints': (_weft_config_v1alpha1_Endpoint__Output)[];
}
