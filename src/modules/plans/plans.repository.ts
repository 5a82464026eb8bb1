import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager, FindOptionsWhere, In, IsNull, Not } from 'typeorm';
import { Batcher } from '../../common/batcher';
import { sqlRows } from '../../connectors/repo/sql';
import { withTransientRetry } from '../../connectors/repo/transient';
import { ErrorLogEntity, ErrorLogKind } from '../../connectors/repo/entities/error-log.entity';
import { PlanEntity, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskEntity, TaskStatus } from '../../connectors/repo/entities/task.entity';
import { UserEntity } from '../../connectors/repo/entities/user.entity';

export const PAGE_SIZE = 20;

/** What GET /v1/plan's `status` filter accepts: the v1 statuses and PAUSED. */
export const PLAN_FILTERS = [PlanStatus.Created, PlanStatus.Running, PlanStatus.Completed, PlanStatus.Cancelled, 'PAUSED'] as const;
export type PlanFilter = (typeof PLAN_FILTERS)[number];

export type PlanChanges = Partial<Pick<PlanEntity, 'periodTime' | 'maxFailureRetry' | 'hook' | 'status' | 'updatedAt' | 'pausedAt'>>;
const CHANGE_COLUMNS: Record<keyof PlanChanges, string> = {
  pausedAt: 'paused_at',
  periodTime: 'period_time',
  maxFailureRetry: 'max_failure_retry',
  hook: 'hook',
  status: 'status',
  updatedAt: 'updated_at',
};

/** The descendants of $1 by parent_plan_id; UNION (not ALL) stops on a cycle should the data ever hold one. */
const DESCENDANTS = `
  WITH RECURSIVE tree AS (
    SELECT id FROM plans WHERE parent_plan_id = $1
    UNION
    SELECT p.id FROM plans p JOIN tree t ON p.parent_plan_id = t.id
  )`;

/** Narrow, intention-named queries for the plans API. Methods taking a manager run inside its transaction. */
@Injectable()
export class PlansRepository {
  /**
   * Submissions stored together; a few batches at once, so a slow commit does not stall the rest. A batch
   * that fails runs again while the failure is transient, then each submission alone (Batcher), so neither
   * one bad row nor one lost connection fails the requests that happened to share its statement.
   */
  private readonly inserts = new Batcher<{ plan: PlanEntity; task: TaskEntity }, boolean>((items) => this.insertBatch(items), {
    maxBatch: 500,
    maxInFlight: 4,
    retry: withTransientRetry,
  });

  constructor(private readonly ds: DataSource) {}

