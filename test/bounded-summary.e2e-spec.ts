import { randomUUID } from 'node:crypto';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createApp } from '../src/app.factory';
import { loadConfig } from '../src/config/config.loader';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/*
 * Bounded summaries (issue 12, part 3), on both stacks, in apikey mode: GET /v1/plan/{id}/summary carries
 * only the newest server.yml summaryLimit tasks and error logs (5 here), and GET /v1/plan/{id}/tasks and
 * /error-logs page through all of them, oldest first, scoped to the plan's owner. The history is written
 * straight into the tables (nothing has to run), with timestamps shared by several rows so the tie-break
 * on id is exercised too.
 */

const LIMIT = 5;
const PAGE_SIZE = 20;
const ADMIN_KEY = `admin-${randomUUID()}`;
const SERVER_YML = `application:\n  summaryLimit: ${LIMIT}\n  auth:\n    mode: apikey\n  egress:\n    allowPrivateNetworks: true\n`;

const TASK_KEYS = ['created_at', 'executed_at', 'id', 'next_execution_at', 'partition_key', 'plan_id', 'status'];
const ERROR_LOG_KEYS = ['error', 'plan_id', 'timestamp', 'type'];
/** The error log type names of the wire contract (api-v1.md). */
const HOOK_ERROR_LOG = 'karya.core.entities.ErrorLogType.HookErrorLog';
const EXECUTOR_ERROR_LOG = 'karya.core.entities.ErrorLogType.ExecutorErrorLog';
const keys = (o: object) => Object.keys(o).sort();

type Json = Record<string, unknown>;
interface TaskJson { id: string; plan_id: string; partition_key: number; status: string; created_at: number; executed_at: number | null; next_execution_at: number | null }
interface ErrorLogJson { plan_id: string; error: string; type: Json; timestamp: number }

