// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * One of exact, prefix (a string prefix), segment_prefix (whole path segments), regex.
 */
export interface PathMatch {
  'exact'?: (string);
  'prefix'?: (string);
  'segmentPrefix'?: (string);
  'regex'?: (string);
  '_exact'?: "exact";
  '_prefix'?: "prefix";
  '_segmentPrefix'?: "segmentPrefix";
  '_regex'?: "regex";
}

/**
 * One of exact, prefix (a string prefix), segment_prefix (whole path segments), regex.
 */
export interface PathMatch__Output {
  'exact'?: (string);
  'prefix'?: (string);
  'segmentPrefix'?: (string);
  'regex'?: (string);
  '_exact'?: "exact";
  '_prefix'?: "prefix";
  '_segmentPrefix'?: "segmentPrefix";
  '_regex'?: "regex";
}
