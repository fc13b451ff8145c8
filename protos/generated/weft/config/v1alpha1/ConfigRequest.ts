// Original file: protos/weft/config/v1alpha1/config.proto

import type { Node as _weft_config_v1alpha1_Node, Node__Output as _weft_config_v1alpha1_Node__Output } from '../../../weft/config/v1alpha1/Node.ts';
import type { Status as _weft_config_v1alpha1_Status, Status__Output as _weft_config_v1alpha1_Status__Output } from '../../../weft/config/v1alpha1/Status.ts';

export interface ConfigRequest {
  /**
   * Required on the first message of a stream.
   */
  'node'?: (_weft_config_v1alpha1_Node | null);
  /**
   * Empty on the hello; on an ACK or NACK, the type of the response answered.
   */
  'typeUrl'?: (string);
  /**
   * ACK: the version just applied. NACK: the version still applied (the last good one).
   */
  'versionInfo'?: (string);
  /**
   * The nonce of the response answered. Empty on the hello.
   */
  'responseNonce'?: (string);
  /**
   * Set: this is a NACK, and why.
   */
  'errorDetail'?: (_weft_config_v1alpha1_Status | null);
  /**
   * Reserved for subscriptions to named resources (on-demand clusters); empty means all.
   */
  'resourceNames'?: (string)[];
  /**
   * On the hello only: type_url -> version the proxy is still serving (from a previous stream,
   * possibly to a previous control-plane process). Versions are content hashes, so a type
   * whose version is unchanged is not sent again.
   */
  'knownVersions'?: ({[key: string]: string});
}

export interface ConfigRequest__Output {
  /**
   * Required on the first message of a stream.
   */
  'node': (_weft_config_v1alpha1_Node__Output | null);
  /**
   * Empty on the hello; on an ACK or NACK, the type of the response answered.
   */
  'typeUrl': (string);
  /**
   * ACK: the version just applied. NACK: the version still applied (the last good one).
   */
  'versionInfo': (string);
  /**
   * The nonce of the response answered. Empty on the hello.
   */
  'responseNonce': (string);
  /**
   * Set: this is a NACK, and why.
   */
  'errorDetail': (_weft_config_v1alpha1_Status__Output | null);
  /**
   * Reserved for subscriptions to named resources (on-demand clusters); empty means all.
   */
  'resourceNames': (string)[];
  /**
   * On the hello only: type_url -> version the proxy is still serving (from a previous stream,
   * possibly to a previous control-plane process). Versions are content hashes, so a type
   * whose version is unchanged is not sent again.
   */
  'knownVersions': ({[key: string]: string});
}
