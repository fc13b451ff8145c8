// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * One of exact, prefix, regex, present (true: must be present; false: absent).
 */
export interface HeaderMatch {
  'name'?: (string);
  'exact'?: (string);
  'prefix'?: (string);
  'regex'?: (string);
  'present'?: (boolean);
  '_exact'?: "exact";
  '_prefix'?: "prefix";
  '_regex'?: "regex";
  '_present'?: "present";
}

/**
 * One of exact, prefix, regex, present (true: must be present; false: absent).
 */
export interface HeaderMatch__Output {
  'name': (string);
  'exact'?: (string);
  'prefix'?: (string);
  'regex'?: (string);
  'present'?: (boolean);
  '_exact'?: "exact";
  '_prefix'?: "prefix";
  '_regex'?: "regex";
  '_present'?: "present";
}
