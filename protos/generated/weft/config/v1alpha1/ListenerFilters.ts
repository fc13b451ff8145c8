// Original file: protos/weft/config/v1alpha1/config.proto

import type { RateLimitPolicy as _weft_config_v1alpha1_RateLimitPolicy, RateLimitPolicy__Output as _weft_config_v1alpha1_RateLimitPolicy__Output } from '../../../weft/config/v1alpha1/RateLimitPolicy.ts';
import type { FaultPolicy as _weft_config_v1alpha1_FaultPolicy, FaultPolicy__Output as _weft_config_v1alpha1_FaultPolicy__Output } from '../../../weft/config/v1alpha1/FaultPolicy.ts';

export interface ListenerFilters {
  'rateLimit'?: (_weft_config_v1alpha1_RateLimitPolicy | null);
  'fault'?: (_weft_config_v1alpha1_FaultPolicy | null);
}

export interface ListenerFilters__Output {
  'rateLimit': (_weft_config_v1alpha1_RateLimitPolicy__Output | null);
  'fault': (_weft_config_v1alpha1_FaultPolicy__Output | null);
}
