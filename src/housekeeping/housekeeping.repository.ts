import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { PlanStatus } from '../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../connectors/repo/entities/task.entity';
import { sqlRows } from '../connectors/repo/sql';
import { withTransientRetry } from '../connectors/repo/transient';

/**
 * An arbitrary constant naming the housekeeper's advisory lock (one deleting scheduler per cluster). It
 * must differ from the migration lock's (data-source.factory.ts); a string, as it does not fit a JS number.
 */
const HOUSEKEEPING_LOCK_KEY = '7268135045270117223';

/**
 * The expiry instant by the database's clock (the retention in ms is the parameter `param`), so schedulers
 * with skewed clocks agree on what has expired.
 */
const cutoff = (param: string): string => `(now() - ${param}::float8 * interval '1 millisecond')`;

/** A finished task: it ran for good, or was cancelled. A FAILURE with retry_at set still waits for a retry. */
const FINISHED_TASK =
  `(t.status IN ('${TaskStatus.Success}', '${TaskStatus.Cancelled}') OR (t.status = '${TaskStatus.Failure}' AND t.retry_at IS NULL))`;
const LIVE_PLAN = `('${PlanStatus.Created}', '${PlanStatus.Running}')`;
const FINISHED_PLAN = `('${PlanStatus.Completed}', '${PlanStatus.Cancelled}')`;

/**
 * The deletes of retention (Housekeeper). No index is added for them on the hot tables `tasks` and `plans`
 * (plans relies on HOT updates, see the PlansFillfactor migration): the housekeeper walks `plans` by its
 * primary key in windows and reaches a window's tasks through tasks_plan_idx (plan_id, created_at) and its
 * error logs through error_logs_plan_idx (plan_id, timestamp). Rows to delete are picked with
 * FOR UPDATE SKIP LOCKED and their conditions re-checked on the locked version, so a row the hot path holds
 * (a dead-letter replay, a cancel) is skipped rather than waited for, and a row it changed meanwhile is
 * judged as it is now.
 *
 * Every `tx` method runs inside `elected`; `retentionMs` is how long finished history is kept.
 */
@Injectable()
export class HousekeepingRepository {
  constructor(private readonly ds: DataSource) {}

  /** Up to `limit` plan ids after `after`, in primary-key order (the sweep's next window). */
  async planWindow(after: string, limit: number): Promise<string[]> {
    const rows = await withTransientRetry(() =>
      sqlRows<{ id: string }>(this.ds, `SELECT id FROM plans WHERE id > $1::uuid ORDER BY id LIMIT $2`, [after, limit]),
    );
    return rows.map((r) => r.id);
  }

  /**
   * Runs `work` in a transaction of its own if this process wins the housekeeping election, i.e. takes the
   * transaction-scoped advisory lock without waiting; `undefined` when another scheduler holds it. The lock
   * lives exactly as long as the transaction, so nothing is held between batches (PGlite has one
   * connection, which the hot path needs between our batches) and a scheduler that dies mid-batch leaves
   * no lock behind. `tried` hears each answer. `work` must do everything through `tx`. The whole
   * transaction is retried on a transient error: each delete removes only what is still expired, so a
   * second run is harmless.
   */
  elected<T>(work: (tx: EntityManager) => Promise<T>, tried?: (won: boolean) => void): Promise<T | undefined> {
    return withTransientRetry(() =>
      this.ds.transaction(async (tx) => {
        const [{ won }] = await sqlRows<{ won: boolean }>(tx, `SELECT pg_try_advisory_xact_lock($1::bigint) AS won`, [HOUSEKEEPING_LOCK_KEY]);
        tried?.(won);
        return won ? work(tx) : undefined;
      }),
    );
  }

  /**
   * Deletes up to `limit` expired finished tasks of the plans `planIds`. `created_at < cutoff` is implied by
   * the expiry (executed_at >= created_at) and lets tasks_plan_idx narrow the scan. A live plan's latest
   * task (greatest (created_at, id), as PlansRepository.latestTask orders) is kept whatever its age: the
   * plan's next occurrence and its summary are derived from it. A task added meanwhile only makes an older
   * one "not latest", so the snapshot's answer never deletes a task that is latest now.
   */
  async deleteFinishedTasks(tx: EntityManager, planIds: string[], retentionMs: number, limit: number): Promise<number> {
    const rows = await sqlRows<{ id: string }>(
      tx,
      `DELETE FROM tasks d USING (
         SELECT t.id, t.partition_key FROM tasks t JOIN plans p ON p.id = t.plan_id
         WHERE t.plan_id = ANY($1::uuid[])
           AND t.created_at < ${cutoff('$2')}
           AND COALESCE(t.executed_at, t.created_at) < ${cutoff('$2')}
           AND ${FINISHED_TASK}
           AND (p.status NOT IN ${LIVE_PLAN}
                OR EXISTS (SELECT 1 FROM tasks n WHERE n.plan_id = t.plan_id AND (n.created_at, n.id) > (t.created_at, t.id)))
         LIMIT $3
         FOR UPDATE OF t SKIP LOCKED
       ) doomed
       WHERE d.id = doomed.id AND d.partition_key = doomed.partition_key
       RETURNING d.id`,
      [planIds, retentionMs, limit],
    );
    return rows.length;
  }

