// Original file: protos/weft/config/v1alpha1/config.proto


export interface AuthorizationSource {
  'principals'?: (string)[];
  'notPrincipals'?: (string)[];
  'namespaces'?: (string)[];
  'notNamespaces'?: (string)[];
}

export interface AuthorizationSource__Output {
  'principals': (string)[];
  'notPrincipals': (string)[];
  'namespaces': (string)[];
  'notNamespaces': (string)[];
}
