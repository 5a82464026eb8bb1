import { randomUUID } from 'node:crypto';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { MemoryQueue } from '../src/connectors/queue/memory.queue';
import { Delivery, QueueName, TaskQueue } from '../src/connectors/queue/queue.port';
import { HttpSink, waitFor } from './support/http-sink';
import { startInProcessKarya, stopInProcessKarya } from './support/in-process-karya';
import { stacks } from './support/stacks';
import { TempDir } from './support/temp-files';
import { T } from './support/wire-types';

/** Issue 12: dead letters are rows the API lists, replays and discards, scoped to the caller. */

const EXECUTOR_YML = 'application:\n  egress:\n    allowPrivateNetworks: true\n  retry:\n    initialDelay: 100\n    multiplier: 1\n    jitter: 0\n';
const KEYS = ['id', 'user_id', 'kind', 'plan_id', 'task_id', 'reason', 'attempts', 'created_at'].sort();

type Json = Record<string, unknown>;

describe.each(stacks())('dead letters on $name (auth mode none)', (target) => {
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let ds: DataSource;
  let userId: string;
  const deadLetters: Delivery[] = [];

  beforeAll(async () => {
    await sink.start();
    ({ app, http, ds, userId } = await startInProcessKarya(target, tmp, { executorYml: EXECUTOR_YML, userName: 'dead-letters', deadLetters }));
  }, 60_000);
  afterAll(async () => stopInProcessKarya(app, sink, target, tmp));

  const rest = (path: string) => ({ type: T.Rest, base_url: `${sink.baseUrl}${path}`, method: 'POST' });
  const submit = async (body: Json): Promise<Json> =>
    (await request(http).post('/v1/plan').send({ user_id: userId, description: 'dl', period_time: 'PT0.2S', plan_type: { type: T.OneTime }, ...body }).expect(200)).body;
  const summary = async (id: unknown) => (await request(http).get(`/v1/plan/${String(id)}/summary`).expect(200)).body;
  const list = async (query: Json = { user_id: userId }): Promise<Json[]> => (await request(http).get('/v1/dead-letters').query(query).expect(200)).body.dead_letters;
  const lettersOf = async (planId: unknown, kind: string) => (await list()).filter((d) => d.plan_id === planId && d.kind === kind);
  const letterOf = async (planId: unknown, kind: string, reason: RegExp): Promise<Json> => {
    let found: Json | undefined;
    await waitFor(async () => (found = (await lettersOf(planId, kind)).find((d) => reason.test(String(d.reason)))) !== undefined, 15_000, `${kind} dead letter of ${String(planId)}`);
    return found!;
  };

  it('records a task whose last attempt failed, lists it newest first, and replays it once with the next attempt; a failure records it again', async () => {
    const plan = await submit({ max_failure_retry: 1, action: rest('/fail/task') });
    const letter = await letterOf(plan.id, 'TASK', /^Failed after 2 attempt\(s\): REST call failed --- \[500/);
    const s = await summary(plan.id);
    const taskId = s.tasks[0].id;
    expect(Object.keys(letter).sort()).toEqual(KEYS);
    expect(letter).toMatchObject({ user_id: userId, kind: 'TASK', plan_id: plan.id, task_id: taskId, attempts: 2 });
    expect(typeof letter.created_at).toBe('number');
    const body = (await request(http).get('/v1/dead-letters').query({ user_id: userId }).expect(200)).body;
    expect(Object.keys(body).sort()).toEqual(['dead_letters', 'offset', 'total']);
    expect(body.offset).toBe(0);
    expect(body.total).toBeGreaterThanOrEqual(1);
    expect(sink.hitsFor(taskId).map((h) => h.headers['x-karya-attempt'])).toEqual(['1', '2']);

    const replayed = (await request(http).post(`/v1/dead-letters/${String(letter.id)}/replay`).expect(200)).body;
    expect(replayed).toEqual(letter);
    // One more call, with the next attempt number, then the task fails again and is dead-lettered again.
    const again = await letterOf(plan.id, 'TASK', /^Failed after 3 attempt\(s\)/);
    expect(again).toMatchObject({ task_id: taskId, attempts: 3 });
    expect(again.id).not.toBe(letter.id);
    expect(sink.hitsFor(taskId).map((h) => h.headers['x-karya-attempt'])).toEqual(['1', '2', '3']);
    // The replayed record is gone: one dead letter for the task, the new one.
    expect((await lettersOf(plan.id, 'TASK')).map((d) => d.id)).toEqual([again.id]);
    const after = await summary(plan.id);
    expect(after.tasks).toHaveLength(1);
    expect(after.tasks[0].status).toBe('FAILURE');
    expect(after.plan.status).toBe('COMPLETED');
  });

  it('a replay that succeeds completes the plan again and fires ON_COMPLETION once', async () => {
    const plan = await submit({
      max_failure_retry: 1,
      action: rest('/flaky/2'),
      hooks: [{ trigger: 'ON_COMPLETION', max_retry: 0, action: rest('/completed') }],
    });
    const letter = await letterOf(plan.id, 'TASK', /^Failed after 2 attempt/);
    expect((await summary(plan.id)).plan.status).toBe('COMPLETED');
    await request(http).post(`/v1/dead-letters/${String(letter.id)}/replay`).expect(200);
    await waitFor(async () => (await summary(plan.id)).tasks[0].status === 'SUCCESS', 15_000, 'the replayed task succeeds');
    await waitFor(() => sink.hitsFor('/completed').some((h) => h.planId === plan.id), 10_000, 'ON_COMPLETION');
    const s = await summary(plan.id);
    expect(s.plan.status).toBe('COMPLETED');
    expect(sink.hitsFor(s.tasks[0].id).filter((h) => h.path === '/flaky/2').map((h) => h.headers['x-karya-attempt'])).toEqual(['1', '2', '3']);
    expect(sink.hitsFor('/completed').filter((h) => h.planId === plan.id)).toHaveLength(1);
    expect(await lettersOf(plan.id, 'TASK')).toEqual([]);
    // A second replay of the same record finds nothing.
    await request(http).post(`/v1/dead-letters/${String(letter.id)}/replay`).expect(404);
  });

  it('records a hook out of tries and replays it as its next try; failing again records it again', async () => {
    const plan = await submit({ max_failure_retry: 0, action: rest('/ok'), hooks: [{ trigger: 'ON_COMPLETION', max_retry: 0, action: rest('/fail/hook') }] });
    const letter = await letterOf(plan.id, 'HOOK', /^Hook failed after 1 attempt\(s\)/);
    expect(letter).toMatchObject({ kind: 'HOOK', user_id: userId, attempts: 1 });
    const hookHits = () => sink.hitsFor('/fail/hook').filter((h) => h.planId === plan.id);
    expect(hookHits().map((h) => h.headers['x-karya-attempt'])).toEqual(['1']);
    await request(http).post(`/v1/dead-letters/${String(letter.id)}/replay`).expect(200);
    const again = await letterOf(plan.id, 'HOOK', /^Hook failed after 2 attempt\(s\)/);
    expect(again.attempts).toBe(2);
    expect(hookHits().map((h) => h.headers['x-karya-attempt'])).toEqual(['1', '2']);
    // Same firing, so the same idempotency key.
    expect(new Set(hookHits().map((h) => h.key)).size).toBe(1);
    expect((await lettersOf(plan.id, 'HOOK')).map((d) => d.id)).toEqual([again.id]);
  });

  it('replays an old task of a running recurring plan as one attempt, even with retries left, without a second successor; a cancelled plan refuses', async () => {
    // No connector: each occurrence is dead-lettered at its first attempt, with max_failure_retry 3 unused.
    const plan = await submit({ period_time: 'PT1S', plan_type: { type: T.Recurring }, max_failure_retry: 3, action: { type: T.Slack, channel: '#c', message: '[]' } });
    const first = await letterOf(plan.id, 'TASK', /^No connector configured/);
    expect(first.attempts).toBe(1);
    await request(http).post(`/v1/dead-letters/${String(first.id)}/replay`).expect(200);
    let found: Json | undefined;
    await waitFor(async () => (found = (await lettersOf(plan.id, 'TASK')).find((d) => d.task_id === first.task_id && d.attempts === 2)) !== undefined, 15_000, 'the replayed attempt dead-lettered');
    const again = found!;
    expect(again.reason).toBe(`No connector configured for ${T.Slack}`);
    // That attempt was its last: no retry is pending although the plan allows 3.
    const [task] = await ds.query(`SELECT attempt, status, retry_at, next_created FROM tasks WHERE id = $1`, [first.task_id]);
    expect(task).toEqual({ attempt: 2, status: 'FAILURE', retry_at: null, next_created: true });
    // One task per slot: the replay created no second successor.
    expect(await ds.query(`SELECT next_execution_at FROM tasks WHERE plan_id = $1 GROUP BY 1 HAVING count(*) > 1`, [plan.id])).toEqual([]);
    expect((await summary(plan.id)).plan.status).toBe('RUNNING');

    let other: Json | undefined;
    await waitFor(async () => (other = (await lettersOf(plan.id, 'TASK')).find((d) => d.task_id !== first.task_id)) !== undefined, 15_000, 'a later occurrence dead-lettered');
    await request(http).post(`/v1/plan/${String(plan.id)}`).expect(200);
    const refused = await request(http).post(`/v1/dead-letters/${String(other!.id)}/replay`).expect(409);
    expect(refused.text).toBe(`Plan ${String(plan.id)} is CANCELLED: nothing of it runs again`);
    // A task that is not a failure waiting for nothing is refused too, and the record stays.
    await ds.query(`UPDATE tasks SET status = 'SUCCESS' WHERE id = $1`, [again.task_id]);
    await ds.query(`UPDATE plans SET status = 'RUNNING' WHERE id = $1`, [plan.id]);
    expect((await request(http).post(`/v1/dead-letters/${String(again.id)}/replay`).expect(409)).text).toMatch(/is SUCCESS: only a failed task/);
    expect((await lettersOf(plan.id, 'TASK')).some((d) => d.id === again.id)).toBe(true);
    await request(http).post(`/v1/plan/${String(plan.id)}`).expect(200);
  });

  it('discards a record, and answers 404 for one that does not exist, 400 for bad input, 409 when nothing can run', async () => {
    const plan = await submit({ max_failure_retry: 0, action: { type: T.Slack, channel: '#c', message: '[]' } });
    const letter = await letterOf(plan.id, 'TASK', /^No connector configured/);
    expect(letter.attempts).toBe(1);
    expect((await request(http).delete(`/v1/dead-letters/${String(letter.id)}`).expect(200)).body).toEqual(letter);
    expect(await lettersOf(plan.id, 'TASK')).toEqual([]);
    const gone = await request(http).delete(`/v1/dead-letters/${String(letter.id)}`).expect(404);
    expect(gone.text).toBe(`Dead letter not found --- ${String(letter.id)}`);
    await request(http).post(`/v1/dead-letters/${randomUUID()}/replay`).expect(404);
    expect((await request(http).post('/v1/dead-letters/not-a-uuid/replay').expect(400)).text).toBe('id: must be a UUID, got "not-a-uuid"');
    expect((await request(http).get('/v1/dead-letters').query({ user_id: userId, page: '-1' }).expect(400)).text).toMatch(/^page: /);
    expect((await request(http).get('/v1/dead-letters').query({ user_id: 'x' }).expect(400)).text).toMatch(/^user_id: must be a UUID/);

    // A message no executor could read names no task: listed only without user_id, and nothing to replay.
    const marker = `poison-${randomUUID()}`;
    await app.get(TaskQueue).publish(QueueName.Executor, { type: 'karya.core.queues.entities.QueueMessage.ExecutorMessage', taskId: marker });
    await waitFor(() => deadLetters.some((d) => d.message.taskId === marker), 10_000, 'the poison dead letter');
    const poison = (await list({})).find((d) => d.plan_id === null && d.user_id === null && /^malformed executor message/.test(String(d.reason)));
    expect(poison).toBeDefined();
    expect((await list()).some((d) => d.id === poison!.id)).toBe(false);
    const conflict = await request(http).post(`/v1/dead-letters/${String(poison!.id)}/replay`).expect(409);
    expect(conflict.text).toMatch(/names no task to run again/);
    // A refused replay keeps the record.
    expect((await list({})).some((d) => d.id === poison!.id)).toBe(true);
  });

  it('pages newest first, 20 a page', async () => {
    const plans = [];
    for (let i = 0; i < 3; i++) plans.push(await submit({ max_failure_retry: 0, action: { type: T.Slack, channel: '#c', message: '[]' } }));
    for (const p of plans) await letterOf(p.id, 'TASK', /^No connector/);
    const all = (await request(http).get('/v1/dead-letters').query({ user_id: userId }).expect(200)).body;
    const times = (all.dead_letters as Json[]).map((d) => Number(d.created_at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    expect(all.dead_letters.length).toBe(Math.min(20, all.total));
    const beyond = (await request(http).get('/v1/dead-letters').query({ user_id: userId, page: '1000' }).expect(200)).body;
    expect(beyond).toEqual({ dead_letters: [], total: all.total, offset: 1000 });
  });
});

describe('dead letters in apikey mode (PGlite)', () => {
  const ADMIN = 'dead-letters-admin-key-0123456789';
  const target = stacks()[0];
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let http: ReturnType<INestApplication['getHttpServer']>;
  let userA: string;
  let userB: string;
  let keyA: string;
  let keyB: string;
  const deadLetters: Delivery[] = [];
  const admin = `Bearer ${ADMIN}`;

  beforeAll(async () => {
    await sink.start();
    ({ app, http, userId: userA } = await startInProcessKarya(target, tmp, {
      executorYml: EXECUTOR_YML,
      serverYml: 'application:\n  auth:\n    mode: apikey\n  egress:\n    allowPrivateNetworks: true\n',
      userName: 'alice',
      deadLetters,
      adminKey: ADMIN,
    }));
    userB = (await request(http).post('/v1/user').set('Authorization', admin).send({ name: 'bob' }).expect(200)).body.id;
    keyA = `Bearer ${(await request(http).post(`/v1/user/${userA}/keys`).set('Authorization', admin).expect(200)).body.key}`;
    keyB = `Bearer ${(await request(http).post(`/v1/user/${userB}/keys`).set('Authorization', admin).expect(200)).body.key}`;
  }, 60_000);
  afterAll(async () => stopInProcessKarya(app, sink, target, tmp));

  const letterOfA = async (): Promise<Json> => {
    const plan = (await request(http).post('/v1/plan').set('Authorization', keyA)
      .send({ user_id: userA, description: 'a', period_time: 'PT0.2S', plan_type: { type: T.OneTime }, max_failure_retry: 0, action: { type: T.Slack, channel: '#c', message: '[]' } })
      .expect(200)).body;
    let found: Json | undefined;
    await waitFor(async () => {
      const list = (await request(http).get('/v1/dead-letters').set('Authorization', keyA).expect(200)).body.dead_letters as Json[];
      return (found = list.find((d) => d.plan_id === plan.id)) !== undefined;
    }, 15_000, "A's dead letter");
    return found!;
  };

  it('shows, replays and discards a dead letter only for its owner and the admin; others get 404 or 403', async () => {
    const letter = await letterOfA();
    expect(letter.user_id).toBe(userA);
    // No key: 401.
    await request(http).get('/v1/dead-letters').expect(401);
    // B cannot name A, does not see A's letter, and cannot touch it (404, as if it did not exist).
    expect((await request(http).get('/v1/dead-letters').query({ user_id: userA }).set('Authorization', keyB).expect(403)).text).toMatch(/^user_id: /);
    const seenByB = (await request(http).get('/v1/dead-letters').set('Authorization', keyB).expect(200)).body;
    expect(seenByB).toEqual({ dead_letters: [], total: 0, offset: 0 });
    await request(http).post(`/v1/dead-letters/${String(letter.id)}/replay`).set('Authorization', keyB).expect(404);
    await request(http).delete(`/v1/dead-letters/${String(letter.id)}`).set('Authorization', keyB).expect(404);
    // The admin sees it, with or without user_id.
    const byAdmin = (await request(http).get('/v1/dead-letters').set('Authorization', admin).expect(200)).body.dead_letters as Json[];
    expect(byAdmin.some((d) => d.id === letter.id)).toBe(true);
    const byAdminForA = (await request(http).get('/v1/dead-letters').query({ user_id: userA }).set('Authorization', admin).expect(200)).body.dead_letters as Json[];
    expect(byAdminForA.some((d) => d.id === letter.id)).toBe(true);
    // A replays its own (it fails again for want of a connector: a new record) and A discards the next one.
    await request(http).post(`/v1/dead-letters/${String(letter.id)}/replay`).set('Authorization', keyA).expect(200);
    let next: Json | undefined;
    await waitFor(async () => {
      const list = (await request(http).get('/v1/dead-letters').set('Authorization', keyA).expect(200)).body.dead_letters as Json[];
      return (next = list.find((d) => d.plan_id === letter.plan_id && d.attempts === 2)) !== undefined;
    }, 15_000, 'the replayed task dead-lettered again');
    await request(http).delete(`/v1/dead-letters/${String(next!.id)}`).set('Authorization', admin).expect(200);
    expect((await request(http).get('/v1/dead-letters').set('Authorization', keyA).expect(200)).body.dead_letters.filter((d: Json) => d.plan_id === letter.plan_id)).toEqual([]);
  });
});

describe('the embedded queue holds no dead letters in memory', () => {
  const target = stacks()[0];
  const tmp = new TempDir();
  const sink = new HttpSink();
  let app: INestApplication;
  let ds: DataSource;

  beforeAll(async () => {
    await sink.start();
    // No mirror of the table (deadLetters): reading 10,000 rows ten times a second would be the test's bottleneck.
    ({ app, ds } = await startInProcessKarya(target, tmp, { executorYml: EXECUTOR_YML, userName: 'many' }));
  }, 60_000);
  afterAll(async () => stopInProcessKarya(app, sink, target, tmp));

  it('after 10,000 dead-lettered tasks, every one is a row and the queue holds none', async () => {
    const queue = app.get(TaskQueue);
    expect(queue).toBeInstanceOf(MemoryQueue);
    // The last dispatches of 10,000 tasks, dead-lettered through the queue port as the executor and the
    // scheduler do after a task's last attempt. (Running 10,000 real plans to that point on PGlite took
    // minutes; the pipeline's own dead-lettering is proved above, one task at a time.)
    const messages = Array.from({ length: 10_000 }, () => ({
      type: 'karya.core.queues.entities.QueueMessage.ExecutorMessage', planId: randomUUID(), taskId: randomUUID(), attempt: 4,
    }));
    for (let i = 0; i < messages.length; i += 500) {
      await Promise.all(messages.slice(i, i + 500).map((m) => queue.deadLetter(QueueName.Executor, m, 'Failed after 4 attempt(s): boom')));
    }
    await waitFor(async () => (await ds.query(`SELECT count(*)::int AS n FROM dead_letters`))[0].n === 10_000, 60_000, '10,000 rows');
    // Each delivery settles just after its row commits.
    await waitFor(() => (queue as MemoryQueue).depth(QueueName.DeadLetter) === 0, 5_000, 'the queue to hold none');
    const [row] = await ds.query(`SELECT count(DISTINCT task_id)::int AS tasks, min(attempts) AS lo, max(attempts) AS hi, count(message)::int AS bodies FROM dead_letters`);
    expect(row).toEqual({ tasks: 10_000, lo: 4, hi: 4, bodies: 10_000 });
    // Delivered again (as after a crash between the insert and the acknowledgement), each is recorded once.
    await Promise.all(messages.slice(0, 100).map((m) => queue.deadLetter(QueueName.Executor, m, 'Failed after 4 attempt(s): boom')));
    await waitFor(() => (queue as MemoryQueue).depth(QueueName.DeadLetter) === 0, 10_000, 'the copies drained');
    expect((await ds.query(`SELECT count(*)::int AS n FROM dead_letters`))[0].n).toBe(10_000);
  }, 90_000);
});
