import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { Batcher } from '../../common/batcher';
import { storableText } from '../../common/storable-text';
import { ExecutorConfig } from '../../config/karya-config';
import { sqlRows } from '../../connectors/repo/sql';
import { withTransientRetry } from '../../connectors/repo/transient';
import { ErrorLogKind } from '../../connectors/repo/entities/error-log.entity';
import { JsonObject, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../../connectors/repo/entities/task.entity';
import { ExecutorMessage } from '../../pipeline/executor-message';

export interface StartedTask {
  planStatus: PlanStatus;
  /** Set while the plan is paused. */
  pausedAt: Date | null;
  planType: JsonObject;
  /** The plan's hooks as they are now (a PATCH applies to later events). */
  hooks: JsonObject[];
  /** The task's due time (its grid slot), epoch ms. */
  dueAt: number;
  /** The plan's owner (task statistics count per user; the plan row is read anyway). */
  userId: string;
}

/**
 * "The task is still PROCESSING", written so that the planner cannot answer it from the partial index
 * `tasks_lease_idx (… WHERE status = 'PROCESSING')`. During a burst every claimed task is PROCESSING while
 * the statistics (taken when they were CREATED) say almost none are; with a plain `status = 'PROCESSING'`
 * the planner then scanned that whole index (every in-flight task) for each batch and hash-joined it,
 * instead of looking the batch's rows up by primary key: 30,000 rows read to update 50. Measured with
 * EXPLAIN ANALYZE on a 30,000-task burst: 9.7 ms → 3.9 ms per 50-row batch, and flat in the burst size.
 */
const STILL_PROCESSING = `t.status IS NOT DISTINCT FROM '${TaskStatus.Processing}'`;

/**
 * Every write is conditional on the task still being PROCESSING under the message's dispatch_seq, so a
 * stale or duplicate message changes nothing and a CANCELLED task is never overwritten.
 */
const FENCE = `t.id = $1 AND t.partition_key = $2 AND t.dispatch_seq = $3 AND ${STILL_PROCESSING}`;

/**
 * Items per batched statement, and batches of one kind running at once (each holds a pool connection). A
 * batch that fails transiently (a lost connection, a deadlock with a cancel) runs again, then item by item:
 * each is one statement, which commits nothing when it fails, and every write is fenced (FENCE), so a run
 * whose commit was in fact applied changes nothing when it runs again.
 */
const BATCH = { maxBatch: 500, maxInFlight: 4, retry: withTransientRetry };
/**
 * Success batches run one at a time: results of tasks claimed together arrive together and update the same
 * heap and index pages, and concurrent batches made PostgreSQL contend for them. Measured with the drain probe
 * (split roles, 20,000 tasks, 2 cores): 4 at once 1,750-2,340 tasks/s at 0.74-0.94 ms of PostgreSQL statement
 * time per task; 2 at once 2,270-2,570 at 0.55-0.60 ms; 1 at a time 2,640-2,830 at 0.36-0.40 ms. Batches
 * simply grow while one runs (up to maxBatch).
 */
const SUCCESS_BATCH = { ...BATCH, maxInFlight: 1 };

interface StartItem {
  m: ExecutorMessage;
  leaseUntil: Date;
}
/** Whether a success was recorded, and whether recording it completed the plan (ON_COMPLETION fires then). */
interface SuccessOutcome {
  recorded: boolean;
  completed: boolean;
}
interface SuccessItem {
  m: ExecutorMessage;
  at: Date;
  completesPlan: boolean;
}

@Injectable()
export class TaskResultsRepository {
  private readonly starts = new Batcher<StartItem, StartedTask | null>((items) => this.startBatch(items), BATCH);
  private readonly checks = new Batcher<ExecutorMessage, StartedTask | null>((items) => this.checkBatch(items), BATCH);
  private readonly successes = new Batcher<SuccessItem, SuccessOutcome>((items) => this.successBatch(items), SUCCESS_BATCH);

  constructor(
    private readonly ds: DataSource,
    private readonly config: ExecutorConfig,
  ) {}

  /**
   * Takes the task for this message: extends its lease for the run and returns the plan's state, or null
   * when the message is stale. The plan row is read FOR SHARE, so a cancel in progress finishes first:
   * once a cancel has returned, no execution starts. Messages arriving together share one statement.
   */
  start(m: ExecutorMessage, leaseUntil: Date): Promise<StartedTask | null> {
    return this.starts.add({ m, leaseUntil });
  }

  /**
   * The same answer as start() without writing the task, for a dispatch whose lease already covers its run
   * (the common case: the scheduler's claim leased it for its run too). A plain read: the plan is not
   * locked, so a cancel that commits while this read is in flight, or between it and the call (a few ms),
   * does not stop that one run; a cancel that committed before it does (semantics.md's re-check). Locking
   * the plan FOR SHARE here closed that window but wrote every plan row once more: it cost a fifth of
   * the burst throughput (bench/probe.mjs, 30,000 tasks: 2,400-2,600 → 3,000-3,200 tasks/s without it).
   */
  check(m: ExecutorMessage): Promise<StartedTask | null> {
    return this.checks.add(m);
  }

  /**
   * SUCCESS (also FAILURE → SUCCESS after a retry), and the plan COMPLETED when this was its last run.
   * Says whether the result was recorded and whether this call completed the plan (ON_COMPLETION fires then).
   * Results arriving together share one statement (one commit).
   */
  succeeded(m: ExecutorMessage, at: Date, completesPlan: boolean): Promise<SuccessOutcome> {
    return this.successes.add({ m, at, completesPlan });
  }

  async cancelled(m: ExecutorMessage): Promise<void> {
    await withTransientRetry(() =>
      this.ds.query(`UPDATE tasks t SET status = $4, lease_until = NULL WHERE ${FENCE}`, [
        m.taskId, m.partitionKey, m.dispatchSeq, TaskStatus.Cancelled,
      ]),
    );
  }

  /**
   * Hands a first attempt of a paused plan back (its plan was paused after the claim): PAUSED, as if the
   * claim had not happened, for resume to schedule or drop.
   */
  async paused(m: ExecutorMessage): Promise<boolean> {
    // Only while the plan, locked FOR SHARE first (plan before task, the lock order of cancel and resume), is
    // still paused and live: a resume or cancel that committed since the executor's read wins, and false
    // tells the executor to read the plan again.
    const rows = await withTransientRetry(() =>
      sqlRows(
        this.ds,
        `WITH p AS (
           SELECT id FROM plans WHERE id = $5 AND paused_at IS NOT NULL AND status IN ('${PlanStatus.Created}', '${PlanStatus.Running}') FOR SHARE
         )
         UPDATE tasks t SET status = $4, attempt = t.attempt - 1, lease_until = NULL FROM p WHERE ${FENCE} AND t.plan_id = p.id RETURNING t.id`,
        [m.taskId, m.partitionKey, m.dispatchSeq, TaskStatus.Paused, m.planId],
      ),
    );
    return rows.length > 0;
  }

  /**
   * The executor took this dispatch and cannot record its outcome (the handler threw, the result write kept
   * failing): the task stays PROCESSING, marked with `retry_at`, and its lease ends at `retryAt`, when the
   * scheduler dispatches it again as its next attempt, or ends it after its last (TaskClaimsRepository SPENT).
   * A small write with no text from outside, so it goes through when the outcome's own write did not.
   */
  async unrecorded(m: ExecutorMessage, retryAt: Date): Promise<void> {
    await withTransientRetry(() =>
      this.ds.query(`UPDATE tasks t SET retry_at = $4, lease_until = $4 WHERE ${FENCE}`, [m.taskId, m.partitionKey, m.dispatchSeq, retryAt]),
    );
  }

  /**
   * Records a failed attempt: the error log (the text made storable and capped: storableText), the task
   * FAILURE, and either the time of the next attempt or, when none remains, the end of the task (and of a
   * OneTime plan).
   */
  async failed(m: ExecutorMessage, at: Date, error: string, retryAt: Date | null, completesPlan: boolean): Promise<boolean> {
    return this.ds.transaction(async (tx) => {
      const done = await sqlRows(
        tx,
        `UPDATE tasks t SET status = $4, executed_at = $5, retry_at = $6, lease_until = NULL WHERE ${FENCE} RETURNING t.id`,
        [m.taskId, m.partitionKey, m.dispatchSeq, TaskStatus.Failure, at, retryAt],
      );
      if (done.length === 0) return false;
      await tx.query(`INSERT INTO error_logs (plan_id, task_id, type, error, timestamp) VALUES ($1, $2, $3, $4, $5)`, [
        m.planId, m.taskId, ErrorLogKind.Executor, storableText(error, this.config.maxErrorTextLength), at,
      ]);
      if (completesPlan) await this.complete(tx, m.planId, at);
      return true;
    });
  }

  /**
   * One statement for many starts. Plans are locked in id order, so two batches (or a batch and a cancel
   * cascade) lock them in the same order. A message delivered twice in one batch runs once: the second
   * copy is answered as stale.
   */
  private async startBatch(items: StartItem[]): Promise<(StartedTask | null)[]> {
    const rows = await sqlRows<StartRow>(
      this.ds,
      `WITH v AS (
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::timestamptz[], $5::uuid[]) AS v(id, key, seq, lease, plan_id)
       ), p AS (
         SELECT id, status, type, hook, paused_at, user_id FROM plans WHERE id IN (SELECT plan_id FROM v) ORDER BY id FOR SHARE
       )
       UPDATE tasks t SET lease_until = v.lease FROM v, p
       WHERE t.id = v.id AND t.partition_key = v.key AND t.dispatch_seq = v.seq AND ${STILL_PROCESSING}
         AND p.id = v.plan_id AND t.plan_id = p.id
       RETURNING t.id, t.dispatch_seq AS seq, p.status, p.type, p.hook, p.paused_at, t.next_execution_at AS due, p.user_id`,
      [
        items.map((i) => i.m.taskId), items.map((i) => i.m.partitionKey), items.map((i) => i.m.dispatchSeq),
        items.map((i) => i.leaseUntil), items.map((i) => i.m.planId),
      ],
    );
    return answerStarts(items.map((i) => i.m), rows);
  }

  /** One read for many checks. */
  private async checkBatch(items: ExecutorMessage[]): Promise<(StartedTask | null)[]> {
    const rows = await sqlRows<StartRow>(
      this.ds,
      `WITH v AS (
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::uuid[]) AS v(id, key, seq, plan_id)
       )
       SELECT t.id, t.dispatch_seq AS seq, p.status, p.type, p.hook, p.paused_at, t.next_execution_at AS due, p.user_id
       FROM v JOIN tasks t ON t.id = v.id AND t.partition_key = v.key AND t.dispatch_seq = v.seq AND ${STILL_PROCESSING}
              JOIN plans p ON p.id = v.plan_id AND p.id = t.plan_id`,
      [items.map((m) => m.taskId), items.map((m) => m.partitionKey), items.map((m) => m.dispatchSeq), items.map((m) => m.planId)],
    );
    return answerStarts(items, rows);
  }

  /**
   * One statement for many successes: the tasks, and the plans whose last run they were. The statement
   * returns the recorded tasks and, as separate rows, the completed plans, matched up here: joining the
   * two data-modifying CTEs in SQL made PostgreSQL rescan one of them for every row of the other
   * (quadratic in the batch; it was most of the database's CPU in a 30,000-task burst).
   */
  private async successBatch(items: SuccessItem[]): Promise<SuccessOutcome[]> {
    const rows = await sqlRows<{ id: string | null; seq: number | null; completed_plan: string | null }>(
      this.ds,
      `WITH v AS (
         SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::timestamptz[], $5::bool[]) AS v(id, key, seq, at, completes)
       ), done AS (
         UPDATE tasks t SET status = '${TaskStatus.Success}', executed_at = v.at, lease_until = NULL FROM v
         WHERE t.id = v.id AND t.partition_key = v.key AND t.dispatch_seq = v.seq AND ${STILL_PROCESSING}
         RETURNING t.id, t.dispatch_seq AS seq, t.plan_id, v.completes, v.at
       ), completed AS (
         UPDATE plans p SET status = '${PlanStatus.Completed}', updated_at = d.at FROM done d
         WHERE d.completes AND p.id = d.plan_id AND p.status IN ('${PlanStatus.Created}', '${PlanStatus.Running}')
         RETURNING p.id
       )
       SELECT id, seq, NULL::uuid AS completed_plan FROM done
       UNION ALL
       SELECT NULL, NULL, id FROM completed`,
      [
        items.map((i) => i.m.taskId), items.map((i) => i.m.partitionKey), items.map((i) => i.m.dispatchSeq),
        items.map((i) => i.at), items.map((i) => i.completesPlan),
      ],
    );
    const recorded = new Set(rows.filter((r) => r.id !== null).map((r) => dispatchKey(r.id, r.seq)));
    const completedPlans = new Set(rows.filter((r) => r.completed_plan !== null).map((r) => r.completed_plan));
    return items.map(({ m, completesPlan }) => {
      // A second copy of the same dispatch records nothing.
      const wasRecorded = recorded.delete(dispatchKey(m.taskId, m.dispatchSeq));
      // ON_COMPLETION fires once per plan, even if two of its runs were (wrongly) both marked last.
      const completed = wasRecorded && completesPlan && completedPlans.delete(m.planId);
      return { recorded: wasRecorded, completed };
    });
  }

  /** Completion never overwrites CANCELLED (the original let a late result flip it). */
  private async complete(tx: EntityManager, planId: string, at: Date): Promise<boolean> {
    const rows = await sqlRows(tx, `UPDATE plans SET status = $2, updated_at = $3 WHERE id = $1 AND status IN ($4, $5) RETURNING id`, [
      planId, PlanStatus.Completed, at, PlanStatus.Created, PlanStatus.Running,
    ]);
    return rows.length > 0;
  }
}

interface StartRow {
  id: string;
  seq: number;
  status: PlanStatus;
  type: JsonObject;
  hook: JsonObject[];
  paused_at: Date | null;
  due: Date;
  user_id: string;
}

/** One dispatch of one task: what a row returned by a batch is matched to its message by. */
function dispatchKey(taskId: string | null, dispatchSeq: number | null): string {
  return `${taskId}/${dispatchSeq}`;
}

/** Pairs each message with its row; a second copy of the same dispatch in one batch is answered as stale. */
function answerStarts(messages: ExecutorMessage[], rows: StartRow[]): (StartedTask | null)[] {
  const found = new Map(rows.map((r) => [dispatchKey(r.id, r.seq), r]));
  return messages.map((m) => {
    const key = dispatchKey(m.taskId, m.dispatchSeq);
    const row = found.get(key);
    found.delete(key);
    return row ? { planStatus: row.status, pausedAt: row.paused_at, planType: row.type, hooks: row.hook, dueAt: row.due.getTime(), userId: row.user_id } : null;
  });
}
