import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { RepoConfig } from '../../config/karya-config';
import { createTestDatabase, TestDatabase } from '../../../test/support/postgres';
import { TempDir } from '../../../test/support/temp-files';
import { buildDataSource, karyaMigrations, PartitionMismatchError, runMigrations } from './data-source.factory';

const PARTITIONS = 3;

function repoConfig(overrides: Partial<RepoConfig>): RepoConfig {
  return { provider: 'psql', partitions: PARTITIONS, poolSize: 4, connectionTimeout: 5000, connectTimeout: 5000, statementTimeout: 5000, dataDir: 'memory', ...overrides };
}

interface Target {
  name: string;
  config(): RepoConfig;
  setup(): Promise<void>;
  teardown(): Promise<void>;
}

let db: TestDatabase | undefined;
const targets: Target[] = [
  {
    name: 'psql (real PostgreSQL)',
    config: () => repoConfig({ provider: 'psql', url: db!.url }),
    setup: async () => {
      db = await createTestDatabase();
    },
    teardown: async () => db?.drop(),
  },
  {
    name: 'pglite (in memory)',
    config: () => repoConfig({ provider: 'pglite', dataDir: 'memory' }),
    setup: async () => undefined,
    teardown: async () => undefined,
  },
];

describe.each(targets)('migrations on $name', (target) => {
  let ds: DataSource;
  beforeAll(async () => {
    await target.setup();
    ds = buildDataSource(target.config());
    await ds.initialize();
    await runMigrations(ds, target.config());
  });
  afterAll(async () => {
    await ds?.destroy();
    await target.teardown();
  });

  it('creates users, plans, tasks and error_logs', async () => {
    const rows: { relname: string; relkind: string }[] = await ds.query(
      `SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') ORDER BY relname`,
    );
    const tables = Object.fromEntries(rows.map((r) => [r.relname, r.relkind]));
    expect(tables).toMatchObject({ users: 'r', plans: 'r', tasks: 'p', error_logs: 'r', karya_migrations: 'r' });
  });

  it('hash-partitions tasks by partition_key into repo.partitions partitions', async () => {
    const parts: { name: string; bound: string }[] = await ds.query(`
      SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'tasks'::regclass ORDER BY c.relname`);
    expect(parts.map((p) => p.name)).toEqual(['tasks_part_1', 'tasks_part_2', 'tasks_part_3']);
    parts.forEach((p, i) => expect(p.bound).toBe(`FOR VALUES WITH (modulus ${PARTITIONS}, remainder ${i})`));
    const key: { def: string }[] = await ds.query(`SELECT pg_get_partkeydef('tasks'::regclass) AS def`);
    expect(key[0].def).toBe('HASH (partition_key)');
  });

  it('has the due-task index (partial on CREATED), the lease index and the plan index', async () => {
    const idx: { indexname: string; indexdef: string }[] = await ds.query(
      `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks' ORDER BY indexname`,
    );
    const byName = Object.fromEntries(idx.map((i) => [i.indexname, i.indexdef]));
    expect(byName.tasks_due_idx).toMatch(/\(partition_key, next_execution_at\) WHERE \(\(status\)::text = 'CREATED'::text\)/);
    expect(byName.tasks_lease_idx).toMatch(/\(partition_key, lease_until\) WHERE \(\(status\)::text = 'PROCESSING'::text\)/);
    expect(byName.tasks_plan_idx).toMatch(/\(plan_id, created_at\)/);
    expect(byName.tasks_retry_idx).toMatch(/\(partition_key, retry_at\) WHERE .*FAILURE.*retry_at IS NOT NULL/);
  });

  it('stores error text as TEXT (no 255-character limit)', async () => {
    const col: { data_type: string }[] = await ds.query(
      `SELECT data_type FROM information_schema.columns WHERE table_name = 'error_logs' AND column_name = 'error'`,
    );
    expect(col[0].data_type).toBe('text');
  });

  it('routes tasks of every partition key into the partitions and rejects keys outside 1..N', async () => {
    const user = randomUUID();
    const plan = randomUUID();
    await ds.query(`INSERT INTO users (id, name) VALUES ($1, 'm')`, [user]);
    await ds.query(
      `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, created_at, updated_at)
       VALUES ($1, $2, 'd', 'PT1S', '{}', 'CREATED', 3, '{}', '[]', now(), now())`,
      [plan, user],
    );
    for (let key = 1; key <= PARTITIONS; key++) {
      await ds.query(
        `INSERT INTO tasks (id, plan_id, partition_key, status, created_at, next_execution_at) VALUES ($1, $2, $3, 'CREATED', now(), now())`,
        [randomUUID(), plan, key],
      );
    }
    const spread: { part: string; n: number }[] = await ds.query(
      `SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM tasks GROUP BY 1`,
    );
    expect(spread.reduce((s, r) => s + r.n, 0)).toBe(PARTITIONS);
    await expect(
      ds.query(`INSERT INTO tasks (id, plan_id, partition_key, status, created_at) VALUES ($1, $2, 0, 'CREATED', now())`, [randomUUID(), plan]),
    ).rejects.toThrow(/check constraint/);
    await expect(
      ds.query(`INSERT INTO tasks (id, plan_id, partition_key, status, created_at) VALUES ($1, $2, 1, 'DONE', now())`, [randomUUID(), plan]),
    ).rejects.toThrow(/check constraint/);
  });

  it('leaves free space on plans pages, so the status updates of the hot path are HOT', async () => {
    const [row]: { reloptions: string[] | null }[] = await ds.query(`SELECT reloptions FROM pg_class WHERE relname = 'plans'`);
    expect(row.reloptions).toContain('fillfactor=70');
  });

  it('is idempotent: running again applies nothing', async () => {
    expect(await ds.showMigrations()).toBe(false);
    await runMigrations(ds, target.config());
    const applied: { n: number }[] = await ds.query(`SELECT count(*)::int AS n FROM karya_migrations`);
    expect(applied[0].n).toBe(karyaMigrations(PARTITIONS).length);
  });

  it('refuses to start when repo.partitions no longer matches the database', async () => {
    await expect(runMigrations(ds, { ...target.config(), partitions: 5 })).rejects.toThrow(PartitionMismatchError);
    await expect(runMigrations(ds, { ...target.config(), partitions: 5 })).rejects.toThrow(
      /repo\.partitions is 5 but the database's tasks table has 3 partitions/,
    );
  });
});

