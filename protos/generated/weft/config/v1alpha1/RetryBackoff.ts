// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * exponential backoff with full jitter: try n waits random(0, min(max, base * 2^n))
 */
export interface RetryBackoff {
  'base'?: (string);
  'max'?: (string);
  '_base'?: "base";
  '_max'?: "max";
}

/**
 * exponential backoff with full jitter: try n waits random(0, min(max, base * 2^n))
 */
export interface RetryBackoff__Output {
  'base'?: (string);
  'max'?: (string);
  '_base'?: "base";
  '_max'?: "max";
}