  /**
   * Runs `fn` in a transaction, and the whole transaction again after a transient failure (a lost
   * connection, a deadlock): `fn` must do nothing but its queries, and tolerate finding its own earlier
   * work done should a commit have applied although its answer was lost.
   */
  transaction<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return withTransientRetry(() => this.ds.transaction(fn));
  }

  /**
   * Stores a plan with its first task, if its user exists; false when the user does not. Submissions that
   * arrive together are stored by one statement (one commit): see insertBatch.
   */
  insertPlanWithTask(plan: PlanEntity, task: TaskEntity): Promise<boolean> {
    return this.inserts.add({ plan, task });
  }

  /**
   * Plans and their first tasks, each pair only when its user exists, in one statement: rows travel as one
   * JSON document, so a batch costs one round trip whatever its size. Running it again is harmless: the
   * ids were chosen before the first run, so a conflict can only be this batch's own rows, stored by a run
   * whose commit applied although its answer was lost (they count as stored).
   */
  private async insertBatch(batch: { plan: PlanEntity; task: TaskEntity }[]): Promise<boolean[]> {
    const rows = batch.map(({ plan, task }) => ({
      id: plan.id, user_id: plan.userId, description: plan.description, period_time: plan.periodTime, type: plan.type,
      status: plan.status, max_failure_retry: plan.maxFailureRetry, action: plan.action, hook: plan.hook,
      parent_plan_id: plan.parentPlanId, created_at: plan.createdAt, updated_at: plan.updatedAt, trace_context: plan.traceContext ?? null,
      task_id: task.id, partition_key: task.partitionKey, task_status: task.status, next_execution_at: task.nextExecutionAt,
    }));
    const stored = await sqlRows<{ id: string }>(
      this.ds,
      `WITH v AS (
         SELECT * FROM jsonb_to_recordset($1::jsonb) AS v(
           id uuid, user_id uuid, description text, period_time text, type jsonb, status text, max_failure_retry int,
           action jsonb, hook jsonb, parent_plan_id uuid, created_at timestamptz, updated_at timestamptz, trace_context text,
           task_id uuid, partition_key int, task_status text, next_execution_at timestamptz)
       ), ok AS (
         SELECT * FROM v WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = v.user_id)
       ), p AS (
         INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook,
                            parent_plan_id, created_at, updated_at, trace_context)
         SELECT id, user_id, description, period_time, type, status, max_failure_retry, action, hook,
                parent_plan_id, created_at, updated_at, trace_context FROM ok
         ON CONFLICT (id) DO NOTHING
       ), t AS (
         INSERT INTO tasks (id, partition_key, plan_id, status, attempt, created_at, next_execution_at)
         SELECT task_id, partition_key, id, task_status, 0, created_at, next_execution_at FROM ok
         ON CONFLICT DO NOTHING
       )
       SELECT id FROM ok`,
      [JSON.stringify(rows)],
    );
    const ids = new Set(stored.map((r) => r.id));
    return batch.map(({ plan }) => ids.has(plan.id));
  }

  findPlan(id: string): Promise<PlanEntity | null> {
    return withTransientRetry(() => this.ds.getRepository(PlanEntity).findOne({ where: { id } }));
  }

  /**
   * FOR NO KEY UPDATE, the lock an UPDATE of non-key columns takes anyway, not FOR UPDATE: a claim inserting
   * the plan's next task checks the foreign key with FOR KEY SHARE, which FOR UPDATE would make wait while the
   * claim holds task rows this transaction may want next (a cancel): a deadlock.
   */
  findPlanForUpdate(m: EntityManager, id: string): Promise<PlanEntity | null> {
    return m.getRepository(PlanEntity).findOne({ where: { id }, lock: { mode: 'for_no_key_update' } });
  }

  /** Writes only the given columns, so concurrent writers of other columns are never overwritten. */
  async updatePlanFields(m: EntityManager, id: string, fields: PlanChanges): Promise<void> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    for (const [key, column] of Object.entries(CHANGE_COLUMNS) as [keyof PlanChanges, string][]) {
      const value = fields[key];
      if (value === undefined) continue;
      params.push(key === 'hook' ? JSON.stringify(value) : value);
      sets.push(`${column} = $${params.length}`);
    }
    if (sets.length > 0) await m.query(`UPDATE plans SET ${sets.join(', ')} WHERE id = $1`, params);
  }

  latestTask(planId: string): Promise<TaskEntity | null> {
    return withTransientRetry(() =>
      this.ds.getRepository(TaskEntity).findOne({ where: { planId }, order: { createdAt: 'DESC', id: 'DESC' } }),
    );
  }

  /**
   * The plan's newest `limit` tasks, oldest first: the inner query walks tasks_plan_idx (plan_id, created_at)
   * backwards and stops after `limit` rows, so a plan with a day of 1 Hz tasks costs no more than a new one.
   */
  newestTasks(planId: string, limit: number): Promise<TaskEntity[]> {
    return this.tasksQuery(
      `SELECT * FROM (
         SELECT ${TASK_COLUMNS} FROM tasks WHERE plan_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2
       ) newest ORDER BY created_at, id`,
      [planId, limit],
    );
  }

  /** The newest `limit` error logs, oldest first, through error_logs_plan_idx (plan_id, timestamp): see newestTasks. */
  newestErrorLogs(planId: string, limit: number): Promise<ErrorLogEntity[]> {
    return this.errorLogsQuery(
      `SELECT ${ERROR_LOG_COLUMNS} FROM (
         SELECT * FROM error_logs WHERE plan_id = $1 ORDER BY timestamp DESC, id DESC LIMIT $2
       ) e ORDER BY e.timestamp, e.id`,
      [planId, limit],
    );
  }

  /**
   * Page `page` (PAGE_SIZE rows) of the plan's tasks, oldest first, and their count. Oldest first, so the
   * tasks a live plan adds land after the last page and paging neither repeats nor skips a row meanwhile
   * (retention deleting the oldest rows mid-walk does shift later pages: the cost of page indexes). OFFSET
   * still steps over the earlier rows in the index, so a deep page costs in proportion to its index.
   */
  async pageOfTasks(planId: string, page: number): Promise<{ tasks: TaskEntity[]; total: number }> {
    const [tasks, total] = await Promise.all([
      this.tasksQuery(`SELECT ${TASK_COLUMNS} FROM tasks WHERE plan_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3`, [
        planId, PAGE_SIZE, page * PAGE_SIZE,
      ]),
      this.count(`SELECT count(*)::int AS n FROM tasks WHERE plan_id = $1`, planId),
    ]);
    return { tasks, total };
  }

  /** Page `page` of the plan's error logs, oldest first, and their count: see pageOfTasks. */
  async pageOfErrorLogs(planId: string, page: number): Promise<{ errorLogs: ErrorLogEntity[]; total: number }> {
    const [errorLogs, total] = await Promise.all([
      this.errorLogsQuery(`SELECT ${ERROR_LOG_COLUMNS} FROM error_logs e WHERE e.plan_id = $1 ORDER BY e.timestamp, e.id LIMIT $2 OFFSET $3`, [
        planId, PAGE_SIZE, page * PAGE_SIZE,
      ]),
      this.count(`SELECT count(*)::int AS n FROM error_logs WHERE plan_id = $1`, planId),
    ]);
    return { errorLogs, total };
  }

  private async tasksQuery(sql: string, params: unknown[]): Promise<TaskEntity[]> {
    const rows = await withTransientRetry(() => sqlRows<TaskRow>(this.ds, sql, params));
    return rows.map(toTask);
  }

  private async errorLogsQuery(sql: string, params: unknown[]): Promise<ErrorLogEntity[]> {
    const rows = await withTransientRetry(() => sqlRows<ErrorLogRow>(this.ds, sql, params));
    return rows.map(toErrorLog);
  }

  private async count(sql: string, planId: string): Promise<number> {
    const [row] = await withTransientRetry(() => sqlRows<{ n: number }>(this.ds, sql, [planId]));
    return row.n;
  }

  /**
   * A page of the user's plans, newest first, and their count; `status` narrows both. PAUSED is the
   * state GET /v1/plan/{id}/state shows (paused_at set on a live plan); any other value is the v1 status,
   * which a paused plan keeps (CREATED or RUNNING). No index holds status (Schedules migration): the filter
   * walks the user's plans by plans_user_created_idx.
   */
  async pageOfUser(userId: string, page: number, status?: PlanFilter): Promise<{ plans: PlanEntity[]; total: number }> {
    const repo = this.ds.getRepository(PlanEntity);
    const where: FindOptionsWhere<PlanEntity> =
      status === undefined
        ? { userId }
        : status === 'PAUSED'
          ? { userId, pausedAt: Not(IsNull()), status: In([PlanStatus.Created, PlanStatus.Running]) }
          : { userId, status };
    const [plans, total] = await Promise.all([
      withTransientRetry(() => repo.find({ where, order: { createdAt: 'DESC', id: 'DESC' }, skip: page * PAGE_SIZE, take: PAGE_SIZE })),
      withTransientRetry(() => repo.count({ where })),
    ]);
    return { plans, total };
  }

  /**
   * Pause: the plan's pending occurrences (CREATED, and one waiting under BUFFER_ONE) become PAUSED, out of
   * every claim's way. Found through tasks_plan_idx, as cancel finds them. A claim that held one of them
   * meanwhile has made it PROCESSING and may insert the next one, which this statement does not see: the
   * executor hands the first back (ExecutorService, a first attempt of a paused plan) and the claim holds
   * the second when it comes due (TaskClaimsRepository), so neither runs.
   */
  async pausePendingTasks(m: EntityManager, planId: string): Promise<void> {
    await m.query(`UPDATE tasks SET status = $2, lease_until = NULL WHERE plan_id = $1 AND status IN ($3, $4)`, [
      planId, TaskStatus.Paused, TaskStatus.Created, TaskStatus.Buffered,
    ]);
  }

  /**
   * When the plan's next occurrence is due: the earliest pending (CREATED or BUFFERED) task among its newest
   * ten and the head of its schedule (the newest task without a successor: run-now extras have one, so any
   * number of them cannot hide it). Both are short walks of tasks_plan_idx, cheap for a long history.
   */
  async nextDue(planId: string): Promise<Date | null> {
    const [row] = await withTransientRetry(() =>
      sqlRows<{ due: Date | null }>(
        this.ds,
        `SELECT min(next_execution_at) AS due FROM (
           (SELECT status, next_execution_at FROM tasks WHERE plan_id = $1 ORDER BY created_at DESC, id DESC LIMIT 10)
           UNION ALL
           (SELECT status, next_execution_at FROM tasks WHERE plan_id = $1 AND NOT next_created ORDER BY created_at DESC, id DESC LIMIT 1)
         ) newest WHERE status IN ($2, $3)`,
        [planId, TaskStatus.Created, TaskStatus.Buffered],
      ),
    );
    return row?.due ?? null;
  }

  /** The plan's PAUSED tasks, locked, through tasks_paused_idx. */
  pausedTasks(m: EntityManager, planId: string): Promise<{ id: string; partition_key: number; next_created: boolean; next_execution_at: Date | null }[]> {
    return sqlRows(m, `SELECT id, partition_key, next_created, next_execution_at FROM tasks WHERE plan_id = $1 AND status = $2 FOR UPDATE`, [
      planId, TaskStatus.Paused,
    ]);
  }

  /** Makes a PAUSED task due again at `due`. */
  async resumeTask(m: EntityManager, id: string, partitionKey: number, due: Date): Promise<void> {
    await m.query(`UPDATE tasks SET status = $3, next_execution_at = $4 WHERE id = $1 AND partition_key = $2 AND status = $5`, [
      id, partitionKey, TaskStatus.Created, due, TaskStatus.Paused,
    ]);
  }

  /** Cancels PAUSED tasks that resume drops (occurrences missed while paused are not caught up). */
  async dropPausedTasks(m: EntityManager, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await m.query(`UPDATE tasks SET status = $2 WHERE id = ANY($1::uuid[]) AND status = $3`, [ids, TaskStatus.Cancelled, TaskStatus.Paused]);
  }

  /** A OneTime plan's task that has not run yet, locked; null once it has been dispatched. */
  async pendingTask(m: EntityManager, planId: string): Promise<TaskEntity | null> {
    const rows = await sqlRows<TaskRow>(m, `SELECT ${TASK_COLUMNS} FROM tasks WHERE plan_id = $1 AND status = $2 ORDER BY created_at LIMIT 1 FOR UPDATE`, [
      planId, TaskStatus.Created,
    ]);
    return rows.length > 0 ? toTask(rows[0]) : null;
  }

  /** Moves a pending task's due time (run now of a OneTime plan). */
  async rescheduleTask(m: EntityManager, task: TaskEntity, due: Date): Promise<TaskEntity> {
    await m.query(`UPDATE tasks SET next_execution_at = $3 WHERE id = $1 AND partition_key = $2`, [task.id, task.partitionKey, due]);
    return { ...task, nextExecutionAt: due };
  }

  /** An extra task (run now): `next_created` is set, so claiming it creates no successor and the grid stays. */
  async insertExtraTask(m: EntityManager, task: TaskEntity): Promise<void> {
    await m.query(
      `INSERT INTO tasks (id, partition_key, plan_id, status, attempt, next_created, created_at, next_execution_at)
       VALUES ($1, $2, $3, $4, 0, true, $5, $6)`,
      [task.id, task.partitionKey, task.planId, TaskStatus.Created, task.createdAt, task.nextExecutionAt],
    );
  }

  /**
   * Cancels every live descendant of `rootId`, and the pending (CREATED, PAUSED, BUFFERED) tasks of the root (when it is cancelled)
   * and of every cancelled descendant, so no scheduler claims them again.
   */
  async cancelDescendantsAndPendingTasks(m: EntityManager, rootId: string, now: Date): Promise<void> {
    await m.query(
      `${DESCENDANTS}
       UPDATE plans SET status = $2, updated_at = $3
       WHERE id IN (SELECT id FROM tree) AND status IN ($4, $5)`,
      [rootId, PlanStatus.Cancelled, now, PlanStatus.Created, PlanStatus.Running],
    );
    // Twice: a claim in progress holds a task row this statement then waits for, and the claim may insert
    // the plan's next task, which this statement's snapshot (taken before it waited) cannot see; the second
    // statement, with a snapshot taken after that claim committed, cancels it. Without a wait, it finds
    // nothing (index lookups). The plans are looked up by id (a join, not `id = $1 OR id IN tree`, which
    // scanned every plan while holding the plan's lock), their tasks by tasks_plan_idx.
    for (let pass = 0; pass < 2; pass++) {
      await m.query(
        `${DESCENDANTS}
         UPDATE tasks SET status = $2
         WHERE status IN ($3, $5, $6)
           AND plan_id IN (SELECT p.id FROM (SELECT $1::uuid AS id UNION ALL SELECT id FROM tree) c JOIN plans p ON p.id = c.id WHERE p.status = $4)`,
        [rootId, TaskStatus.Cancelled, TaskStatus.Created, PlanStatus.Cancelled, TaskStatus.Paused, TaskStatus.Buffered],
      );
    }
  }

  /** The user's live (CREATED/RUNNING) plans, for server.yml's maxLivePlansPerUser. */
  async countLivePlans(userId: string): Promise<number> {
    const [row] = await withTransientRetry(() =>
      sqlRows<{ n: number }>(this.ds, `SELECT count(*)::int AS n FROM plans WHERE user_id = $1 AND status IN ($2, $3)`, [
        userId, PlanStatus.Created, PlanStatus.Running,
      ]),
    );
    return row.n;
  }
}

