// Original file: protos/weft/config/v1alpha1/config.proto


export interface ListenerTcp {
  /**
   * where opaque TCP goes
   */
  'cluster'?: (string);
  /**
   * a tunnel idle this long either way is closed; default 1h
   */
  'idleTimeout'?: (string);
  '_idleTimeout'?: "idleTimeout";
}

export interface ListenerTcp__Output {
  /**
   * where opaque TCP goes
   */
  'cluster': (string);
  /**
   * a tunnel idle this long either way is closed; default 1h
   */
  'idleTimeout'?: (string);
  '_idleTimeout'?: "idleTimeout";
}
