// Original file: protos/weft/config/v1alpha1/config.proto


/**
 * per endpoint: consecutive failures eject it for base_ejection_time x its ejection count
 */
export interface OutlierDetection {
  'consecutive5xx'?: (number);
  'consecutiveGatewayErrors'?: (number);
  'consecutiveConnectFailures'?: (number);
  'baseEjectionTime'?: (string);
  'maxEjectionTime'?: (string);
  'maxEjectionPercent'?: (number | string);
  '_consecutive5xx'?: "consecutive5xx";
  '_consecutiveGatewayErrors'?: "consecutiveGatewayErrors";
  '_consecutiveConnectFailures'?: "consecutiveConnectFailures";
  '_baseEjectionTime'?: "baseEjectionTime";
  '_maxEjectionTime'?: "maxEjectionTime";
  '_maxEjectionPercent'?: "maxEjectionPercent";
}

/**
 * per endpoint: consecutive failures eject it for base_ejection_time x its ejection count
 */
export interface OutlierDetection__Output {
  'consecutive5xx'?: (number);
  'consecutiveGatewayErrors'?: (number);
  'consecutiveConnectFailures'?: (number);
  'baseEjectionTime'?: (string);
  'maxEjectionTime'?: (string);
  'maxEjectionPercent'?: (number);
  '_consecutive5xx'?: "consecutive5xx";
  '_consecutiveGatewayErrors'?: "consecutiveGatewayErrors";
  '_consecutiveConnectFailures'?: "consecutiveConnectFailures";
  '_baseEjectionTime'?: "baseEjectionTime";
  '_maxEjectionTime'?: "maxEjectionTime";
  '_maxEjectionPercent'?: "maxEjectionPercent";
}
