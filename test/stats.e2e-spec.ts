import { randomUUID } from 'node:crypto';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createTestDatabase, TestDatabase } from './support/postgres';
import { writeRealProviders } from './support/real-services';
import { Housekeeper } from '../src/housekeeping/housekeeper.service';
import { CronSchedule } from '../src/modules/plans/cron-schedule';
import { HttpSink, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { Stack, stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/**
 * The dashboard's API (issue 14): GET /v1/stats fed by the executors' task counts (task_stats), GET
 * /v1/whoami, GET /v1/plan/{id}/fires, and the housekeeper's trimming of task_stats. Every role in one
 * process; the pipeline parts on both stacks, the apikey scoping on the embedded one (the checks are the
 * same code on both).
 */

const CRON = 'karya.core.entities.PlanType.Cron';
const SECOND = 1000;
const HOUR = 3600 * SECOND;
const EXECUTOR_YML = 'application:\n  concurrency: 8\n  egress:\n    allowPrivateNetworks: true\n';

interface Bucket { at: number; succeeded: number; failed: number; lateness_p50_ms: number | null; lateness_p99_ms: number | null }
interface Stats { bucket_seconds: number; from: number; to: number; buckets: Bucket[]; totals: Omit<Bucket, 'at'> }

/** A task_stats row (of a source of its own) with `n` successes, each 2 ms late (the histogram slot of (1 ms, 2.5 ms]), in the bucket `ago` ms back. */
async function seedStats(ds: DataSource, userId: string, n: number, failed: number, agoSql = `interval '0 seconds'`): Promise<void> {
  const lateness = new Array<number>(16).fill(0);
  lateness[1] = n + failed;
  await ds.query(
    `INSERT INTO task_stats (bucket, user_id, source, succeeded, failed, lateness)
     VALUES (to_timestamp(floor(extract(epoch FROM now() - ${agoSql}) / 10) * 10), $1, $2, $3, $4, $5::int[])`,
    [userId, randomUUID(), n, failed, `{${lateness.join(',')}}`],
  );
}

describe.each(stacks())('dashboard API on $name', (target: Stack) => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let userId: string;

  beforeAll(async () => {
    await sink.start();
    ({ app, http, ds, userId } = await startInProcessKarya(target, tmp, { executorYml: EXECUTOR_YML, userName: `stats-${randomUUID()}` }));
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, target, tmp);
  });

  const newUser = async (): Promise<string> => (await request(http).post('/v1/user').send({ name: `stats-${randomUUID()}` }).expect(200)).body.id;
  const submit = async (user: string, body: Record<string, unknown>) =>
    (await request(http).post('/v1/plan').send({ user_id: user, description: 'stats', max_failure_retry: 0, ...body }).expect(200)).body;
  const oneTime = (user: string, path: string, period = 'PT0.2S') =>
    submit(user, { period_time: period, plan_type: { type: T.OneTime }, action: { type: T.Rest, base_url: `${sink.baseUrl}${path}` } });
  const stats = async (query: Record<string, string> = {}): Promise<Stats> => (await request(http).get('/v1/stats').query(query).expect(200)).body;
  const fires = async (planId: string, count?: string): Promise<number[]> =>
    (await request(http).get(`/v1/plan/${planId}/fires`).query(count === undefined ? {} : { count }).expect(200)).body.fires;

  it('counts finished attempts per user, with lateness percentiles, in every 10 s bucket of the window', async () => {
    const [a, b] = [await newUser(), await newUser()];
    await Promise.all([
      ...[1, 2, 3].map(() => oneTime(a, '/ok')),
      ...[1, 2].map(() => oneTime(a, '/fail')),
      ...[1, 2].map(() => oneTime(b, '/ok')),
    ]);
    const done = (s: Stats, succeeded: number, failed: number) =>
      s.totals.succeeded === succeeded && s.totals.failed === failed && s.totals.lateness_p50_ms !== null;
    await waitFor(async () => done(await stats({ user_id: a }), 3, 2) && done(await stats({ user_id: b }), 2, 0), 20_000, 'the tasks in /v1/stats');

    const ofA = await stats({ user_id: a, minutes: '5' });
    expect(ofA.bucket_seconds).toBe(10);
    expect(ofA.buckets).toHaveLength(30);
    expect(ofA.to - ofA.from).toBe(5 * 60 * SECOND);
    ofA.buckets.forEach((bucket, i) => expect(bucket.at).toBe(ofA.from + i * 10 * SECOND));
    expect(ofA.to).toBeGreaterThan(Date.now() - 10 * SECOND);
    expect(ofA.buckets.reduce((s, x) => s + x.succeeded, 0)).toBe(3);
    expect(ofA.buckets.reduce((s, x) => s + x.failed, 0)).toBe(2);
    expect(ofA.totals.lateness_p99_ms).toEqual(expect.any(Number));
    expect(ofA.totals.lateness_p99_ms!).toBeGreaterThanOrEqual(ofA.totals.lateness_p50_ms!);
    // Empty buckets are zeros with no percentiles; non-empty ones have them.
    for (const bucket of ofA.buckets) {
      const any = bucket.succeeded + bucket.failed > 0;
      expect({ any, p50: bucket.lateness_p50_ms === null }).toEqual({ any, p50: !any });
    }
    // Open mode without user_id: everyone's, so at least both users' figures.
    const all = await stats();
    expect(all.buckets).toHaveLength(15 * 6);
    expect(all.totals.succeeded).toBeGreaterThanOrEqual(5);
    expect(all.totals.failed).toBeGreaterThanOrEqual(2);
    expect((await stats({ minutes: '"60"' })).buckets).toHaveLength(360);
    expect((await stats({ minutes: '1' })).buckets).toHaveLength(6);
  }, 30_000);

  it.each([
    ['minutes', '0'], ['minutes', '61'], ['minutes', 'x'], ['minutes', '1.5'], ['minutes', '-1'], ['minutes', ' 5'],
  ])('refuses %s=%j with a 400 naming it', async (name, value) => {
    const res = await request(http).get('/v1/stats').query({ [name]: value }).expect(400);
    expect(res.text).toBe(`minutes: must be an integer from 1 to 60, got ${JSON.stringify(value)}`);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('refuses a user_id that is not a UUID', async () => {
    expect((await request(http).get('/v1/stats').query({ user_id: 'bob' }).expect(400)).text).toBe('user_id: must be a UUID, got "bob"');
  });

  it('says who the caller is in the open mode', async () => {
    expect((await request(http).get('/v1/whoami').expect(200)).body).toEqual({ auth_mode: 'none', kind: 'open', user: null });
  });

  it('lists the next fires of a PT1S Recurring plan on its grid, then none once cancelled', async () => {
    const plan = await submit(userId, { period_time: 'PT1S', plan_type: { type: T.Recurring }, action: { type: T.Rest, base_url: `${sink.baseUrl}/grid` } });
    const before = Date.now();
    const got = await fires(plan.id, '7');
    expect(got).toHaveLength(7);
    for (let i = 1; i < got.length; i++) expect(got[i] - got[i - 1]).toBe(SECOND);
    // The grid starts one period after submission; the first fire is the pending occurrence.
    expect((got[0] - plan.created_at) % SECOND).toBe(0);
    expect(got[0]).toBeGreaterThanOrEqual(before - SECOND);
    expect(got[0]).toBeLessThanOrEqual(Date.now() + SECOND);
    expect(await fires(plan.id)).toHaveLength(5);

    // Paused: the fires a resume now would give, on the same grid, none in the past.
    await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200);
    const now = Date.now();
    const paused = await fires(plan.id, '3');
    expect(paused).toHaveLength(3);
    expect(paused[0]).toBeGreaterThanOrEqual(now);
    expect((paused[0] - plan.created_at) % SECOND).toBe(0);

    await request(http).post(`/v1/plan/${plan.id}`).expect(200);
    expect(await fires(plan.id)).toEqual([]);
  });

  it('lists a Cron plan in a DST zone as CronSchedule fires it (02:30 New York: 03:00 on the spring-forward day)', async () => {
    const expression = '30 2 * 3 *';
    const zone = 'America/New_York';
    const plan = await submit(userId, { plan_type: { type: CRON, expression, time_zone: zone }, action: { type: T.Rest, base_url: `${sink.baseUrl}/cron` } });
    const state = (await request(http).get(`/v1/plan/${plan.id}/state`).expect(200)).body;
    const got = await fires(plan.id, '20');
    const schedule = new CronSchedule(expression, zone);
    const expected = [state.next_execution_at as number];
    while (expected.length < 20) expected.push(schedule.next(expected[expected.length - 1])!);
    expect(got).toEqual(expected);
    const wall = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    for (const f of got) expect(['02:30', '03:00']).toContain(wall.format(f));
    // 03:00 only where 02:30 does not exist: 23 hours after the previous fire.
    got.forEach((f, i) => {
      if (i > 0 && wall.format(f) === '03:00') expect(f - got[i - 1]).toBe(23 * HOUR + 30 * 60 * SECOND);
    });
    await request(http).post(`/v1/plan/${plan.id}`).expect(200);
  });

  it('stops a bounded plan at its first fire at or after end_at, and lists a OneTime plan until it has run', async () => {
    const endAt = Date.now() + 2.5 * HOUR;
    const bounded = await submit(userId, { period_time: 'PT1H', plan_type: { type: T.Recurring, end_at: endAt }, action: { type: T.Rest, base_url: `${sink.baseUrl}/b` } });
    const got = await fires(bounded.id, '5');
    expect(got).toHaveLength(3);
    expect(got[1] - got[0]).toBe(HOUR);
    expect(got[2]).toBeGreaterThanOrEqual(endAt);
    expect(got[1]).toBeLessThan(endAt);

    const later = await oneTime(userId, '/later', 'PT1H');
    const due = (await request(http).get(`/v1/plan/${later.id}/state`).expect(200)).body.next_execution_at as number;
    expect(await fires(later.id, '20')).toEqual([due]);

    const soon = await oneTime(userId, '/soon');
    await waitFor(async () => (await request(http).get(`/v1/plan/${soon.id}`).expect(200)).body.plan.status === 'COMPLETED', 10_000, 'the OneTime plan to run');
    expect(await fires(soon.id)).toEqual([]);
  });

  it("lists a paused bounded plan's final occurrence, claimed ahead and handed back PAUSED, as resume would run it", async () => {
    const plan = await submit(userId, {
      period_time: 'PT1H', plan_type: { type: T.Recurring, end_at: Date.now() + 1.5 * HOUR }, action: { type: T.Rest, base_url: `${sink.baseUrl}/final` },
    });
    const [first, final] = await fires(plan.id, '5');
    expect(final - first).toBe(HOUR);
    await request(http).post(`/v1/plan/${plan.id}/pause`).expect(200);
    // As the scheduler leaves it once the final occurrence was claimed (marked next_created though it has no
    // successor: the plan ends with it) and the executor handed it back because the plan is paused.
    await ds.query(`UPDATE tasks SET next_created = true, status = 'PAUSED', next_execution_at = $2 WHERE plan_id = $1`, [plan.id, new Date(final)]);
    expect(await fires(plan.id)).toEqual([final]);
    await request(http).post(`/v1/plan/${plan.id}/resume`).expect(200);
    const [task] = await ds.query(`SELECT status, next_execution_at AS due FROM tasks WHERE plan_id = $1`, [plan.id]);
    expect({ status: task.status, due: new Date(task.due).getTime() }).toEqual({ status: 'CREATED', due: final });
    expect(await fires(plan.id)).toEqual([final]);
    await request(http).post(`/v1/plan/${plan.id}`).expect(200);
  });

  it.each([['0'], ['21'], ['five'], ['2.0']])('refuses count=%j with a 400 naming it; an unknown plan is a 404', async (value) => {
    const plan = await oneTime(userId, '/later', 'PT1H');
    const res = await request(http).get(`/v1/plan/${plan.id}/fires`).query({ count: value }).expect(400);
    expect(res.text).toBe(`count: must be an integer from 1 to 20, got ${JSON.stringify(value)}`);
    expect((await request(http).get(`/v1/plan/${plan.id}/fires`).query({ count: '"3"' }).expect(200)).body).toEqual({ plan_id: plan.id, fires: [expect.any(Number)] });
    const missing = randomUUID();
    expect((await request(http).get(`/v1/plan/${missing}/fires`).expect(404)).text).toBe(`Plan not found --- ${missing}`);
    expect((await request(http).get('/v1/plan/nope/fires').expect(400)).text).toBe('plan_id: must be a UUID, got "nope"');
  });

  it('has the housekeeper delete task_stats rows older than an hour and keep the recent ones', async () => {
    const user = await newUser();
    await seedStats(ds, user, 4, 0, `interval '2 hours'`);
    await seedStats(ds, user, 5, 0, `interval '61 minutes'`);
    await seedStats(ds, user, 7, 1);
    // The housekeeper's own loop may have run a pass meanwhile and deleted some: only the rows left tell.
    await app.get(Housekeeper).runPass();
    const rows: { succeeded: number }[] = await ds.query(`SELECT succeeded FROM task_stats WHERE user_id = $1`, [user]);
    expect(rows.map((r) => r.succeeded)).toEqual([7]);
    const s = await stats({ user_id: user, minutes: '60' });
    expect(s.totals).toEqual({ succeeded: 7, failed: 1, lateness_p50_ms: expect.any(Number), lateness_p99_ms: expect.any(Number) });
    // All 8 in (1 ms, 2.5 ms]: the median interpolates to the middle of it.
    expect(s.totals.lateness_p50_ms).toBe(1.75);
  });
});

describe('dashboard API in apikey mode (embedded)', () => {
  const [target] = stacks();
  const tmp = new TempDir();
  const sink = new HttpSink();
  const adminKey = `admin-${randomUUID()}`;
  const admin = `Bearer ${adminKey}`;
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let a: { id: string; name: string };
  let b: { id: string; name: string };
  let keyA: string;
  let keyB: string;

  beforeAll(async () => {
    await sink.start();
    ({ app, http, ds } = await startInProcessKarya(target, tmp, {
      executorYml: EXECUTOR_YML,
      userName: `stats-${randomUUID()}`,
      serverYml: 'application:\n  auth:\n    mode: apikey\n  egress:\n    allowPrivateNetworks: true\n',
      adminKey,
    }));
    const user = async () => (await request(http).post('/v1/user').set('Authorization', admin).send({ name: `stats-${randomUUID()}` }).expect(200)).body;
    [a, b] = [await user(), await user()];
    keyA = (await request(http).post(`/v1/user/${a.id}/keys`).set('Authorization', admin).expect(200)).body.key;
    keyB = (await request(http).post(`/v1/user/${b.id}/keys`).set('Authorization', admin).expect(200)).body.key;
    await seedStats(ds, a.id, 3, 1);
    await seedStats(ds, b.id, 10, 0);
  });
  afterAll(async () => {
    await stopInProcessKarya(app, sink, target, tmp);
  });

  const get = (path: string, auth?: string, query: Record<string, string> = {}) => {
    const req = request(http).get(path).query(query);
    return auth === undefined ? req : req.set('Authorization', auth);
  };

  it('whoami: 401 without a valid key; the admin; a user key with its user', async () => {
    for (const auth of [undefined, 'Bearer karya_nope']) {
      const res = await get('/v1/whoami', auth).expect(401);
      expect(res.text).toMatch(/^Unauthorized: a valid API key is required/);
    }
    expect((await get('/v1/whoami', admin).expect(200)).body).toEqual({ auth_mode: 'apikey', kind: 'admin', user: null });
    expect((await get('/v1/whoami', `Bearer ${keyA}`).expect(200)).body).toEqual({ auth_mode: 'apikey', kind: 'user', user: { id: a.id, name: a.name } });
  });

  it("stats: a user key sees its own figures only, another user's id is a 403; the admin sees both or either", async () => {
    const totals = async (auth: string, query: Record<string, string> = {}) => (await get('/v1/stats', auth, query).expect(200)).body.totals;
    expect(await totals(`Bearer ${keyA}`)).toMatchObject({ succeeded: 3, failed: 1 });
    expect(await totals(`Bearer ${keyA}`, { user_id: a.id })).toMatchObject({ succeeded: 3, failed: 1 });
    expect(await totals(`Bearer ${keyB}`)).toMatchObject({ succeeded: 10, failed: 0 });
    const refused = await get('/v1/stats', `Bearer ${keyA}`, { user_id: b.id }).expect(403);
    expect(refused.text).toBe(`user_id: a key may act only for its own user, got "${b.id}"`);
    expect(await totals(admin)).toMatchObject({ succeeded: 13, failed: 1 });
    expect(await totals(admin, { user_id: b.id })).toMatchObject({ succeeded: 10, failed: 0 });
    await get('/v1/stats').expect(401);
  });

  it("fires: another user's plan is a 404, the owner's and the admin's a 200", async () => {
    const plan = (await request(http).post('/v1/plan').set('Authorization', `Bearer ${keyA}`).send({
      user_id: a.id, description: 'fires', period_time: 'PT1H', plan_type: { type: T.OneTime },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/never` },
    }).expect(200)).body;
    expect((await get(`/v1/plan/${plan.id}/fires`, `Bearer ${keyB}`).expect(404)).text).toBe(`Plan not found --- ${plan.id}`);
    expect((await get(`/v1/plan/${plan.id}/fires`, `Bearer ${keyA}`).expect(200)).body.fires).toHaveLength(1);
    expect((await get(`/v1/plan/${plan.id}/fires`, admin).expect(200)).body.fires).toHaveLength(1);
  });
});

describe('task counts at a graceful shutdown (real PostgreSQL, Redis and RabbitMQ)', () => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let db: TestDatabase;
  let app: INestApplication | undefined;
  let check: DataSource | undefined;

  afterAll(async () => {
    await app?.close();
    await check?.destroy();
    await sink.stop();
    await db?.drop();
    tmp.cleanup();
  });

  it('counts a task that finishes while the app closes (the executor drains before the last flush)', async () => {
    await sink.start();
    db = await createTestDatabase();
    // A stack of our own: the database must outlive the app, to read what it wrote last.
    const stack: Stack = { name: 'real', providers: async (t) => writeRealProviders(t, { pgUrl: db.url }), cleanup: async () => undefined };
    let http: ReturnType<INestApplication['getHttpServer']>;
    let userId: string;
    ({ app, http, userId } = await startInProcessKarya(stack, tmp, { executorYml: EXECUTOR_YML, userName: `stats-${randomUUID()}` }));
    await request(http).post('/v1/plan').send({
      user_id: userId, description: 'slow', period_time: 'PT0.1S', max_failure_retry: 0, plan_type: { type: T.OneTime },
      action: { type: T.Rest, base_url: `${sink.baseUrl}/slow/1500` },
    }).expect(200);
    await waitFor(async () => sink.hitsFor('/slow/1500').length === 1, 10_000, 'the slow call to be under way');
    const closing = app.close();
    app = undefined;
    await closing;

    check = new DataSource({ type: 'postgres', url: db.url });
    await check.initialize();
    const [counted] = await check.query(`SELECT coalesce(sum(succeeded), 0)::int AS succeeded, count(*)::int AS rows FROM task_stats WHERE user_id = $1`, [userId]);
    expect(counted).toEqual({ succeeded: 1, rows: 1 });
    const [task] = await check.query(`SELECT t.status FROM tasks t JOIN plans p ON p.id = t.plan_id WHERE p.user_id = $1`, [userId]);
    expect(task.status).toBe('SUCCESS');
  }, 30_000);
});
