// Original file: protos/weft/config/v1alpha1/config.proto


export interface AuthorizationOperation {
  'ports'?: (number)[];
  'notPorts'?: (number)[];
  'methods'?: (string)[];
  'notMethods'?: (string)[];
  'paths'?: (string)[];
  'notPaths'?: (string)[];
}

export interface AuthorizationOperation__Output {
  'ports': (number)[];
  'notPorts': (number)[];
  'methods': (string)[];
  'notMethods': (string)[];
  'paths': (string)[];
  'notPaths': (string)[];
}
