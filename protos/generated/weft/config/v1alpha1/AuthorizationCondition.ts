// Original file: protos/weft/config/v1alpha1/config.proto


export interface AuthorizationCondition {
  'header'?: (string);
  'values'?: (string)[];
  'notValues'?: (string)[];
}

export interface AuthorizationCondition__Output {
  'header': (string);
  'values': (string)[];
  'notValues': (string)[];
}
