// Original file: protos/weft/config/v1alpha1/config.proto

import type { ClusterEndpoints as _weft_config_v1alpha1_ClusterEndpoints, ClusterEndpoints__Output as _weft_config_v1alpha1_ClusterEndpoints__Output } from '../../../weft/config/v1alpha1/ClusterEndpoints.ts';

/**
 * Type URLs (ConfigResponse.type_url, ConfigRequest.type_url):
 * "weft.config.v1alpha1.Listener"          Resource.json: a proxy Listener
 * "weft.config.v1alpha1.RouteTable"        Resource.json: a proxy RouteTable
 * "weft.config.v1alpha1.Cluster"           Resource.json: a proxy Cluster without endpoints
 * "weft.config.v1alpha1.ClusterEndpoints"  Resource.endpoints
 */
export interface Resource {
  /**
   * Unique within its type (the listener, route table or cluster name).
   */
  'name'?: (string);
  /**
   * Content hash of this resource.
   */
  'version'?: (string);
  /**
   * The object in the proxy's config model (proxy/config/schema.ts), as JSON; validated by the
   * proxy against the same JSON Schema as its static bootstrap file.
   */
  'json'?: (string);
  'endpoints'?: (_weft_config_v1alpha1_ClusterEndpoints | null);
  'body'?: "json"|"endpoints";
}

/**
 * Type URLs (ConfigResponse.type_url, ConfigRequest.type_url):
 * "weft.config.v1alpha1.Listener"          Resource.json: a proxy Listener
 * "weft.config.v1alpha1.RouteTable"        Resource.json: a proxy RouteTable
 * "weft.config.v1alpha1.Cluster"           Resource.json: a proxy Cluster without endpoints
 * "weft.config.v1alpha1.ClusterEndpoints"  Resource.endpoints
 */
export interface Resource__Output {
  /**
   * Unique within its type (the listener, route table or cluster name).
   */
  'name': (string);
  /**
   * Content hash of this resource.
   */
  'version': (string);
  /**
   * The object in the proxy's config model (proxy/config/schema.ts), as JSON; validated by the
   * proxy against the same JSON Schema as its static bootstrap file.
   */
  'json'?: (string);
  'endpoints'?: (_weft_config_v1alpha1_ClusterEndpoints__Output | null);
  'body'?: "json"|"endpoints";
}