describe.each(stacks({ partitions: 3 }))('bounded summaries and paged history on $name', (target) => {
  const tmp = new TempDir();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let owner: string;
  let ownerKey: string;
  let otherKey: string;
  /** A plan with 48 tasks and 33 error logs, and every one of them as the API must answer, oldest first. */
  let big: { id: string; tasks: TaskJson[]; errorLogs: ErrorLogJson[] };

  const admin = `Bearer ${ADMIN_KEY}`;
  const get = (path: string, key = ownerKey) => request(http).get(path).set('Authorization', `Bearer ${key}`);

  beforeAll(async () => {
    const { config } = loadConfig({
      KARYA_PROVIDERS_CONFIG_PATH: await target.providers(tmp),
      KARYA_SERVER_CONFIG_PATH: tmp.write('server.yml', SERVER_YML),
      KARYA_ADMIN_KEY: ADMIN_KEY,
    });
    app = await createApp(config, { logger: false });
    http = app.getHttpServer();
    ds = app.get(DataSource);
    owner = (await request(http).post('/v1/user').set('Authorization', admin).send({ name: `owner-${randomUUID()}` }).expect(200)).body.id;
    const other = (await request(http).post('/v1/user').set('Authorization', admin).send({ name: `other-${randomUUID()}` }).expect(200)).body.id;
    ownerKey = (await request(http).post(`/v1/user/${owner}/keys`).set('Authorization', admin).expect(200)).body.key;
    otherKey = (await request(http).post(`/v1/user/${other}/keys`).set('Authorization', admin).expect(200)).body.key;
    big = await planWithHistory(47, 33);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await target.cleanup();
    tmp.cleanup();
  });

  /** A OneTime plan an hour away (it never runs during the suite); its first task as GET /v1/plan/{id} shows it. */
  async function submitPlan(): Promise<{ id: string; firstTask: TaskJson }> {
    const plan = (
      await request(http)
        .post('/v1/plan')
        .set('Authorization', `Bearer ${ownerKey}`)
        .send({ user_id: owner, description: 'history', period_time: 'PT1H', plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: 'example.com/x' } })
        .expect(200)
    ).body as Json;
    const firstTask = (await get(`/v1/plan/${String(plan.id)}`).expect(200)).body.latest_task as TaskJson;
    return { id: String(plan.id), firstTask };
  }

  /**
   * Submits a plan and writes `taskCount` finished tasks and `logCount` error logs for it, all older than its
   * first task, inserted out of time order and three to a timestamp. Returns every task and error log as
   * the API must show them, in the order it must show them: (created_at, id) and (timestamp, id).
   */
  async function planWithHistory(taskCount: number, logCount: number): Promise<{ id: string; tasks: TaskJson[]; errorLogs: ErrorLogJson[] }> {
    const { id, firstTask } = await submitPlan();
    const base = firstTask.created_at - 3_600_000;
    const groups = Math.ceil(taskCount / 3);
    const tasks: TaskJson[] = Array.from({ length: taskCount }, (_, k) => {
      const createdAt = base + ((k * 7) % groups) * 1000;
      return {
        id: randomUUID(), plan_id: id, partition_key: (k % 3) + 1, status: k % 4 === 0 ? 'FAILURE' : 'SUCCESS',
        created_at: createdAt, executed_at: createdAt + 50, next_execution_at: createdAt,
      };
    });
    await ds.query(
      `INSERT INTO tasks (id, partition_key, plan_id, status, attempt, next_created, created_at, executed_at, next_execution_at)
       SELECT id, partition_key, plan_id, status, 1, true, to_timestamp(created_at / 1000.0), to_timestamp(executed_at / 1000.0),
              to_timestamp(next_execution_at / 1000.0)
       FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, partition_key int, plan_id uuid, status text, created_at bigint,
                                                executed_at bigint, next_execution_at bigint)`,
      [JSON.stringify(tasks)],
    );
    const logGroups = Math.ceil(logCount / 3);
    const logs: (ErrorLogJson & { rowId: bigint })[] = [];
    // One at a time, so the ids (bigserial) follow this order: within a timestamp, the later insert is later.
    for (let k = 0; k < logCount; k++) {
      const timestamp = base + (k % logGroups) * 1000 + 500;
      const task = tasks[k % tasks.length];
      const hook = k % 2 === 1;
      const [row]: { id: string }[] = await ds.query(
        `INSERT INTO error_logs (plan_id, task_id, type, error, timestamp) VALUES ($1, $2, $3, $4, to_timestamp($5 / 1000.0)) RETURNING id::text AS id`,
        [id, hook ? null : task.id, hook ? 'HOOK' : 'EXECUTOR', `error ${k}`, timestamp],
      );
      logs.push({
        plan_id: id, error: `error ${k}`, timestamp, rowId: BigInt(row.id),
        type: hook ? { type: HOOK_ERROR_LOG } : { type: EXECUTOR_ERROR_LOG, task_id: task.id },
      });
    }
    const byTimeThenId = <A, B extends number | string | bigint>(time: (x: A) => number, key: (x: A) => B) => (a: A, b: A) =>
      time(a) - time(b) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
    // PostgreSQL orders uuids as their bytes, which is the order of their lower-case hex text.
    const allTasks = [...tasks, firstTask].sort(byTimeThenId((t) => t.created_at, (t) => t.id));
    const errorLogs = logs.sort(byTimeThenId((l) => l.timestamp, (l) => l.rowId)).map(({ rowId: _, ...log }) => log);
    return { id, tasks: allTasks, errorLogs };
  }

  /** Every page from 0 until the first empty one, checking each page's envelope on the way. */
  async function pageThrough<K extends 'tasks' | 'error_logs'>(planId: string, path: string, key: K, total: number): Promise<Json[]> {
    const all: Json[] = [];
    for (let page = 0; ; page++) {
      const body = (await get(`/v1/plan/${planId}/${path}?page=${page}`).expect(200)).body as Json;
      expect(keys(body)).toEqual([key, 'offset', 'total'].sort());
      expect({ page, total: body.total, offset: body.offset }).toEqual({ page, total, offset: page });
      const items = body[key] as Json[];
      expect(items.length).toBeLessThanOrEqual(PAGE_SIZE);
      if (items.length === 0) return all;
      all.push(...items);
      expect(page).toBeLessThan(100);
    }
  }

  it('/summary answers only the newest summaryLimit tasks and error logs, oldest first, with the same key sets', async () => {
    const body = (await get(`/v1/plan/${big.id}/summary`).expect(200)).body as Json;
    expect(keys(body)).toEqual(['error_logs', 'plan', 'tasks']);
    const tasks = body.tasks as TaskJson[];
    const errorLogs = body.error_logs as ErrorLogJson[];
    expect(tasks).toEqual(big.tasks.slice(-LIMIT));
    expect(errorLogs).toEqual(big.errorLogs.slice(-LIMIT));
    tasks.forEach((t) => expect(keys(t)).toEqual(TASK_KEYS));
    errorLogs.forEach((e) => expect(keys(e)).toEqual(ERROR_LOG_KEYS));
    // The newest task is the pending first task the API created, not one of the older finished ones.
    expect(tasks[LIMIT - 1].status).toBe('CREATED');
  });

  it('/summary of a plan with fewer rows than summaryLimit answers all of them', async () => {
    const small = await planWithHistory(2, 3);
    const body = (await get(`/v1/plan/${small.id}/summary`).expect(200)).body as Json;
    expect(body.tasks).toEqual(small.tasks);
    expect(body.error_logs).toEqual(small.errorLogs);
    expect(small.tasks).toHaveLength(3);
  });

  it('/tasks pages through every task exactly once, oldest first; its last rows are the summary', async () => {
    const all = await pageThrough(big.id, 'tasks', 'tasks', 48);
    expect(all).toEqual(big.tasks);
    expect(new Set(all.map((t) => t.id)).size).toBe(48);
    const summary = (await get(`/v1/plan/${big.id}/summary`).expect(200)).body as Json;
    expect(all.slice(-LIMIT)).toEqual(summary.tasks);
    // Page 2 holds rows 40-47.
    expect((await get(`/v1/plan/${big.id}/tasks?page=2`).expect(200)).body.tasks).toEqual(big.tasks.slice(40));
    expect((await get(`/v1/plan/${big.id}/tasks`).expect(200)).body).toEqual({ tasks: big.tasks.slice(0, PAGE_SIZE), total: 48, offset: 0 });
  });

  it('/error-logs pages through every error log exactly once, oldest first; its last rows are the summary', async () => {
    const all = await pageThrough(big.id, 'error-logs', 'error_logs', 33);
    expect(all).toEqual(big.errorLogs);
    expect(new Set(all.map((e) => e.error)).size).toBe(33);
    const summary = (await get(`/v1/plan/${big.id}/summary`).expect(200)).body as Json;
    expect(all.slice(-LIMIT)).toEqual(summary.error_logs);
    expect((await get(`/v1/plan/${big.id}/error-logs?page=1`).expect(200)).body.error_logs).toEqual(big.errorLogs.slice(PAGE_SIZE));
  });

  it('a page past the end is empty, with the total', async () => {
    expect((await get(`/v1/plan/${big.id}/tasks?page=1000`).expect(200)).body).toEqual({ tasks: [], total: 48, offset: 1000 });
    expect((await get(`/v1/plan/${big.id}/error-logs?page=100000000`).expect(200)).body).toEqual({ error_logs: [], total: 33, offset: 100_000_000 });
  });

  it('a new task of a running plan lands after the last page: pages already read do not move', async () => {
    const { id } = await planWithHistory(25, 0);
    const before = await pageThrough(id, 'tasks', 'tasks', 26);
    const newest = randomUUID();
    await ds.query(
      `INSERT INTO tasks (id, partition_key, plan_id, status, attempt, created_at, next_execution_at) VALUES ($1, 1, $2, 'CREATED', 0, now(), now() + interval '1 hour')`,
      [newest, id],
    );
    const after = await pageThrough(id, 'tasks', 'tasks', 27);
    expect(after.slice(0, 26)).toEqual(before);
    expect(after[26].id).toBe(newest);
  });

  it.each(['tasks', 'error-logs'])('/%s refuses a bad page or plan id (400 naming it) and answers an unknown plan 404', async (path) => {
    for (const page of ['-1', 'abc', '1.5', '100000001']) {
      const res = await get(`/v1/plan/${big.id}/${path}?page=${encodeURIComponent(page)}`).expect(400);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.text).toBe(`page: must be an integer from 0 to 100000000, got ${JSON.stringify(page)}`);
    }
    const bad = await get(`/v1/plan/not-a-uuid/${path}`).expect(400);
    expect(bad.text).toBe('plan_id: must be a UUID, got "not-a-uuid"');
    const unknown = randomUUID();
    expect((await get(`/v1/plan/${unknown}/${path}`).expect(404)).text).toBe(`Plan not found --- ${unknown}`);
    expect((await get(`/v1/plan/${unknown}/summary`).expect(404)).text).toBe(`Plan not found --- ${unknown}`);
  });

  it.each(['tasks', 'error-logs', 'summary'])('/%s: another user is answered 404, the owner and the admin 200, no key 401', async (path) => {
    expect((await get(`/v1/plan/${big.id}/${path}`, otherKey).expect(404)).text).toBe(`Plan not found --- ${big.id}`);
    await get(`/v1/plan/${big.id}/${path}`).expect(200);
    const asAdmin = (await request(http).get(`/v1/plan/${big.id}/${path}`).set('Authorization', admin).expect(200)).body as Json;
    expect(asAdmin).toEqual((await get(`/v1/plan/${big.id}/${path}`).expect(200)).body);
    await request(http).get(`/v1/plan/${big.id}/${path}`).expect(401);
  });

  it('leaves the neighbouring routes alone: GET and cancel (POST) of the plan still answer as before', async () => {
    const { id } = await submitPlan();
    expect(keys((await get(`/v1/plan/${id}`).expect(200)).body)).toEqual(['latest_task', 'plan']);
    await request(http).post(`/v1/plan/${id}/tasks`).set('Authorization', `Bearer ${ownerKey}`).expect(404);
    const cancelled = (await request(http).post(`/v1/plan/${id}`).set('Authorization', `Bearer ${ownerKey}`).expect(200)).body as Json;
    expect(cancelled.status).toBe('CANCELLED');
    expect((await get(`/v1/plan/${id}/tasks`).expect(200)).body.tasks[0].status).toBe('CANCELLED');
  });
});
