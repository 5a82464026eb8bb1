import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { SchedulerConfig } from '../config/karya-config';
import { deleteExpiredTaskStats } from '../stats/task-stats';
import { HousekeepingRepository } from './housekeeping.repository';

/** Plans per window of the sweep (primary-key order). */
const PLAN_WINDOW = 500;
/** Rows one delete statement removes at most; a full batch means more may be left, so it goes again. */
const DELETE_BATCH = 1000;
/** Least pause between two batches. */
const MIN_PAUSE_MS = 20;
/** Bounds of the time between passes. */
const MIN_INTERVAL_MS = 1000;
const MAX_INTERVAL_MS = 60_000;
/** The smallest uuid: the sweep's cursor before its first window. */
const FIRST_CURSOR = '00000000-0000-0000-0000-000000000000';

/** What one pass deleted, and whether it gave way to another scheduler. */
export interface PassResult {
  tasks: number;
  errorLogs: number;
  plans: number;
  deadLetters: number;
  /** task_stats rows older than an hour (the dashboard's figures, src/stats). */
  taskStats: number;
  /** Another scheduler held the housekeeping lock: this pass ended early. */
  contended: boolean;
  durationMs: number;
}

/** Test hooks around every batch, called inside its transaction (so while the lock is held). */
export interface HousekeepingObserver {
  /** A batch asked for the lock: `won` false means another scheduler is deleting. */
  tried?(won: boolean): void;
  /** Called just after the lock was taken. */
  batchStarted?(): void;
  /** Called before the batch's commit releases the lock, even when it failed. */
  batchEnded?(): void;
}

/** Where a window's work stands: its steps run in this order, each until it deletes less than a batch. */
type Step = 'tasks' | 'errorLogs' | 'plans';

/**
 * Retention (scheduler role): deletes finished history older than scheduler.yml's `retention`. Nothing else
 * in Karya removes tasks, error logs, dead letters or plans.
 *
 * - What expires (cutoff = the database's now() − retention): finished tasks (SUCCESS, CANCELLED, FAILURE
 *   with no retry pending) that ran (or were created, if they never ran) before the cutoff, except a live
 *   plan's latest task; error logs before the cutoff whose task is gone; dead letters recorded before the
 *   cutoff; COMPLETED or CANCELLED plans last changed before the cutoff with no task left (with their
 *   remaining error logs). Users are never deleted. Retention 0 (PT0S) keeps all history: the loop then runs
 *   once a minute only to trim the dashboard's task_stats, which keep one hour whatever the retention.
 * - Off the hot path: one pass sweeps `plans` by primary key in windows of PLAN_WINDOW and deletes at most
 *   DELETE_BATCH rows per statement (HousekeepingRepository says how each is found without a new index).
 *   After every batch it pauses at least as long as the batch took (and MIN_PAUSE_MS), so it keeps at most
 *   about half of one connection busy: with PGlite's single connection, the pipeline keeps the other half.
 * - One deleting scheduler per cluster: each batch is a transaction that first tries a transaction-scoped
 *   advisory lock. Refused, another scheduler is deleting, and this pass ends; the next pass tries again.
 *   The lock is released at every commit, so no connection or lock is held across the pauses, and a
 *   scheduler that dies mid-pass hands over at the next try of another.
 * - Passes repeat retention / 10 after the end of the previous one, kept within [1 s, 60 s]: an expired row
 *   goes at most an interval plus a pass after it expired (a tenth of the retention for retentions of 10 s
 *   to 10 min, a minute for longer ones), while an idle cluster sweeps its plans at most once a minute.
 *   A failing pass logs a warning and the loop carries on.
 */
