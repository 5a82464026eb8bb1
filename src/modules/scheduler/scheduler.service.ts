import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { RepoConfig, SchedulerConfig } from '../../config/karya-config';
import { QueueName, TaskQueue } from '../../connectors/queue/queue.port';
import { KaryaMetrics } from '../../metrics/karya-metrics';
import { EXECUTOR_MESSAGE_TYPE, ExecutorMessage, executorDispatches } from '../../pipeline/executor-message';
import { TaskStatus } from '../../connectors/repo/entities/task.entity';
import { HookPublisher } from '../hooks/hook-publisher';
import { ClaimedTask, ClaimOptions, ExhaustedTask, TaskClaimsRepository } from './task-claims.repository';
import { taskLogFields } from '../../logging/task-log';
import { endDispatchSpans, startDispatchSpans, traceClaims } from '../../tracing/spans';

/**
 * The fewest tasks one claim statement asks for, whatever channelCapacity says. A claim costs a transaction
 * of five statements whether it brings 10 tasks or 500: with the original's sample channelCapacity (10) as
 * the claim size, a burst drained about 3× slower than with 1000 (bench/probe.mjs --tuning original).
 */
export const MIN_CLAIM_BATCH = 500;
/** Lapsed leases (per sweep) and late dispatches (per publish) logged one warn line each; the rest go to debug. */
const WARN_LINES_PER_BATCH = 10;
/** After a failed publish (broker down), try again this soon; the lease covers us if we never manage. */
const PUBLISH_RETRY_MS = 500;

/**
 * The scheduler role. Meaning of scheduler.yml's keys here (README "scheduler.yml"), kept to the original's
 * (a fetcher filling a bounded channel that `workers` coroutines drain) but sized so its sample values are fast:
 * - `workers`: parallel claim loops, each owning an interleaved share of this scheduler's partitions;
 * - `fetcher.channelCapacity`: the depth of the channel between the claim loops and the publishers, i.e.
 *   the claimed tasks this scheduler holds in memory (waiting for their due time or for their publish to
 *   be confirmed). A loop claims only while the channel holds fewer, and waits for room otherwise, as the
 *   original's fetcher suspended on a full channel. A claim is one statement of max(channelCapacity,
 *   MIN_CLAIM_BATCH) tasks, so the channel may hold up to one claim per loop beyond its depth;
 * - `fetcher.pollFrequency`: the longest pause between two claims of a loop: a loop whose claim came back
 *   full claims again at once, one with room in the channel waits for room, not for a poll; tasks due
 *   within the next 2 × pollFrequency are claimed ahead and published from a timer at their due time, so
 *   lateness is milliseconds, not a poll;
 * - `fetcher.executionBuffer`: lateness (ms) above which a dispatch is logged as late — never a reason to skip;
 * - `leaseTime`: how long past its due time a claim may wait for an executor before another scheduler
 *   dispatches it again (the claim adds the run: the action's timeout plus RUN_LEASE_MARGIN_MS).
 */
