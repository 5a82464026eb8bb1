import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Hook tries waiting out their backoff (src/modules/hooks/hook-retries.repository.ts). A failed hook's
 * delivery is acknowledged at once and its next try parked here until `due_at`, instead of being held
 * unacknowledged on the hooks queue, where a few failing hooks would fill the consumer's prefetch and stall
 * every other hook. A row is the whole next queue message; executors move due rows back onto the hooks
 * queue and delete them in the same transaction. `id` is chosen by the executor before its first try, so a
 * write retried after a lost commit acknowledgement parks nothing twice.
 */
export class HookRetries1766000000000 implements MigrationInterface {
  name = 'HookRetries1766000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE hook_retries (
        id uuid PRIMARY KEY,
        due_at timestamptz(3) NOT NULL,
        message jsonb NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX hook_retries_due_idx ON hook_retries (due_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE hook_retries`);
  }
}
