import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Dead letters as rows (src/dead-letters/): the broker's dead-letter queue is drained into this table by
 * the executors (DeadLetterRecorder), so nothing piles up in RabbitMQ or in the embedded queue's memory, and
 * users can list, replay and discard their own through the API.
 *
 * - `id` is derived from the dead letter itself (queue, reason and body), so a copy the broker delivers
 *   again after a crash between the insert and the acknowledgement is recorded once.
 * - `user_id`, `plan_id`, `task_id` are null when the message named no plan we know (a poison message): only
 *   the admin (or an open API) sees those.
 * - `message` is the body as dead-lettered (null when it could not be stored: too large, or text jsonb
 *   refuses); a HOOK dead letter is replayed from it. Never returned by the API (it holds the action).
 *
 * `tasks.retry_limit`: a replayed task runs one attempt, not a new round of retries. The replay sets it to
 * the attempts made so far; claims then count the task's retries against it instead of the plan's
 * max_failure_retry (null, the default, means the plan's). Adding a nullable column rewrites nothing.
 *
 * No index for the housekeeper (retention): finished tasks are found through `tasks_plan_idx`
 * (plan_id, created_at) and error logs through `error_logs_plan_idx` (plan_id, timestamp), so no index is
 * added to the hot tables; dead letters expire by `created_at`.
 */
export class DeadLetters1767000000000 implements MigrationInterface {
  name = 'DeadLetters1767000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE dead_letters (
        id uuid PRIMARY KEY,
        user_id uuid NULL,
        kind varchar(8) NOT NULL CHECK (kind IN ('TASK', 'HOOK')),
        queue varchar(32) NOT NULL,
        plan_id uuid NULL,
        task_id uuid NULL,
        reason text NOT NULL,
        attempts int NOT NULL,
        message jsonb NULL,
        created_at timestamptz(3) NOT NULL
      )`);
    // A user's dead letters newest first, 20 a page, with an exact count.
    await q.query(`CREATE INDEX dead_letters_user_created_idx ON dead_letters (user_id, created_at DESC, id DESC)`);
    // Every dead letter newest first (the admin's list), and the housekeeper's expiry.
    await q.query(`CREATE INDEX dead_letters_created_idx ON dead_letters (created_at, id)`);
    await q.query(`ALTER TABLE tasks ADD COLUMN retry_limit int NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE tasks DROP COLUMN retry_limit`);
    await q.query(`DROP TABLE dead_letters`);
  }
}