/** Every column of tasks, as TaskRow names them. */
const TASK_COLUMNS =
  'id, partition_key, plan_id, status, attempt, dispatch_seq, retry_at, next_created, created_at, executed_at, next_execution_at, lease_until, retry_limit';

interface TaskRow {
  id: string;
  partition_key: number;
  plan_id: string;
  status: TaskStatus;
  attempt: number;
  dispatch_seq: number;
  retry_at: Date | null;
  next_created: boolean;
  created_at: Date;
  executed_at: Date | null;
  next_execution_at: Date | null;
  lease_until: Date | null;
  retry_limit: number | null;
}

function toTask(r: TaskRow): TaskEntity {
  return {
    id: r.id, partitionKey: r.partition_key, planId: r.plan_id, status: r.status, attempt: r.attempt, dispatchSeq: r.dispatch_seq,
    retryAt: r.retry_at, nextCreated: r.next_created, createdAt: r.created_at, executedAt: r.executed_at,
    nextExecutionAt: r.next_execution_at, leaseUntil: r.lease_until, retryLimit: r.retry_limit,
  };
}

/**
 * Every column of error_logs `e`; the bigint id as text, as TypeORM gives it (drivers differ on bigint). The
 * queries order by `e.id`, qualified: a bare `id` would name this text output column, which sorts "10" before "9".
 */
const ERROR_LOG_COLUMNS = 'e.id::text AS id, e.plan_id, e.task_id, e.type, e.error, e.timestamp';

interface ErrorLogRow {
  id: string;
  plan_id: string;
  task_id: string | null;
  type: ErrorLogKind;
  error: string;
  timestamp: Date;
}

function toErrorLog(r: ErrorLogRow): ErrorLogEntity {
  return { id: r.id, planId: r.plan_id, taskId: r.task_id, type: r.type, error: r.error, timestamp: r.timestamp };
}
