// Original file: protos/weft/config/v1alpha1/config.proto

import type { RetryBackoff as _weft_config_v1alpha1_RetryBackoff, RetryBackoff__Output as _weft_config_v1alpha1_RetryBackoff__Output } from '../../../weft/config/v1alpha1/RetryBackoff.ts';
import type { RetryBudget as _weft_config_v1alpha1_RetryBudget, RetryBudget__Output as _weft_config_v1alpha1_RetryBudget__Output } from '../../../weft/config/v1alpha1/RetryBudget.ts';

export interface RetryPolicy {
  /**
   * retries after the first try; 0 turns retries off
   */
  'attempts'?: (number);
  /**
   * "5xx", "gateway-error", "connect-failure", "reset", "retriable-status-codes", and for gRPC
   * "cancelled", "deadline-exceeded", "resource-exhausted", "internal", "unavailable";
   * default connect-failure, reset, gateway-error
   */
  'on'?: (string)[];
  'retriableStatusCodes'?: (number)[];
  'perTryTimeout'?: (string);
  'backoff'?: (_weft_config_v1alpha1_RetryBackoff | null);
  'budget'?: (_weft_config_v1alpha1_RetryBudget | null);
  '_perTryTimeout'?: "perTryTimeout";
}

export interface RetryPolicy__Output {
  /**
   * retries after the first try; 0 turns retries off
   */
  'attempts': (number);
  /**
   * "5xx", "gateway-error", "connect-failure", "reset", "retriable-status-codes", and for gRPC
   * "cancelled", "deadline-exceeded", "resource-exhausted", "internal", "unavailable";
   * default connect-failure, reset, gateway-error
   */
  'on': (string)[];
  'retriableStatusCodes': (number)[];
  'perTryTimeout'?: (string);
  'backoff': (_weft_config_v1alpha1_RetryBackoff__Output | null);
  'budget': (_weft_config_v1alpha1_RetryBudget__Output | null);
  '_perTryTimeout'?: "perTryTimeout";
}
