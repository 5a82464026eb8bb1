import { randomInt, randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { sqlRows } from '../../connectors/repo/sql';
import { JsonObject, PlanStatus } from '../../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../../connectors/repo/entities/task.entity';
import { PLAN_TYPE } from '../plans/dto/discriminators';
import { parsePeriod } from '../plans/period';
import { RUN_LEASE_MARGIN_MS } from '../../pipeline/executor-message';

/** Why a task was claimed: a fresh occurrence, a retry after a failure, or a dispatch whose lease lapsed. */
export type ClaimKind = 'due' | 'retry' | 'lease';

export interface ClaimedTask {
  kind: ClaimKind;
  taskId: string;
  partitionKey: number;
  planId: string;
  attempt: number;
  dispatchSeq: number;
  /** When this dispatch should reach the executor (epoch ms). */
  dueAt: number;
  action: JsonObject;
  maxFailureRetry: number;
  /** Until when this claim's lease runs (epoch ms), the run of the action included. */
  leaseUntil: number;
}

interface ClaimedRow {
  id: string;
  partition_key: number;
  plan_id: string;
  attempt: number;
  dispatch_seq: number;
  due_at: Date;
  next_created: boolean;
  lease_until: Date;
}

interface PlanRow {
  id: string;
  type: JsonObject;
  status: PlanStatus;
  action: JsonObject;
  period_time: string;
  max_failure_retry: number;
}

/**
 * A claim's lease (ms past its due time, or past now when it is claimed late): the scheduler's leaseTime to
 * get it published and picked up, plus the run itself, i.e. the action's timeout and RUN_LEASE_MARGIN_MS
 * ($6), the same as runLeaseMs() computes. An executor that starts the task within leaseTime then has all
 * the lease it needs and starts it without writing (TaskResultsRepository.check).
 */
const LEASE_MS = `($5::float8 + $6::float8 + CASE WHEN jsonb_typeof(p.action->'timeout') = 'number'
  THEN GREATEST((p.action->>'timeout')::float8, 0) ELSE 0 END)`;

/**
 * Each claim is one statement: pick rows with FOR UPDATE SKIP LOCKED and flip them in the same UPDATE, so
 * concurrent schedulers (even on overlapping partitions) never claim the same row (the original's
 * read-then-update could). Every claim bumps dispatch_seq, the fencing token the executor checks.
 * The outer UPDATE repeats the partition filter so that it prunes to this loop's partitions: without it,
 * on stale statistics, the planner hash-joined the picked rows against every partition of tasks.
 */
const CLAIM: Record<ClaimKind, string> = {
  due: `
    WITH picked AS (
      SELECT id, partition_key, plan_id, next_execution_at AS due FROM tasks
      WHERE partition_key = ANY($1::int[]) AND status = '${TaskStatus.Created}' AND next_execution_at <= $2
      ORDER BY next_execution_at LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET status = '${TaskStatus.Processing}', attempt = t.attempt + 1, dispatch_seq = t.dispatch_seq + 1,
      lease_until = GREATEST(picked.due, $4::timestamptz) + ${LEASE_MS} * interval '1 millisecond'
    FROM picked LEFT JOIN plans p ON p.id = picked.plan_id
    WHERE t.id = picked.id AND t.partition_key = picked.partition_key AND t.partition_key = ANY($1::int[])
    RETURNING t.id, t.partition_key, t.plan_id, t.attempt, t.dispatch_seq, picked.due AS due_at, t.next_created, t.lease_until`,
  retry: `
    WITH picked AS (
      SELECT id, partition_key, plan_id, retry_at AS due FROM tasks
      WHERE partition_key = ANY($1::int[]) AND status = '${TaskStatus.Failure}' AND retry_at IS NOT NULL AND retry_at <= $2
      ORDER BY retry_at LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET status = '${TaskStatus.Processing}', attempt = t.attempt + 1, dispatch_seq = t.dispatch_seq + 1,
      retry_at = NULL, lease_until = GREATEST(picked.due, $4::timestamptz) + ${LEASE_MS} * interval '1 millisecond'
    FROM picked LEFT JOIN plans p ON p.id = picked.plan_id
    WHERE t.id = picked.id AND t.partition_key = picked.partition_key AND t.partition_key = ANY($1::int[])
    RETURNING t.id, t.partition_key, t.plan_id, t.attempt, t.dispatch_seq, picked.due AS due_at, t.next_created, t.lease_until`,
  // A lapsed lease means the scheduler or executor holding the task died: dispatch it again now.
  lease: `
    WITH picked AS (
      SELECT id, partition_key, plan_id FROM tasks
      WHERE partition_key = ANY($1::int[]) AND status = '${TaskStatus.Processing}' AND lease_until < $4
      ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
    )
    UPDATE tasks t SET dispatch_seq = t.dispatch_seq + 1, lease_until = $4::timestamptz + ${LEASE_MS} * interval '1 millisecond'
    -- ($2, the horizon, is unused here; referenced only so all three statements take the same parameters.)
    FROM picked LEFT JOIN plans p ON p.id = picked.plan_id
    WHERE t.id = picked.id AND t.partition_key = picked.partition_key AND t.partition_key = ANY($1::int[]) AND $2::timestamptz IS NOT NULL
    RETURNING t.id, t.partition_key, t.plan_id, t.attempt, t.dispatch_seq, $4::timestamptz AS due_at, t.next_created, t.lease_until`,
};

export interface ClaimOptions {
  partitions: number[];
  /** Claim work due up to this instant (epoch ms). */
  horizon: number;
  limit: number;
  /** ms a claim stays valid after its due time before another scheduler may dispatch it again. */
  leaseTime: number;
  /** Total partitions, for the partition key of created successor tasks. */
  totalPartitions: number;
}

@Injectable()
export class TaskClaimsRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Claims a batch and, in the same transaction: cancels claims whose plan is no longer live, creates the
   * next occurrence of each recurring plan on its grid, and moves plans CREATED → RUNNING.
   */
  claim(kind: ClaimKind, o: ClaimOptions): Promise<ClaimedTask[]> {
    return this.ds.transaction(async (m) => {
      const now = Date.now();
      const rows = await sqlRows<ClaimedRow>(m, CLAIM[kind], [
        o.partitions, new Date(o.horizon), o.limit, new Date(now), o.leaseTime, RUN_LEASE_MARGIN_MS,
      ]);
      if (rows.length === 0) return [];
      const plans = await this.plansOf(m, [...new Set(rows.map((r) => r.plan_id))]);

      const dead = rows.filter((r) => !isLive(plans.get(r.plan_id)));
      if (dead.length > 0) {
        await m.query(`UPDATE tasks SET status = $2, lease_until = NULL WHERE id = ANY($1::uuid[]) AND status = $3`, [
          dead.map((r) => r.id), TaskStatus.Cancelled, TaskStatus.Processing,
        ]);
      }
      const live = rows.filter((r) => isLive(plans.get(r.plan_id)));
      await this.createSuccessors(m, live, plans, now, o.totalPartitions);
      const starting = [...new Set(live.map((r) => r.plan_id))].filter((id) => plans.get(id)?.status === PlanStatus.Created);
      if (starting.length > 0) {
        await m.query(`UPDATE plans SET status = $2, updated_at = $3 WHERE id = ANY($1::uuid[]) AND status = $4`, [
          starting, PlanStatus.Running, new Date(now), PlanStatus.Created,
        ]);
      }
      return live.map((r) => {
        const plan = plans.get(r.plan_id)!;
        return {
          kind,
          taskId: r.id,
          partitionKey: r.partition_key,
          planId: r.plan_id,
          attempt: r.attempt,
          dispatchSeq: r.dispatch_seq,
          dueAt: r.due_at.getTime(),
          action: plan.action,
          maxFailureRetry: plan.max_failure_retry,
          leaseUntil: r.lease_until.getTime(),
        };
      });
    });
  }

  /**
   * Hands back claims a stopping scheduler will not publish, as they were before the claim, so another
   * scheduler takes them at once instead of after their lease (only while nobody re-claimed them).
   */
  async release(tasks: ClaimedTask[]): Promise<void> {
    for (const kind of ['due', 'retry', 'lease'] as const) {
      const of = tasks.filter((t) => t.kind === kind);
      if (of.length === 0) continue;
      const ids = of.map((t) => t.taskId);
      const seqs = of.map((t) => t.dispatchSeq);
      const restore =
        kind === 'due'
          ? `status = '${TaskStatus.Created}', attempt = t.attempt - 1, lease_until = NULL`
          : kind === 'retry'
            ? `status = '${TaskStatus.Failure}', attempt = t.attempt - 1, lease_until = NULL, retry_at = now()`
            : `lease_until = now()`;
      await this.ds.query(
        `UPDATE tasks t SET ${restore}
         FROM unnest($1::uuid[], $2::int[]) AS r(id, seq)
         WHERE t.id = r.id AND t.dispatch_seq = r.seq AND t.status = '${TaskStatus.Processing}'`,
        [ids, seqs],
      );
    }
  }

  private async plansOf(m: EntityManager, ids: string[]): Promise<Map<string, PlanRow>> {
    const rows: PlanRow[] = await m.query(
      `SELECT id, type, status, action, period_time, max_failure_retry FROM plans WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((p) => [p.id, p]));
  }

  private async createSuccessors(
    m: EntityManager,
    rows: ClaimedRow[],
    plans: Map<string, PlanRow>,
    now: number,
    totalPartitions: number,
  ): Promise<void> {
    const from: string[] = [];
    const next: { id: string; key: number; planId: string; due: Date }[] = [];
    for (const r of rows) {
      const plan = plans.get(r.plan_id)!;
      if (r.next_created || plan.type.type !== PLAN_TYPE.Recurring) continue;
      const due = nextDue(r.due_at.getTime(), parsePeriod(plan.period_time), plan.type.end_at, now);
      from.push(r.id);
      if (due !== null) next.push({ id: randomUUID(), key: randomInt(1, totalPartitions + 1), planId: r.plan_id, due: new Date(due) });
    }
    if (from.length === 0) return;
    await m.query(`UPDATE tasks SET next_created = true WHERE id = ANY($1::uuid[])`, [from]);
    if (next.length > 0) {
      await m.query(
        `INSERT INTO tasks (id, partition_key, plan_id, status, created_at, next_execution_at)
         SELECT r.id, r.key, r.plan_id, '${TaskStatus.Created}', $5, r.due
         FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::timestamptz[]) AS r(id, key, plan_id, due)`,
        [next.map((n) => n.id), next.map((n) => n.key), next.map((n) => n.planId), next.map((n) => n.due), new Date(now)],
      );
    }
  }
}

function isLive(plan: PlanRow | undefined): plan is PlanRow {
  return plan !== undefined && (plan.status === PlanStatus.Created || plan.status === PlanStatus.Running);
}

/**
 * The due time of the occurrence after one due at `due`, on the plan's grid (previous due + period: the
 * original used processing time + period, so schedules drifted). A bounded plan runs every slot up to and
 * including the first at or after `end_at`, so no successor follows a slot at or past it. When slots were
 * missed (the cluster was down), they coalesce into the latest slot not in the future: one catch-up run
 * now, then the grid continues.
 */
export function nextDue(due: number, period: number, endAt: unknown, now: number): number | null {
  if (typeof endAt === 'number' && due >= endAt) return null;
  // A zero period would recur in a loop; the API refuses periods under minRecurringPeriod, this guards old rows.
  const step = Math.max(period, 1);
  let next = due + step;
  if (next <= now - step) next = due + Math.floor((now - due) / step) * step;
  return next;
}