describe('migrations on psql from several processes at once', () => {
  let db2: TestDatabase;
  beforeAll(async () => (db2 = await createTestDatabase()));
  afterAll(async () => db2.drop());

  it('migrate once, the others wait and find nothing to do', async () => {
    const config = repoConfig({ provider: 'psql', url: db2.url });
    const sources = [1, 2, 3].map(() => buildDataSource(config));
    await Promise.all(sources.map((s) => s.initialize()));
    try {
      await Promise.all(sources.map((s) => runMigrations(s, config)));
      const applied: { n: number }[] = await sources[0].query(`SELECT count(*)::int AS n FROM karya_migrations`);
      expect(applied[0].n).toBe(karyaMigrations(PARTITIONS).length);
    } finally {
      await Promise.all(sources.map((s) => s.destroy()));
    }
  });
});

describe('pglite on disk', () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());

  it('keeps its data across a close and reopen (a restart)', async () => {
    const config = repoConfig({ provider: 'pglite', dataDir: `${tmp.path}/data` });
    const first = buildDataSource(config);
    await first.initialize();
    await runMigrations(first, config);
    const id = randomUUID();
    await first.query(`INSERT INTO users (id, name) VALUES ($1, 'persisted')`, [id]);
    await first.destroy();

    const second = buildDataSource(config);
    await second.initialize();
    try {
      await runMigrations(second, config);
      const rows: { name: string }[] = await second.query(`SELECT name FROM users WHERE id = $1`, [id]);
      expect(rows).toEqual([{ name: 'persisted' }]);
    } finally {
      await second.destroy();
    }
  });
});

