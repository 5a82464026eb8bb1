import { Injectable, Logger } from '@nestjs/common';
import { ExecutorConfig } from '../../config/karya-config';
import { PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { KaryaMetrics } from '../../metrics/karya-metrics';
import { ExecutorMessage, parseExecutorMessage } from '../../pipeline/executor-message';
import { PLAN_TYPE } from '../plans/dto/discriminators';
import { ActionRegistry } from './action-registry';
import { TaskResultsRepository } from './task-results.repository';

/** Added to an action's own timeout for the lease an executor holds while running it. */
const RUN_LEASE_MARGIN_MS = 30_000;

/** Thrown to have the transport dead-letter the message (with this reason) after its outcome is recorded. */
export class DeadLetter extends Error {}

@Injectable()
export class ExecutorService {
  private readonly logger = new Logger('Executor');

  constructor(
    private readonly results: TaskResultsRepository,
    private readonly plugins: ActionRegistry,
    private readonly config: ExecutorConfig,
    private readonly metrics: KaryaMetrics,
  ) {}

  async handle(raw: Record<string, unknown>): Promise<void> {
    const message = parseExecutorMessage(raw);
    if (typeof message === 'string') {
      this.metrics.deadLettered('poison');
      throw new DeadLetter(message);
    }
    const received = Date.now();
    this.metrics.observePolledLatency((received - message.toBeExecutedAt) / 1000);
    const timeout = typeof message.action.timeout === 'number' ? message.action.timeout : 0;
    const started = await this.results.start(message, new Date(Date.now() + timeout + RUN_LEASE_MARGIN_MS));
    if (!started) return; // stale: re-dispatched, finished or cancelled meanwhile
    if (started.planStatus === PlanStatus.Cancelled || started.planStatus === PlanStatus.Completed) {
      await this.results.cancelled(message);
      return;
    }

    const last = this.isLastRun(started.planType, started.dueAt);
    const plugin = this.plugins.get(message.action.type);
    if (!plugin) {
      const reason = `No connector configured for ${String(message.action.type)}`;
      // Another executor might have the plugin, but retrying blindly could loop; the plan's owner sees why.
      await this.results.failed(message, new Date(), reason, null, last);
      this.metrics.deadLettered('no_connector');
      throw new DeadLetter(reason);
    }

    const start = Date.now();
    this.metrics.observeLateness((start - message.toBeExecutedAt) / 1000);
    const outcome = await plugin.run(message.action, { planId: message.planId, taskId: message.taskId, attempt: message.attempt });
    const at = new Date();
    this.metrics.observeExecution((at.getTime() - start) / 1000, outcome.ok);
    if (outcome.ok) {
      await this.results.succeeded(message, at, last);
      return;
    }
    const retriesLeft = message.attempt <= message.maxFailureRetry;
    const retryAt = retriesLeft ? new Date(at.getTime() + this.backoff(message.attempt)) : null;
    const recorded = await this.results.failed(message, at, outcome.error, retryAt, last && !retriesLeft);
    if (recorded && retriesLeft) this.metrics.retryScheduled();
    if (recorded && !retriesLeft) {
      this.metrics.deadLettered('exhausted');
      throw new DeadLetter(`Failed after ${message.attempt} attempt(s): ${outcome.error}`);
    }
  }

  /**
   * A OneTime plan ends with its task's final attempt; a bounded Recurring plan with the first run at or
   * after end_at (its due slot, so a late run does not change which run is last).
   */
  private isLastRun(planType: Record<string, unknown>, dueAt: number): boolean {
    if (planType.type === PLAN_TYPE.OneTime) return true;
    return typeof planType.end_at === 'number' && dueAt >= planType.end_at;
  }

  /** Exponential backoff with jitter: initialDelay · multiplier^(attempt-1), capped, ± jitter. */
  backoff(attempt: number): number {
    const { initialDelay, multiplier, maxDelay, jitter } = this.config.retry;
    const base = Math.min(initialDelay * multiplier ** (attempt - 1), maxDelay);
    return Math.max(0, Math.round(base * (1 + jitter * (2 * Math.random() - 1))));
  }
}
