import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { ClusterEndpoints as _weft_config_v1alpha1_ClusterEndpoints, ClusterEndpoints__Output as _weft_config_v1alpha1_ClusterEndpoints__Output } from './weft/config/v1alpha1/ClusterEndpoints.ts';
import type { ConfigDiscoveryClient as _weft_config_v1alpha1_ConfigDiscoveryClient, ConfigDiscoveryDefinition as _weft_config_v1alpha1_ConfigDiscoveryDefinition } from './weft/config/v1alpha1/ConfigDiscovery.ts';
import type { ConfigRequest as _weft_config_v1alpha1_ConfigRequest, ConfigRequest__Output as _weft_config_v1alpha1_ConfigRequest__Output } from './weft/config/v1alpha1/ConfigRequest.ts';
import type { ConfigResponse as _weft_config_v1alpha1_ConfigResponse, ConfigResponse__Output as _weft_config_v1alpha1_ConfigResponse__Output } from './weft/config/v1alpha1/ConfigResponse.ts';
import type { Endpoint as _weft_config_v1alpha1_Endpoint, Endpoint__Output as _weft_config_v1alpha1_Endpoint__Output } from './weft/config/v1alpha1/Endpoint.ts';
import type { Node as _weft_config_v1alpha1_Node, Node__Output as _weft_config_v1alpha1_Node__Output } from './weft/config/v1alpha1/Node.ts';
import type { Resource as _weft_config_v1alpha1_Resource, Resource__Output as _weft_config_v1alpha1_Resource__Output } from './weft/config/v1alpha1/Resource.ts';
import type { Status as _weft_config_v1alpha1_Status, Status__Output as _weft_config_v1alpha1_Status__Output } from './weft/config/v1alpha1/Status.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  weft: {
    config: {
      v1alpha1: {
        ClusterEndpoints: MessageTypeDefinition<_weft_config_v1alpha1_ClusterEndpoints, _weft_config_v1alpha1_ClusterEndpoints__Output>
        ConfigDiscovery: SubtypeConstructor<typeof grpc.Client, _weft_config_v1alpha1_ConfigDiscoveryClient> & { service: _weft_config_v1alpha1_ConfigDiscoveryDefinition }
        ConfigRequest: MessageTypeDefinition<_weft_config_v1alpha1_ConfigRequest, _weft_config_v1alpha1_ConfigRequest__Output>
        ConfigResponse: MessageTypeDefinition<_weft_config_v1alpha1_ConfigResponse, _weft_config_v1alpha1_ConfigResponse__Output>
        Endpoint: MessageTypeDefinition<_weft_config_v1alpha1_Endpoint, _weft_config_v1alpha1_Endpoint__Output>
        Node: MessageTypeDefinition<_weft_config_v1alpha1_Node, _weft_config_v1alpha1_Node__Output>
        Resource: MessageTypeDefinition<_weft_config_v1alpha1_Resource, _weft_config_v1alpha1_Resource__Output>
        Status: MessageTypeDefinition<_weft_config_v1alpha1_Status, _weft_config_v1alpha1_Status__Output>
      }
    }
  }
}

