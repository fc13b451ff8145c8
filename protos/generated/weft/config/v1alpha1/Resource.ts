// Original file: protos/weft/config/v1alpha1/config.proto

import type { ClusterEndpoints as _weft_config_v1alpha1_ClusterEndpoints, ClusterEndpoints__Output as _weft_config_v1alpha1_ClusterEndpoints__Output } from '../../../weft/config/v1alpha1/ClusterEndpoints.ts';
import type { Listener as _weft_config_v1alpha1_Listener, Listener__Output as _weft_config_v1alpha1_Listener__Output } from '../../../weft/config/v1alpha1/Listener.ts';
import type { RouteTable as _weft_config_v1alpha1_RouteTable, RouteTable__Output as _weft_config_v1alpha1_RouteTable__Output } from '../../../weft/config/v1alpha1/RouteTable.ts';
import type { Cluster as _weft_config_v1alpha1_Cluster, Cluster__Output as _weft_config_v1alpha1_Cluster__Output } from '../../../weft/config/v1alpha1/Cluster.ts';

/**
 * Type URLs (ConfigResponse.type_url, ConfigRequest.type_url) and the body each carries:
 * "weft.config.v1alpha1.Listener"          Resource.listener
 * "weft.config.v1alpha1.RouteTable"        Resource.route_table
 * "weft.config.v1alpha1.Cluster"           Resource.cluster (its endpoints travel apart)
 * "weft.config.v1alpha1.ClusterEndpoints"  Resource.endpoints
 */
export interface Resource {
  /**
   * Unique within its type (the listener, route table or cluster name); equal to the body's name.
   */
  'name'?: (string);
  /**
   * Content hash of this resource.
   */
  'version'?: (string);
  'endpoints'?: (_weft_config_v1alpha1_ClusterEndpoints | null);
  'listener'?: (_weft_config_v1alpha1_Listener | null);
  'routeTable'?: (_weft_config_v1alpha1_RouteTable | null);
  'cluster'?: (_weft_config_v1alpha1_Cluster | null);
  'body'?: "endpoints"|"listener"|"routeTable"|"cluster";
}

/**
 * Type URLs (ConfigResponse.type_url, ConfigRequest.type_url) and the body each carries:
 * "weft.config.v1alpha1.Listener"          Resource.listener
 * "weft.config.v1alpha1.RouteTable"        Resource.route_table
 * "weft.config.v1alpha1.Cluster"           Resource.cluster (its endpoints travel apart)
 * "weft.config.v1alpha1.ClusterEndpoints"  Resource.endpoints
 */
export interface Resource__Output {
  /**
   * Unique within its type (the listener, route table or cluster name); equal to the body's name.
   */
  'name': (string);
  /**
   * Content hash of this resource.
   */
  'version': (string);
  'endpoints'?: (_weft_config_v1alpha1_ClusterEndpoints__Output | null);
  'listener'?: (_weft_config_v1alpha1_Listener__Output | null);
  'routeTable'?: (_weft_config_v1alpha1_RouteTable__Output | null);
  'cluster'?: (_weft_config_v1alpha1_Cluster__Output | null);
  'body'?: "endpoints"|"listener"|"routeTable"|"cluster";
}