  /**
   * Deletes up to `limit` expired error logs of the plans `planIds` whose task is gone (or that name no
   * task): the logs of a task that is kept stay with it. The ids are picked into an array first, so the
   * delete reads the table by primary key (an `IN (subquery)` may be planned as a scan of it).
   */
  async deleteOrphanedErrorLogs(tx: EntityManager, planIds: string[], retentionMs: number, limit: number): Promise<number> {
    const rows = await sqlRows<{ id: string }>(
      tx,
      `DELETE FROM error_logs WHERE id = ANY(ARRAY(
         SELECT e.id FROM error_logs e
         WHERE e.plan_id = ANY($1::uuid[])
           AND e.timestamp < ${cutoff('$2')}
           AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = e.task_id)
         LIMIT $3
         FOR UPDATE SKIP LOCKED
       )) RETURNING id`,
      [planIds, retentionMs, limit],
    );
    return rows.length;
  }

  /**
   * Deletes the plans of the window `planIds` (ascending) that are finished (COMPLETED or CANCELLED),
   * unchanged since before the cutoff and without tasks or child plans, with their remaining error logs
   * (both reference the plan). A plan with children stays until they are gone (plans_parent_idx): a
   * cancel walks descendants through every generation, and must still reach a live grandchild through a
   * finished parent. A finished tree therefore goes leaf first, a generation per pass. Two statements: the first locks the candidates (skipping a plan the hot path holds, and
   * re-checking status and updated_at on the locked version). Once a plan is locked no task or log can be
   * added to it (the insert's foreign-key check must share-lock the plan row), so the second statement,
   * with a fresh snapshot, sees every task committed meanwhile and leaves such a plan alone.
   */
  async deleteFinishedPlans(tx: EntityManager, planIds: string[], retentionMs: number): Promise<{ plans: number; errorLogs: number }> {
    if (planIds.length === 0) return { plans: 0, errorLogs: 0 };
    // The window as its primary-key range, which the planner reads through plans_pkey (a list of 500 ids can
    // be estimated as a large share of a small table, and read by a scan of all of it: the hot table, once
    // per window). A plan created inside the range since the window was read is judged by the same rules.
    const locked = await sqlRows<{ id: string }>(
      tx,
      `SELECT p.id FROM plans p
       WHERE p.id BETWEEN $1::uuid AND $3::uuid
         AND p.status IN ${FINISHED_PLAN}
         AND p.updated_at < ${cutoff('$2')}
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.plan_id = p.id)
         AND NOT EXISTS (SELECT 1 FROM plans c WHERE c.parent_plan_id = p.id)
       FOR UPDATE SKIP LOCKED`,
      [planIds[0], retentionMs, planIds[planIds.length - 1]],
    );
    if (locked.length === 0) return { plans: 0, errorLogs: 0 };
    // The plans' foreign keys are checked at the end of the statement, after the logs' delete. The arrays
    // keep both deletes on their indexes whatever the planner guesses of `doomed`.
    const [counts] = await sqlRows<{ plans: number; error_logs: number }>(
      tx,
      `WITH doomed AS (
         SELECT p.id FROM plans p
         WHERE p.id BETWEEN $2::uuid AND $3::uuid AND p.id = ANY($1::uuid[])
           AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.plan_id = p.id)
         AND NOT EXISTS (SELECT 1 FROM plans c WHERE c.parent_plan_id = p.id)
       ), logs AS (
         DELETE FROM error_logs WHERE plan_id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING id
       ), gone AS (
         DELETE FROM plans WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING id
       )
       SELECT (SELECT count(*) FROM gone)::int AS plans, (SELECT count(*) FROM logs)::int AS error_logs`,
      [locked.map((r) => r.id), planIds[0], planIds[planIds.length - 1]],
    );
    return { plans: counts.plans, errorLogs: counts.error_logs };
  }

  /** Deletes up to `limit` expired dead letters, oldest first (dead_letters_created_idx). */
  async deleteDeadLetters(tx: EntityManager, retentionMs: number, limit: number): Promise<number> {
    const rows = await sqlRows<{ id: string }>(
      tx,
      `DELETE FROM dead_letters WHERE id = ANY(ARRAY(
         SELECT id FROM dead_letters WHERE created_at < ${cutoff('$1')}
         ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
       )) RETURNING id`,
      [retentionMs, limit],
    );
    return rows.length;
  }
}
