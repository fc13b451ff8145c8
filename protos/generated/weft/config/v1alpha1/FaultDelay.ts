// Original file: protos/weft/config/v1alpha1/config.proto


export interface FaultDelay {
  'percent'?: (number | string);
  'fixedDelay'?: (string);
}

export interface FaultDelay__Output {
  'percent': (number);
  'fixedDelay': (string);
}
