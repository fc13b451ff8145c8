// Original file: protos/weft/config/v1alpha1/config.proto

import type { PathMatch as _weft_config_v1alpha1_PathMatch, PathMatch__Output as _weft_config_v1alpha1_PathMatch__Output } from '../../../weft/config/v1alpha1/PathMatch.ts';
import type { HeaderMatch as _weft_config_v1alpha1_HeaderMatch, HeaderMatch__Output as _weft_config_v1alpha1_HeaderMatch__Output } from '../../../weft/config/v1alpha1/HeaderMatch.ts';
import type { QueryMatch as _weft_config_v1alpha1_QueryMatch, QueryMatch__Output as _weft_config_v1alpha1_QueryMatch__Output } from '../../../weft/config/v1alpha1/QueryMatch.ts';

export interface RouteMatch {
  'path'?: (_weft_config_v1alpha1_PathMatch | null);
  'method'?: (string);
  /**
   * every one must match
   */
  'headers'?: (_weft_config_v1alpha1_HeaderMatch)[];
  'queryParams'?: (_weft_config_v1alpha1_QueryMatch)[];
  '_method'?: "method";
}

export interface RouteMatch__Output {
  'path': (_weft_config_v1alpha1_PathMatch__Output | null);
  'method'?: (string);
  /**
   * every one must match
   */
  'headers': (_weft_config_v1alpha1_HeaderMatch__Output)[];
  'queryParams': (_weft_config_v1alpha1_QueryMatch__Output)[];
  '_method'?: "method";
}
