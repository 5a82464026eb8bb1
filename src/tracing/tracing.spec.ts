import { trace } from '@opentelemetry/api';
import { activeTraceparent, contextOfTraceparent, startTracing, tracingConfigured, tracingOn } from './tracing';

describe('tracingConfigured: tracing is off unless the OTEL_* environment configures a trace exporter', () => {
  it.each<[string, NodeJS.ProcessEnv, boolean]>([
    ['nothing set', {}, false],
    ['blank values', { OTEL_TRACES_EXPORTER: ' ', OTEL_EXPORTER_OTLP_ENDPOINT: '' }, false],
    ['OTEL_TRACES_EXPORTER=otlp', { OTEL_TRACES_EXPORTER: 'otlp' }, true],
    ['OTEL_TRACES_EXPORTER=console', { OTEL_TRACES_EXPORTER: 'console' }, true],
    ['OTEL_TRACES_EXPORTER= Console , otlp', { OTEL_TRACES_EXPORTER: ' Console , otlp' }, true],
    ['OTEL_TRACES_EXPORTER=zipkin', { OTEL_TRACES_EXPORTER: 'zipkin' }, true],
    ['OTEL_TRACES_EXPORTER=none', { OTEL_TRACES_EXPORTER: 'none' }, false],
    ['OTEL_TRACES_EXPORTER=none with an endpoint', { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, false],
    ['OTEL_TRACES_EXPORTER=none,otlp (the SDK stops at a leading none)', { OTEL_TRACES_EXPORTER: 'none,otlp' }, false],
    ['OTEL_TRACES_EXPORTER=otlp,none (the SDK then uses otlp)', { OTEL_TRACES_EXPORTER: 'otlp,none' }, true],
    ['only an exporter the SDK does not have', { OTEL_TRACES_EXPORTER: 'jaeger' }, false],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, true],
    ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }, true],
    ['OTEL_SDK_DISABLED=true with an exporter', { OTEL_SDK_DISABLED: 'TRUE ', OTEL_TRACES_EXPORTER: 'otlp' }, false],
    ['OTEL_SDK_DISABLED=true with an endpoint', { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, false],
    ['OTEL_SDK_DISABLED=false with an exporter', { OTEL_SDK_DISABLED: 'false', OTEL_TRACES_EXPORTER: 'console' }, true],
    ['only other signals configured', { OTEL_METRICS_EXPORTER: 'otlp', OTEL_SERVICE_NAME: 'x' }, false],
  ])('%s', (_, env, expected) => {
    expect(tracingConfigured(env)).toBe(expected);
  });
});

describe('contextOfTraceparent', () => {
  it('continues a valid traceparent', () => {
    const ctx = contextOfTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(ctx && trace.getSpanContext(ctx)).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', isRemote: true });
  });

  it.each([
    undefined, null, 42, '', 'garbage', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331',
    '00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
    'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', `00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-${'x'.repeat(600)}`,
  ])('ignores %j', (value) => {
    expect(contextOfTraceparent(value)).toBeUndefined();
  });
});

describe('startTracing', () => {
  it('starts nothing when the environment configures no exporter: spans stay off', async () => {
    const tracing = startTracing({ env: { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' } });
    expect(tracing.enabled).toBe(false);
    expect(tracingOn()).toBe(false);
    expect(activeTraceparent()).toBeNull();
    await tracing.shutdown();
  });
});
