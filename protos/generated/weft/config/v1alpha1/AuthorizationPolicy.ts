// Original file: protos/weft/config/v1alpha1/config.proto

import type { AuthorizationRule as _weft_config_v1alpha1_AuthorizationRule, AuthorizationRule__Output as _weft_config_v1alpha1_AuthorizationRule__Output } from '../../../weft/config/v1alpha1/AuthorizationRule.ts';

export interface AuthorizationPolicy {
  'name'?: (string);
  /**
   * "ALLOW" (default), "DENY", "AUDIT"
   */
  'action'?: (string);
  'rules'?: (_weft_config_v1alpha1_AuthorizationRule)[];
  '_action'?: "action";
}

export interface AuthorizationPolicy__Output {
  'name': (string);
  /**
   * "ALLOW" (default), "DENY", "AUDIT"
   */
  'action'?: (string);
  'rules': (_weft_config_v1alpha1_AuthorizationRule__Output)[];
  '_action'?: "action";
}
