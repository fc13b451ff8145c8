// Original file: protos/weft/config/v1alpha1/config.proto


export interface HeaderMutation {
  /**
   * appended, keeping any existing value
   */
  'add'?: ({[key: string]: string});
  /**
   * replaces any existing value
   */
  'set'?: ({[key: string]: string});
  'remove'?: (string)[];
}

export interface HeaderMutation__Output {
  /**
   * appended, keeping any existing value
   */
  'add': ({[key: string]: string});
  /**
   * replaces any existing value
   */
  'set': ({[key: string]: string});
  'remove': (string)[];
}
