import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The first schema. Built by a factory because the number of hash partitions of `tasks` comes from
 * providers.yml (`repo.partitions`); the partition count is fixed once this has run (checked at start-up
 * by verifyPartitions in data-source.factory.ts).
 *
 * Statuses are stored as their API strings (with CHECK constraints) rather than the original's int codes:
 * the database is ours alone, and readable rows make operations and debugging easier.
 */
export function initialSchemaMigration(partitions: number): new () => MigrationInterface {
  return class InitialSchema1732300000000 implements MigrationInterface {
    name = 'InitialSchema1732300000000';

    async up(q: QueryRunner): Promise<void> {
      await q.query(`
        CREATE TABLE users (
          id uuid PRIMARY KEY,
          name varchar(255) NOT NULL,
          created_at timestamptz(3) NOT NULL DEFAULT now()
        )`);
      // Exact-name sign-in lookups (GET /v1/user?username=) must not scan.
      await q.query(`CREATE INDEX users_name_idx ON users (name, created_at)`);

      await q.query(`
        CREATE TABLE plans (
          id uuid PRIMARY KEY,
          user_id uuid NOT NULL REFERENCES users (id),
          description varchar(255) NOT NULL,
          period_time varchar(64) NOT NULL,
          type jsonb NOT NULL,
          status varchar(16) NOT NULL
            CHECK (status IN ('CREATED', 'RUNNING', 'COMPLETED', 'CANCELLED')),
          max_failure_retry int NOT NULL CHECK (max_failure_retry >= 0),
          action jsonb NOT NULL,
          hook jsonb NOT NULL DEFAULT '[]'::jsonb,
          parent_plan_id uuid NULL,
          created_at timestamptz(3) NOT NULL,
          updated_at timestamptz(3) NOT NULL
        )`);
      // Listing a user's plans newest first, 20 a page, with an exact count.
      await q.query(`CREATE INDEX plans_user_created_idx ON plans (user_id, created_at DESC)`);
      // Cascading cancel walks children by parent (recursive query).
      await q.query(`CREATE INDEX plans_parent_idx ON plans (parent_plan_id) WHERE parent_plan_id IS NOT NULL`);

      await q.query(`
        CREATE TABLE tasks (
          id uuid NOT NULL,
          plan_id uuid NOT NULL REFERENCES plans (id),
          partition_key int NOT NULL CHECK (partition_key BETWEEN 1 AND ${partitions}),
          status varchar(16) NOT NULL
            CHECK (status IN ('CREATED', 'PROCESSING', 'SUCCESS', 'FAILURE', 'CANCELLED')),
          attempt int NOT NULL DEFAULT 0,
          -- Bumped by every dispatch; a message carries it and an executor runs the task only if it still
          -- matches (a fencing token), so a re-dispatched task never runs twice from stale messages.
          dispatch_seq int NOT NULL DEFAULT 0,
          -- Set while a failed task waits for its next attempt (status FAILURE).
          retry_at timestamptz(3) NULL,
          -- Whether the next occurrence of a recurring plan was created from this task (exactly once).
          next_created boolean NOT NULL DEFAULT false,
          created_at timestamptz(3) NOT NULL,
          executed_at timestamptz(3) NULL,
          next_execution_at timestamptz(3) NULL,
          lease_until timestamptz(3) NULL,
          PRIMARY KEY (id, partition_key)
        ) PARTITION BY HASH (partition_key)`);
      for (let i = 0; i < partitions; i++) {
        await q.query(
          `CREATE TABLE tasks_part_${i + 1} PARTITION OF tasks FOR VALUES WITH (MODULUS ${partitions}, REMAINDER ${i})`,
        );
      }
      // "Due tasks of partitions P": the scheduler's claim reads only CREATED rows, ordered by due time.
      await q.query(
        `CREATE INDEX tasks_due_idx ON tasks (partition_key, next_execution_at) WHERE status = 'CREATED'`,
      );
      // Expired leases of dead schedulers/executors are found without scanning finished tasks.
      await q.query(
        `CREATE INDEX tasks_lease_idx ON tasks (partition_key, lease_until) WHERE status = 'PROCESSING'`,
      );
      // Failed tasks waiting for a retry, by when it is due.
      await q.query(
        `CREATE INDEX tasks_retry_idx ON tasks (partition_key, retry_at) WHERE status = 'FAILURE' AND retry_at IS NOT NULL`,
      );
      await q.query(`CREATE INDEX tasks_plan_idx ON tasks (plan_id, created_at)`);

      await q.query(`
        CREATE TABLE error_logs (
          id bigserial PRIMARY KEY,
          plan_id uuid NOT NULL REFERENCES plans (id),
          task_id uuid NULL,
          type varchar(16) NOT NULL CHECK (type IN ('HOOK', 'EXECUTOR')),
          error text NOT NULL,
          timestamp timestamptz(3) NOT NULL
        )`);
      await q.query(`CREATE INDEX error_logs_plan_idx ON error_logs (plan_id, timestamp)`);
    }

    async down(q: QueryRunner): Promise<void> {
      await q.query(`DROP TABLE error_logs`);
      await q.query(`DROP TABLE tasks`);
      await q.query(`DROP TABLE plans`);
      await q.query(`DROP TABLE users`);
    }
  };
}
