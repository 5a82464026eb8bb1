import {
  context,
  Context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  Span,
  trace,
  Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { describeRoles, Role } from '../role/role';

/**
 * Optional OpenTelemetry traces (README "Traces"). Off unless the standard OTEL_* environment configures a
 * trace exporter (tracingConfigured); then the NodeSDK, which reads OTEL_* itself (exporter, endpoint,
 * headers, sampler, resource attributes), exports the spans Karya makes by hand (src/tracing/spans.ts): no
 * auto-instrumentation, so no span per database query or broker frame.
 *
 * Every span site asks tracingOn() first: with tracing off the hot path allocates no span, formats no
 * traceparent and writes nothing more to the database.
 */

/** The trace exporters the NodeSDK knows (others only earn a warning from it, and no spans). */
const KNOWN_EXPORTERS = new Set(['otlp', 'console', 'zipkin']);

/** The resource attribute naming the roles of the process (server, scheduler, executor, or all). */
export const ATTR_KARYA_ROLE = 'karya.role';

const DEFAULT_SERVICE_NAME = 'karya';

/**
 * Whether `env` asks for traces, mirroring how the NodeSDK reads it so that we never start an SDK that would
 * export nothing (or skip one that would export):
 * - OTEL_SDK_DISABLED=true: off, whatever else is set;
 * - OTEL_TRACES_EXPORTER (comma list): off when its first entry is `none` (the SDK's rule), else on when it
 *   names an exporter the SDK has (otlp, console, zipkin) or mixes `none` with others (the SDK then uses otlp);
 * - OTEL_TRACES_EXPORTER unset or blank: on when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), the SDK's default exporter being otlp. Without one the SDK would
 *   send to localhost:4318 for every install that never asked for traces, hence off.
 */
export function tracingConfigured(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '' && e !== 'null');
  if (exporters.length > 0) {
    if (exporters[0] === 'none') return false;
    return exporters.some((e) => KNOWN_EXPORTERS.has(e) || e === 'none');
  }
  return [env.OTEL_EXPORTER_OTLP_ENDPOINT, env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT].some((v) => (v ?? '').trim() !== '');
}

export interface TracingOptions {
  /** The process's roles, for the `karya.role` resource attribute. */
  roles?: ReadonlySet<Role>;
  /**
   * Test seam: these processors instead of the exporters the environment configures, and tracing on
   * whatever the environment says.
   */
  spanProcessors?: SpanProcessor[];
  /**
   * The environment the decision reads (main.ts passes the process's: only entry points read it). Once
   * started, the NodeSDK reads its own settings (exporter, endpoint, sampler, …) from the process's.
   */
  env: NodeJS.ProcessEnv;
}

export interface Tracing {
  readonly enabled: boolean;
  /** Flushes pending spans and resets OpenTelemetry's global state; a no-op when tracing is off. */
  shutdown(): Promise<void>;
}

let sdk: NodeSDK | undefined;
let tracer: Tracer | undefined;

/** True while tracing runs: the one check every span site makes first. */
export function tracingOn(): boolean {
  return tracer !== undefined;
}

/** The tracer; only to be called when tracingOn(). */
export function karyaTracer(): Tracer {
  if (!tracer) throw new Error('tracing is not started');
  return tracer;
}

/** Starts tracing when the environment asks for it (or when given span processors); otherwise does nothing. */
export function startTracing(options: TracingOptions): Tracing {
  if (sdk) throw new Error('tracing is already started');
  if (!options.spanProcessors && !tracingConfigured(options.env)) {
    return { enabled: false, shutdown: async () => undefined };
  }
  // The base resource; the SDK's detectors merge OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over it, so
  // they override the default name.
  const resource = defaultResource().merge(
    resourceFromAttributes({
      [ATTR_SERVICE_NAME]: DEFAULT_SERVICE_NAME,
      ...(options.roles && { [ATTR_KARYA_ROLE]: describeRoles(options.roles) }),
    }),
  );
  const started = new NodeSDK({
    resource,
    ...(options.spanProcessors && { spanProcessors: options.spanProcessors }),
    instrumentations: [],
    // Traces only: unconfigured, the SDK would also start OTLP metric and log exporters (to localhost:4318).
    // Karya's metrics are Prometheus (/metrics) and its logs go to stdout.
    metricReaders: [],
    logRecordProcessors: [],
  });
  started.start();
  sdk = started;
  tracer = trace.getTracer('karya');
  return {
    enabled: true,
    shutdown: async () => {
      if (sdk !== started) return;
      // Span sites see tracing off at once; spans already started still end and are flushed.
      tracer = undefined;
      sdk = undefined;
      try {
        await started.shutdown();
      } finally {
        trace.disable();
        context.disable();
        propagation.disable();
      }
    },
  };
}

const w3c = new W3CTraceContextPropagator();

/** Anything longer is no traceparent we would continue (version 00 has 55 characters). */
const MAX_TRACEPARENT_LENGTH = 512;

/**
 * The context a W3C `traceparent` continues, or undefined when `value` is not a valid one (garbage from a
 * message, a request or the database must never break anything: it is ignored).
 */
export function contextOfTraceparent(value: unknown): Context | undefined {
  if (typeof value !== 'string' || value.length > MAX_TRACEPARENT_LENGTH) return undefined;
  const ctx = w3c.extract(ROOT_CONTEXT, { traceparent: value }, defaultTextMapGetter);
  const spanContext = trace.getSpanContext(ctx);
  return spanContext && isSpanContextValid(spanContext) ? ctx : undefined;
}

/** The context incoming HTTP headers continue (traceparent, tracestate); ROOT_CONTEXT when they carry none valid. */
export function contextOfHeaders(headers: Record<string, string | string[] | undefined>): Context {
  const ctx = w3c.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
  const spanContext = trace.getSpanContext(ctx);
  return spanContext && isSpanContextValid(spanContext) ? ctx : ROOT_CONTEXT;
}

/** The W3C traceparent naming `span` as the parent (55 characters), undefined for an invalid span. */
export function traceparentOf(span: Span): string | undefined {
  const carrier: Record<string, string> = {};
  w3c.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
  return carrier.traceparent;
}

/** The traceparent of the active span, when tracing is on and a span is active; otherwise null. */
export function activeTraceparent(): string | null {
  if (!tracingOn()) return null;
  const span = trace.getActiveSpan();
  return (span && traceparentOf(span)) ?? null;
}
