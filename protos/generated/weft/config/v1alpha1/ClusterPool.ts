// Original file: protos/weft/config/v1alpha1/config.proto


export interface ClusterPool {
  /**
   * per endpoint; default 1024
   */
  'maxConnections'?: (number);
  /**
   * requests waiting for a connection; default 1024
   */
  'maxPending'?: (number);
  'idleTimeout'?: (string);
  'connectTimeout'?: (string);
  /**
   * requests in flight to the whole cluster; more: 503 with flag UO
   */
  'maxRequests'?: (number);
  '_maxConnections'?: "maxConnections";
  '_maxPending'?: "maxPending";
  '_idleTimeout'?: "idleTimeout";
  '_connectTimeout'?: "connectTimeout";
  '_maxRequests'?: "maxRequests";
}

export interface ClusterPool__Output {
  /**
   * per endpoint; default 1024
   */
  'maxConnections'?: (number);
  /**
   * requests waiting for a connection; default 1024
   */
  'maxPending'?: (number);
  'idleTimeout'?: (string);
  'connectTimeout'?: (string);
  /**
   * requests in flight to the whole cluster; more: 503 with flag UO
   */
  'maxRequests'?: (number);
  '_maxConnections'?: "maxConnections";
  '_maxPending'?: "maxPending";
  '_idleTimeout'?: "idleTimeout";
  '_connectTimeout'?: "connectTimeout";
  '_maxRequests'?: "maxRequests";
}
