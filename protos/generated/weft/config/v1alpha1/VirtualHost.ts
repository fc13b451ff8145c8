// Original file: protos/weft/config/v1alpha1/config.proto

import type { VirtualHostService as _weft_config_v1alpha1_VirtualHostService, VirtualHostService__Output as _weft_config_v1alpha1_VirtualHostService__Output } from '../../../weft/config/v1alpha1/VirtualHostService.ts';
import type { Route as _weft_config_v1alpha1_Route, Route__Output as _weft_config_v1alpha1_Route__Output } from '../../../weft/config/v1alpha1/Route.ts';

export interface VirtualHost {
  'name'?: (string);
  /**
   * A Kubernetes service: expands to name, name.ns, name.ns.svc, name.ns.svc.<cluster domain>.
   */
  'service'?: (_weft_config_v1alpha1_VirtualHostService | null);
  /**
   * Extra host names; "*" matches any host, "*.example.com" a suffix.
   */
  'domains'?: (string)[];
  /**
   * In order: the first that matches serves the request.
   */
  'routes'?: (_weft_config_v1alpha1_Route)[];
}

export interface VirtualHost__Output {
  'name': (string);
  /**
   * A Kubernetes service: expands to name, name.ns, name.ns.svc, name.ns.svc.<cluster domain>.
   */
  'service': (_weft_config_v1alpha1_VirtualHostService__Output | null);
  /**
   * Extra host names; "*" matches any host, "*.example.com" a suffix.
   */
  'domains': (string)[];
  /**
   * In order: the first that matches serves the request.
   */
  'routes': (_weft_config_v1alpha1_Route__Output)[];
}
