// Original file: protos/weft/config/v1alpha1/config.proto


export interface LoadBalancer {
  /**
   * "roundRobin" (default), "leastRequest", "peakEwma", "ringHash", "maglev"
   */
  'policy'?: (string);
  /**
   * ringHash, maglev: the request header whose value picks the endpoint
   */
  'hashHeader'?: (string);
  /**
   * peakEwma: decay window of the latency average
   */
  'decay'?: (string);
  '_policy'?: "policy";
  '_hashHeader'?: "hashHeader";
  '_decay'?: "decay";
}

export interface LoadBalancer__Output {
  /**
   * "roundRobin" (default), "leastRequest", "peakEwma", "ringHash", "maglev"
   */
  'policy'?: (string);
  /**
   * ringHash, maglev: the request header whose value picks the endpoint
   */
  'hashHeader'?: (string);
  /**
   * peakEwma: decay window of the latency average
   */
  'decay'?: (string);
  '_policy'?: "policy";
  '_hashHeader'?: "hashHeader";
  '_decay'?: "decay";
}
