// Structured logs (pino). Level from WEFT_LOG_LEVEL (or LOG_LEVEL), default info. The request path
// logs nothing at info; per-request logs belong to the access log.
//
// Written synchronously to stdout. pino's default destination buffers and writes asynchronously,
// then flushes at exit with sonic-boom's flushSync, which retries every failed write every 100 ms
// for ever, EPIPE included: a process whose log reader had gone (a runner or log shipper that
// died) hung in its exit handler after draining (test/proxy-exit.test.ts). In sync mode an
// EPIPE reaches pino's handler, which turns the destination into a no-op, and nothing is held for
// exit. These are a few lines per event, never per request, so the cost of a write each is nil,
// and no line is lost when the process dies.
import pino, { type Logger } from 'pino'

export type { Logger }

export function createLogger(level?: string): Logger {
  return pino(
    {
      name: 'weft',
      level: level ?? process.env.WEFT_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info',
      base: { pid: process.pid },
    },
    pino.destination({ fd: 1, sync: true }),
  )
}
