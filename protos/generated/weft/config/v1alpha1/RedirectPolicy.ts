// Original file: protos/weft/config/v1alpha1/config.proto


export interface RedirectPolicy {
  /**
   * "http" or "https"
   */
  'scheme'?: (string);
  'host'?: (string);
  'port'?: (number);
  'path'?: (string);
  'pathPrefix'?: (string);
  /**
   * 301, 302 (default), 303, 307 or 308
   */
  'status'?: (number);
  '_scheme'?: "scheme";
  '_host'?: "host";
  '_port'?: "port";
  '_path'?: "path";
  '_pathPrefix'?: "pathPrefix";
  '_status'?: "status";
}

export interface RedirectPolicy__Output {
  /**
   * "http" or "https"
   */
  'scheme'?: (string);
  'host'?: (string);
  'port'?: (number);
  'path'?: (string);
  'pathPrefix'?: (string);
  /**
   * 301, 302 (default), 303, 307 or 308
   */
  'status'?: (number);
  '_scheme'?: "scheme";
  '_host'?: "host";
  '_port'?: "port";
  '_path'?: "path";
  '_pathPrefix'?: "pathPrefix";
  '_status'?: "status";
}
