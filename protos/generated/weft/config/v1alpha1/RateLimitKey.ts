// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * one bucket per client key: a request header's value, or the client's address
 */
export interface RateLimitKey {
  'header'?: (string);
  'clientAddress'?: (boolean);
  '_header'?: "header";
  '_clientAddress'?: "clientAddress";
}

/**
 * one bucket per client key: a request header's value, or the client's address
 */
export interface RateLimitKey__Output {
  'header'?: (string);
  'clientAddress'?: (boolean);
  '_header'?: "header";
  '_clientAddress'?: "clientAddress";
}
