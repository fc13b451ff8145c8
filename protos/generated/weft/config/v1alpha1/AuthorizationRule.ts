// Original file: protos/weft/config/v1alpha1/config.proto

import type { AuthorizationSource as _weft_config_v1alpha1_AuthorizationSource, AuthorizationSource__Output as _weft_config_v1alpha1_AuthorizationSource__Output } from '../../../weft/config/v1alpha1/AuthorizationSource.ts';
import type { AuthorizationOperation as _weft_config_v1alpha1_AuthorizationOperation, AuthorizationOperation__Output as _weft_config_v1alpha1_AuthorizationOperation__Output } from '../../../weft/config/v1alpha1/AuthorizationOperation.ts';
import type { AuthorizationCondition as _weft_config_v1alpha1_AuthorizationCondition, AuthorizationCondition__Output as _weft_config_v1alpha1_AuthorizationCondition__Output } from '../../../weft/config/v1alpha1/AuthorizationCondition.ts';

export interface AuthorizationRule {
  'from'?: (_weft_config_v1alpha1_AuthorizationSource)[];
  'to'?: (_weft_config_v1alpha1_AuthorizationOperation)[];
  'when'?: (_weft_config_v1alpha1_AuthorizationCondition)[];
}

export interface AuthorizationRule__Output {
  'from': (_weft_config_v1alpha1_AuthorizationSource__Output)[];
  'to': (_weft_config_v1alpha1_AuthorizationOperation__Output)[];
  'when': (_weft_config_v1alpha1_AuthorizationCondition__Output)[];
}