/**
 * Builds the schema as the release before `migration` left it (every migration listed before it), lets
 * `seed` put data in it, then runs all of Karya's migrations as a start-up would and hands the result to
 * `check`: each new migration is tested on a database holding the previous schema's data.
 */
async function upgradeFromPrevious(
  url: string,
  migration: string,
  seed: (old: DataSource) => Promise<void>,
  check: (ds: DataSource) => Promise<void>,
): Promise<void> {
  const config = repoConfig({ provider: 'psql', url });
  const all = karyaMigrations(PARTITIONS);
  const index = all.findIndex((m) => new m().name === migration);
  expect(index).toBeGreaterThan(0);
  const old = new DataSource({ type: 'postgres', url, migrations: all.slice(0, index), migrationsTableName: 'karya_migrations' });
  await old.initialize();
  try {
    await old.runMigrations();
    await seed(old);
  } finally {
    await old.destroy();
  }
  const ds = buildDataSource(config);
  await ds.initialize();
  try {
    await runMigrations(ds, config);
    await check(ds);
  } finally {
    await ds.destroy();
  }
}

describe('the api_keys migration on a database holding the previous schema and its data (psql)', () => {
  let db3: TestDatabase;
  beforeAll(async () => (db3 = await createTestDatabase()));
  afterAll(async () => db3.drop());

  it('adds api_keys beside the existing users, plans and tasks, which are kept as they were', async () => {
    const userId = randomUUID();
    const planId = randomUUID();
    const insertKey = (ds: DataSource, user: string, hash: string) =>
      ds.query(`INSERT INTO api_keys (id, user_id, prefix, hash, created_at) VALUES ($1, $2, 'karya_abcdef', $3, now())`, [randomUUID(), user, hash]);
    await upgradeFromPrevious(
      db3.url,
      'ApiKeys1765000000000',
      async (old) => {
        await old.query(`INSERT INTO users (id, name) VALUES ($1, 'before-keys')`, [userId]);
        await old.query(
          `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, created_at, updated_at)
           VALUES ($1, $2, 'old plan', 'PT1M', '{"type":"karya.core.entities.PlanType.OneTime"}', 'CREATED', 3, '{}', now(), now())`,
          [planId, userId],
        );
      },
      async (ds) => {
        expect(await ds.query(`SELECT name FROM users WHERE id = $1`, [userId])).toEqual([{ name: 'before-keys' }]);
        expect(await ds.query(`SELECT description FROM plans WHERE id = $1`, [planId])).toEqual([{ description: 'old plan' }]);
        await insertKey(ds, userId, 'a'.repeat(64));
        // One hash, one key: the lookup index is unique.
        await expect(insertKey(ds, userId, 'a'.repeat(64))).rejects.toThrow(/api_keys_hash_idx/);
        // A key needs an existing user.
        await expect(insertKey(ds, randomUUID(), 'b'.repeat(64))).rejects.toThrow(/foreign key/);
      },
    );
  });
});

