// Original file: protos/weft/config/v1alpha1/config.proto

import type { VirtualHost as _weft_config_v1alpha1_VirtualHost, VirtualHost__Output as _weft_config_v1alpha1_VirtualHost__Output } from '../../../weft/config/v1alpha1/VirtualHost.ts';

export interface RouteTable {
  'name'?: (string);
  'virtualHosts'?: (_weft_config_v1alpha1_VirtualHost)[];
}

export interface RouteTable__Output {
  'name': (string);
  'virtualHosts': (_weft_config_v1alpha1_VirtualHost__Output)[];
}
