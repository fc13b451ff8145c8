// Original file: protos/weft/config/v1alpha1/config.proto

import type { ClusterDestination as _weft_config_v1alpha1_ClusterDestination, ClusterDestination__Output as _weft_config_v1alpha1_ClusterDestination__Output } from '../../../weft/config/v1alpha1/ClusterDestination.ts';
import type { LoadBalancer as _weft_config_v1alpha1_LoadBalancer, LoadBalancer__Output as _weft_config_v1alpha1_LoadBalancer__Output } from '../../../weft/config/v1alpha1/LoadBalancer.ts';
import type { ClusterPool as _weft_config_v1alpha1_ClusterPool, ClusterPool__Output as _weft_config_v1alpha1_ClusterPool__Output } from '../../../weft/config/v1alpha1/ClusterPool.ts';
import type { CircuitBreaker as _weft_config_v1alpha1_CircuitBreaker, CircuitBreaker__Output as _weft_config_v1alpha1_CircuitBreaker__Output } from '../../../weft/config/v1alpha1/CircuitBreaker.ts';
import type { OutlierDetection as _weft_config_v1alpha1_OutlierDetection, OutlierDetection__Output as _weft_config_v1alpha1_OutlierDetection__Output } from '../../../weft/config/v1alpha1/OutlierDetection.ts';
import type { AdaptiveConcurrency as _weft_config_v1alpha1_AdaptiveConcurrency, AdaptiveConcurrency__Output as _weft_config_v1alpha1_AdaptiveConcurrency__Output } from '../../../weft/config/v1alpha1/AdaptiveConcurrency.ts';
import type { ClusterTls as _weft_config_v1alpha1_ClusterTls, ClusterTls__Output as _weft_config_v1alpha1_ClusterTls__Output } from '../../../weft/config/v1alpha1/ClusterTls.ts';
import type { ClusterInbound as _weft_config_v1alpha1_ClusterInbound, ClusterInbound__Output as _weft_config_v1alpha1_ClusterInbound__Output } from '../../../weft/config/v1alpha1/ClusterInbound.ts';

/**
 * A cluster without its endpoints (they come as ClusterEndpoints).
 */
export interface Cluster {
  'name'?: (string);
  /**
   * who is behind the cluster, for metric labels
   */
  'destination'?: (_weft_config_v1alpha1_ClusterDestination | null);
  'lb'?: (_weft_config_v1alpha1_LoadBalancer | null);
  /**
   * "http1" (default) or "http2" (h2c, prior knowledge)
   */
  'protocol'?: (string);
  'pool'?: (_weft_config_v1alpha1_ClusterPool | null);
  'circuitBreaker'?: (_weft_config_v1alpha1_CircuitBreaker | null);
  'outlierDetection'?: (_weft_config_v1alpha1_OutlierDetection | null);
  'adaptiveConcurrency'?: (_weft_config_v1alpha1_AdaptiveConcurrency | null);
  /**
   * mutual TLS to the endpoints' sidecars
   */
  'tls'?: (_weft_config_v1alpha1_ClusterTls | null);
  /**
   * what the Service's own sidecars apply to the calls they receive for it
   */
  'inbound'?: (_weft_config_v1alpha1_ClusterInbound | null);
  '_protocol'?: "protocol";
}

/**
 * A cluster without its endpoints (they come as ClusterEndpoints).
 */
export interface Cluster__Output {
  'name': (string);
  /**
   * who is behind the cluster, for metric labels
   */
  'destination': (_weft_config_v1alpha1_ClusterDestination__Output | null);
  'lb': (_weft_config_v1alpha1_LoadBalancer__Output | null);
  /**
   * "http1" (default) or "http2" (h2c, prior knowledge)
   */
  'protocol'?: (string);
  'pool': (_weft_config_v1alpha1_ClusterPool__Output | null);
  'circuitBreaker': (_weft_config_v1alpha1_CircuitBreaker__Output | null);
  'outlierDetection': (_weft_config_v1alpha1_OutlierDetection__Output | null);
  'adaptiveConcurrency': (_weft_config_v1alpha1_AdaptiveConcurrency__Output | null);
  /**
   * mutual TLS to the endpoints' sidecars
   */
  'tls': (_weft_config_v1alpha1_ClusterTls__Output | null);
  /**
   * what the Service's own sidecars apply to the calls they receive for it
   */
  'inbound': (_weft_config_v1alpha1_ClusterInbound__Output | null);
  '_protocol'?: "protocol";
}
