// Original file: protos/weft/config/v1alpha1/config.proto

import type { FaultDelay as _weft_config_v1alpha1_FaultDelay, FaultDelay__Output as _weft_config_v1alpha1_FaultDelay__Output } from '../../../weft/config/v1alpha1/FaultDelay.ts';
import type { FaultAbort as _weft_config_v1alpha1_FaultAbort, FaultAbort__Output as _weft_config_v1alpha1_FaultAbort__Output } from '../../../weft/config/v1alpha1/FaultAbort.ts';

export interface FaultPolicy {
  'delay'?: (_weft_config_v1alpha1_FaultDelay | null);
  'abort'?: (_weft_config_v1alpha1_FaultAbort | null);
}

export interface FaultPolicy__Output {
  'delay': (_weft_config_v1alpha1_FaultDelay__Output | null);
  'abort': (_weft_config_v1alpha1_FaultAbort__Output | null);
}
