// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * Why a proxy rejected a response (the NACK's error_detail).
 */
export interface Status {
  /**
   * A stable code, e.g. "WEFT_ERR_CONFIG_REF".
   */
  'code'?: (string);
  /**
   * One line for people, e.g. the first error.
   */
  'message'?: (string);
  /**
   * Every error, one line each: `RouteTable "rt": virtualHosts[0].routes[0]...: message`.
   */
  'details'?: (string)[];
}

/**
 * Why a proxy rejected a response (the NACK's error_detail).
 */
export interface Status__Output {
  /**
   * A stable code, e.g. "WEFT_ERR_CONFIG_REF".
   */
  'code': (string);
  /**
   * One line for people, e.g. the first error.
   */
  'message': (string);
  /**
   * Every error, one line each: `RouteTable "rt": virtualHosts[0].routes[0]...: message`.
   */
  'details': (string)[];
}
