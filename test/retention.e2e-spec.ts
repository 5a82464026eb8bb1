import { randomUUID } from 'node:crypto';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource, EntityManager } from 'typeorm';
import { createApp } from '../src/app.factory';
import { ConfigError, loadConfig } from '../src/config/config.loader';
import { Delivery } from '../src/connectors/queue/queue.port';
import { Housekeeper, HousekeepingObserver, PassResult } from '../src/housekeeping/housekeeper.service';
import { HttpSink, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { writeRealProviders } from './support/real-services';
import { Stack, stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * Retention (src/housekeeping): the scheduler role deletes finished history older than scheduler.yml's
 * `retention`, in small batches off the hot path, one deleting scheduler per cluster. Rows are seeded with
 * SQL, an hour old, against a retention of 5 s.
 */

const PARTITIONS = 5;
const HOUR_AGO = `now() - interval '1 hour'`;
/** "Not expired", however long seeding and the pass take on a busy machine. */
const RECENT = `now() + interval '1 hour'`;
const SCHEDULER_YML = (retention: string) =>
  `application:\n  retention: ${retention}\n  fetcher:\n    pollFrequency: 100\n    channelCapacity: 50\n`;
const STORED_TYPE = JSON.stringify({ type: T.OneTime });
/** Never called: the seeded plans have no task the scheduler would dispatch. */
const STORED_ACTION = JSON.stringify({ type: T.Rest, base_url: '127.0.0.1:9/unused', method: 'POST' });

type Status = 'CREATED' | 'RUNNING' | 'COMPLETED' | 'CANCELLED';

/** Seeding and reading rows with SQL (cheap), through the app's own data source or one of its transactions. */
class Rows {
  constructor(private readonly ds: DataSource | EntityManager, private readonly userId: string) {}

  async plan(status: Status, updatedAt = HOUR_AGO, parent: string | null = null): Promise<string> {
    const id = randomUUID();
    await this.ds.query(
      `INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, parent_plan_id, created_at, updated_at)
       VALUES ($1, $2, 'retention', 'PT1S', $3::jsonb, $4, 0, $5::jsonb, $6, now() - interval '2 hours', ${updatedAt})`,
      [id, this.userId, STORED_TYPE, status, STORED_ACTION, parent],
    );
    return id;
  }

  /** A task; times are SQL expressions. */
  async task(
    planId: string,
    status: 'SUCCESS' | 'FAILURE' | 'CANCELLED' | 'PROCESSING',
    o: { id?: string; created?: string; executed?: string | null; retryAt?: string; leaseUntil?: string } = {},
  ): Promise<string> {
    const id = o.id ?? randomUUID();
    const created = o.created ?? HOUR_AGO;
    const executed = o.executed === undefined ? created : (o.executed ?? 'NULL');
    await this.ds.query(
      `INSERT INTO tasks (id, plan_id, partition_key, status, created_at, executed_at, retry_at, lease_until, next_created)
       VALUES ($1, $2, $3, $4, ${created}, ${executed}, ${o.retryAt ?? 'NULL'}, ${o.leaseUntil ?? 'NULL'}, true)`,
      [id, planId, 1 + Math.floor(Math.random() * PARTITIONS), status],
    );
    return id;
  }

  async errorLog(planId: string, taskId: string | null, at = HOUR_AGO): Promise<string> {
    const [{ id }] = await this.ds.query(
      `INSERT INTO error_logs (plan_id, task_id, type, error, timestamp) VALUES ($1, $2, 'EXECUTOR', 'seeded', ${at}) RETURNING id::text AS id`,
      [planId, taskId],
    );
    return id as string;
  }

  async deadLetter(at = HOUR_AGO): Promise<string> {
    const id = randomUUID();
    await this.ds.query(
      `INSERT INTO dead_letters (id, user_id, kind, queue, plan_id, task_id, reason, attempts, message, created_at)
       VALUES ($1, $2, 'TASK', 'karya.executor', NULL, NULL, 'seeded', 1, NULL, ${at})`,
      [id, this.userId],
    );
    return id;
  }

  /**
   * `plans` COMPLETED plans an hour old with `perPlan` SUCCESS tasks each, in one statement
   * (generate_series), plus `deadLetters` expired dead letters.
   */
  async bulk(plans: number, perPlan: number, deadLetters = 0): Promise<void> {
    await this.ds.query(
      `WITH p AS (
         INSERT INTO plans (id, user_id, description, period_time, type, status, max_failure_retry, action, created_at, updated_at)
         SELECT gen_random_uuid(), $1, 'bulk', 'PT1S', $2::jsonb, 'COMPLETED', 0, $3::jsonb, now() - interval '2 hours', ${HOUR_AGO}
         FROM generate_series(1, $4::int)
         RETURNING id
       )
       INSERT INTO tasks (id, plan_id, partition_key, status, created_at, executed_at, next_created)
       SELECT gen_random_uuid(), p.id, 1 + g % ${PARTITIONS}, 'SUCCESS', ${HOUR_AGO} - g * interval '1 second', ${HOUR_AGO}, true
       FROM p CROSS JOIN generate_series(1, $5::int) g`,
      [this.userId, STORED_TYPE, STORED_ACTION, plans, perPlan],
    );
    await this.ds.query(
      `INSERT INTO dead_letters (id, user_id, kind, queue, reason, attempts, created_at)
       SELECT gen_random_uuid(), $1, 'TASK', 'karya.executor', 'bulk', 1, ${HOUR_AGO} FROM generate_series(1, $2::int)`,
      [this.userId, deadLetters],
    );
  }

  async bulkLeft(): Promise<{ plans: number; tasks: number; deadLetters: number }> {
    const [row] = await this.ds.query(
      `SELECT (SELECT count(*) FROM plans WHERE description = 'bulk')::int AS plans,
              (SELECT count(*) FROM tasks t JOIN plans p ON p.id = t.plan_id WHERE p.description = 'bulk')::int AS tasks,
              (SELECT count(*) FROM dead_letters WHERE reason = 'bulk')::int AS "deadLetters"`,
    );
    return row as { plans: number; tasks: number; deadLetters: number };
  }

  async existing(table: 'plans' | 'tasks' | 'error_logs' | 'dead_letters', ids: string[]): Promise<Set<string>> {
    const rows: { id: string }[] = await this.ds.query(`SELECT id::text AS id FROM ${table} WHERE id::text = ANY($1::text[])`, [ids]);
    return new Set(rows.map((r) => r.id));
  }
}

describe.each(stacks({ partitions: PARTITIONS }))('retention (PT5S) on $name', (target: Stack) => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let userId: string;
  let rows: Rows;
  let housekeeper: Housekeeper;
  const pg = target.name.startsWith('real');

  beforeAll(async () => {
    await sink.start();
    const deadLetters: Delivery[] = [];
    ({ app, http, ds, userId } = await startInProcessKarya(target, tmp, {
      executorYml: 'application:\n  egress:\n    allowPrivateNetworks: true\n',
      userName: 'retention',
      deadLetters,
      schedulerYml: SCHEDULER_YML('PT5S'),
    }));
    rows = new Rows(ds, userId);
    housekeeper = app.get(Housekeeper);
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, target, tmp);
  });

  it('deletes expired finished tasks, their error logs, dead letters and emptied finished plans; keeps newer rows and every live plan’s latest task', async () => {
    expect(housekeeper.intervalMs).toBe(1000);
    // Seeded in one transaction: the running loop's passes must not see a plan before its tasks.
    const r = await ds.transaction(async (tx) => {
      const seed = new Rows(tx, userId);
      // A COMPLETED plan an hour old: its tasks (a FAILURE with no retry pending too) and logs expire, and then
      // the plan itself, with the one log newer than the cutoff.
      const done = await seed.plan('COMPLETED');
      const doneTasks = [await seed.task(done, 'SUCCESS'), await seed.task(done, 'SUCCESS'), await seed.task(done, 'FAILURE')];
      const doneLogs = [await seed.errorLog(done, doneTasks[0]), await seed.errorLog(done, null), await seed.errorLog(done, doneTasks[1], RECENT)];
      // A CANCELLED plan changed just now: its old task goes, the plan stays.
      const cancelled = await seed.plan('CANCELLED', RECENT);
      const cancelledTask = await seed.task(cancelled, 'CANCELLED', { executed: null });
      // A RUNNING plan: old finished tasks go, except its latest; the latest's log stays with it.
      const running = await seed.plan('RUNNING');
      const runningOld = [
        await seed.task(running, 'SUCCESS', { created: `${HOUR_AGO} - interval '3 seconds'` }),
        await seed.task(running, 'FAILURE', { created: `${HOUR_AGO} - interval '2 seconds'` }),
      ];
      const runningLatest = await seed.task(running, 'SUCCESS');
      const runningLogs = [await seed.errorLog(running, runningOld[0]), await seed.errorLog(running, runningLatest)];
      // A CREATED plan whose only task is old and finished keeps it.
      const created = await seed.plan('CREATED');
      const createdTask = await seed.task(created, 'CANCELLED', { executed: null });
      // Two tasks created at the same instant: the greater id is the latest.
      const tie = await seed.plan('RUNNING');
      const [tieLower, tieGreater] = [randomUUID(), randomUUID()].sort();
      const tieAt = `date_trunc('second', ${HOUR_AGO})`;
      await seed.task(tie, 'SUCCESS', { id: tieGreater, created: tieAt });
      await seed.task(tie, 'SUCCESS', { id: tieLower, created: tieAt });
      // Unfinished work stays whatever its age: a failure waiting for its retry, a task being processed.
      const retrying = await seed.plan('RUNNING');
      const waiting = await seed.task(retrying, 'FAILURE', { created: `${HOUR_AGO} - interval '1 second'`, retryAt: `now() + interval '1 hour'` });
      const processing = await seed.task(retrying, 'PROCESSING', { executed: null, leaseUntil: `now() + interval '1 hour'` });
      const completedWaiting = await seed.plan('COMPLETED');
      const completedWaitingTask = await seed.task(completedWaiting, 'FAILURE', { retryAt: `now() + interval '1 hour'` });
      // Created an hour ago but run just now, or created just now: not expired, so their COMPLETED plan stays.
      const recent = await seed.plan('COMPLETED');
      const recentRun = await seed.task(recent, 'SUCCESS', { executed: RECENT });
      const recentTask = await seed.task(recent, 'SUCCESS', { created: RECENT });
      const recentLog = await seed.errorLog(recent, null, RECENT);
      const letters = { old: await seed.deadLetter(), recent: await seed.deadLetter(RECENT) };
      // A finished parent with a live chained child stays, however old: a cancel reaches the child through it.
      const parent = await seed.plan('COMPLETED');
      const child = await seed.plan('RUNNING', RECENT, parent);
      return { done, doneTasks, doneLogs, cancelled, cancelledTask, running, runningOld, runningLatest, runningLogs, created, createdTask, tie,
        tieLower, tieGreater, retrying, waiting, processing, completedWaiting, completedWaitingTask, recent, recentRun, recentTask, recentLog, letters,
        parent, child };
    });
    const [{ users }] = await ds.query(`SELECT count(*)::int AS users FROM users`);

    await housekeeper.runPass();

    expect(await rows.existing('plans', [r.done, r.cancelled, r.running, r.created, r.tie, r.retrying, r.completedWaiting, r.recent, r.parent, r.child])).toEqual(
      new Set([r.cancelled, r.running, r.created, r.tie, r.retrying, r.completedWaiting, r.recent, r.parent, r.child]),
    );
    const allTasks = [...r.doneTasks, r.cancelledTask, ...r.runningOld, r.runningLatest, r.createdTask, r.tieLower, r.tieGreater, r.waiting, r.processing,
      r.completedWaitingTask, r.recentRun, r.recentTask];
    expect(await rows.existing('tasks', allTasks)).toEqual(
      new Set([r.runningLatest, r.createdTask, r.tieGreater, r.waiting, r.processing, r.completedWaitingTask, r.recentRun, r.recentTask]),
    );
    expect(await rows.existing('error_logs', [...r.doneLogs, ...r.runningLogs, r.recentLog])).toEqual(new Set([r.runningLogs[1], r.recentLog]));
    expect(await rows.existing('dead_letters', [r.letters.old, r.letters.recent])).toEqual(new Set([r.letters.recent]));
    expect((await ds.query(`SELECT count(*)::int AS users FROM users`))[0].users).toBe(users);

    // A finished plan goes once its last task has expired.
    await ds.query(`UPDATE tasks SET created_at = ${HOUR_AGO}, executed_at = ${HOUR_AGO} WHERE id = $1`, [r.recentTask]);
    await ds.query(`UPDATE tasks SET executed_at = ${HOUR_AGO} WHERE id = $1`, [r.recentRun]);
    await housekeeper.runPass();
    expect(await rows.existing('plans', [r.recent])).toEqual(new Set());
    expect(await rows.existing('error_logs', [r.recentLog])).toEqual(new Set());
  });

  it('keeps the pipeline running while a pass deletes a large expired set', async () => {
    // PostgreSQL: 50,000 tasks (one INSERT ... SELECT generate_series); PGlite, one connection and slower: fewer.
    const [plans, perPlan, letters] = pg ? [2000, 25, 3000] : [1500, 20, 1000];
    await rows.bulk(plans, perPlan, letters);
    expect(await rows.bulkLeft()).toEqual({ plans, tasks: plans * perPlan, deadLetters: letters });
    const tasks = async (): Promise<number> => (await ds.query(`SELECT count(*)::int AS n FROM tasks`))[0].n;
    const before = await tasks();
    let finished: PassResult | undefined;
    const pass = housekeeper.runPass().then((r) => (finished = r));

    await waitFor(async () => (await tasks()) < before, 10_000, 'the deletion to start');
    const count = 20;
    const ids: string[] = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const body = {
          user_id: userId, description: `live ${i}`, period_time: 'PT0.2S', plan_type: { type: T.OneTime }, max_failure_retry: 0,
          action: { type: T.Rest, base_url: `${sink.baseUrl}/live/${i}`, method: 'POST' },
        };
        return (await request(http).post('/v1/plan').send(body).expect(200)).body.id as string;
      }),
    );
    await waitFor(() => ids.every((id) => sink.hits.some((h) => h.planId === id)), 10_000, `the ${count} submitted plans to run`);
    const left = await rows.bulkLeft();
    // They ran while the pass was still deleting (the housekeeper leaves half of PGlite's one connection).
    expect(finished).toBeUndefined();
    expect(left.tasks + left.plans + left.deadLetters).toBeGreaterThan(0);

    expect(await pass).toMatchObject({ contended: false });
    expect(await rows.bulkLeft()).toEqual({ plans: 0, tasks: 0, deadLetters: 0 });
    // The plans that just ran have not expired.
    expect((await rows.existing('plans', ids)).size).toBe(count);
  });
});

