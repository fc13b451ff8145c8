// Zipkin tracing: B3 / W3C propagation, sampling, spans, batched reporting. API: tracer.ts.
export { extractContext, scanContext, TRACE_HEADER_NAMES, type TraceContext } from './context.ts'
export { randomId128, randomId64 } from './ids.ts'
export { ZipkinReporter, type ReporterCounters, type ZipkinReporterOptions } from './reporter.ts'
export {
  nowMicros,
  RequestTrace,
  RETRY_ANNOTATION,
  Tracer,
  type FinishInfo,
  type SpanKind,
  type SpanReporter,
  type TracerOptions,
  type ZipkinAnnotation,
  type ZipkinEndpoint,
  type ZipkinSpan,
} from './tracer.ts'
