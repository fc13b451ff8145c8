// Original file: protos/weft/config/v1alpha1/config.proto


export interface ClusterDestination {
  'service'?: (string);
  'workload'?: (string);
  'namespace'?: (string);
  '_service'?: "service";
  '_workload'?: "workload";
  '_namespace'?: "namespace";
}

export interface ClusterDestination__Output {
  'service'?: (string);
  'workload'?: (string);
  'namespace'?: (string);
  '_service'?: "service";
  '_workload'?: "workload";
  '_namespace'?: "namespace";
}