describe.each(stacks({ partitions: PARTITIONS }))('retention PT0S on $name', (target: Stack) => {
  const tmp = new TempDir();
  let app: INestApplication | undefined;
  afterAll(async () => {
    await app?.close();
    await target.cleanup();
    tmp.cleanup();
  });

  it('keeps all history: a pass deletes nothing but the dashboard figures older than an hour', async () => {
    // The embedded stack runs every role in one process; the real one, the scheduler alone.
    app = await schedulerApp(await target.providers(tmp), tmp, 'PT0S', target.name.startsWith('real') ? 'scheduler' : 'all');
    const ds = app.get(DataSource);
    const [{ id: userId }] = await ds.query(`INSERT INTO users (id, name) VALUES (gen_random_uuid(), 'keep') RETURNING id`);
    const rows = new Rows(ds, userId as string);
    const plan = await rows.plan('COMPLETED');
    const task = await rows.task(plan, 'SUCCESS');
    const log = await rows.errorLog(plan, task);
    const letter = await rows.deadLetter();

    await ds.query(`INSERT INTO task_stats (bucket, user_id, source, succeeded, failed, lateness) VALUES (now() - interval '61 minutes', $1, gen_random_uuid(), 1, 0, '{1}')`, [userId]);

    const housekeeper = app.get(Housekeeper);
    // The loop still runs, once a minute, for task_stats alone: they would grow without bound otherwise.
    expect(housekeeper.active).toBe(true);
    expect(housekeeper.intervalMs).toBe(60_000);
    expect(await housekeeper.runPass()).toMatchObject({ tasks: 0, errorLogs: 0, plans: 0, deadLetters: 0, taskStats: 1, contended: false });
    expect(await rows.existing('plans', [plan])).toEqual(new Set([plan]));
    expect(await rows.existing('tasks', [task])).toEqual(new Set([task]));
    expect(await rows.existing('error_logs', [log])).toEqual(new Set([log]));
    expect(await rows.existing('dead_letters', [letter])).toEqual(new Set([letter]));
  });
});