describe('the hook_retries migration on a database holding the previous schema and its data (psql)', () => {
  let db4: TestDatabase;
  beforeAll(async () => (db4 = await createTestDatabase()));
  afterAll(async () => db4.drop());

  it('adds hook_retries, ordered by due time, beside the existing rows, which are kept as they were', async () => {
    const userId = randomUUID();
    const planId = randomUUID();
    const taskId = randomUUID();
    await upgradeFromPrevious(
      db4.url,
      'HookRetries1766000000000',
      async (old) => {
        await old.query(`INSERT INTO users (id, name) VALUES ($1, 'before-hook-retries')`, [userId]);
        await old.query(
          `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, hook, created_at, updated_at)
           VALUES ($1, $2, 'old plan', 'PT1M', '{"type":"karya.core.entities.PlanType.OneTime"}', 'RUNNING', 3, '{}',
                   '[{"trigger":"ON_FAILURE","max_retry":3,"action":{}}]', now(), now())`,
          [planId, userId],
      );
      await old.query(
        `INSERT INTO tasks (id, plan_id, partition_key, status, created_at, next_execution_at) VALUES ($1, $2, 1, 'FAILURE', now(), now())`,
        [taskId, planId],
      );
      await old.query(`INSERT INTO error_logs (plan_id, task_id, type, error, timestamp) VALUES ($1, $2, 'HOOK', 'old hook failure', now())`, [
        planId, taskId,
      ]);
      },
      async (ds) => {
      expect(await ds.query(`SELECT name FROM users WHERE id = $1`, [userId])).toEqual([{ name: 'before-hook-retries' }]);
      expect(await ds.query(`SELECT status, hook->0->>'trigger' AS trigger FROM plans WHERE id = $1`, [planId])).toEqual([
        { status: 'RUNNING', trigger: 'ON_FAILURE' },
      ]);
      expect(await ds.query(`SELECT status FROM tasks WHERE id = $1`, [taskId])).toEqual([{ status: 'FAILURE' }]);
      expect(await ds.query(`SELECT error FROM error_logs WHERE task_id = $1`, [taskId])).toEqual([{ error: 'old hook failure' }]);

      for (const [due, n] of [[5000, 2], [-1000, 1]] as const) {
        await ds.query(`INSERT INTO hook_retries (id, due_at, message) VALUES ($1, now() + $2 * interval '1 millisecond', $3::jsonb)`, [
          randomUUID(), due, JSON.stringify({ planId, attempt: n }),
        ]);
      }
      const due: { attempt: number }[] = await ds.query(
        `SELECT (message->>'attempt')::int AS attempt FROM hook_retries WHERE due_at <= now() ORDER BY due_at`,
      );
      expect(due).toEqual([{ attempt: 1 }]);
      const idx: { indexdef: string }[] = await ds.query(`SELECT indexdef FROM pg_indexes WHERE indexname = 'hook_retries_due_idx'`);
      expect(idx[0].indexdef).toMatch(/\(due_at\)/);
      // Ids are chosen by the executor; a second insert of the same id is refused (the write's retry relies on it).
      const [{ id }]: { id: string }[] = await ds.query(`SELECT id FROM hook_retries LIMIT 1`);
      await expect(ds.query(`INSERT INTO hook_retries (id, due_at, message) VALUES ($1, now(), '{}')`, [id])).rejects.toThrow(/hook_retries_pkey/);
      },
    );
  });
});

