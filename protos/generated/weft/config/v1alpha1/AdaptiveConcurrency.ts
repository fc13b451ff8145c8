// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * a limit on the requests in flight that follows the cluster's latency (gradient controller)
 */
export interface AdaptiveConcurrency {
  'sampleWindow'?: (string);
  'percentile'?: (number | string);
  'buffer'?: (number | string);
  'minRttInterval'?: (string);
  'minRttRequests'?: (number);
  'minConcurrency'?: (number);
  'maxConcurrency'?: (number);
  '_sampleWindow'?: "sampleWindow";
  '_percentile'?: "percentile";
  '_buffer'?: "buffer";
  '_minRttInterval'?: "minRttInterval";
  '_minRttRequests'?: "minRttRequests";
  '_minConcurrency'?: "minConcurrency";
  '_maxConcurrency'?: "maxConcurrency";
}

/**
 * a limit on the requests in flight that follows the cluster's latency (gradient controller)
 */
export interface AdaptiveConcurrency__Output {
  'sampleWindow'?: (string);
  'percentile'?: (number);
  'buffer'?: (number);
  'minRttInterval'?: (string);
  'minRttRequests'?: (number);
  'minConcurrency'?: (number);
  'maxConcurrency'?: (number);
  '_sampleWindow'?: "sampleWindow";
  '_percentile'?: "percentile";
  '_buffer'?: "buffer";
  '_minRttInterval'?: "minRttInterval";
  '_minRttRequests'?: "minRttRequests";
  '_minConcurrency'?: "minConcurrency";
  '_maxConcurrency'?: "maxConcurrency";
}
