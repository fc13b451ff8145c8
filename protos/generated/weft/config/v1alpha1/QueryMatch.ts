// Original file: protos/weft/config/v1alpha1/config.proto


export interface QueryMatch {
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

export interface QueryMatch__Output {
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
