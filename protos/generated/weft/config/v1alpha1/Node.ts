// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * Who the proxy is. Sent on the first message of a stream (required there, ignored afterwards).
 */
export interface Node {
  /**
   * Unique per proxy, stable across its restarts, e.g. "reviews-v1-5d8f.shop".
   */
  'id'?: (string);
  'pod'?: (string);
  'namespace'?: (string);
  'serviceAccount'?: (string);
  'workload'?: (string);
  'labels'?: ({[key: string]: string});
  /**
   * The proxy build, e.g. "weft/0.1.0".
   */
  'proxyVersion'?: (string);
  /**
   * host:port of the proxy's admin API (/metrics, /tap), for operator tools such as `weft stat
   * --control-plane`; empty when the proxy does not say.
   */
  'adminAddress'?: (string);
}

/**
 * Who the proxy is. Sent on the first message of a stream (required there, ignored afterwards).
 */
export interface Node__Output {
  /**
   * Unique per proxy, stable across its restarts, e.g. "reviews-v1-5d8f.shop".
   */
  'id': (string);
  'pod': (string);
  'namespace': (string);
  'serviceAccount': (string);
  'workload': (string);
  'labels': ({[key: string]: string});
  /**
   * The proxy build, e.g. "weft/0.1.0".
   */
  'proxyVersion': (string);
  /**
   * host:port of the proxy's admin API (/metrics, /tap), for operator tools such as `weft stat
   * --control-plane`; empty when the proxy does not say.
   */
  'adminAddress': (string);
}
