import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ErrorLogKind } from '../../connectors/repo/entities/error-log.entity';
import { sqlRows } from '../../connectors/repo/sql';
import { withTransientRetry } from '../../connectors/repo/transient';
import { HookMessage } from './hook-message';

/**
 * A failed hook's HookErrorLog, and its next try parked in `hook_retries` until its backoff is over (the
 * HookRetries migration says why the queue does not hold it). Executors move due rows back onto the hooks
 * queue with `moveDue`.
 */
@Injectable()
export class HookRetriesRepository {
  constructor(private readonly ds: DataSource) {}

  /**
   * Writes the failed try's HookErrorLog and parks `next` for `delayMs`, in one statement so that neither
   * exists without the other. Both times come from the database's clock, which `moveDue` compares against,
   * so executors with skewed clocks agree on what is due. The row's id is chosen once, before the first
   * try: a try repeated after a lost commit acknowledgement inserts neither the row nor the log again.
   */
  async logAndPark(failed: HookMessage, error: string, next: HookMessage, delayMs: number): Promise<void> {
    const id = randomUUID();
    await withTransientRetry(() =>
      this.ds.query(
        `WITH parked AS (
           INSERT INTO hook_retries (id, due_at, message) VALUES ($1::uuid, now() + $2::float8 * interval '1 millisecond', $3::jsonb)
           ON CONFLICT (id) DO NOTHING RETURNING id
         )
         INSERT INTO error_logs (plan_id, task_id, type, error, timestamp)
         SELECT $4::uuid, $5::uuid, $6::varchar, $7::text, now() FROM parked`,
        [id, delayMs, JSON.stringify(next), failed.planId, failed.taskId, ErrorLogKind.Hook, error],
      ),
    );
  }

  /** The HookErrorLog of a try after which nothing is parked (the last one, or a permanent failure). */
  async log(failed: HookMessage, error: string): Promise<void> {
    await withTransientRetry(() =>
      this.ds.query(`INSERT INTO error_logs (plan_id, task_id, type, error, timestamp) VALUES ($1, $2, $3, $4, now())`, [
        failed.planId, failed.taskId, ErrorLogKind.Hook, error,
      ]),
    );
  }

  /**
   * Takes up to `limit` due tries, hands them to `publish` and deletes them when it resolves, all in one
   * transaction: a row leaves the table only once the broker has confirmed its message, so a crash or a
   * failed publish loses nothing (it may publish a try twice: hooks are at-least-once, and carry a stable
   * idempotency key). SKIP LOCKED lets every executor run this at once without taking the same rows.
   * Returns how many were moved.
   */
  async moveDue(limit: number, publish: (messages: Record<string, unknown>[]) => Promise<void>): Promise<number> {
    return withTransientRetry(() =>
      this.ds.transaction(async (tx) => {
        const rows = await sqlRows<{ message: Record<string, unknown> }>(
          tx,
          `DELETE FROM hook_retries WHERE id IN (
             SELECT id FROM hook_retries WHERE due_at <= now() ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED
           ) RETURNING message`,
          [limit],
        );
        if (rows.length > 0) await publish(rows.map((r) => r.message));
        return rows.length;
      }),
    );
  }
}
