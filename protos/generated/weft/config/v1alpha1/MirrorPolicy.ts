// Original file: protos/weft/config/v1alpha1/config.proto


export interface MirrorPolicy {
  'cluster'?: (string);
  /**
   * default 100
   */
  'percent'?: (number | string);
  '_percent'?: "percent";
}

export interface MirrorPolicy__Output {
  'cluster': (string);
  /**
   * default 100
   */
  'percent'?: (number);
  '_percent'?: "percent";
}
