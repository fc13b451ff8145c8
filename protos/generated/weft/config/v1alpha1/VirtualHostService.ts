// Original file: protos/weft/config/v1alpha1/config.proto


export interface VirtualHostService {
  'name'?: (string);
  'namespace'?: (string);
  'port'?: (number);
  'clusterDomain'?: (string);
  '_namespace'?: "namespace";
  '_port'?: "port";
  '_clusterDomain'?: "clusterDomain";
}

export interface VirtualHostService__Output {
  'name': (string);
  'namespace'?: (string);
  'port'?: (number);
  'clusterDomain'?: (string);
  '_namespace'?: "namespace";
  '_port'?: "port";
  '_clusterDomain'?: "clusterDomain";
}