/**
 * Two schedulers on one PostgreSQL database, their passes started together again and again over a large
 * expired set: every delete batch of one lies outside every batch of the other (the observer records a
 * batch's start once it holds the lock, and its end before the commit releases it), and together they
 * delete everything.
 */
describe('two schedulers on one PostgreSQL database', () => {
  const tmp = new TempDir();
  let db: TestDatabase;
  const apps: INestApplication[] = [];
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    await db?.drop();
    tmp.cleanup();
  });

  it('never delete at the same time, and delete everything expired between them', async () => {
    db = await createTestDatabase();
    const providers = writeRealProviders(tmp, { pgUrl: db.url, partitions: PARTITIONS });
    apps.push(...(await Promise.all([schedulerApp(providers, tmp, 'PT5S'), schedulerApp(providers, tmp, 'PT5S')])));
    const ds = apps[0].get(DataSource);
    // Two data sources, so two pools of sessions: the advisory lock is all that keeps them apart.
    expect(apps[1].get(DataSource)).not.toBe(ds);
    const [{ id: userId }] = await ds.query(`INSERT INTO users (id, name) VALUES (gen_random_uuid(), 'two') RETURNING id`);
    const rows = new Rows(ds, userId as string);
    await rows.bulk(1500, 20, 2500);

    const events: { who: number; what: 'start' | 'end' }[] = [];
    const tries = [0, 0];
    const housekeepers = apps.map((a) => a.get(Housekeeper));
    housekeepers.forEach((h, who) => {
      const observer: HousekeepingObserver = {
        tried: () => void tries[who]++,
        batchStarted: () => void events.push({ who, what: 'start' }),
        batchEnded: () => void events.push({ who, what: 'end' }),
      };
      h.observe(observer);
    });

    const deadline = Date.now() + 30_000;
    while (Object.values(await rows.bulkLeft()).some((n) => n > 0)) {
      expect(Date.now()).toBeLessThan(deadline);
      await Promise.all(housekeepers.map((h) => h.runPass()));
    }

    expect(tries.every((n) => n > 0)).toBe(true);
    expect(events.length).toBeGreaterThan(0);
    for (let i = 0; i < events.length; i += 2) {
      // start, end, start, end, ...: a batch's end always follows its own start, with nothing between.
      expect([events[i].what, events[i + 1]?.what, events[i + 1]?.who]).toEqual(['start', 'end', events[i].who]);
    }
  });
});

