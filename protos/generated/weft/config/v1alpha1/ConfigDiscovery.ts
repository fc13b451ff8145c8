// Original file: protos/weft/config/v1alpha1/config.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ConfigRequest as _weft_config_v1alpha1_ConfigRequest, ConfigRequest__Output as _weft_config_v1alpha1_ConfigRequest__Output } from '../../../weft/config/v1alpha1/ConfigRequest.ts';
import type { ConfigResponse as _weft_config_v1alpha1_ConfigResponse, ConfigResponse__Output as _weft_config_v1alpha1_ConfigResponse__Output } from '../../../weft/config/v1alpha1/ConfigResponse.ts';

export interface ConfigDiscoveryClient extends grpc.Client {
  /**
   * The proxy opens the stream and sends a hello (a ConfigRequest with `node` and no type_url);
   * the control plane answers with batches of ConfigResponses; the proxy answers every
   * response with exactly one ConfigRequest: an ACK or a NACK.
   */
  StreamConfig(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_config_v1alpha1_ConfigRequest, _weft_config_v1alpha1_ConfigResponse__Output>;
  StreamConfig(options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_config_v1alpha1_ConfigRequest, _weft_config_v1alpha1_ConfigResponse__Output>;
  /**
   * The proxy opens the stream and sends a hello (a ConfigRequest with `node` and no type_url);
   * the control plane answers with batches of ConfigResponses; the proxy answers every
   * response with exactly one ConfigRequest: an ACK or a NACK.
   */
  streamConfig(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_config_v1alpha1_ConfigRequest, _weft_config_v1alpha1_ConfigResponse__Output>;
  streamConfig(options?: grpc.CallOptions): grpc.ClientDuplexStream<_weft_config_v1alpha1_ConfigRequest, _weft_config_v1alpha1_ConfigResponse__Output>;
  
}

export interface ConfigDiscoveryHandlers extends grpc.UntypedServiceImplementation {
  /**
   * The proxy opens the stream and sends a hello (a ConfigRequest with `node` and no type_url);
   * the control plane answers with batches of ConfigResponses; the proxy answers every
   * response with exactly one ConfigRequest: an ACK or a NACK.
   */
  StreamConfig: grpc.handleBidiStreamingCall<_weft_config_v1alpha1_ConfigRequest__Output, _weft_config_v1alpha1_ConfigResponse>;
  
}

export interface ConfigDiscoveryDefinition extends grpc.ServiceDefinition {
  StreamConfig: MethodDefinition<_weft_config_v1alpha1_ConfigRequest, _weft_config_v1alpha1_ConfigResponse, _weft_config_v1alpha1_ConfigRequest__Output, _weft_config_v1alpha1_ConfigResponse__Output>
}
