// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * error-rate breaker over the whole cluster
 */
export interface CircuitBreaker {
  'errorThresholdPercentage'?: (number | string);
  'volumeThreshold'?: (number);
  'window'?: (string);
  'buckets'?: (number);
  'resetTimeout'?: (string);
  '_errorThresholdPercentage'?: "errorThresholdPercentage";
  '_volumeThreshold'?: "volumeThreshold";
  '_window'?: "window";
  '_buckets'?: "buckets";
  '_resetTimeout'?: "resetTimeout";
}

/**
 * error-rate breaker over the whole cluster
 */
export interface CircuitBreaker__Output {
  'errorThresholdPercentage'?: (number);
  'volumeThreshold'?: (number);
  'window'?: (string);
  'buckets'?: (number);
  'resetTimeout'?: (string);
  '_errorThresholdPercentage'?: "errorThresholdPercentage";
  '_volumeThreshold'?: "volumeThreshold";
  '_window'?: "window";
  '_buckets'?: "buckets";
  '_resetTimeout'?: "resetTimeout";
}