@Injectable()
export class Housekeeper implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Housekeeper');
  private stopping = false;
  private loop: Promise<void> | undefined;
  /** Passes of this process run one at a time (the loop's, and any a caller asks for). */
  private tail: Promise<unknown> = Promise.resolve();
  private readonly wakers = new Set<() => void>();
  private observer: HousekeepingObserver = {};

  constructor(
    private readonly repo: HousekeepingRepository,
    private readonly config: SchedulerConfig,
  ) {}

  /** ms between the end of one pass and the start of the next. */
  get intervalMs(): number {
    if (this.config.retention === 0) return MAX_INTERVAL_MS;
    return Math.max(MIN_INTERVAL_MS, Math.min(this.config.retention / 10, MAX_INTERVAL_MS));
  }

  /** Whether the loop runs (with retention 0 too: task_stats are trimmed whatever the retention). */
  get active(): boolean {
    return this.loop !== undefined && !this.stopping;
  }

  onApplicationBootstrap(): void {
    this.loop = this.run();
  }

  /** Stops the loop, and waits for the batch under way (a pass stops between batches). */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    this.wakers.forEach((wake) => wake());
    await this.loop;
    await this.tail;
  }

  /** For tests: hooks called around every batch. */
  observe(observer: HousekeepingObserver): void {
    this.observer = observer;
  }

  /**
   * One full pass now, after the one under way in this process if any (so a caller's pass sweeps
   * everything that had expired when it was asked for, unless another scheduler is deleting).
   */
  runPass(): Promise<PassResult> {
    const pass = this.tail.then(() => this.pass());
    this.tail = pass.catch(() => undefined);
    return pass;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      await this.pause(this.intervalMs);
      if (this.stopping) break;
      try {
        await this.runPass();
      } catch (e) {
        this.logger.warn(`retention pass failed (the next one tries again): ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  private async pass(): Promise<PassResult> {
    const started = Date.now();
    const result: PassResult = { tasks: 0, errorLogs: 0, plans: 0, deadLetters: 0, taskStats: 0, contended: false, durationMs: 0 };
    const retention = this.config.retention;
    if (retention > 0) {
      result.contended = !(await this.sweepPlans(retention, result)) || !(await this.sweepDeadLetters(retention, result));
    }
    if (!result.contended) result.contended = !(await this.sweepTaskStats(result));
    result.durationMs = Date.now() - started;
    const deleted = result.tasks + result.errorLogs + result.plans + result.deadLetters;
    if (deleted > 0) {
      this.logger.log(
        `deleted ${result.tasks} task(s), ${result.errorLogs} error log(s), ${result.plans} plan(s) and ${result.deadLetters} ` +
          `dead letter(s) older than ${retention} ms in ${result.durationMs} ms${result.contended ? ' (another scheduler took over)' : ''}`,
      );
    }
    return result;
  }

  /** Every window of plans; false when another scheduler holds the lock. */
  private async sweepPlans(retention: number, result: PassResult): Promise<boolean> {
    let cursor = FIRST_CURSOR;
    while (!this.stopping) {
      const window = await this.repo.planWindow(cursor, PLAN_WINDOW);
      if (window.length === 0) return true;
      let step: Step | undefined = 'tasks';
      while (step !== undefined) {
        const from: Step = step;
        const done: WindowBatch | null = await this.batch((tx) => this.windowBatch(tx, window, from, retention));
        if (done === null) return false;
        result.tasks += done.tasks;
        result.errorLogs += done.errorLogs;
        result.plans += done.plans;
        step = done.next;
        if (this.stopping) return true;
      }
      if (window.length < PLAN_WINDOW) return true;
      cursor = window[window.length - 1];
    }
    return true;
  }

  /**
   * One batch of a window's work from step `from` on: a step that deletes less than a full batch is done,
   * and the next one runs in the same transaction; a full one ends the batch (more may be left). `next` is
   * the step to go on with, undefined when the window is done.
   */
  private async windowBatch(tx: EntityManager, window: string[], from: Step, retention: number): Promise<WindowBatch> {
    const done: WindowBatch = { tasks: 0, errorLogs: 0, plans: 0, next: undefined };
    if (from === 'tasks') {
      done.tasks = await this.repo.deleteFinishedTasks(tx, window, retention, DELETE_BATCH);
      if (done.tasks >= DELETE_BATCH) return { ...done, next: 'tasks' };
    }
    if (from === 'tasks' || from === 'errorLogs') {
      done.errorLogs = await this.repo.deleteOrphanedErrorLogs(tx, window, retention, DELETE_BATCH);
      if (done.errorLogs >= DELETE_BATCH) return { ...done, next: 'errorLogs' };
    }
    const { plans, errorLogs } = await this.repo.deleteFinishedPlans(tx, window, retention);
    return { ...done, plans, errorLogs: done.errorLogs + errorLogs };
  }

  /** task_stats keeps one hour whatever the retention: it feeds the dashboard, it is not history. */
  private async sweepTaskStats(result: PassResult): Promise<boolean> {
    while (!this.stopping) {
      const n = await this.batch((tx) => deleteExpiredTaskStats(tx, DELETE_BATCH));
      if (n === null) return false;
      result.taskStats += n;
      if (n < DELETE_BATCH) return true;
    }
    return true;
  }

  private async sweepDeadLetters(retention: number, result: PassResult): Promise<boolean> {
    while (!this.stopping) {
      const n = await this.batch((tx) => this.repo.deleteDeadLetters(tx, retention, DELETE_BATCH));
      if (n === null) return false;
      result.deadLetters += n;
      if (n < DELETE_BATCH) return true;
    }
    return true;
  }

  /**
   * Runs `work` as one elected batch (its own transaction), then pauses at least as long as it took. Null
   * when another scheduler holds the lock (then no pause: the pass ends).
   */
  private async batch<T>(work: (tx: EntityManager) => Promise<T>): Promise<T | null> {
    const started = Date.now();
    const outcome = await this.repo.elected(
      async (tx) => {
        this.observer.batchStarted?.();
        try {
          return { value: await work(tx) };
        } finally {
          this.observer.batchEnded?.();
        }
      },
      (won) => this.observer.tried?.(won),
    );
    if (outcome === undefined) return null;
    await this.pause(Math.max(MIN_PAUSE_MS, Date.now() - started));
    return outcome.value;
  }

  /** Waits `ms`, or less if the process is shutting down. */
  private pause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }
}

interface WindowBatch {
  tasks: number;
  errorLogs: number;
  plans: number;
  next: Step | undefined;
}
