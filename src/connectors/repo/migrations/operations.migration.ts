import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What the dashboard and the traces need (README "Dashboard", "Logs and traces").
 *
 * - `task_stats`: the dashboard's overview figures. Each executor process adds up its finished tasks per
 *   user in memory and inserts one row per (10 s bucket, user) every few seconds, so the hot path pays an
 *   in-memory increment per task and the table a few rows a second. Rows are never updated (no contention
 *   between executors; several rows per bucket are summed on read). `lateness` holds counts per bucket of
 *   LATENESS_BUCKETS (metrics), plus one for anything later. The housekeeper drops rows older than an hour.
 *   Reading the last minutes, for one user or all, is a range scan of task_stats_bucket_idx.
 * - `plans.trace_context`: the W3C traceparent of the request that submitted the plan, written only when
 *   tracing is on, so that claims and executions join the submit trace. Nullable with no default: adding it
 *   rewrites nothing.
 */
export class Operations1769000000000 implements MigrationInterface {
  name = 'Operations1769000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE task_stats (
         bucket timestamptz(0) NOT NULL,
         user_id uuid NOT NULL,
         succeeded integer NOT NULL DEFAULT 0,
         failed integer NOT NULL DEFAULT 0,
         lateness integer[] NOT NULL
       )`,
    );
    await q.query(`CREATE INDEX task_stats_bucket_idx ON task_stats (bucket, user_id)`);
    await q.query(`ALTER TABLE plans ADD COLUMN trace_context varchar(55) NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE plans DROP COLUMN trace_context`);
    await q.query(`DROP TABLE task_stats`);
  }
}
