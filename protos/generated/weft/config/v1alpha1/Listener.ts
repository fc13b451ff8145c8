// Original file: protos/weft/config/v1alpha1/config.proto

import type { ListenerTcp as _weft_config_v1alpha1_ListenerTcp, ListenerTcp__Output as _weft_config_v1alpha1_ListenerTcp__Output } from '../../../weft/config/v1alpha1/ListenerTcp.ts';
import type { ListenerFilters as _weft_config_v1alpha1_ListenerFilters, ListenerFilters__Output as _weft_config_v1alpha1_ListenerFilters__Output } from '../../../weft/config/v1alpha1/ListenerFilters.ts';
import type { AuthorizationPolicy as _weft_config_v1alpha1_AuthorizationPolicy, AuthorizationPolicy__Output as _weft_config_v1alpha1_AuthorizationPolicy__Output } from '../../../weft/config/v1alpha1/AuthorizationPolicy.ts';

export interface Listener {
  'name'?: (string);
  /**
   * "inbound" or "outbound"
   */
  'direction'?: (string);
  /**
   * default "127.0.0.1"
   */
  'address'?: (string);
  'port'?: (number);
  /**
   * The route table of the listener's HTTP traffic (a tcp listener names one all the same).
   */
  'routeTable'?: (string);
  /**
   * "detect" (default: HTTP/2 preface, an HTTP/1 request line, or opaque TCP), "http", "tcp", "http2"
   */
  'protocol'?: (string);
  /**
   * detect: how long a silent client is waited for before it is tunnelled to tcp.cluster
   */
  'detectTimeout'?: (string);
  'tcp'?: (_weft_config_v1alpha1_ListenerTcp | null);
  /**
   * request filters for every HTTP request of the listener, before routing
   */
  'filters'?: (_weft_config_v1alpha1_ListenerFilters | null);
  /**
   * "outbound" or "inbound": connections redirected here by `weft init` go on to their original
   * destination (SO_ORIGINAL_DST) when no route or tcp.cluster takes them
   */
  'interception'?: (string);
  /**
   * false: the listener binds no port of its own; an intercepting listener hands it the
   * connections redirected to its port (default true)
   */
  'bindToPort'?: (boolean);
  /**
   * inbound: "permissive" (mesh TLS and plain text), "strict" (mesh TLS only), "disable"
   */
  'mtls'?: (string);
  /**
   * inbound: authorization policies (Istio's AuthorizationPolicy semantics)
   */
  'authorization'?: (_weft_config_v1alpha1_AuthorizationPolicy)[];
  '_address'?: "address";
  '_protocol'?: "protocol";
  '_detectTimeout'?: "detectTimeout";
  '_interception'?: "interception";
  '_bindToPort'?: "bindToPort";
  '_mtls'?: "mtls";
}

export interface Listener__Output {
  'name': (string);
  /**
   * "inbound" or "outbound"
   */
  'direction': (string);
  /**
   * default "127.0.0.1"
   */
  'address'?: (string);
  'port': (number);
  /**
   * The route table of the listener's HTTP traffic (a tcp listener names one all the same).
   */
  'routeTable': (string);
  /**
   * "detect" (default: HTTP/2 preface, an HTTP/1 request line, or opaque TCP), "http", "tcp", "http2"
   */
  'protocol'?: (string);
  /**
   * detect: how long a silent client is waited for before it is tunnelled to tcp.cluster
   */
  'detectTimeout'?: (string);
  'tcp': (_weft_config_v1alpha1_ListenerTcp__Output | null);
  /**
   * request filters for every HTTP request of the listener, before routing
   */
  'filters': (_weft_config_v1alpha1_ListenerFilters__Output | null);
  /**
   * "outbound" or "inbound": connections redirected here by `weft init` go on to their original
   * destination (SO_ORIGINAL_DST) when no route or tcp.cluster takes them
   */
  'interception'?: (string);
  /**
   * false: the listener binds no port of its own; an intercepting listener hands it the
   * connections redirected to its port (default true)
   */
  'bindToPort'?: (boolean);
  /**
   * inbound: "permissive" (mesh TLS and plain text), "strict" (mesh TLS only), "disable"
   */
  'mtls'?: (string);
  /**
   * inbound: authorization policies (Istio's AuthorizationPolicy semantics)
   */
  'authorization': (_weft_config_v1alpha1_AuthorizationPolicy__Output)[];
  '_address'?: "address";
  '_protocol'?: "protocol";
  '_detectTimeout'?: "detectTimeout";
  '_interception'?: "interception";
  '_bindToPort'?: "bindToPort";
  '_mtls'?: "mtls";
}
