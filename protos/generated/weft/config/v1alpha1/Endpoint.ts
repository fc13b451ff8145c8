// Original file: protos/weft/config/v1alpha1/config.proto


export interface Endpoint {
  /**
   * An IP address or a host name.
   */
  'address'?: (string);
  'port'?: (number);
  /**
   * 0 means the default, 1.
   */
  'weight'?: (number);
  /**
   * false: known but not ready (Kubernetes EndpointSlice conditions.ready); not balanced to.
   */
  'ready'?: (boolean);
  /**
   * topology.kubernetes.io/zone of the endpoint's node, for zone-aware balancing.
   */
  'zone'?: (string);
  'labels'?: ({[key: string]: string});
}

export interface Endpoint__Output {
  /**
   * An IP address or a host name.
   */
  'address': (string);
  'port': (number);
  /**
   * 0 means the default, 1.
   */
  'weight': (number);
  /**
   * false: known but not ready (Kubernetes EndpointSlice conditions.ready); not balanced to.
   */
  'ready': (boolean);
  /**
   * topology.kubernetes.io/zone of the endpoint's node, for zone-aware balancing.
   */
  'zone': (string);
  'labels': ({[key: string]: string});
}
