// Original file: protos/weft/config/v1alpha1/config.proto


export interface ClusterTls {
  /**
   * "mutual" (default) or "disable"
   */
  'mode'?: (string);
  /**
   * SPIFFE IDs the endpoints may present (empty: any of the trust domain)
   */
  'identities'?: (string)[];
  '_mode'?: "mode";
}

export interface ClusterTls__Output {
  /**
   * "mutual" (default) or "disable"
   */
  'mode'?: (string);
  /**
   * SPIFFE IDs the endpoints may present (empty: any of the trust domain)
   */
  'identities': (string)[];
  '_mode'?: "mode";
}
