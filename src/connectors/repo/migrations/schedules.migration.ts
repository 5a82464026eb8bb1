import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Cron plans, pause and resume, and overlap policies (README "Schedules").
 *
 * - `plans.period_time` widens to 255: a Cron plan's period_time holds its expression. Widening a varchar
 *   rewrites nothing.
 * - `plans.paused_at`: set while a plan is paused. Its v1 status stays CREATED/RUNNING.
 * - `plans.active_task_id`/`active_task_key`: the task a SKIP or BUFFER_ONE plan dispatched last. Whether it
 *   still runs is one primary-key lookup, where finding a plan's running task among its history (86,400 a day
 *   for a 1 s cron) would walk tasks_plan_idx. Written only by claims of those plans.
 * - Task statuses PAUSED and BUFFERED (shown as CREATED by the v1 API). Both are left out of tasks_due_idx
 *   (status = 'CREATED'), so claims never scan them; each gets a small partial index of its own, for resume
 *   (by plan) and for the release of buffered occurrences (by partition). Rows enter and leave these states
 *   rarely, so the hot path pays nothing for them. The CHECK is replaced: it validates the rows once.
 *
 * No index for the plan list's status filter: an index holding `status` would stop the status changes of
 * plans (CREATED → RUNNING → COMPLETED) from being HOT updates (PlansFillfactor), which every plan makes.
 */
export class Schedules1768000000000 implements MigrationInterface {
  name = 'Schedules1768000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE plans ALTER COLUMN period_time TYPE varchar(255)`);
    await q.query(`ALTER TABLE plans ADD COLUMN paused_at timestamptz(3) NULL, ADD COLUMN active_task_id uuid NULL, ADD COLUMN active_task_key int NULL`);
    await q.query(`ALTER TABLE tasks DROP CONSTRAINT tasks_status_check`);
    await q.query(
      `ALTER TABLE tasks ADD CONSTRAINT tasks_status_check
         CHECK (status IN ('CREATED', 'PROCESSING', 'SUCCESS', 'FAILURE', 'CANCELLED', 'PAUSED', 'BUFFERED'))`,
    );
    await q.query(`CREATE INDEX tasks_paused_idx ON tasks (plan_id) WHERE status = 'PAUSED'`);
    await q.query(`CREATE INDEX tasks_buffered_idx ON tasks (partition_key, plan_id) WHERE status = 'BUFFERED'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX tasks_buffered_idx`);
    await q.query(`DROP INDEX tasks_paused_idx`);
    await q.query(`UPDATE tasks SET status = 'CREATED' WHERE status IN ('PAUSED', 'BUFFERED')`);
    await q.query(`ALTER TABLE tasks DROP CONSTRAINT tasks_status_check`);
    await q.query(`ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN ('CREATED', 'PROCESSING', 'SUCCESS', 'FAILURE', 'CANCELLED'))`);
    await q.query(`ALTER TABLE plans DROP COLUMN active_task_key, DROP COLUMN active_task_id, DROP COLUMN paused_at`);
    await q.query(`ALTER TABLE plans ALTER COLUMN period_time TYPE varchar(64)`);
  }
}
