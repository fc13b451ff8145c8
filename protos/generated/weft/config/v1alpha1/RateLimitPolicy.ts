// Original file: protos/weft/config/v1alpha1/config.proto

import type { RateLimitKey as _weft_config_v1alpha1_RateLimitKey, RateLimitKey__Output as _weft_config_v1alpha1_RateLimitKey__Output } from '../../../weft/config/v1alpha1/RateLimitKey.ts';

/**
 * a token bucket: `requests` tokens every `interval`, holding at most `burst` (default requests)
 */
export interface RateLimitPolicy {
  'requests'?: (number);
  'interval'?: (string);
  'burst'?: (number);
  'key'?: (_weft_config_v1alpha1_RateLimitKey | null);
  /**
   * bound on the per-key buckets kept; default 10000
   */
  'maxKeys'?: (number);
  '_burst'?: "burst";
  '_maxKeys'?: "maxKeys";
}

/**
 * a token bucket: `requests` tokens every `interval`, holding at most `burst` (default requests)
 */
export interface RateLimitPolicy__Output {
  'requests': (number);
  'interval': (string);
  'burst'?: (number);
  'key': (_weft_config_v1alpha1_RateLimitKey__Output | null);
  /**
   * bound on the per-key buckets kept; default 10000
   */
  'maxKeys'?: (number);
  '_burst'?: "burst";
  '_maxKeys'?: "maxKeys";
}
