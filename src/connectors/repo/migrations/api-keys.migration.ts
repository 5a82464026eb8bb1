import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * API keys for `application.auth.mode: apikey` (src/auth). Only a SHA-256 of each key is stored: keys are
 * 256-bit random strings, so a fast hash is as safe as a slow one (nothing to brute-force) and lets every
 * request look its key up by the hash alone. `prefix` is the key's first characters, shown in listings so
 * people can tell keys apart. A revoked key's row is deleted.
 */
export class ApiKeys1765000000000 implements MigrationInterface {
  name = 'ApiKeys1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        prefix varchar(32) NOT NULL,
        hash char(64) NOT NULL,
        created_at timestamptz(3) NOT NULL,
        last_used_at timestamptz(3) NULL
      )`);
    await q.query(`CREATE UNIQUE INDEX api_keys_hash_idx ON api_keys (hash)`);
    await q.query(`CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE api_keys`);
  }
}
