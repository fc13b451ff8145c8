// Original file: protos/weft/config/v1alpha1/config.proto

import type { GlobalRateLimitEntry as _weft_config_v1alpha1_GlobalRateLimitEntry, GlobalRateLimitEntry__Output as _weft_config_v1alpha1_GlobalRateLimitEntry__Output } from '../../../weft/config/v1alpha1/GlobalRateLimitEntry.ts';

export interface GlobalRateLimitDescriptor {
  'entries'?: (_weft_config_v1alpha1_GlobalRateLimitEntry)[];
}

export interface GlobalRateLimitDescriptor__Output {
  'entries': (_weft_config_v1alpha1_GlobalRateLimitEntry__Output)[];
}
