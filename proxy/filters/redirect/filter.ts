// The redirect filter (Gateway API RequestRedirect): a 3xx with a Location built from the request
// (./redirect.ts); the request goes nowhere. Flag DR, as any direct response.
import { STOP, type Filter, type FilterExchange, type FilterFactory, type FilterStatus } from '../filter.ts'
import { rewritePath } from '../../route/table.ts'
import { CompiledRedirect } from './redirect.ts'

class RedirectFilter implements Filter {
  readonly redirect: CompiledRedirect
  constructor(redirect: CompiledRedirect) {
    this.redirect = redirect
  }

  onRequest(x: FilterExchange): FilterStatus {
    x.redirect(this.redirect.status, this.redirect.location(x.authority, x.path, rewritePath))
    return STOP
  }
}

export const redirect = {
  name: 'redirect',
  flags: {},
  counters: {},
  compile: (config, route) => new RedirectFilter(new CompiledRedirect(config, route.matchedPrefix)),
} as const satisfies FilterFactory<'redirect'>