describe('the dead_letters migration on a database holding the previous schema and its data (psql)', () => {
  let db5: TestDatabase;
  beforeAll(async () => (db5 = await createTestDatabase()));
  afterAll(async () => db5.drop());

  it('adds dead_letters and tasks.retry_limit beside the existing rows, which are kept as they were, and pages a user newest first', async () => {
    const userId = randomUUID();
    const planId = randomUUID();
    const taskId = randomUUID();
    const retryId = randomUUID();
    await upgradeFromPrevious(
      db5.url,
      'DeadLetters1767000000000',
      async (old) => {
        await old.query(`INSERT INTO users (id, name) VALUES ($1, 'before-dead-letters')`, [userId]);
        await old.query(
          `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, created_at, updated_at)
           VALUES ($1, $2, 'old plan', 'PT1M', '{"type":"karya.core.entities.PlanType.OneTime"}', 'COMPLETED', 0, '{}', now(), now())`,
          [planId, userId],
        );
        await old.query(
          `INSERT INTO tasks (id, plan_id, partition_key, status, attempt, created_at, next_execution_at) VALUES ($1, $2, 1, 'FAILURE', 1, now(), now())`,
          [taskId, planId],
        );
        await old.query(`INSERT INTO hook_retries (id, due_at, message) VALUES ($1, now(), '{"attempt": 2}')`, [retryId]);
      },
      async (ds) => {
        expect(await ds.query(`SELECT status FROM plans WHERE id = $1`, [planId])).toEqual([{ status: 'COMPLETED' }]);
        // The old task gains retry_limit, empty: its plan's max_failure_retry still applies.
        expect(await ds.query(`SELECT status, attempt, retry_limit FROM tasks WHERE id = $1`, [taskId])).toEqual([{ status: 'FAILURE', attempt: 1, retry_limit: null }]);
        expect(await ds.query(`SELECT message FROM hook_retries WHERE id = $1`, [retryId])).toEqual([{ message: { attempt: 2 } }]);
        const insert = (kind: string, at: string) =>
          ds.query(
            `INSERT INTO dead_letters (id, user_id, kind, queue, plan_id, task_id, reason, attempts, message, created_at)
             VALUES ($1, $2, $3, 'executor', $4, $5, 'boom', 1, '{"n": 1}', $6::timestamptz)`,
            [randomUUID(), userId, kind, planId, taskId, at],
          );
        await insert('TASK', '2026-01-01T00:00:00Z');
        await insert('HOOK', '2026-01-02T00:00:00Z');
        await expect(insert('OTHER', '2026-01-03T00:00:00Z')).rejects.toThrow(/check constraint/);
        const page: { kind: string }[] = await ds.query(`SELECT kind FROM dead_letters WHERE user_id = $1 ORDER BY created_at DESC, id DESC`, [userId]);
        expect(page.map((r) => r.kind)).toEqual(['HOOK', 'TASK']);
        const idx: { indexname: string }[] = await ds.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'dead_letters' ORDER BY indexname`);
        expect(idx.map((r) => r.indexname)).toEqual(['dead_letters_created_idx', 'dead_letters_pkey', 'dead_letters_user_created_idx']);
      },
    );
  });
});

describe('the schedules migration on a database holding the previous schema and its data (psql)', () => {
  let db6: TestDatabase;
  beforeAll(async () => (db6 = await createTestDatabase()));
  afterAll(async () => db6.drop());

  it('adds paused_at, the active task and the PAUSED/BUFFERED task states beside the existing rows, which are kept as they were', async () => {
    const userId = randomUUID();
    const planId = randomUUID();
    const taskId = randomUUID();
    await upgradeFromPrevious(
      db6.url,
      'Schedules1768000000000',
      async (old) => {
        await old.query(`INSERT INTO users (id, name) VALUES ($1, 'before-schedules')`, [userId]);
        await old.query(
          `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, created_at, updated_at)
           VALUES ($1, $2, 'old plan', 'PT1M', '{"type":"karya.core.entities.PlanType.Recurring","end_at":null}', 'RUNNING', 3, '{}', now(), now())`,
          [planId, userId],
        );
        await old.query(
          `INSERT INTO tasks (id, plan_id, partition_key, status, attempt, created_at, next_execution_at) VALUES ($1, $2, 1, 'CREATED', 0, now(), now())`,
          [taskId, planId],
        );
        // The old schema refuses what the new one allows: a period_time over 64 characters, a PAUSED task.
        await expect(old.query(`UPDATE plans SET period_time = $2 WHERE id = $1`, [planId, 'x'.repeat(65)])).rejects.toThrow(/too long/);
        await expect(old.query(`UPDATE tasks SET status = 'PAUSED' WHERE id = $1`, [taskId])).rejects.toThrow(/check constraint/);
      },
      async (ds) => {
        expect(await ds.query(`SELECT status, period_time, paused_at, active_task_id, active_task_key FROM plans WHERE id = $1`, [planId])).toEqual([
          { status: 'RUNNING', period_time: 'PT1M', paused_at: null, active_task_id: null, active_task_key: null },
        ]);
        expect(await ds.query(`SELECT status, attempt FROM tasks WHERE id = $1`, [taskId])).toEqual([{ status: 'CREATED', attempt: 0 }]);
        // A cron expression fits period_time now; the old task can be paused and buffered; others are still refused.
        await ds.query(`UPDATE plans SET period_time = $2, paused_at = now() WHERE id = $1`, [planId, '0,5,10,15,20,25,30,35,40,45,50,55 0,15,30,45 9-17 * * 1-5 ']);
        for (const status of ['PAUSED', 'BUFFERED', 'CREATED']) await ds.query(`UPDATE tasks SET status = $2 WHERE id = $1`, [taskId, status]);
        await expect(ds.query(`UPDATE tasks SET status = 'WAITING' WHERE id = $1`, [taskId])).rejects.toThrow(/check constraint/);
        const idx: { indexname: string; indexdef: string }[] = await ds.query(
          `SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN ('tasks_paused_idx', 'tasks_buffered_idx') ORDER BY indexname`,
        );
        expect(idx.map((r) => r.indexname)).toEqual(['tasks_buffered_idx', 'tasks_paused_idx']);
        expect(idx[0].indexdef).toMatch(/\(partition_key, plan_id\) WHERE \(\(status\)::text = 'BUFFERED'/);
        expect(idx[1].indexdef).toMatch(/\(plan_id\) WHERE \(\(status\)::text = 'PAUSED'/);
      },
    );
  });
});

describe('the operations migration on a database holding the previous schema and its data (psql)', () => {
  let db7: TestDatabase;
  beforeAll(async () => (db7 = await createTestDatabase()));
  afterAll(async () => db7.drop());

  it('adds task_stats (upserted per bucket, user and source) and plans.trace_context beside the existing rows, which are kept as they were', async () => {
    const userId = randomUUID();
    const planId = randomUUID();
    await upgradeFromPrevious(
      db7.url,
      'Operations1769000000000',
      async (old) => {
        await old.query(`INSERT INTO users (id, name) VALUES ($1, 'before-operations')`, [userId]);
        await old.query(
          `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, created_at, updated_at, paused_at)
           VALUES ($1, $2, 'old plan', 'PT1M', '{"type":"karya.core.entities.PlanType.Recurring","end_at":null}', 'RUNNING', 3, '{}', now(), now(), now())`,
          [planId, userId],
        );
      },
      async (ds) => {
        const [plan] = await ds.query(`SELECT status, period_time, paused_at IS NOT NULL AS paused, trace_context FROM plans WHERE id = $1`, [planId]);
        expect(plan).toEqual({ status: 'RUNNING', period_time: 'PT1M', paused: true, trace_context: null });
        const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
        await ds.query(`UPDATE plans SET trace_context = $2 WHERE id = $1`, [planId, traceparent]);
        // The recorder's upsert: a second write of the same (bucket, user, source) overwrites the counts.
        const upsert = `INSERT INTO task_stats (bucket, user_id, source, succeeded, failed, lateness)
          VALUES (to_timestamp(1769000000), $1, $2, $3, $4, $5::int[])
          ON CONFLICT (bucket, user_id, source) DO UPDATE SET succeeded = EXCLUDED.succeeded, failed = EXCLUDED.failed, lateness = EXCLUDED.lateness`;
        const [source, other] = [randomUUID(), randomUUID()];
        await ds.query(upsert, [userId, source, 2, 0, '{1,1,0}']);
        await ds.query(upsert, [userId, source, 3, 1, '{1,2,0}']);
        await ds.query(upsert, [userId, other, 5, 0, '{0,0,0}']);
        expect(await ds.query(`SELECT source, succeeded, failed, lateness FROM task_stats WHERE user_id = $1 ORDER BY succeeded`, [userId])).toEqual([
          { source, succeeded: 3, failed: 1, lateness: [1, 2, 0] },
          { source: other, succeeded: 5, failed: 0, lateness: [0, 0, 0] },
        ]);
        await expect(ds.query(`INSERT INTO task_stats (bucket, user_id, succeeded, failed, lateness) VALUES (now(), $1, 1, 0, '{}')`, [userId])).rejects.toThrow(
          /null value in column "source"/,
        );
        const idx: { indexname: string; indexdef: string }[] = await ds.query(
          `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'task_stats' ORDER BY indexname`,
        );
        expect(idx.map((i) => [i.indexname, i.indexdef.replace(/^.* USING btree /, '')])).toEqual([
          ['task_stats_bucket_user_source_key', '(bucket, user_id, source)'],
          ['task_stats_user_bucket_idx', '(user_id, bucket)'],
        ]);
        expect(idx[0].indexdef).toMatch(/^CREATE UNIQUE INDEX/);
      },
    );
  });
});
