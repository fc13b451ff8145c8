import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AdaptiveConcurrency as _weft_config_v1alpha1_AdaptiveConcurrency, AdaptiveConcurrency__Output as _weft_config_v1alpha1_AdaptiveConcurrency__Output } from './weft/config/v1alpha1/AdaptiveConcurrency.ts';
import type { AuthorizationCondition as _weft_config_v1alpha1_AuthorizationCondition, AuthorizationCondition__Output as _weft_config_v1alpha1_AuthorizationCondition__Output } from './weft/config/v1alpha1/AuthorizationCondition.ts';
import type { AuthorizationOperation as _weft_config_v1alpha1_AuthorizationOperation, AuthorizationOperation__Output as _weft_config_v1alpha1_AuthorizationOperation__Output } from './weft/config/v1alpha1/AuthorizationOperation.ts';
import type { AuthorizationPolicy as _weft_config_v1alpha1_AuthorizationPolicy, AuthorizationPolicy__Output as _weft_config_v1alpha1_AuthorizationPolicy__Output } from './weft/config/v1alpha1/AuthorizationPolicy.ts';
import type { AuthorizationRule as _weft_config_v1alpha1_AuthorizationRule, AuthorizationRule__Output as _weft_config_v1alpha1_AuthorizationRule__Output } from './weft/config/v1alpha1/AuthorizationRule.ts';
import type { AuthorizationSource as _weft_config_v1alpha1_AuthorizationSource, AuthorizationSource__Output as _weft_config_v1alpha1_AuthorizationSource__Output } from './weft/config/v1alpha1/AuthorizationSource.ts';
import type { CircuitBreaker as _weft_config_v1alpha1_CircuitBreaker, CircuitBreaker__Output as _weft_config_v1alpha1_CircuitBreaker__Output } from './weft/config/v1alpha1/CircuitBreaker.ts';
import type { Cluster as _weft_config_v1alpha1_Cluster, Cluster__Output as _weft_config_v1alpha1_Cluster__Output } from './weft/config/v1alpha1/Cluster.ts';
import type { ClusterDestination as _weft_config_v1alpha1_ClusterDestination, ClusterDestination__Output as _weft_config_v1alpha1_ClusterDestination__Output } from './weft/config/v1alpha1/ClusterDestination.ts';
import type { ClusterEndpoints as _weft_config_v1alpha1_ClusterEndpoints, ClusterEndpoints__Output as _weft_config_v1alpha1_ClusterEndpoints__Output } from './weft/config/v1alpha1/ClusterEndpoints.ts';
import type { ClusterInbound as _weft_config_v1alpha1_ClusterInbound, ClusterInbound__Output as _weft_config_v1alpha1_ClusterInbound__Output } from './weft/config/v1alpha1/ClusterInbound.ts';
import type { ClusterInboundPod as _weft_config_v1alpha1_ClusterInboundPod, ClusterInboundPod__Output as _weft_config_v1alpha1_ClusterInboundPod__Output } from './weft/config/v1alpha1/ClusterInboundPod.ts';
import type { ClusterInboundWorkload as _weft_config_v1alpha1_ClusterInboundWorkload, ClusterInboundWorkload__Output as _weft_config_v1alpha1_ClusterInboundWorkload__Output } from './weft/config/v1alpha1/ClusterInboundWorkload.ts';
import type { ClusterPool as _weft_config_v1alpha1_ClusterPool, ClusterPool__Output as _weft_config_v1alpha1_ClusterPool__Output } from './weft/config/v1alpha1/ClusterPool.ts';
import type { ClusterTls as _weft_config_v1alpha1_ClusterTls, ClusterTls__Output as _weft_config_v1alpha1_ClusterTls__Output } from './weft/config/v1alpha1/ClusterTls.ts';
import type { ConfigDiscoveryClient as _weft_config_v1alpha1_ConfigDiscoveryClient, ConfigDiscoveryDefinition as _weft_config_v1alpha1_ConfigDiscoveryDefinition } from './weft/config/v1alpha1/ConfigDiscovery.ts';
import type { ConfigRequest as _weft_config_v1alpha1_ConfigRequest, ConfigRequest__Output as _weft_config_v1alpha1_ConfigRequest__Output } from './weft/config/v1alpha1/ConfigRequest.ts';
import type { ConfigResponse as _weft_config_v1alpha1_ConfigResponse, ConfigResponse__Output as _weft_config_v1alpha1_ConfigResponse__Output } from './weft/config/v1alpha1/ConfigResponse.ts';
import type { DirectResponse as _weft_config_v1alpha1_DirectResponse, DirectResponse__Output as _weft_config_v1alpha1_DirectResponse__Output } from './weft/config/v1alpha1/DirectResponse.ts';
import type { Endpoint as _weft_config_v1alpha1_Endpoint, Endpoint__Output as _weft_config_v1alpha1_Endpoint__Output } from './weft/config/v1alpha1/Endpoint.ts';
import type { FaultAbort as _weft_config_v1alpha1_FaultAbort, FaultAbort__Output as _weft_config_v1alpha1_FaultAbort__Output } from './weft/config/v1alpha1/FaultAbort.ts';
import type { FaultDelay as _weft_config_v1alpha1_FaultDelay, FaultDelay__Output as _weft_config_v1alpha1_FaultDelay__Output } from './weft/config/v1alpha1/FaultDelay.ts';
import type { FaultPolicy as _weft_config_v1alpha1_FaultPolicy, FaultPolicy__Output as _weft_config_v1alpha1_FaultPolicy__Output } from './weft/config/v1alpha1/FaultPolicy.ts';
import type { GlobalRateLimitDescriptor as _weft_config_v1alpha1_GlobalRateLimitDescriptor, GlobalRateLimitDescriptor__Output as _weft_config_v1alpha1_GlobalRateLimitDescriptor__Output } from './weft/config/v1alpha1/GlobalRateLimitDescriptor.ts';
import type { GlobalRateLimitEntry as _weft_config_v1alpha1_GlobalRateLimitEntry, GlobalRateLimitEntry__Output as _weft_config_v1alpha1_GlobalRateLimitEntry__Output } from './weft/config/v1alpha1/GlobalRateLimitEntry.ts';
import type { GlobalRateLimitPolicy as _weft_config_v1alpha1_GlobalRateLimitPolicy, GlobalRateLimitPolicy__Output as _weft_config_v1alpha1_GlobalRateLimitPolicy__Output } from './weft/config/v1alpha1/GlobalRateLimitPolicy.ts';
import type { HeaderMatch as _weft_config_v1alpha1_HeaderMatch, HeaderMatch__Output as _weft_config_v1alpha1_HeaderMatch__Output } from './weft/config/v1alpha1/HeaderMatch.ts';
import type { HeaderMutation as _weft_config_v1alpha1_HeaderMutation, HeaderMutation__Output as _weft_config_v1alpha1_HeaderMutation__Output } from './weft/config/v1alpha1/HeaderMutation.ts';
import type { Listener as _weft_config_v1alpha1_Listener, Listener__Output as _weft_config_v1alpha1_Listener__Output } from './weft/config/v1alpha1/Listener.ts';
import type { ListenerFilters as _weft_config_v1alpha1_ListenerFilters, ListenerFilters__Output as _weft_config_v1alpha1_ListenerFilters__Output } from './weft/config/v1alpha1/ListenerFilters.ts';
import type { ListenerTcp as _weft_config_v1alpha1_ListenerTcp, ListenerTcp__Output as _weft_config_v1alpha1_ListenerTcp__Output } from './weft/config/v1alpha1/ListenerTcp.ts';
import type { LoadBalancer as _weft_config_v1alpha1_LoadBalancer, LoadBalancer__Output as _weft_config_v1alpha1_LoadBalancer__Output } from './weft/config/v1alpha1/LoadBalancer.ts';
import type { MirrorPolicy as _weft_config_v1alpha1_MirrorPolicy, MirrorPolicy__Output as _weft_config_v1alpha1_MirrorPolicy__Output } from './weft/config/v1alpha1/MirrorPolicy.ts';
import type { Node as _weft_config_v1alpha1_Node, Node__Output as _weft_config_v1alpha1_Node__Output } from './weft/config/v1alpha1/Node.ts';
import type { OutlierDetection as _weft_config_v1alpha1_OutlierDetection, OutlierDetection__Output as _weft_config_v1alpha1_OutlierDetection__Output } from './weft/config/v1alpha1/OutlierDetection.ts';
import type { PathMatch as _weft_config_v1alpha1_PathMatch, PathMatch__Output as _weft_config_v1alpha1_PathMatch__Output } from './weft/config/v1alpha1/PathMatch.ts';
import type { QueryMatch as _weft_config_v1alpha1_QueryMatch, QueryMatch__Output as _weft_config_v1alpha1_QueryMatch__Output } from './weft/config/v1alpha1/QueryMatch.ts';
import type { RateLimitKey as _weft_config_v1alpha1_RateLimitKey, RateLimitKey__Output as _weft_config_v1alpha1_RateLimitKey__Output } from './weft/config/v1alpha1/RateLimitKey.ts';
import type { RateLimitPolicy as _weft_config_v1alpha1_RateLimitPolicy, RateLimitPolicy__Output as _weft_config_v1alpha1_RateLimitPolicy__Output } from './weft/config/v1alpha1/RateLimitPolicy.ts';
import type { RedirectPolicy as _weft_config_v1alpha1_RedirectPolicy, RedirectPolicy__Output as _weft_config_v1alpha1_RedirectPolicy__Output } from './weft/config/v1alpha1/RedirectPolicy.ts';
import type { Resource as _weft_config_v1alpha1_Resource, Resource__Output as _weft_config_v1alpha1_Resource__Output } from './weft/config/v1alpha1/Resource.ts';
import type { RetryBackoff as _weft_config_v1alpha1_RetryBackoff, RetryBackoff__Output as _weft_config_v1alpha1_RetryBackoff__Output } from './weft/config/v1alpha1/RetryBackoff.ts';
import type { RetryBudget as _weft_config_v1alpha1_RetryBudget, RetryBudget__Output as _weft_config_v1alpha1_RetryBudget__Output } from './weft/config/v1alpha1/RetryBudget.ts';
import type { RetryPolicy as _weft_config_v1alpha1_RetryPolicy, RetryPolicy__Output as _weft_config_v1alpha1_RetryPolicy__Output } from './weft/config/v1alpha1/RetryPolicy.ts';
import type { Rewrite as _weft_config_v1alpha1_Rewrite, Rewrite__Output as _weft_config_v1alpha1_Rewrite__Output } from './weft/config/v1alpha1/Rewrite.ts';
import type { Route as _weft_config_v1alpha1_Route, Route__Output as _weft_config_v1alpha1_Route__Output } from './weft/config/v1alpha1/Route.ts';
import type { RouteMatch as _weft_config_v1alpha1_RouteMatch, RouteMatch__Output as _weft_config_v1alpha1_RouteMatch__Output } from './weft/config/v1alpha1/RouteMatch.ts';
import type { RouteTable as _weft_config_v1alpha1_RouteTable, RouteTable__Output as _weft_config_v1alpha1_RouteTable__Output } from './weft/config/v1alpha1/RouteTable.ts';
import type { Status as _weft_config_v1alpha1_Status, Status__Output as _weft_config_v1alpha1_Status__Output } from './weft/config/v1alpha1/Status.ts';
import type { VirtualHost as _weft_config_v1alpha1_VirtualHost, VirtualHost__Output as _weft_config_v1alpha1_VirtualHost__Output } from './weft/config/v1alpha1/VirtualHost.ts';
import type { VirtualHostService as _weft_config_v1alpha1_VirtualHostService, VirtualHostService__Output as _weft_config_v1alpha1_VirtualHostService__Output } from './weft/config/v1alpha1/VirtualHostService.ts';
import type { WeightedBackend as _weft_config_v1alpha1_WeightedBackend, WeightedBackend__Output as _weft_config_v1alpha1_WeightedBackend__Output } from './weft/config/v1alpha1/WeightedBackend.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  weft: {
    config: {
      v1alpha1: {
        AdaptiveConcurrency: MessageTypeDefinition<_weft_config_v1alpha1_AdaptiveConcurrency, _weft_config_v1alpha1_AdaptiveConcurrency__Output>
        AuthorizationCondition: MessageTypeDefinition<_weft_config_v1alpha1_AuthorizationCondition, _weft_config_v1alpha1_AuthorizationCondition__Output>
        AuthorizationOperation: MessageTypeDefinition<_weft_config_v1alpha1_AuthorizationOperation, _weft_config_v1alpha1_AuthorizationOperation__Output>
        AuthorizationPolicy: MessageTypeDefinition<_weft_config_v1alpha1_AuthorizationPolicy, _weft_config_v1alpha1_AuthorizationPolicy__Output>
        AuthorizationRule: MessageTypeDefinition<_weft_config_v1alpha1_AuthorizationRule, _weft_config_v1alpha1_AuthorizationRule__Output>
        AuthorizationSource: MessageTypeDefinition<_weft_config_v1alpha1_AuthorizationSource, _weft_config_v1alpha1_AuthorizationSource__Output>
        CircuitBreaker: MessageTypeDefinition<_weft_config_v1alpha1_CircuitBreaker, _weft_config_v1alpha1_CircuitBreaker__Output>
        Cluster: MessageTypeDefinition<_weft_config_v1alpha1_Cluster, _weft_config_v1alpha1_Cluster__Output>
        ClusterDestination: MessageTypeDefinition<_weft_config_v1alpha1_ClusterDestination, _weft_config_v1alpha1_ClusterDestination__Output>
        ClusterEndpoints: MessageTypeDefinition<_weft_config_v1alpha1_ClusterEndpoints, _weft_config_v1alpha1_ClusterEndpoints__Output>
        ClusterInbound: MessageTypeDefinition<_weft_config_v1alpha1_ClusterInbound, _weft_config_v1alpha1_ClusterInbound__Output>
        ClusterInboundPod: MessageTypeDefinition<_weft_config_v1alpha1_ClusterInboundPod, _weft_config_v1alpha1_ClusterInboundPod__Output>
        ClusterInboundWorkload: MessageTypeDefinition<_weft_config_v1alpha1_ClusterInboundWorkload, _weft_config_v1alpha1_ClusterInboundWorkload__Output>
        ClusterPool: MessageTypeDefinition<_weft_config_v1alpha1_ClusterPool, _weft_config_v1alpha1_ClusterPool__Output>
        ClusterTls: MessageTypeDefinition<_weft_config_v1alpha1_ClusterTls, _weft_config_v1alpha1_ClusterTls__Output>
        ConfigDiscovery: SubtypeConstructor<typeof grpc.Client, _weft_config_v1alpha1_ConfigDiscoveryClient> & { service: _weft_config_v1alpha1_ConfigDiscoveryDefinition }
        ConfigRequest: MessageTypeDefinition<_weft_config_v1alpha1_ConfigRequest, _weft_config_v1alpha1_ConfigRequest__Output>
        ConfigResponse: MessageTypeDefinition<_weft_config_v1alpha1_ConfigResponse, _weft_config_v1alpha1_ConfigResponse__Output>
        DirectResponse: MessageTypeDefinition<_weft_config_v1alpha1_DirectResponse, _weft_config_v1alpha1_DirectResponse__Output>
        Endpoint: MessageTypeDefinition<_weft_config_v1alpha1_Endpoint, _weft_config_v1alpha1_Endpoint__Output>
        FaultAbort: MessageTypeDefinition<_weft_config_v1alpha1_FaultAbort, _weft_config_v1alpha1_FaultAbort__Output>
        FaultDelay: MessageTypeDefinition<_weft_config_v1alpha1_FaultDelay, _weft_config_v1alpha1_FaultDelay__Output>
        FaultPolicy: MessageTypeDefinition<_weft_config_v1alpha1_FaultPolicy, _weft_config_v1alpha1_FaultPolicy__Output>
        GlobalRateLimitDescriptor: MessageTypeDefinition<_weft_config_v1alpha1_GlobalRateLimitDescriptor, _weft_config_v1alpha1_GlobalRateLimitDescriptor__Output>
        GlobalRateLimitEntry: MessageTypeDefinition<_weft_config_v1alpha1_GlobalRateLimitEntry, _weft_config_v1alpha1_GlobalRateLimitEntry__Output>
        GlobalRateLimitPolicy: MessageTypeDefinition<_weft_config_v1alpha1_GlobalRateLimitPolicy, _weft_config_v1alpha1_GlobalRateLimitPolicy__Output>
        HeaderMatch: MessageTypeDefinition<_weft_config_v1alpha1_HeaderMatch, _weft_config_v1alpha1_HeaderMatch__Output>
        HeaderMutation: MessageTypeDefinition<_weft_config_v1alpha1_HeaderMutation, _weft_config_v1alpha1_HeaderMutation__Output>
        Listener: MessageTypeDefinition<_weft_config_v1alpha1_Listener, _weft_config_v1alpha1_Listener__Output>
        ListenerFilters: MessageTypeDefinition<_weft_config_v1alpha1_ListenerFilters, _weft_config_v1alpha1_ListenerFilters__Output>
        ListenerTcp: MessageTypeDefinition<_weft_config_v1alpha1_ListenerTcp, _weft_config_v1alpha1_ListenerTcp__Output>
        LoadBalancer: MessageTypeDefinition<_weft_config_v1alpha1_LoadBalancer, _weft_config_v1alpha1_LoadBalancer__Output>
        MirrorPolicy: MessageTypeDefinition<_weft_config_v1alpha1_MirrorPolicy, _weft_config_v1alpha1_MirrorPolicy__Output>
        Node: MessageTypeDefinition<_weft_config_v1alpha1_Node, _weft_config_v1alpha1_Node__Output>
        OutlierDetection: MessageTypeDefinition<_weft_config_v1alpha1_OutlierDetection, _weft_config_v1alpha1_OutlierDetection__Output>
        PathMatch: MessageTypeDefinition<_weft_config_v1alpha1_PathMatch, _weft_config_v1alpha1_PathMatch__Output>
        QueryMatch: MessageTypeDefinition<_weft_config_v1alpha1_QueryMatch, _weft_config_v1alpha1_QueryMatch__Output>
        RateLimitKey: MessageTypeDefinition<_weft_config_v1alpha1_RateLimitKey, _weft_config_v1alpha1_RateLimitKey__Output>
        RateLimitPolicy: MessageTypeDefinition<_weft_config_v1alpha1_RateLimitPolicy, _weft_config_v1alpha1_RateLimitPolicy__Output>
        RedirectPolicy: MessageTypeDefinition<_weft_config_v1alpha1_RedirectPolicy, _weft_config_v1alpha1_RedirectPolicy__Output>
        Resource: MessageTypeDefinition<_weft_config_v1alpha1_Resource, _weft_config_v1alpha1_Resource__Output>
        RetryBackoff: MessageTypeDefinition<_weft_config_v1alpha1_RetryBackoff, _weft_config_v1alpha1_RetryBackoff__Output>
        RetryBudget: MessageTypeDefinition<_weft_config_v1alpha1_RetryBudget, _weft_config_v1alpha1_RetryBudget__Output>
        RetryPolicy: MessageTypeDefinition<_weft_config_v1alpha1_RetryPolicy, _weft_config_v1alpha1_RetryPolicy__Output>
        Rewrite: MessageTypeDefinition<_weft_config_v1alpha1_Rewrite, _weft_config_v1alpha1_Rewrite__Output>
        Route: MessageTypeDefinition<_weft_config_v1alpha1_Route, _weft_config_v1alpha1_Route__Output>
        RouteMatch: MessageTypeDefinition<_weft_config_v1alpha1_RouteMatch, _weft_config_v1alpha1_RouteMatch__Output>
        RouteTable: MessageTypeDefinition<_weft_config_v1alpha1_RouteTable, _weft_config_v1alpha1_RouteTable__Output>
        Status: MessageTypeDefinition<_weft_config_v1alpha1_Status, _weft_config_v1alpha1_Status__Output>
        VirtualHost: MessageTypeDefinition<_weft_config_v1alpha1_VirtualHost, _weft_config_v1alpha1_VirtualHost__Output>
        VirtualHostService: MessageTypeDefinition<_weft_config_v1alpha1_VirtualHostService, _weft_config_v1alpha1_VirtualHostService__Output>
        WeightedBackend: MessageTypeDefinition<_weft_config_v1alpha1_WeightedBackend, _weft_config_v1alpha1_WeightedBackend__Output>
      }
    }
  }
}

