// Original file: protos/weft/config/v1alpha1/config.proto


export interface DirectResponse {
  'status'?: (number);
  'body'?: (string);
  'headers'?: ({[key: string]: string});
  '_body'?: "body";
}

export interface DirectResponse__Output {
  'status': (number);
  'body'?: (string);
  'headers': ({[key: string]: string});
  '_body'?: "body";
}
