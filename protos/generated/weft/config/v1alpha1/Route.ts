// Original file: protos/weft/config/v1alpha1/config.proto

import type { RouteMatch as _weft_config_v1alpha1_RouteMatch, RouteMatch__Output as _weft_config_v1alpha1_RouteMatch__Output } from '../../../weft/config/v1alpha1/RouteMatch.ts';
import type { WeightedBackend as _weft_config_v1alpha1_WeightedBackend, WeightedBackend__Output as _weft_config_v1alpha1_WeightedBackend__Output } from '../../../weft/config/v1alpha1/WeightedBackend.ts';
import type { DirectResponse as _weft_config_v1alpha1_DirectResponse, DirectResponse__Output as _weft_config_v1alpha1_DirectResponse__Output } from '../../../weft/config/v1alpha1/DirectResponse.ts';
import type { RedirectPolicy as _weft_config_v1alpha1_RedirectPolicy, RedirectPolicy__Output as _weft_config_v1alpha1_RedirectPolicy__Output } from '../../../weft/config/v1alpha1/RedirectPolicy.ts';
import type { HeaderMutation as _weft_config_v1alpha1_HeaderMutation, HeaderMutation__Output as _weft_config_v1alpha1_HeaderMutation__Output } from '../../../weft/config/v1alpha1/HeaderMutation.ts';
import type { Rewrite as _weft_config_v1alpha1_Rewrite, Rewrite__Output as _weft_config_v1alpha1_Rewrite__Output } from '../../../weft/config/v1alpha1/Rewrite.ts';
import type { RetryPolicy as _weft_config_v1alpha1_RetryPolicy, RetryPolicy__Output as _weft_config_v1alpha1_RetryPolicy__Output } from '../../../weft/config/v1alpha1/RetryPolicy.ts';
import type { FaultPolicy as _weft_config_v1alpha1_FaultPolicy, FaultPolicy__Output as _weft_config_v1alpha1_FaultPolicy__Output } from '../../../weft/config/v1alpha1/FaultPolicy.ts';
import type { RateLimitPolicy as _weft_config_v1alpha1_RateLimitPolicy, RateLimitPolicy__Output as _weft_config_v1alpha1_RateLimitPolicy__Output } from '../../../weft/config/v1alpha1/RateLimitPolicy.ts';
import type { MirrorPolicy as _weft_config_v1alpha1_MirrorPolicy, MirrorPolicy__Output as _weft_config_v1alpha1_MirrorPolicy__Output } from '../../../weft/config/v1alpha1/MirrorPolicy.ts';
import type { GlobalRateLimitPolicy as _weft_config_v1alpha1_GlobalRateLimitPolicy, GlobalRateLimitPolicy__Output as _weft_config_v1alpha1_GlobalRateLimitPolicy__Output } from '../../../weft/config/v1alpha1/GlobalRateLimitPolicy.ts';

export interface Route {
  'name'?: (string);
  'match'?: (_weft_config_v1alpha1_RouteMatch | null);
  /**
   * a weighted split over clusters; or direct_response; or redirect
   */
  'backends'?: (_weft_config_v1alpha1_WeightedBackend)[];
  'directResponse'?: (_weft_config_v1alpha1_DirectResponse | null);
  'redirect'?: (_weft_config_v1alpha1_RedirectPolicy | null);
  'requestHeaders'?: (_weft_config_v1alpha1_HeaderMutation | null);
  'responseHeaders'?: (_weft_config_v1alpha1_HeaderMutation | null);
  'rewrite'?: (_weft_config_v1alpha1_Rewrite | null);
  /**
   * the whole request, retries included: 504 with flag UT when no response has started
   */
  'timeout'?: (string);
  'retry'?: (_weft_config_v1alpha1_RetryPolicy | null);
  'fault'?: (_weft_config_v1alpha1_FaultPolicy | null);
  'rateLimit'?: (_weft_config_v1alpha1_RateLimitPolicy | null);
  'mirror'?: (_weft_config_v1alpha1_MirrorPolicy | null);
  'globalRateLimit'?: (_weft_config_v1alpha1_GlobalRateLimitPolicy | null);
  '_name'?: "name";
  '_timeout'?: "timeout";
}

export interface Route__Output {
  'name'?: (string);
  'match': (_weft_config_v1alpha1_RouteMatch__Output | null);
  /**
   * a weighted split over clusters; or direct_response; or redirect
   */
  'backends': (_weft_config_v1alpha1_WeightedBackend__Output)[];
  'directResponse': (_weft_config_v1alpha1_DirectResponse__Output | null);
  'redirect': (_weft_config_v1alpha1_RedirectPolicy__Output | null);
  'requestHeaders': (_weft_config_v1alpha1_HeaderMutation__Output | null);
  'responseHeaders': (_weft_config_v1alpha1_HeaderMutation__Output | null);
  'rewrite': (_weft_config_v1alpha1_Rewrite__Output | null);
  /**
   * the whole request, retries included: 504 with flag UT when no response has started
   */
  'timeout'?: (string);
  'retry': (_weft_config_v1alpha1_RetryPolicy__Output | null);
  'fault': (_weft_config_v1alpha1_FaultPolicy__Output | null);
  'rateLimit': (_weft_config_v1alpha1_RateLimitPolicy__Output | null);
  'mirror': (_weft_config_v1alpha1_MirrorPolicy__Output | null);
  'globalRateLimit': (_weft_config_v1alpha1_GlobalRateLimitPolicy__Output | null);
  '_name'?: "name";
  '_timeout'?: "timeout";
}
