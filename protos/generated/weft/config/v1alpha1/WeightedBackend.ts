// Original file: protos/weft/config/v1alpha1/config.proto


export interface WeightedBackend {
  'cluster'?: (string);
  /**
   * default 1; 0 takes the backend out of the split
   */
  'weight'?: (number);
  '_weight'?: "weight";
}

export interface WeightedBackend__Output {
  'cluster': (string);
  /**
   * default 1; 0 takes the backend out of the split
   */
  'weight'?: (number);
  '_weight'?: "weight";
}
