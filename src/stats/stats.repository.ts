import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { JsonObject, PlanStatus } from '../connectors/repo/entities/plan.entity';
import { TaskStatus } from '../connectors/repo/entities/task.entity';
import { sqlRows } from '../connectors/repo/sql';
import { withTransientRetry } from '../connectors/repo/transient';
import { PLAN_TYPE } from '../modules/plans/dto/discriminators';

/** The summed counts of one bucket: succeeded, failed and the lateness histogram. */
export interface BucketCounts {
  succeeded: number;
  failed: number;
  lateness: number[];
}

/** What the fires of a plan are computed from. */
export interface PlanSchedule {
  id: string;
  userId: string;
  type: JsonObject;
  periodTime: string;
  status: PlanStatus;
  pausedAt: Date | null;
}

/** The head of a plan's schedule: its newest occurrence whose successor is not created yet. */
export interface ScheduleHead {
  status: TaskStatus;
  due: number;
}

/** The server's reads for the dashboard endpoints (src/stats). */
@Injectable()
export class StatsRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * task_stats summed per bucket over [from, to) and over the executors' sources, for one user or everyone:
   * two range scans (task_stats_user_bucket_idx for a user, task_stats_bucket_user_source_key for everyone),
   * each answering at most a row per bucket (per slot for the histogram).
   */
  async buckets(from: number, to: number, userId: string | undefined): Promise<Map<number, BucketCounts>> {
    const params: unknown[] = [new Date(from), new Date(to)];
    if (userId !== undefined) params.push(userId);
    const where = `s.bucket >= $1 AND s.bucket < $2${userId !== undefined ? ' AND s.user_id = $3' : ''}`;
    const [counts, slots] = await withTransientRetry(() =>
      Promise.all([
        sqlRows<{ at: number; succeeded: number; failed: number }>(
          this.ds,
          `SELECT (extract(epoch FROM s.bucket) * 1000)::float8 AS at, sum(s.succeeded)::float8 AS succeeded, sum(s.failed)::float8 AS failed
           FROM task_stats s WHERE ${where} GROUP BY s.bucket`,
          params,
        ),
        sqlRows<{ at: number; slot: number; n: number }>(
          this.ds,
          `SELECT (extract(epoch FROM s.bucket) * 1000)::float8 AS at, e.i::int AS slot, sum(e.c)::float8 AS n
           FROM task_stats s CROSS JOIN LATERAL unnest(s.lateness) WITH ORDINALITY AS e(c, i)
           WHERE ${where} GROUP BY s.bucket, e.i`,
          params,
        ),
      ]),
    );
    const out = new Map<number, BucketCounts>();
    const cell = (at: number): BucketCounts => {
      let c = out.get(at);
      if (!c) out.set(at, (c = { succeeded: 0, failed: 0, lateness: [] }));
      return c;
    };
    for (const r of counts) Object.assign(cell(Number(r.at)), { succeeded: Number(r.succeeded), failed: Number(r.failed) });
    for (const r of slots) {
      const c = cell(Number(r.at));
      const i = Number(r.slot) - 1; // ORDINALITY counts from 1
      while (c.lateness.length <= i) c.lateness.push(0);
      c.lateness[i] += Number(r.n);
    }
    return out;
  }

  async user(id: string): Promise<{ id: string; name: string } | null> {
    const [row] = await withTransientRetry(() => sqlRows<{ id: string; name: string }>(this.ds, `SELECT id, name FROM users WHERE id = $1`, [id]));
    return row ?? null;
  }

  async plan(id: string): Promise<PlanSchedule | null> {
    const [row] = await withTransientRetry(() =>
      sqlRows<{ id: string; user_id: string; type: JsonObject; period_time: string; status: PlanStatus; paused_at: Date | null }>(
        this.ds,
        `SELECT id, user_id, type, period_time, status, paused_at FROM plans WHERE id = $1`,
        [id],
      ),
    );
    return row
      ? { id: row.id, userId: row.user_id, type: row.type, periodTime: row.period_time, status: row.status, pausedAt: row.paused_at }
      : null;
  }

  /**
   * The plan's newest task whose successor is not created yet: the pending occurrence that carries the
   * schedule on (run-now tasks are created with next_created set, so they never count). Newest first on
   * tasks_plan_idx; only run-now tasks can come before it.
   *
   * A bounded plan's final occurrence is marked next_created too when claimed, though it has no successor.
   * When no other head exists, the newest task for which isLastRun holds carries the schedule (its last fire),
   * as in resume(): so a final occurrence claimed ahead and handed back PAUSED is still listed.
   */
  async scheduleHead(plan: Pick<PlanSchedule, 'id' | 'type'>): Promise<ScheduleHead | null> {
    const newest = (where: string, params: unknown[]) =>
      withTransientRetry(() =>
        sqlRows<{ status: TaskStatus; due: Date | null }>(
          this.ds,
          `SELECT status, next_execution_at AS due FROM tasks WHERE plan_id = $1 AND ${where} ORDER BY created_at DESC, id DESC LIMIT 1`,
          params,
        ),
      );
    let [row] = await newest('NOT next_created', [plan.id]);
    // isLastRun for a recurring or cron plan: due at or after end_at (a OneTime task is never the case here).
    if (!row && plan.type.type !== PLAN_TYPE.OneTime && typeof plan.type.end_at === 'number') {
      [row] = await newest('next_execution_at >= $2', [plan.id, new Date(plan.type.end_at)]);
    }
    return row && row.due !== null ? { status: row.status, due: new Date(row.due).getTime() } : null;
  }
}
