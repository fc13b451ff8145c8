// Original file: protos/weft/config/v1alpha1/config.proto


export interface Rewrite {
  /**
   * replaces the part of the path the route's prefix matched
   */
  'pathPrefix'?: (string);
  'path'?: (string);
  'host'?: (string);
  '_pathPrefix'?: "pathPrefix";
  '_path'?: "path";
  '_host'?: "host";
}

export interface Rewrite__Output {
  /**
   * replaces the part of the path the route's prefix matched
   */
  'pathPrefix'?: (string);
  'path'?: (string);
  'host'?: (string);
  '_pathPrefix'?: "pathPrefix";
  '_path'?: "path";
  '_host'?: "host";
}
