import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { register as globalRegistry } from 'prom-client';
import request from 'supertest';
import { Role } from '../role/role';
import { DEAD_LETTER_KINDS, KaryaMetrics, LATENESS_BUCKETS, METRIC, NoopKaryaMetrics } from './karya-metrics';
import { metricsEnabledFor, MetricsModule, MetricsModuleOptions, MetricsSwitches } from './metrics.module';
import { PrometheusKaryaMetrics } from './prometheus-karya-metrics';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The exposition's sample lines; comments (HELP/TYPE) are checked separately. */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** The one sample of `name` carrying (at least) `labels`; absent or ambiguous fails the test. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const found = samples(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0].value;
}

const SUMMARIES = [METRIC.fetchLatency, METRIC.processLatency, METRIC.polledLatency, METRIC.executionLatency];
const COUNTERS = [
  METRIC.executionSuccess,
  METRIC.executionFailed,
  METRIC.tasksClaimed,
  METRIC.tasksDispatched,
  METRIC.leaseExpiries,
  METRIC.retriesScheduled,
  METRIC.deadLetters,
];

async function boot(options: MetricsModuleOptions): Promise<{ app: INestApplication; metrics: KaryaMetrics }> {
  const moduleRef = await Test.createTestingModule({ imports: [MetricsModule.forRoot(options)] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return { app, metrics: app.get(KaryaMetrics) };
}

describe('MetricsModule enabled', () => {
  let app: INestApplication;
  let metrics: KaryaMetrics;

  beforeEach(async () => {
    ({ app, metrics } = await boot({ enabled: true }));
  });

  afterEach(async () => {
    await app.close();
  });

  async function scrape(): Promise<string> {
    const res = await request(app.getHttpServer()).get('/metrics').expect(200);
    return res.text;
  }

  it('serves the text exposition with the registry content type', async () => {
    const res = await request(app.getHttpServer()).get('/metrics').expect(200);
    expect(metrics).toBeInstanceOf(PrometheusKaryaMetrics);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/i);
    expect(metrics.contentType).toBe((metrics as PrometheusKaryaMetrics).registry.contentType);
  });

  it('declares every Karya metric with HELP and TYPE lines', async () => {
    const text = await scrape();
    const types: Record<string, string> = { [METRIC.lateness]: 'histogram' };
    SUMMARIES.forEach((n) => (types[n] = 'summary'));
    COUNTERS.forEach((n) => (types[n] = 'counter'));
    expect(Object.keys(types).sort()).toEqual(Object.values(METRIC).sort());
    for (const [name, type] of Object.entries(types)) {
      expect(text).toMatch(new RegExp(`^# HELP ${name} \\S.*$`, 'm'));
      expect(text).toContain(`\n# TYPE ${name} ${type}\n`);
    }
  });

  it('says in the help text that the original-named summaries observe seconds', async () => {
    const text = await scrape();
    for (const name of SUMMARIES) expect(text).toMatch(new RegExp(`^# HELP ${name} Seconds `, 'm'));
  });

  it('includes the default Node.js process metrics', async () => {
    const text = await scrape();
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');
    expect(text).toContain('# TYPE nodejs_eventloop_lag_seconds gauge');
  });

  it('starts every counter at 0, with a series per dead-letter kind', async () => {
    const text = await scrape();
    for (const name of COUNTERS.filter((n) => n !== METRIC.deadLetters)) expect(value(text, name)).toBe(0);
    for (const kind of DEAD_LETTER_KINDS) expect(value(text, METRIC.deadLetters, { reason_kind: kind })).toBe(0);
  });

  it('counts exactly what it is told', async () => {
    metrics.dispatched(3);
    metrics.dispatched();
    metrics.leaseExpired(2);
    metrics.leaseExpired();
    metrics.retryScheduled();
    metrics.retryScheduled();
    metrics.deadLettered('poison');
    metrics.deadLettered('exhausted');
    metrics.deadLettered('exhausted');
    metrics.observeClaimBatch(0.05, 7);
    metrics.observeClaimBatch(0.15, 5);
    metrics.observeExecution(0.2, true);
    metrics.observeExecution(0.3, false);
    metrics.observeExecution(0.1, true);

    const text = await scrape();
    expect(value(text, METRIC.tasksDispatched)).toBe(4);
    expect(value(text, METRIC.leaseExpiries)).toBe(3);
    expect(value(text, METRIC.retriesScheduled)).toBe(2);
    expect(value(text, METRIC.deadLetters, { reason_kind: 'poison' })).toBe(1);
    expect(value(text, METRIC.deadLetters, { reason_kind: 'exhausted' })).toBe(2);
    expect(value(text, METRIC.deadLetters, { reason_kind: 'no_connector' })).toBe(0);
    expect(value(text, METRIC.tasksClaimed)).toBe(12);
    expect(value(text, `${METRIC.processLatency}_count`)).toBe(2);
    expect(value(text, `${METRIC.processLatency}_sum`)).toBeCloseTo(0.2, 10);
    expect(value(text, METRIC.executionSuccess)).toBe(2);
    expect(value(text, METRIC.executionFailed)).toBe(1);
    expect(value(text, `${METRIC.executionLatency}_count`)).toBe(3);
    expect(value(text, `${METRIC.executionLatency}_sum`)).toBeCloseTo(0.6, 10);
  });

  it('buckets lateness at the fine-grained boundaries, cumulatively', async () => {
    const initial = await scrape();
    const les = samples(initial)
      .filter((s) => s.name === `${METRIC.lateness}_bucket`)
      .map((s) => s.labels.le);
    expect(les).toEqual([...LATENESS_BUCKETS.map(String), '+Inf']);

    metrics.observeLateness(0.003);
    metrics.observeLateness(0.003);
    metrics.observeLateness(2);
    metrics.observeLateness(120);
    const text = await scrape();
    const bucket = (le: string): number => value(text, `${METRIC.lateness}_bucket`, { le });
    expect(bucket('0.001')).toBe(0);
    expect(bucket('0.0025')).toBe(0);
    expect(bucket('0.005')).toBe(2);
    expect(bucket('1')).toBe(2);
    expect(bucket('2.5')).toBe(3);
    expect(bucket('60')).toBe(3);
    expect(bucket('+Inf')).toBe(4);
    expect(value(text, `${METRIC.lateness}_count`)).toBe(4);
    expect(value(text, `${METRIC.lateness}_sum`)).toBeCloseTo(122.006, 10);
  });

  it('reports the original quantiles over recent observations', async () => {
    for (let i = 1; i <= 100; i++) {
      metrics.observeFetchLatency(i / 100);
      metrics.observePolledLatency(i);
    }
    const text = await scrape();
    for (const q of ['0.5', '0.75', '0.9', '0.95', '0.99']) {
      expect(value(text, METRIC.fetchLatency, { quantile: q })).toBeCloseTo(Number(q), 1);
      expect(value(text, METRIC.polledLatency, { quantile: q })).toBeCloseTo(Number(q) * 100, -1);
    }
    expect(value(text, `${METRIC.fetchLatency}_count`)).toBe(100);
    expect(value(text, `${METRIC.fetchLatency}_sum`)).toBeCloseTo(50.5, 10);
  });

  it('never throws on unusable input: drops NaN/Infinity and non-positive counts, clamps negative durations to 0', async () => {
    expect(() => {
      metrics.observeFetchLatency(Number.NaN);
      metrics.observeLateness(Number.POSITIVE_INFINITY);
      metrics.observeExecution(Number.NaN, true);
      metrics.dispatched(-1);
      metrics.dispatched(Number.NaN);
      metrics.leaseExpired(0);
      metrics.observeClaimBatch(0.01, -3);
      metrics.observeLateness(-0.5);
    }).not.toThrow();
    const text = await scrape();
    expect(value(text, `${METRIC.fetchLatency}_count`)).toBe(0);
    expect(value(text, METRIC.tasksDispatched)).toBe(0);
    expect(value(text, METRIC.leaseExpiries)).toBe(0);
    expect(value(text, METRIC.tasksClaimed)).toBe(0);
    expect(value(text, `${METRIC.processLatency}_count`)).toBe(1);
    // The execution still counted: its outcome is known even if its timing was not.
    expect(value(text, METRIC.executionSuccess)).toBe(1);
    expect(value(text, `${METRIC.executionLatency}_count`)).toBe(0);
    // The early start counts as on time.
    expect(value(text, `${METRIC.lateness}_count`)).toBe(1);
    expect(value(text, `${METRIC.lateness}_sum`)).toBe(0);
    expect(value(text, `${METRIC.lateness}_bucket`, { le: '0.001' })).toBe(1);
  });

  it('text() is what /metrics serves', async () => {
    metrics.dispatched(5);
    const direct = await metrics.text();
    expect(value(direct, METRIC.tasksDispatched)).toBe(5);
    expect(value(await scrape(), METRIC.tasksDispatched)).toBe(5);
  });

  it('registers nothing in the global prom-client registry', async () => {
    metrics.dispatched();
    expect(globalRegistry.getSingleMetric(METRIC.tasksDispatched)).toBeUndefined();
    expect(await globalRegistry.metrics()).not.toContain('karya_');
  });
});

describe('MetricsModule registries', () => {
  it('keeps two applications apart', async () => {
    const a = await boot({ enabled: true });
    const b = await boot({ enabled: true });
    try {
      a.metrics.dispatched(3);
      a.metrics.observeLateness(0.5);
      b.metrics.dispatched(1);
      b.metrics.deadLettered('no_connector');
      const textA = (await request(a.app.getHttpServer()).get('/metrics').expect(200)).text;
      const textB = (await request(b.app.getHttpServer()).get('/metrics').expect(200)).text;
      expect(value(textA, METRIC.tasksDispatched)).toBe(3);
      expect(value(textB, METRIC.tasksDispatched)).toBe(1);
      expect(value(textA, `${METRIC.lateness}_count`)).toBe(1);
      expect(value(textB, `${METRIC.lateness}_count`)).toBe(0);
      expect(value(textA, METRIC.deadLetters, { reason_kind: 'no_connector' })).toBe(0);
      expect(value(textB, METRIC.deadLetters, { reason_kind: 'no_connector' })).toBe(1);
    } finally {
      await a.app.close();
      await b.app.close();
    }
  });

  it('adds the default labels to every series', async () => {
    const { app, metrics } = await boot({ enabled: true, defaultLabels: { role: 'scheduler' } });
    try {
      metrics.dispatched(2);
      const text = await metrics.text();
      expect(value(text, METRIC.tasksDispatched, { role: 'scheduler' })).toBe(2);
      expect(value(text, METRIC.deadLetters, { role: 'scheduler', reason_kind: 'poison' })).toBe(0);
      expect(samples(text).every((s) => s.labels.role === 'scheduler')).toBe(true);
    } finally {
      await app.close();
    }
  });
});

describe('MetricsModule disabled', () => {
  let app: INestApplication;
  let metrics: KaryaMetrics;

  beforeEach(async () => {
    ({ app, metrics } = await boot({ enabled: false }));
  });

  afterEach(async () => {
    await app.close();
  });

  it('mounts no /metrics route', async () => {
    await request(app.getHttpServer()).get('/metrics').expect(404);
  });

  it('still provides KaryaMetrics, whose methods are callable no-ops', async () => {
    expect(metrics).toBeInstanceOf(NoopKaryaMetrics);
    expect(() => {
      metrics.observeFetchLatency(0.1);
      metrics.observeClaimBatch(0.1, 3);
      metrics.dispatched(3);
      metrics.dispatched();
      metrics.leaseExpired(1);
      metrics.leaseExpired();
      metrics.observePolledLatency(0.1);
      metrics.observeExecution(0.1, true);
      metrics.observeExecution(0.1, false);
      metrics.observeLateness(0.1);
      metrics.retryScheduled();
      metrics.deadLettered('exhausted');
      metrics.observeFetchLatency(Number.NaN);
    }).not.toThrow();
    expect(await metrics.text()).toBe('');
    expect(metrics.contentType).toMatch(/^text\/plain/);
  });
});

describe('metricsEnabledFor', () => {
  function config(roles: Role[], enabled: Partial<Record<Role, boolean>>): MetricsSwitches {
    return {
      roles: new Set(roles),
      server: { metricsEnabled: enabled[Role.Server] ?? false },
      scheduler: { metricsEnabled: enabled[Role.Scheduler] ?? false },
      executor: { metricsEnabled: enabled[Role.Executor] ?? false },
    };
  }

  it("follows the running roles' metricsEnabled", () => {
    expect(metricsEnabledFor(config([Role.Scheduler], { [Role.Scheduler]: true }))).toBe(true);
    expect(metricsEnabledFor(config([Role.Scheduler], { [Role.Server]: true, [Role.Executor]: true }))).toBe(false);
    expect(metricsEnabledFor(config([Role.Server, Role.Executor], { [Role.Executor]: true }))).toBe(true);
    expect(metricsEnabledFor(config(Object.values(Role), {}))).toBe(false);
  });
});
