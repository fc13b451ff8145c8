// The fault filter: for a percentage of requests, an abort with a status instead of forwarding
// (flag FI), else for a percentage a delay before the first try (flag DI) (./fault.ts).
import { CONTINUE, STOP, type Filter, type FilterExchange, type FilterFactory, type FilterStatus } from '../filter.ts'
import { CompiledFault } from './fault.ts'

class FaultFilter implements Filter {
  readonly fault: CompiledFault
  constructor(fault: CompiledFault) {
    this.fault = fault
  }

  onRequest(x: FilterExchange): FilterStatus {
    const status = this.fault.abort()
    if (status !== 0) {
      x.counters.faultAborts++
      x.localReply(status, 'FI', 'WEFT_ERR_FAULT_ABORT', 'fault injected')
      return STOP
    }
    const ms = this.fault.delay()
    if (ms > 0) {
      x.counters.faultDelays++
      x.delay(ms, 'DI')
    }
    return CONTINUE
  }
}

export const fault = {
  name: 'fault',
  flags: { FaultInjected: 'FI', DelayInjected: 'DI' },
  counters: { faultAborts: 'fault_abort', faultDelays: 'fault_delay' },
  compile: (config) => new FaultFilter(new CompiledFault(config)),
} as const satisfies FilterFactory<'fault'>
