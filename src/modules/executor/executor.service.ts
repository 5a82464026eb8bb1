import { Injectable, Logger } from '@nestjs/common';
import { ExecutorConfig } from '../../config/karya-config';
import { JsonObject, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../../connectors/repo/entities/task.entity';
import { KaryaMetrics } from '../../metrics/karya-metrics';
import { batchEntries, ExecutorMessage, parseExecutorMessage, runLeaseMs } from '../../pipeline/executor-message';
import { Limiter } from '../../common/limiter';
import { deadLetterReason, QueueName, TaskQueue } from '../../connectors/queue/queue.port';
import { isDatabaseUnavailable } from '../../connectors/repo/transient';
import { backoffDelay, DeadLetter } from '../../pipeline/retry';
import { isLastRun } from '../plans/occurrences';
import { ActionRegistry } from '../../actions/action-registry';
import { HookPublisher } from '../hooks/hook-publisher';
import { TaskStatsRecorder } from '../../stats/task-stats.recorder';
import { StartedTask, TaskResultsRepository } from './task-results.repository';
import { loggedError, rawTaskLogFields, taskLogFields } from '../../logging/task-log';
import { traceExecution } from '../../tracing/spans';
import { tracingOn } from '../../tracing/tracing';

/**
 * Pauses before each further try of a result write that threw: 5 tries within about 10 s. The action has
 * run, so its outcome is written again in place rather than left to the lease (which would run the action
 * again); past the last try the task is marked as having no result (markUnrecorded), which the attempts
 * bound.
 */
const RECORD_RETRY_DELAYS_MS = [500, 1500, 3000, 5000];

/** Plan statuses after which a task never runs. */
const FINAL_PLAN: readonly PlanStatus[] = [PlanStatus.Cancelled, PlanStatus.Completed];

@Injectable()
export class ExecutorService {
  private readonly logger = new Logger('Executor');
  private readonly slots: Limiter;

  constructor(
    private readonly results: TaskResultsRepository,
    private readonly plugins: ActionRegistry,
    private readonly config: ExecutorConfig,
    private readonly metrics: KaryaMetrics,
    private readonly hooks: HookPublisher,
    private readonly queue: TaskQueue,
    private readonly stats: TaskStatsRecorder,
  ) {
    this.slots = new Limiter(config.concurrency);
  }

  /**
   * One delivery of the executor queue: a task, or a batch of tasks due at the same instant. The tasks of a
   * batch run side by side; one that must be dead-lettered (poison, no plugin, retries exhausted, an
   * unexpected error) is dead-lettered alone, as the task message it would have been, and the batch is
   * acknowledged when all of its tasks are settled. `concurrency` bounds the tasks running at once, however
   * many arrive per message.
   */
  async handleDelivery(raw: Record<string, unknown>): Promise<void> {
    const entries = batchEntries(raw);
    if (entries === null) return this.slots.run(() => this.handleOrLeave(raw));
    if (typeof entries === 'string') {
      this.metrics.deadLettered('poison');
      throw new DeadLetter(entries);
    }
    await Promise.all(
      entries.map((task) =>
        this.slots.run(() => this.handleOrLeave(task)).catch((e: unknown) =>
          this.queue.deadLetter(QueueName.Executor, task, deadLetterReason(e)),
        ),
      ),
    );
  }

  async handle(raw: Record<string, unknown>): Promise<void> {
    const message = parseExecutorMessage(raw);
    if (typeof message === 'string') {
      this.metrics.deadLettered('poison');
      throw new DeadLetter(message);
    }
    const received = Date.now();
    this.metrics.observePolledLatency((received - message.toBeExecutedAt) / 1000);
    // The claim normally leased the task for its run already; only a dispatch that waited longer than the
    // scheduler's leaseTime (a deep queue) or came from an older scheduler must extend it first.
    const leaseNeeded = Date.now() + runLeaseMs(message.action);
    let started = (message.leaseUntil ?? 0) >= leaseNeeded
      ? await this.results.check(message)
      : await this.results.start(message, new Date(leaseNeeded));
    // Paused after the claim (claimed ahead of its due time): a fresh occurrence does not start. A retry or
    // a lease re-dispatch (attempt > 1) continues an occurrence that started before the pause. The hand-back
    // does not happen if a resume or cancel committed since the read: the plan is read again.
    if (started && started.pausedAt !== null && message.attempt === 1 && !FINAL_PLAN.includes(started.planStatus)) {
      if (await this.record('pause', message, () => this.results.paused(message))) return;
      started = await this.results.check(message);
    }
    if (!started) return; // stale: re-dispatched, finished or cancelled meanwhile
    if (started.planStatus === PlanStatus.Cancelled || started.planStatus === PlanStatus.Completed) {
      await this.record('cancellation', message, () => this.results.cancelled(message));
      return;
    }
    try {
      await this.runStarted(message, started);
    } catch (e) {
      // A DeadLetter is thrown after the outcome was recorded; anything else left the task without one.
      if (!(e instanceof DeadLetter)) await this.markUnrecorded(message, e);
      throw e;
    }
  }

  /** Runs the action of a task this executor has taken, records the outcome and fires its hooks. */
  private async runStarted(message: ExecutorMessage, started: StartedTask): Promise<void> {
    const last = isLastRun(started.planType, started.dueAt);
    const plugin = this.plugins.get(message.action.type);
    if (!plugin) {
      const reason = `No connector configured for ${String(message.action.type)}`;
      this.logger.warn(taskLogFields(message), `task ${message.taskId} dead-lettered: ${reason}`);
      // Another executor might have the plugin, but retrying blindly could loop; the plan's owner sees why.
      const recorded = await this.record('failure', message, () => this.results.failed(message, new Date(), reason, null, last));
      this.stats.finished(started.userId, Date.now(), false, null);
      if (recorded) await this.fireFailure(message, started.hooks);
      this.metrics.deadLettered('no_connector');
      throw new DeadLetter(reason);
    }

    const start = Date.now();
    this.metrics.observeLateness((start - message.toBeExecutedAt) / 1000);
    const outcome = await plugin.run(message.action, { planId: message.planId, taskId: message.taskId, attempt: message.attempt });
    const at = new Date();
    this.metrics.observeExecution((at.getTime() - start) / 1000, outcome.ok);
    this.stats.finished(started.userId, at.getTime(), outcome.ok, (start - message.toBeExecutedAt) / 1000);
    if (outcome.ok) {
      const { completed } = await this.record('success', message, () => this.results.succeeded(message, at, last));
      if (completed) {
        await this.hooks.fire('ON_COMPLETION', started.hooks, {
          planId: message.planId, taskId: message.taskId, taskAttempt: message.attempt, taskStatus: TaskStatus.Success,
        });
      }
      return;
    }
    // A permanent failure (an egress denial) ends the task now, as its final attempt would: a retry cannot pass.
    const retriesLeft = !outcome.permanent && message.attempt <= message.maxFailureRetry;
    const retryAt = retriesLeft ? new Date(at.getTime() + backoffDelay(this.config.retry, message.attempt)) : null;
    const recorded = await this.record('failure', message, () => this.results.failed(message, at, outcome.error, retryAt, last && !retriesLeft));
    if (recorded) {
      this.logger.warn(
        { ...taskLogFields(message), retry_at: retryAt?.toISOString() ?? null, error: loggedError(outcome.error) },
        retryAt
          ? `task ${message.taskId}: attempt ${message.attempt} failed; retry at ${retryAt.toISOString()}`
          : `task ${message.taskId}: attempt ${message.attempt} failed; no retry left, dead-lettered`,
      );
    } else {
      // A newer dispatch owns the task (the fencing write changed nothing): no retry, no dead letter came of it.
      this.logger.debug(taskLogFields(message), `task ${message.taskId}: attempt ${message.attempt} failed; not recorded (stale dispatch)`);
    }
    if (recorded) await this.fireFailure(message, started.hooks);
    if (recorded && retriesLeft) this.metrics.retryScheduled();
    if (recorded && !retriesLeft) {
      this.metrics.deadLettered('exhausted');
      throw new DeadLetter(outcome.permanent ? outcome.error : `Failed after ${message.attempt} attempt(s): ${outcome.error}`);
    }
  }

  /**
   * Says that this dispatch ran (or may have) but has no outcome recorded, so that the scheduler counts it:
   * it dispatches the task again after the retry backoff, or ends it when this was its last attempt
   * (TaskClaimsRepository SPENT). Unmarked, the task would look like a dispatch that never reached an
   * executor and be dispatched again past its last attempt; so would it if this write fails too (the
   * database is down): its lease then brings it back as before.
   */
  private async markUnrecorded(message: ExecutorMessage, error: unknown): Promise<void> {
    const why = error instanceof Error ? error.message : String(error);
    const retryAt = new Date(Date.now() + backoffDelay(this.config.retry, message.attempt));
    try {
      await this.results.unrecorded(message, retryAt);
      this.logger.error(taskLogFields(message), `task ${message.taskId}: attempt ${message.attempt} has no result (${why}); the scheduler takes it back at ${retryAt.toISOString()}`);
    } catch (e) {
      this.logger.error(taskLogFields(message), `task ${message.taskId}: attempt ${message.attempt} has no result (${why}), nor could that be noted (${e instanceof Error ? e.message : String(e)}); its lease brings it back`);
    }
  }

  /**
   * Writes an outcome, trying again in place when the write throws (a lost connection, a failover): a task
   * must not stay PROCESSING because one write failed. Every write is fenced by dispatch_seq, so when a try
   * committed but its answer was lost, the next one changes nothing and answers "not recorded": the
   * outcome's hooks then do not fire (a rare miss, never a double).
   */
  private record<T>(what: string, message: ExecutorMessage, write: () => Promise<T>): Promise<T> {
    // The first try goes straight out: every task records at least once, and the retry loop's async frame is
    // only paid once a write has failed.
    let first: Promise<T>;
    try {
      first = write();
    } catch (e) {
      return this.recordAgain(what, message, write, e);
    }
    return first.catch((e: unknown) => this.recordAgain(what, message, write, e));
  }

  /** The further tries of record() after the first one failed with `error`. */
  private async recordAgain<T>(what: string, message: ExecutorMessage, write: () => Promise<T>, error: unknown): Promise<T> {
    let e = error;
    for (let tries = 1; ; tries++) {
      const why = e instanceof Error ? e.message : String(e);
      const pause = RECORD_RETRY_DELAYS_MS[tries - 1];
      if (pause === undefined) {
        this.logger.error(taskLogFields(message), `could not record the ${what} of task ${message.taskId} in ${tries} tries, leaving it to its lease: ${why}`);
        throw e;
      }
      this.logger.warn(taskLogFields(message), `recording the ${what} of task ${message.taskId} failed (${why}); trying again in ${pause} ms`);
      await new Promise((resolve) => setTimeout(resolve, pause));
      try {
        return await write();
      } catch (next) {
        e = next;
      }
    }
  }

  /**
   * A database that is down or silent (after the repositories' retries) is no reason to dead-letter a task:
   * its row still says PROCESSING under this dispatch's lease, so a scheduler dispatches it again when the
   * lease lapses. The message is acknowledged, not requeued (queue port contract).
   */
  private async handleOrLeave(raw: Record<string, unknown>): Promise<void> {
    try {
      // The message's traceparent (when the scheduler traced its dispatch) makes this a span of the plan's trace.
      // Branching here, not inside traceExecution: with tracing off, no closure and no extra async frame per task.
      await (tracingOn() ? traceExecution(raw, () => this.handle(raw)) : this.handle(raw));
    } catch (e) {
      if (!isDatabaseUnavailable(e)) throw e;
      this.logger.warn(rawTaskLogFields(raw), `task ${String(raw.taskId)} left to its lease, the database is not answering: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** ON_FAILURE fires after every failed attempt, retries included. */
  private async fireFailure(message: ExecutorMessage, hooks: JsonObject[]): Promise<void> {
    await this.hooks.fire('ON_FAILURE', hooks, {
      planId: message.planId, taskId: message.taskId, taskAttempt: message.attempt, taskStatus: TaskStatus.Failure,
    });
  }

}
