import { collectDefaultMetrics, Counter, Histogram, Registry, Summary } from 'prom-client';
import {
  DEAD_LETTER_KINDS,
  DeadLetterKind,
  KaryaMetrics,
  LATENESS_BUCKETS,
  METRIC,
  SUMMARY_AGE_BUCKETS,
  SUMMARY_MAX_AGE_SECONDS,
  SUMMARY_PERCENTILES,
} from './karya-metrics';

/**
 * KaryaMetrics on a prom-client Registry of its own. Never the global default registry: several
 * applications share one process in the tests (and could in an embedding), and metrics registered twice
 * in one registry throw, while metrics shared between apps would mix their values.
 */
export class PrometheusKaryaMetrics extends KaryaMetrics {
  readonly registry: Registry;
  readonly contentType: string;

  private readonly fetchLatency: Summary;
  private readonly processLatency: Summary;
  private readonly polledLatency: Summary;
  private readonly executionLatency: Summary;
  private readonly executionSuccess: Counter;
  private readonly executionFailed: Counter;
  private readonly lateness: Histogram;
  private readonly tasksClaimed: Counter;
  private readonly tasksDispatched: Counter;
  private readonly leaseExpiries: Counter;
  private readonly retriesScheduled: Counter;
  private readonly deadLetters: Counter<'reason_kind'>;

  constructor(defaultLabels: Record<string, string> = {}) {
    super();
    const registry = new Registry();
    this.registry = registry;
    this.contentType = registry.contentType;
    registry.setDefaultLabels(defaultLabels);
    // Each call adds a GC PerformanceObserver that prom-client offers no way to disconnect; one per
    // application is a bounded cost, and the process-level series are what operators look at first.
    collectDefaultMetrics({ register: registry });

    const summary = (name: string, help: string): Summary =>
      new Summary({
        name,
        help,
        percentiles: [...SUMMARY_PERCENTILES],
        maxAgeSeconds: SUMMARY_MAX_AGE_SECONDS,
        ageBuckets: SUMMARY_AGE_BUCKETS,
        registers: [registry],
      });
    const counter = (name: string, help: string): Counter => new Counter({ name, help, registers: [registry] });

    this.fetchLatency = summary(
      METRIC.fetchLatency,
      'Seconds from a task being due to a scheduler claiming it (the original Karya observed milliseconds here).',
    );
    this.processLatency = summary(
      METRIC.processLatency,
      'Seconds a scheduler spent processing one claimed batch (the original Karya observed milliseconds here).',
    );
    this.polledLatency = summary(METRIC.polledLatency, 'Seconds from a task being due to an executor receiving it.');
    this.executionLatency = summary(
      METRIC.executionLatency,
      'Seconds from an executor starting a task to its result being recorded.',
    );
    this.executionSuccess = counter(METRIC.executionSuccess, 'Task executions that succeeded.');
    this.executionFailed = counter(METRIC.executionFailed, 'Task executions that failed.');
    this.lateness = new Histogram({
      name: METRIC.lateness,
      help: 'Seconds a task started after it was due (start - due; early starts count as 0).',
      buckets: [...LATENESS_BUCKETS],
      registers: [registry],
    });
    this.tasksClaimed = counter(METRIC.tasksClaimed, 'Tasks claimed by schedulers.');
    this.tasksDispatched = counter(METRIC.tasksDispatched, 'Tasks dispatched by schedulers to the executor queue.');
    this.leaseExpiries = counter(METRIC.leaseExpiries, 'Task claims whose lease expired before dispatch.');
    this.retriesScheduled = counter(METRIC.retriesScheduled, 'Failed executions scheduled for another attempt.');
    this.deadLetters = new Counter({
      name: METRIC.deadLetters,
      help: 'Tasks dead-lettered by executors, by reason kind.',
      labelNames: ['reason_kind'],
      registers: [registry],
    });
    // Series at 0 from the start, so rate() and alerts see a kind before its first occurrence.
    for (const kind of DEAD_LETTER_KINDS) this.deadLetters.inc({ reason_kind: kind }, 0);
  }

  observeFetchLatency(seconds: number): void {
    observe(this.fetchLatency, seconds);
  }

  observeClaimBatch(seconds: number, count: number): void {
    observe(this.processLatency, seconds);
    increment(this.tasksClaimed, count);
  }

  dispatched(n = 1): void {
    increment(this.tasksDispatched, n);
  }

  leaseExpired(n = 1): void {
    increment(this.leaseExpiries, n);
  }

  observePolledLatency(seconds: number): void {
    observe(this.polledLatency, seconds);
  }

  observeExecution(seconds: number, ok: boolean): void {
    observe(this.executionLatency, seconds);
    increment(ok ? this.executionSuccess : this.executionFailed, 1);
  }

  observeLateness(seconds: number): void {
    observe(this.lateness, seconds);
  }

  retryScheduled(): void {
    increment(this.retriesScheduled, 1);
  }

  deadLettered(kind: DeadLetterKind): void {
    this.deadLetters.inc({ reason_kind: kind });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** prom-client throws on a non-finite value; a duration can be negative only through clock skew. */
function observe(metric: Summary | Histogram, seconds: number): void {
  if (Number.isFinite(seconds)) metric.observe(Math.max(0, seconds));
}

/** prom-client throws on a negative or non-finite increment. */
function increment(metric: Counter, n: number): void {
  if (Number.isFinite(n) && n > 0) metric.inc(n);
}
