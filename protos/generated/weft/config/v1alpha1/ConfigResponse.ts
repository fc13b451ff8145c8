// Original file: protos/weft/config/v1alpha1/config.proto

import type { Resource as _weft_config_v1alpha1_Resource, Resource__Output as _weft_config_v1alpha1_Resource__Output } from '../../../weft/config/v1alpha1/Resource.ts';

export interface ConfigResponse {
  /**
   * One of the type URLs below.
   */
  'typeUrl'?: (string);
  /**
   * The version of the whole type after this response is applied (a content hash).
   */
  'versionInfo'?: (string);
  /**
   * Unique per response; the ACK or NACK must echo it.
   */
  'nonce'?: (string);
  /**
   * incremental = false: the complete set of this type (what is not listed is gone).
   * incremental = true: only resources added or changed since what the proxy ACKed.
   */
  'resources'?: (_weft_config_v1alpha1_Resource)[];
  /**
   * incremental = true only: names of the resources that are gone.
   */
  'removedResources'?: (string)[];
  'incremental'?: (boolean);
  /**
   * Responses of one snapshot change are one batch: the proxy applies them together, once the
   * response with batch_remaining = 0 arrived, so it never runs a mix of old routes and new
   * clusters. Single-type updates (most endpoint changes) have batch_remaining = 0.
   */
  'batchRemaining'?: (number);
}

export interface ConfigResponse__Output {
  /**
   * One of the type URLs below.
   */
  'typeUrl': (string);
  /**
   * The version of the whole type after this response is applied (a content hash).
   */
  'versionInfo': (string);
  /**
   * Unique per response; the ACK or NACK must echo it.
   */
  'nonce': (string);
  /**
   * incremental = false: the complete set of this type (what is not listed is gone).
   * incremental = true: only resources added or changed since what the proxy ACKed.
   */
  'resources': (_weft_config_v1alpha1_Resource__Output)[];
  /**
   * incremental = true only: names of the resources that are gone.
   */
  'removedResources': (string)[];
  'incremental': (boolean);
  /**
   * Responses of one snapshot change are one batch: the proxy applies them together, once the
   * response with batch_remaining = 0 arrived, so it never runs a mix of old routes and new
   * clusters. Single-type updates (most endpoint changes) have batch_remaining = 0.
   */
  'batchRemaining': (number);
}
