import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Leaves room on every page of `plans` for a new version of each row, so that the updates a plan goes
 * through on the hot path (CREATED → RUNNING on its first claim, → COMPLETED after its last run) are HOT
 * updates: status and updated_at are in no index, so with free space on the page PostgreSQL writes the new
 * version beside the old one and inserts nothing into the three indexes. Without it, every such update
 * added an entry to plans_user_created_idx, where all of a user's plans sit together: concurrent result
 * batches of one busy user queued on the same index pages. Applies to pages written from now on.
 */
export class PlansFillfactor1764000000000 implements MigrationInterface {
  name = 'PlansFillfactor1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE plans SET (fillfactor = 70)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE plans RESET (fillfactor)`);
  }
}
