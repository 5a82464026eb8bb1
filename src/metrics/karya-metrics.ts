import { Registry } from 'prom-client';

/**
 * Karya's metrics port, used as its own DI token (an abstract class survives compilation, an interface
 * does not). MetricsModule always provides one: the Prometheus-backed implementation when metrics are
 * enabled, `NoopKaryaMetrics` otherwise, so the scheduler and executor record unconditionally and never
 * branch on configuration.
 *
 * Durations are in SECONDS. Recording never throws: a metric must not be able to fail a claim, a dispatch
 * or an execution, so unusable input (NaN, Infinity) is dropped and negative durations count as 0.
 */
export abstract class KaryaMetrics {
  /** Value of the Content-Type header for `text()`. */
  abstract readonly contentType: string;

  /** Scheduler: a task's due time → the moment this scheduler claimed it. */
  abstract observeFetchLatency(seconds: number): void;
  /** Scheduler: time to process one claimed batch, and how many tasks it held. */
  abstract observeClaimBatch(seconds: number, count: number): void;
  /** Scheduler: tasks handed to the executor queue. */
  abstract dispatched(n?: number): void;
  /** Scheduler: claims whose lease lapsed before the task was dispatched (another scheduler may retake them). */
  abstract leaseExpired(n?: number): void;

  /** Executor: a task's due time → the moment the executor received it. */
  abstract observePolledLatency(seconds: number): void;
  /** Executor: start of execution → result recorded, and whether the task succeeded. */
  abstract observeExecution(seconds: number, ok: boolean): void;
  /** How late a task started: start − due. Early starts (clock skew) count as 0. */
  abstract observeLateness(seconds: number): void;
  /** Executor: a failed execution that will be attempted again. */
  abstract retryScheduled(): void;
  /** Executor: a task given up on, by why. */
  abstract deadLettered(kind: DeadLetterKind): void;

  /** The Prometheus text exposition of every metric of this process. */
  abstract text(): Promise<string>;
}

/**
 * A closed list because each value becomes a time series: a free-form reason (an error message) would
 * grow the series without bound. A new kind is added here, which also pre-creates its series at 0.
 */
export const DEAD_LETTER_KINDS = ['exhausted', 'poison', 'no_connector'] as const;
export type DeadLetterKind = (typeof DEAD_LETTER_KINDS)[number];

/**
 * Metric names. The first six are the original Karya's and are kept so existing dashboards keep working,
 * although the original observed milliseconds in the `_seconds_` ones: we observe seconds, as the name says.
 */
export const METRIC = {
  fetchLatency: 'karya_scheduler_task_fetch_latency_seconds_summary',
  processLatency: 'karya_scheduler_task_process_latency_seconds_summary',
  polledLatency: 'karya_executor_task_polled_latency_summary',
  executionLatency: 'karya_executor_task_execution_latency_summary',
  executionSuccess: 'karya_executor_task_success_execution_count',
  executionFailed: 'karya_executor_task_failed_execution_count',
  lateness: 'karya_task_lateness_seconds',
  tasksClaimed: 'karya_scheduler_tasks_claimed_total',
  tasksDispatched: 'karya_scheduler_tasks_dispatched_total',
  leaseExpiries: 'karya_scheduler_lease_expiries_total',
  retriesScheduled: 'karya_executor_retries_scheduled_total',
  deadLetters: 'karya_executor_dead_letters_total',
} as const;

/** The original's quantiles. */
export const SUMMARY_PERCENTILES: readonly number[] = [0.5, 0.75, 0.9, 0.95, 0.99];

/**
 * Quantiles over the last 10 minutes, rotated in 5 steps: a summary over the whole process lifetime would
 * hide a regression behind days of healthy history.
 */
export const SUMMARY_MAX_AGE_SECONDS = 600;
export const SUMMARY_AGE_BUCKETS = 5;

/** Fine at the low end, where a healthy scheduler lives; the top buckets catch a stalled pipeline. */
export const LATENESS_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Metrics disabled: every recording is dropped, and nothing is exposed (MetricsModule mounts no route). */
export class NoopKaryaMetrics extends KaryaMetrics {
  readonly contentType: string = Registry.PROMETHEUS_CONTENT_TYPE;
  observeFetchLatency(): void {}
  observeClaimBatch(): void {}
  dispatched(): void {}
  leaseExpired(): void {}
  observePolledLatency(): void {}
  observeExecution(): void {}
  observeLateness(): void {}
  retryScheduled(): void {}
  deadLettered(): void {}
  async text(): Promise<string> {
    return '';
  }
}
