// Original file: protos/weft/config/v1alpha1/config.proto


export interface GlobalRateLimitEntry {
  'key'?: (string);
  /**
   * "value", "header", "remoteAddress", "route", "source"
   */
  'from'?: (string);
  'header'?: (string);
  'value'?: (string);
  '_header'?: "header";
  '_value'?: "value";
}

export interface GlobalRateLimitEntry__Output {
  'key': (string);
  /**
   * "value", "header", "remoteAddress", "route", "source"
   */
  'from': (string);
  'header'?: (string);
  'value'?: (string);
  '_header'?: "header";
  '_value'?: "value";
}
