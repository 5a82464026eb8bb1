import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What the dashboard and the traces need (README "Dashboard", "Logs and traces").
 *
 * - `task_stats`: the dashboard's overview figures. Each executor process adds up its finished tasks per
 *   (10 s bucket, user) in memory and, every few seconds, upserts the ABSOLUTE counts of the cells that
 *   changed under its own random `source` id (src/stats/task-stats.recorder.ts). So the hot path pays an
 *   in-memory increment per task, the table holds one row per (bucket, user, executor process), and a
 *   flush that is re-sent after it committed unseen (connection dropped after the commit, read deadline)
 *   overwrites a row with the same or newer values instead of counting twice. A row is only written by its
 *   own process (no contention between executors); readers sum the sources of a bucket. `lateness` holds
 *   counts per bucket of LATENESS_BUCKETS (metrics), plus one for anything later. The housekeeper drops rows
 *   older than an hour.
 *   Reads: everyone's last minutes are a range scan of the unique task_stats_bucket_user_source_key (the
 *   upserts' conflict target); one user's are a range scan of task_stats_user_bucket_idx, which, unlike a
 *   (bucket, user_id) index, does not walk every other user's entries of the window.
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
         source uuid NOT NULL,
         succeeded integer NOT NULL DEFAULT 0,
         failed integer NOT NULL DEFAULT 0,
         lateness integer[] NOT NULL
       )`,
    );
    await q.query(`CREATE UNIQUE INDEX task_stats_bucket_user_source_key ON task_stats (bucket, user_id, source)`);
    await q.query(`CREATE INDEX task_stats_user_bucket_idx ON task_stats (user_id, bucket)`);
    await q.query(`ALTER TABLE plans ADD COLUMN trace_context varchar(55) NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE plans DROP COLUMN trace_context`);
    await q.query(`DROP TABLE task_stats`);
  }
}
