import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { ErrorLogEntity } from '../../connectors/repo/entities/error-log.entity';
import { PlanEntity, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskEntity, TaskStatus } from '../../connectors/repo/entities/task.entity';
import { UserEntity } from '../../connectors/repo/entities/user.entity';

export const PAGE_SIZE = 20;

export type PlanChanges = Partial<Pick<PlanEntity, 'periodTime' | 'maxFailureRetry' | 'hook' | 'status' | 'updatedAt'>>;
const CHANGE_COLUMNS: Record<keyof PlanChanges, string> = {
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
  constructor(private readonly ds: DataSource) {}

  transaction<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(fn);
  }

  async userExists(m: EntityManager, userId: string): Promise<boolean> {
    return (await m.count(UserEntity, { where: { id: userId } })) > 0;
  }

  async insertPlanWithTask(m: EntityManager, plan: PlanEntity, task: TaskEntity): Promise<void> {
    // Plain SQL: TypeORM's insert() typing recurses without end into the jsonb columns' recursive type.
    await m.query(
      `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook,
                          parent_plan_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [
        plan.id, plan.userId, plan.description, plan.periodTime, JSON.stringify(plan.type), plan.status,
        plan.maxFailureRetry, JSON.stringify(plan.action), JSON.stringify(plan.hook), plan.parentPlanId,
        plan.createdAt, plan.updatedAt,
      ],
    );
    await m.query(
      `INSERT INTO tasks (id, partition_key, plan_id, status, attempt, created_at, executed_at, next_execution_at, lease_until)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [task.id, task.partitionKey, task.planId, task.status, task.attempt, task.createdAt, task.executedAt,
        task.nextExecutionAt, task.leaseUntil],
    );
  }

  findPlan(id: string): Promise<PlanEntity | null> {
    return this.ds.getRepository(PlanEntity).findOne({ where: { id } });
  }

  findPlanForUpdate(m: EntityManager, id: string): Promise<PlanEntity | null> {
    return m.getRepository(PlanEntity).findOne({ where: { id }, lock: { mode: 'pessimistic_write' } });
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
    return this.ds.getRepository(TaskEntity).findOne({ where: { planId }, order: { createdAt: 'DESC', id: 'DESC' } });
  }

  tasksOf(planId: string): Promise<TaskEntity[]> {
    return this.ds.getRepository(TaskEntity).find({ where: { planId }, order: { createdAt: 'ASC', id: 'ASC' } });
  }

  errorLogsOf(planId: string): Promise<ErrorLogEntity[]> {
    return this.ds.getRepository(ErrorLogEntity).find({ where: { planId }, order: { timestamp: 'ASC', id: 'ASC' } });
  }

  async pageOfUser(userId: string, page: number): Promise<{ plans: PlanEntity[]; total: number }> {
    const repo = this.ds.getRepository(PlanEntity);
    const [plans, total] = await Promise.all([
      repo.find({ where: { userId }, order: { createdAt: 'DESC', id: 'DESC' }, skip: page * PAGE_SIZE, take: PAGE_SIZE }),
      repo.count({ where: { userId } }),
    ]);
    return { plans, total };
  }

  /**
   * Cancels every live descendant of `rootId`, and the CREATED tasks of the root (when it is cancelled)
   * and of every cancelled descendant, so no scheduler claims them again.
   */
  async cancelDescendantsAndPendingTasks(m: EntityManager, rootId: string, now: Date): Promise<void> {
    await m.query(
      `${DESCENDANTS}
       UPDATE plans SET status = $2, updated_at = $3
       WHERE id IN (SELECT id FROM tree) AND status IN ($4, $5)`,
      [rootId, PlanStatus.Cancelled, now, PlanStatus.Created, PlanStatus.Running],
    );
    await m.query(
      `${DESCENDANTS}
       UPDATE tasks SET status = $2
       WHERE status = $3
         AND plan_id IN (SELECT id FROM plans WHERE status = $4 AND (id = $1 OR id IN (SELECT id FROM tree)))`,
      [rootId, TaskStatus.Cancelled, TaskStatus.Created, PlanStatus.Cancelled],
    );
  }
}
