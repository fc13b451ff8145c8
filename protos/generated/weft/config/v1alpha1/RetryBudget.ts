// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * retries are at most `percent` of the requests of the last `ttl`, plus min_retries_per_second
 */
export interface RetryBudget {
  'percent'?: (number | string);
  'minRetriesPerSecond'?: (number);
  'ttl'?: (string);
  '_percent'?: "percent";
  '_minRetriesPerSecond'?: "minRetriesPerSecond";
  '_ttl'?: "ttl";
}

/**
 * retries are at most `percent` of the requests of the last `ttl`, plus min_retries_per_second
 */
export interface RetryBudget__Output {
  'percent'?: (number);
  'minRetriesPerSecond'?: (number);
  'ttl'?: (string);
  '_percent'?: "percent";
  '_minRetriesPerSecond'?: "minRetriesPerSecond";
  '_ttl'?: "ttl";
}
