// Original file: protos/weft/config/v1alpha1/config.proto

import type { GlobalRateLimitDescriptor as _weft_config_v1alpha1_GlobalRateLimitDescriptor, GlobalRateLimitDescriptor__Output as _weft_config_v1alpha1_GlobalRateLimitDescriptor__Output } from '../../../weft/config/v1alpha1/GlobalRateLimitDescriptor.ts';

/**
 * a limit shared by every sidecar, decided by a rate limit service (Envoy's RLS protocol)
 */
export interface GlobalRateLimitPolicy {
  'service'?: (string);
  'domain'?: (string);
  'descriptors'?: (_weft_config_v1alpha1_GlobalRateLimitDescriptor)[];
  /**
   * "allow" (default) or "deny"
   */
  'failureMode'?: (string);
  'timeout'?: (string);
  '_failureMode'?: "failureMode";
  '_timeout'?: "timeout";
}

/**
 * a limit shared by every sidecar, decided by a rate limit service (Envoy's RLS protocol)
 */
export interface GlobalRateLimitPolicy__Output {
  'service': (string);
  'domain': (string);
  'descriptors': (_weft_config_v1alpha1_GlobalRateLimitDescriptor__Output)[];
  /**
   * "allow" (default) or "deny"
   */
  'failureMode'?: (string);
  'timeout'?: (string);
  '_failureMode'?: "failureMode";
  '_timeout'?: "timeout";
}