@Injectable()
export class SchedulerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Scheduler');
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private readonly wakers = new Set<() => void>();
  /** Claim loops waiting for room in the channel (held below channelCapacity). */
  private readonly roomWaiters = new Set<() => void>();
  /** Claimed and not yet published, by task id. */
  private readonly held = new Map<string, ClaimedTask>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly partitions: number[];

  constructor(
    private readonly claims: TaskClaimsRepository,
    private readonly queue: TaskQueue,
    private readonly config: SchedulerConfig,
    private readonly repo: RepoConfig,
    private readonly metrics: KaryaMetrics,
    private readonly hooks: HookPublisher,
  ) {
    this.partitions = config.repoPartitions ?? Array.from({ length: repo.partitions }, (_, i) => i + 1);
  }

  onApplicationBootstrap(): void {
    this.running = true;
    const workers = Math.min(this.config.workers, this.partitions.length);
    for (let w = 0; w < workers; w++) {
      const mine = this.partitions.filter((_, i) => i % workers === w);
      this.loops.push(this.claimLoop(mine));
    }
    this.loops.push(this.leaseLoop());
  }

  /** Stop claiming, publish what is due now, hand the rest back so other schedulers take it at once. */
  async beforeApplicationShutdown(): Promise<void> {
    this.running = false;
    this.wakers.forEach((wake) => wake());
    this.roomWaiters.forEach((wake) => wake());
    await Promise.all(this.loops);
    this.timers.forEach((t) => clearTimeout(t));
    this.timers.clear();
    const now = Date.now();
    const all = [...this.held.values()];
    const dueNow = all.filter((t) => t.dueAt <= now + this.config.pollFrequency);
    const later = all.filter((t) => t.dueAt > now + this.config.pollFrequency);
    await this.publish(dueNow, false);
    const unpublished = [...dueNow.filter((t) => this.held.has(t.taskId)), ...later];
    if (unpublished.length > 0) {
      await this.claims.release(unpublished).catch((e: unknown) => {
        this.logger.warn(`could not release ${unpublished.length} claims (their lease will lapse): ${String(e)}`);
      });
    }
    this.held.clear();
  }

  /** Tasks per claim statement. */
  private get batchSize(): number {
    return Math.max(MIN_CLAIM_BATCH, this.config.channelCapacity);
  }

  /** The channel's depth: while this many claims are held, the claim loops wait. */
  private get capacity(): number {
    return Math.max(1, this.config.channelCapacity);
  }

  /** Resolves when the channel has room (or the scheduler stops). */
  private roomInChannel(): Promise<void> {
    if (this.held.size < this.capacity || !this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.roomWaiters.delete(done);
        resolve();
      };
      this.roomWaiters.add(done);
    });
  }

  private options(partitions: number[], horizon: number, limit: number): ClaimOptions {
    return { partitions, horizon, limit, leaseTime: this.config.leaseTime, totalPartitions: this.repo.partitions };
  }

  private async claimLoop(partitions: number[]): Promise<void> {
    const lookahead = 2 * this.config.pollFrequency;
    let released = 0;
    while (this.running) {
      let full = false;
      try {
        // BUFFER_ONE occurrences whose previous run ended become due first, so this very claim takes them.
        // Once a poll interval at most: a loop working through a backlog claims back to back.
        if (Date.now() - released >= this.config.pollFrequency) {
          released = Date.now();
          await this.claims.releaseBuffered(partitions);
        }
        for (const kind of ['due', 'retry'] as const) {
          // A full channel: wait for the publishers, as the original's fetcher did (its send suspended).
          await this.roomInChannel();
          if (!this.running) break;
          const limit = this.batchSize;
          const started = Date.now();
          const batch = await this.claims.claim(kind, this.options(partitions, started + lookahead, limit));
          this.measureClaim(batch, started);
          traceClaims(batch, started);
          this.hold(batch);
          full ||= batch.length === limit;
        }
      } catch (e) {
        this.logger.error(`claim failed: ${e instanceof Error ? e.message : String(e)}`);
      }
      // A full batch means more may be waiting: claim again at once. Otherwise rest a poll interval.
      if (!full) await this.sleep(this.config.pollFrequency);
    }
  }

  /**
   * One line per task, but a batch can hold thousands of them: the first WARN_LINES_PER_BATCH at warn, the rest
   * at debug behind one warn line counting them, so a recovery or a backlog cannot flood the logs.
   */
  private warnCapped(lines: readonly (readonly [object, string])[], more: (count: number) => string): void {
    lines.forEach(([fields, text], i) => (i < WARN_LINES_PER_BATCH ? this.logger.warn(fields, text) : this.logger.debug(fields, text)));
    const rest = lines.length - WARN_LINES_PER_BATCH;
    if (rest > 0) this.logger.warn({ tasks: rest }, more(rest));
  }

  private async leaseLoop(): Promise<void> {
    while (this.running) {
      await this.sleep(Math.max(this.config.pollFrequency, 1000));
      if (!this.running) break;
      try {
        const started = Date.now();
        const { claimed: batch, exhausted } = await this.claims.sweepLapsed(this.options(this.partitions, started, this.batchSize));
        this.measureClaim(batch, started);
        traceClaims(batch, started);
        if (batch.length + exhausted.length > 0) {
          this.metrics.leaseExpired(batch.length + exhausted.length);
          // An executor crash can lapse thousands at once.
          this.warnCapped(
            batch.map((t) => [taskLogFields(t), `re-dispatching task ${t.taskId}: its lease lapsed`]),
            (more) => `re-dispatching ${more} more tasks whose lease lapsed (one debug line each)`,
          );
        }
        this.hold(batch);
        for (const t of exhausted) await this.settleExhausted(t);
      } catch (e) {
        this.logger.error(`lease sweep failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /**
   * After the commit that made the task FAILURE (TaskClaimsRepository SPENT), what the executor does after
   * a final failed attempt: fire ON_FAILURE and dead-letter the last dispatch with the reason. Each step is
   * tried until it goes through (the broker may be down) while this scheduler runs, and not repeated once it
   * has, so a hook never fires twice; a scheduler that dies in between loses what was left (as an executor
   * that dies after recording a failure does).
   */
  private async settleExhausted(t: ExhaustedTask): Promise<void> {
    this.logger.error(taskLogFields(t), `task ${t.taskId} of plan ${t.planId} failed: ${t.reason}`);
    this.metrics.deadLettered('exhausted');
    await this.untilDone(`ON_FAILURE hooks of task ${t.taskId}`, () =>
      this.hooks.fire('ON_FAILURE', t.hooks, { planId: t.planId, taskId: t.taskId, taskAttempt: t.attempt, taskStatus: TaskStatus.Failure }),
    );
    const last: ExecutorMessage = {
      type: EXECUTOR_MESSAGE_TYPE, planId: t.planId, taskId: t.taskId, partitionKey: t.partitionKey, attempt: t.attempt,
      dispatchSeq: t.dispatchSeq, action: t.action, maxFailureRetry: t.maxFailureRetry, toBeExecutedAt: t.dueAt,
    };
    await this.untilDone(`dead letter of task ${t.taskId}`, () => this.queue.deadLetter(QueueName.Executor, last, t.reason));
  }

  private async untilDone(what: string, step: () => Promise<unknown>): Promise<void> {
    for (;;) {
      try {
        await step();
        return;
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        if (!this.running) {
          this.logger.error(`gave up on the ${what} at shutdown: ${why}`);
          return;
        }
        this.logger.warn(`${what} failed (${why}); trying again in ${PUBLISH_RETRY_MS} ms`);
        await this.sleep(PUBLISH_RETRY_MS);
      }
    }
  }

  /** Keeps claims until their due time, one timer per due instant. */
  private hold(batch: ClaimedTask[]): void {
    const byDue = new Map<number, ClaimedTask[]>();
    for (const t of batch) {
      this.held.set(t.taskId, t);
      const group = byDue.get(t.dueAt);
      if (group) group.push(t);
      else byDue.set(t.dueAt, [t]);
    }
    for (const [dueAt, tasks] of byDue) {
      const delay = dueAt - Date.now();
      if (delay <= 0) {
        void this.publish(tasks, true);
        continue;
      }
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        void this.publish(tasks, true);
      }, delay);
      this.timers.add(timer);
    }
  }

  private async publish(tasks: ClaimedTask[], retry: boolean): Promise<void> {
    if (tasks.length === 0) return;
    const messages = tasks.map(toMessage);
    // Undefined (and nothing added to the messages) unless tracing is on and some task has a trace.
    const spans = startDispatchSpans(tasks, messages);
    try {
      await Promise.all(executorDispatches(messages).map((d) => this.queue.publishBatch(d.queue, d.messages)));
      endDispatchSpans(spans);
      this.metrics.dispatched(tasks.length);
      const now = Date.now();
      // A backlog (a scheduler back after an outage) dispatches thousands late at once.
      const lateLines: [object, string][] = [];
      for (const t of tasks) {
        this.held.delete(t.taskId);
        const late = now - t.dueAt;
        if (late <= this.config.executionBuffer) continue;
        lateLines.push([{ ...taskLogFields(t), late_ms: late }, `task ${t.taskId} dispatched ${late} ms after its due time`]);
      }
      this.warnCapped(lateLines, (more) => `${more} more tasks of this batch dispatched late (one debug line each)`);
      if (this.held.size < this.capacity) this.roomWaiters.forEach((wake) => wake());
    } catch (e) {
      endDispatchSpans(spans, e);
      // One line for the batch (a broker outage would otherwise print a line per task per retry), then which.
      const why = e instanceof Error ? e.message : String(e);
      this.logger.error({ tasks: tasks.length }, `publish of ${tasks.length} task(s) failed: ${why}`);
      for (const t of tasks) this.logger.debug(taskLogFields(t), `publish of task ${t.taskId} failed`);
      if (retry && this.running) {
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          void this.publish(tasks, true);
        }, PUBLISH_RETRY_MS);
        this.timers.add(timer);
      }
    }
  }

  private measureClaim(batch: ClaimedTask[], started: number): void {
    if (batch.length === 0) return;
    const now = Date.now();
    this.metrics.observeClaimBatch((now - started) / 1000, batch.length);
    // Claimed ahead of time counts as 0: the metric is about tasks found late.
    for (const t of batch) this.metrics.observeFetchLatency((now - t.dueAt) / 1000);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}

function toMessage(t: ClaimedTask): ExecutorMessage {
  return {
    type: EXECUTOR_MESSAGE_TYPE,
    planId: t.planId,
    taskId: t.taskId,
    partitionKey: t.partitionKey,
    attempt: t.attempt,
    dispatchSeq: t.dispatchSeq,
    action: t.action,
    maxFailureRetry: t.maxFailureRetry,
    toBeExecutedAt: t.dueAt,
    leaseUntil: t.leaseUntil,
  };
}
