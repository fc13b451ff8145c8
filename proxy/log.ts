// Structured logs (pino). Level from WEFT_LOG_LEVEL (or LOG_LEVEL), default info. The request path
// logs nothing at info; per-request logs belong to the access log.
import pino, { type Logger } from 'pino'

export type { Logger }

export function createLogger(level?: string): Logger {
  return pino({
    name: 'weft',
    level: level ?? process.env.WEFT_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
  })
}
