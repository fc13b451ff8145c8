// Original file: protos/weft/config/v1alpha1/config.proto


export interface FaultAbort {
  'percent'?: (number | string);
  'status'?: (number);
}

export interface FaultAbort__Output {
  'percent': (number);
  'status': (number);
}