describe('scheduler.yml retention', () => {
  const tmp = new TempDir();
  afterAll(() => tmp.cleanup());
  const load = (retention: string | undefined) =>
    loadConfig({ KARYA_SCHEDULER_CONFIG_PATH: tmp.write('s.yml', retention === undefined ? 'application: {}\n' : `application:\n  retention: ${retention}\n`) });
  const problemsOf = (retention: string): string[] => {
    try {
      load(retention);
    } catch (e) {
      if (e instanceof ConfigError) return [...e.problems];
      throw e;
    }
    throw new Error('expected a ConfigError');
  };

  it('is an ISO-8601 duration: P30D by default, PT0S keeps everything', () => {
    expect(load(undefined).config.scheduler.retention).toBe(30 * 24 * 3600 * 1000);
    expect(load('PT5S').config.scheduler.retention).toBe(5000);
    expect(load('P2DT12H').config.scheduler.retention).toBe(60 * 3600 * 1000);
    expect(load('PT0S').config.scheduler.retention).toBe(0);
  });

  it.each([
    ['P1M', /^scheduler\.yml: application\.retention: months and years .*, got "P1M"$/],
    ["'5 days'", /^scheduler\.yml: application\.retention: must be an ISO-8601 duration.*, got "5 days"$/],
    ['-PT1S', /^scheduler\.yml: application\.retention: must not be negative, got "-PT1S"$/],
    ['5', /application\.retention: expected a string, got number 5$/],
  ])('refuses %s with a problem naming application.retention', (value, message) => {
    const problems = problemsOf(value);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
  });
});

/** The scheduler role (alone unless `role` says otherwise) on the given providers.yml, with `retention`. */
async function schedulerApp(providers: string, tmp: TempDir, retention: string, role = 'scheduler'): Promise<INestApplication> {
  const { config } = loadConfig({
    KARYA_ROLE: role,
    KARYA_PROVIDERS_CONFIG_PATH: providers,
    KARYA_SCHEDULER_CONFIG_PATH: tmp.write(`scheduler-${randomUUID()}.yml`, SCHEDULER_YML(retention)),
  });
  return createApp(config, { logger: process.env.KARYA_TEST_LOGS ? undefined : false });
}
