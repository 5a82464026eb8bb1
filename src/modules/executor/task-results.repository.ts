import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { sqlRows } from '../../connectors/repo/sql';
import { ErrorLogKind } from '../../connectors/repo/entities/error-log.entity';
import { JsonObject, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../../connectors/repo/entities/task.entity';
import { ExecutorMessage } from '../../pipeline/executor-message';

export interface StartedTask {
  planStatus: PlanStatus;
  planType: JsonObject;
  /** The plan's hooks as they are now (a PATCH applies to later events). */
  hooks: JsonObject[];
  /** The task's due time (its grid slot), epoch ms. */
  dueAt: number;
}

/**
 * Every write is conditional on the task still being PROCESSING under the message's dispatch_seq, so a
 * stale or duplicate message changes nothing and a CANCELLED task is never overwritten.
 */
const FENCE = `t.id = $1 AND t.partition_key = $2 AND t.dispatch_seq = $3 AND t.status = '${TaskStatus.Processing}'`;

@Injectable()
export class TaskResultsRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Takes the task for this message: extends its lease for the run and returns the plan's state, or null
   * when the message is stale. The plan row is read FOR SHARE, so a cancel in progress finishes first:
   * once a cancel has returned, no execution starts.
   */
  async start(m: ExecutorMessage, leaseUntil: Date): Promise<StartedTask | null> {
    const rows = await sqlRows<{ status: PlanStatus; type: JsonObject; hook: JsonObject[]; due: Date }>(
      this.ds,
      `WITH p AS (SELECT status, type, hook FROM plans WHERE id = $5 FOR SHARE)
       UPDATE tasks t SET lease_until = $4 FROM p WHERE ${FENCE}
       RETURNING p.status, p.type, p.hook, t.next_execution_at AS due`,
      [m.taskId, m.partitionKey, m.dispatchSeq, leaseUntil, m.planId],
    );
    const row = rows[0];
    return row ? { planStatus: row.status, planType: row.type, hooks: row.hook, dueAt: row.due.getTime() } : null;
  }

  async cancelled(m: ExecutorMessage): Promise<void> {
    await this.ds.query(`UPDATE tasks t SET status = $4, lease_until = NULL WHERE ${FENCE}`, [
      m.taskId, m.partitionKey, m.dispatchSeq, TaskStatus.Cancelled,
    ]);
  }

  /**
   * SUCCESS (also FAILURE → SUCCESS after a retry), and the plan COMPLETED when this was its last run.
   * Says whether the result was recorded and whether this call completed the plan (ON_COMPLETION fires then).
   */
  async succeeded(m: ExecutorMessage, at: Date, completesPlan: boolean): Promise<{ recorded: boolean; completed: boolean }> {
    return this.ds.transaction(async (tx) => {
      const done = await sqlRows(
        tx,
        `UPDATE tasks t SET status = $4, executed_at = $5, lease_until = NULL WHERE ${FENCE} RETURNING t.id`,
        [m.taskId, m.partitionKey, m.dispatchSeq, TaskStatus.Success, at],
      );
      const recorded = done.length > 0;
      const completed = recorded && completesPlan && (await this.complete(tx, m.planId, at));
      return { recorded, completed };
    });
  }

  /**
   * Records a failed attempt: the error log (full text), the task FAILURE, and either the time of the
   * next attempt or, when none remains, the end of the task (and of a OneTime plan).
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
        m.planId, m.taskId, ErrorLogKind.Executor, error, at,
      ]);
      if (completesPlan) await this.complete(tx, m.planId, at);
      return true;
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
